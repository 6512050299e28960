//! The device socket: authentication before the upgrade, one connection per device (a newer
//! one replaces the older), per-connection rate limits and strikes, and batched replies.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_api::auth::Caller;
use aednet_api::sessions::SessionWatch;
use aednet_api::{ApiError, AppState};
use aednet_core::telemetry::DeviceMessage;
use aednet_core::Role;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::{FutureExt, SinkExt};
use serde_json::json;
use tokio::sync::{oneshot, Mutex as AsyncMutex, OwnedSemaphorePermit};

use super::process::Slot;
use super::{close, Gateway, Rejected};

impl Gateway {
    /// Registers a new connection of `aed_id`, telling an older one to close.
    fn register(&self, aed_id: i64) -> (u64, oneshot::Receiver<()>) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Some((_, old)) = self.live.lock().insert(aed_id, (id, tx)) {
            let _ = old.send(());
        }
        (id, rx)
    }

    fn unregister(&self, aed_id: i64, conn: u64) {
        let mut live = self.live.lock();
        if live.get(&aed_id).is_some_and(|(c, _)| *c == conn) {
            live.remove(&aed_id);
        }
    }

    async fn serve_device(
        self: Arc<Self>,
        mut socket: WebSocket,
        aed_id: i64,
        _permit: OwnedSemaphorePermit,
        mut watch: SessionWatch,
    ) {
        let slot = self.slot(aed_id);
        // Load the device's state now rather than at its first message: after a restart, 10^4
        // devices reconnecting would otherwise queue their first acks behind 3 × 10^4 reads.
        {
            let mut s = slot.lock().await;
            let _ = self.ensure_loaded(aed_id, &mut s).await;
        }
        let (conn, mut replaced) = self.register(aed_id);
        self.metrics.connections.inc();
        let idle = self.cfg.offline_after();
        let mut c = Conn {
            last_rx: Instant::now(),
            tokens: self.cfg.burst,
            refilled: Instant::now(),
            strikes: 0,
        };
        // One timer for idleness, reset only when it fires early: re-arming a timer for every
        // message costs more than the message.
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(idle_timer);
        let mut ping =
            tokio::time::interval(Duration::from_secs_f64(self.cfg.ping_interval_s.max(0.1)));
        ping.tick().await;
        let mut closing = self.closing.subscribe();
        let end: Option<(u16, &'static str)> = loop {
            if *closing.borrow_and_update() {
                break Some((close::GOING_AWAY, "server shutdown"));
            }
            let first = tokio::select! {
                // The cheap checks first, so a busy socket cannot starve them.
                biased;
                _ = closing.changed() => continue,
                _ = &mut replaced => break Some((close::REPLACED, "replaced by a newer connection")),
                reason = watch.revoked() => break Some((close::REVOKED, reason)),
                () = &mut idle_timer => {
                    let due = c.last_rx + idle;
                    if Instant::now() >= due {
                        break Some((close::IDLE, "idle timeout"));
                    }
                    idle_timer.as_mut().reset(due.into());
                    continue;
                }
                r = socket.recv() => r,
                _ = ping.tick() => {
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break None;
                    }
                    continue;
                }
            };
            // Answer this frame and every frame already read behind it, then write the replies
            // in one go: under load, one write (system call) for many acks.
            let mut frame = first;
            let mut handled = 0;
            let stop = loop {
                if let Some(end) = self.frame(&mut socket, &slot, aed_id, frame, &mut c).await {
                    break Some(end);
                }
                handled += 1;
                if handled >= 64 {
                    break None;
                }
                match socket.recv().now_or_never() {
                    Some(f) => frame = f,
                    None => break None,
                }
            };
            if socket.flush().await.is_err() {
                break None;
            }
            if let Some(end) = stop {
                break end;
            }
        };
        if let Some((code, reason)) = end {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
        self.unregister(aed_id, conn);
        self.metrics.connections.dec();
    }

    /// Handles one received frame, queueing (not flushing) its reply. `Some` ends the
    /// connection: `Some(None)` silently, `Some(Some(code))` with a close frame.
    async fn frame(
        &self,
        socket: &mut WebSocket,
        slot: &AsyncMutex<Slot>,
        aed_id: i64,
        msg: Option<Result<Message, axum::Error>>,
        c: &mut Conn,
    ) -> Option<Option<(u16, &'static str)>> {
        let now = Instant::now();
        c.last_rx = now;
        let text = match msg {
            None | Some(Ok(Message::Close(_))) => return Some(None),
            Some(Err(e)) => {
                let e = e.to_string();
                if e.contains("too long") || e.contains("Space limit") || e.contains("capacity") {
                    return Some(Some((close::TOO_BIG, "message too big")));
                }
                tracing::debug!(error = %e, aed_id, "device socket error");
                return Some(None);
            }
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(_))) => {
                return self
                    .reject(
                        socket,
                        c,
                        None,
                        &Rejected::Malformed(
                            "binary frames are not supported; send JSON text".into(),
                        ),
                    )
                    .await;
            }
            Some(Ok(_)) => return None,
        };
        // Token bucket.
        c.tokens = (c.tokens
            + now.duration_since(c.refilled).as_secs_f64() * self.cfg.messages_per_s)
            .min(self.cfg.burst);
        c.refilled = now;
        if c.tokens < 1.0 {
            return self.reject(socket, c, None, &Rejected::RateLimited).await;
        }
        c.tokens -= 1.0;
        let m = match DeviceMessage::parse(text.as_bytes()) {
            Ok(m) => m,
            Err(e) => {
                let (seq, r) = Rejected::from_parse(e);
                return self.reject(socket, c, seq, &r).await;
            }
        };
        if !m.version_supported() {
            return self
                .reject(socket, c, Some(m.seq), &Rejected::UnsupportedVersion(m.v))
                .await;
        }
        match self.process_in(slot, aed_id, &m).await {
            Ok(()) => {
                c.strikes = 0;
                self.metrics.by_kind[m.body.kind_index()].inc();
                let mut ack = String::with_capacity(40);
                let _ = write!(ack, r#"{{"type":"ack","seq":{}}}"#, m.seq);
                if socket.feed(Message::Text(ack.into())).await.is_err() {
                    return Some(None);
                }
                self.metrics
                    .ack_seconds
                    .observe(now.elapsed().as_secs_f64());
                None
            }
            // Our fault, not the device's: no strike; it resends.
            Err(Rejected::Internal) => {
                if feed_error(socket, Some(m.seq), &Rejected::Internal)
                    .await
                    .is_err()
                {
                    return Some(None);
                }
                None
            }
            Err(r) => self.reject(socket, c, Some(m.seq), &r).await,
        }
    }

    async fn reject(
        &self,
        socket: &mut WebSocket,
        c: &mut Conn,
        seq: Option<u64>,
        r: &Rejected,
    ) -> Option<Option<(u16, &'static str)>> {
        c.strikes += 1;
        self.metrics.invalid.inc();
        if feed_error(socket, seq, r).await.is_err() {
            return Some(None);
        }
        (c.strikes >= self.cfg.bad_messages_before_close)
            .then_some(Some((close::POLICY, "too many bad messages")))
    }
}

/// Per-connection counters.
#[derive(Debug)]
struct Conn {
    last_rx: Instant,
    tokens: f64,
    refilled: Instant,
    strikes: u32,
}

/// Queues an error frame (written with the batch's flush).
async fn feed_error(
    socket: &mut WebSocket,
    seq: Option<u64>,
    r: &Rejected,
) -> Result<(), axum::Error> {
    let body =
        json!({"type": "error", "seq": seq, "code": r.code(), "message": r.message()}).to_string();
    socket.feed(Message::Text(body.into())).await
}

/// `GET /ws/device` with `Authorization: Bearer <device token>`: refused with 401/403 before the
/// upgrade for a missing, unknown, revoked or non-device token; 503 when full.
pub async fn device_socket(
    State(state): State<AppState>,
    Extension(gw): Extension<Arc<Gateway>>,
    caller: Caller,
    ws: WebSocketUpgrade,
) -> Response {
    let aed_id = match caller.subject(Role::Device) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state.store.get_aed(aed_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return ApiError::Forbidden.into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    }
    let Ok(permit) = gw.conns.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "unavailable", "message": "too many device connections; retry later"})),
        )
            .into_response();
    };
    let watch = state.sessions.open(&caller);
    let max = gw.cfg.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(4 * 1024)
        // Replies are queued per batch of frames read together and flushed once; this is a
        // threshold, not an allocation.
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(64 * 1024)
        .on_upgrade(move |socket| gw.serve_device(socket, aed_id, permit, watch))
}
