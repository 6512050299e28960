//! The device connection loop, message processing with durable acks, the offline watchdog and
//! the coalescing flusher.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_api::auth::Caller;
use aednet_api::{ApiError, AppState};
use aednet_core::aed::{Readiness, ReadinessStatus};
use aednet_core::event::Event;
use aednet_core::telemetry::{Body, DeviceMessage, Health, PROTOCOL_VERSION};
use aednet_core::Role;
use aednet_store::{DeviceEventRecord, DeviceState, Recorded};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Mutex as AsyncMutex, Notify, OwnedSemaphorePermit, Semaphore};

use crate::deadlines::Deadlines;

/// `[gateway]` in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// How often devices send a heartbeat.
    pub heartbeat_interval_s: f64,
    /// A device is offline after this many intervals without any message.
    pub offline_after_intervals: f64,
    /// Larger text frames close the connection with 1009.
    pub max_message_bytes: usize,
    pub max_connections: usize,
    /// Per-connection message rate (token bucket).
    pub messages_per_s: f64,
    pub burst: f64,
    /// Consecutive bad messages (malformed, unknown type, over the rate) before close 1008.
    pub bad_messages_before_close: u32,
    pub ping_interval_s: f64,
    /// How often coalesced heartbeat state is written.
    pub flush_interval_ms: u64,
    /// Also take device messages from this MQTT broker (`mqtt://127.0.0.1:1883`); off when unset.
    pub mqtt_url: Option<String>,
    /// Topic prefix: devices publish to `{prefix}/devices/{aed_id}/telemetry`.
    pub mqtt_prefix: String,
    /// Stable per node, so the broker keeps its session (QoS 1 backlog) across restarts.
    pub mqtt_client_id: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_s: 60.0,
            offline_after_intervals: 3.0,
            max_message_bytes: 8 * 1024,
            max_connections: 20_000,
            messages_per_s: 10.0,
            burst: 50.0,
            bad_messages_before_close: 5,
            ping_interval_s: 30.0,
            flush_interval_ms: 1000,
            mqtt_url: None,
            mqtt_prefix: "aednet".into(),
            mqtt_client_id: "aednet-gateway".into(),
        }
    }
}

impl GatewayConfig {
    pub fn offline_after(&self) -> Duration {
        Duration::from_secs_f64(
            (self.heartbeat_interval_s * self.offline_after_intervals).max(0.05),
        )
    }
}

/// Close codes (RFC 6455 and private 4xxx), documented in `docs/device-protocol.md`.
pub mod close {
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const GOING_AWAY: u16 = 1001;
    pub const IDLE: u16 = 4408;
}

#[derive(Debug)]
struct Slot {
    loaded: bool,
    health: Health,
    status: ReadinessStatus,
    /// Highest sequence number of an applied durable message (heartbeats do not advance it, so
    /// a durable message resent after newer heartbeats still applies).
    last_durable_seq: Option<u64>,
}

#[derive(Debug)]
struct GatewayMetrics {
    connections: IntGauge,
    messages: IntCounterVec,
    ack_seconds: Histogram,
    by_status: IntGaugeVec,
}

impl GatewayMetrics {
    fn register(registry: &prometheus::Registry) -> Self {
        let m = Self {
            connections: IntGauge::new("aednet_device_connections", "Connected devices")
                .expect("static metric"),
            messages: IntCounterVec::new(
                Opts::new(
                    "aednet_device_messages_total",
                    "Device messages by type (invalid for rejected ones)",
                ),
                &["type"],
            )
            .expect("static metric"),
            ack_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "aednet_device_ack_seconds",
                    "From receiving a device message to sending its ack",
                )
                .buckets(vec![
                    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
                ]),
            )
            .expect("static metric"),
            by_status: IntGaugeVec::new(
                Opts::new("aednet_aeds_by_status", "AEDs by readiness status"),
                &["status"],
            )
            .expect("static metric"),
        };
        for c in [
            Box::new(m.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.messages.clone()),
            Box::new(m.ack_seconds.clone()),
            Box::new(m.by_status.clone()),
        ] {
            // A second gateway on the same registry (tests) keeps the first's metrics.
            let _ = registry.register(c);
        }
        m
    }
}

/// Why a message was not acked.
#[derive(Debug)]
pub enum Rejected {
    Malformed(String),
    UnknownType(String),
    UnsupportedVersion(u8),
    RateLimited,
    Internal,
}

impl Rejected {
    pub fn code(&self) -> &'static str {
        match self {
            Rejected::Malformed(_) => "malformed",
            Rejected::UnknownType(_) => "unknown_type",
            Rejected::UnsupportedVersion(_) => "unsupported_version",
            Rejected::RateLimited => "rate_limited",
            Rejected::Internal => "internal",
        }
    }
    pub fn message(&self) -> String {
        match self {
            Rejected::Malformed(m) | Rejected::UnknownType(m) => m.clone(),
            Rejected::UnsupportedVersion(v) => {
                format!("protocol version {v} is not supported; use {PROTOCOL_VERSION}")
            }
            Rejected::RateLimited => "too many messages; slow down".into(),
            Rejected::Internal => "not stored; resend later".into(),
        }
    }
}

#[derive(Debug)]
pub struct Gateway {
    state: AppState,
    cfg: GatewayConfig,
    conns: Arc<Semaphore>,
    slots: Mutex<HashMap<i64, Arc<AsyncMutex<Slot>>>>,
    deadlines: Mutex<Deadlines>,
    wake: Notify,
    pending: Mutex<HashMap<i64, DeviceState>>,
    metrics: GatewayMetrics,
}

impl Gateway {
    pub fn new(state: AppState, cfg: GatewayConfig) -> Arc<Self> {
        let metrics = GatewayMetrics::register(&state.metrics.registry);
        Arc::new(Self {
            conns: Arc::new(Semaphore::new(cfg.max_connections)),
            state,
            cfg,
            slots: Mutex::new(HashMap::new()),
            deadlines: Mutex::new(Deadlines::default()),
            wake: Notify::new(),
            pending: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    /// Seeds the watchdog from the devices seen before a restart and starts the watchdog and
    /// flusher tasks.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let after = chrono::Duration::from_std(self.cfg.offline_after()).unwrap_or_default();
        for d in self.state.store.device_states().await? {
            self.deadlines
                .lock()
                .set(d.aed_id, (d.last_seen_at + after).timestamp_millis());
        }
        let gw = self.clone();
        tokio::spawn(async move { gw.watchdog().await });
        let gw = self.clone();
        tokio::spawn(async move { gw.flusher().await });
        self.wake.notify_one();
        if let Some(url) = &self.cfg.mqtt_url {
            // A broker that is down now is retried by the client; a bad URL is an error.
            crate::mqtt::run(
                self.clone(),
                url,
                &self.cfg.mqtt_client_id,
                &self.cfg.mqtt_prefix,
            )
            .await?;
            tracing::info!(url = %url, prefix = %self.cfg.mqtt_prefix, "MQTT ingest on");
        }
        Ok(())
    }

    fn slot(&self, aed_id: i64) -> Arc<AsyncMutex<Slot>> {
        self.slots
            .lock()
            .entry(aed_id)
            .or_insert_with(|| {
                Arc::new(AsyncMutex::new(Slot {
                    loaded: false,
                    health: Health::default(),
                    status: ReadinessStatus::Unknown,
                    last_durable_seq: None,
                }))
            })
            .clone()
    }

    async fn ensure_loaded(&self, aed_id: i64, s: &mut Slot) -> Result<(), Rejected> {
        if s.loaded {
            return Ok(());
        }
        let aed = self.state.store.get_aed(aed_id).await.map_err(|e| {
            tracing::error!(error = %e, aed_id, "loading device state");
            Rejected::Internal
        })?;
        let Some(aed) = aed else {
            return Err(Rejected::Internal);
        };
        s.health = Health::from_readiness(&aed.data.readiness);
        s.status = aed.data.readiness.status;
        s.last_durable_seq = self
            .state
            .store
            .device_event_seqs(aed_id)
            .await
            .map_err(|_| Rejected::Internal)?
            .last()
            .and_then(|s| u64::try_from(*s).ok());
        s.loaded = true;
        Ok(())
    }

    fn touch(&self, aed_id: i64, now: DateTime<Utc>) {
        let after = chrono::Duration::from_std(self.cfg.offline_after()).unwrap_or_default();
        let at = (now + after).timestamp_millis();
        let earliest = {
            let mut d = self.deadlines.lock();
            let earliest = d.next().is_none_or(|n| at < n);
            d.set(aed_id, at);
            earliest
        };
        // Deadlines only move later, so the watchdog needs waking only for a new earliest one.
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Processes one message; `Ok` means it may be acked: whatever must survive is stored.
    pub async fn process(&self, aed_id: i64, msg: &DeviceMessage) -> Result<(), Rejected> {
        let seq = i64::try_from(msg.seq)
            .map_err(|_| Rejected::Malformed("seq is out of range".into()))?;
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        self.ensure_loaded(aed_id, &mut s).await?;
        let now = self.state.clock.now();
        self.touch(aed_id, now);

        let durable = msg.body.is_durable();
        let in_order = !durable || s.last_durable_seq.is_none_or(|l| msg.seq > l);
        let mut next = s.health.clone();
        if in_order {
            next.apply(&msg.body);
        }
        let (status, reason) = next.derive();
        let change = (in_order && status != s.status).then_some(Readiness {
            status,
            reason: Some(reason),
            since: now,
        });
        if durable || change.is_some() {
            let rec = DeviceEventRecord {
                aed_id,
                seq,
                kind: msg.body.kind().to_string(),
                body: serde_json::to_string(msg).unwrap_or_default(),
                device_ts: msg.ts,
                received_at: now,
            };
            match self
                .state
                .store
                .record_device_event(&rec, change.as_ref())
                .await
            {
                Ok(Recorded::New) => {}
                // Stored before (an acked resend): nothing to apply again.
                Ok(Recorded::Duplicate) => return Ok(()),
                Err(e) => {
                    tracing::error!(error = %e, aed_id, seq, "storing a device message");
                    return Err(Rejected::Internal);
                }
            }
        }
        if in_order {
            s.health = next;
            if durable {
                s.last_durable_seq = Some(msg.seq);
            }
        }
        if let Some(r) = change {
            s.status = r.status;
            self.state.bus.publish(Event::AedReadinessChanged {
                id: aed_id,
                status: r.status,
            });
        }
        drop(s);
        let mut pending = self.pending.lock();
        let e = pending.entry(aed_id).or_insert_with(|| DeviceState {
            aed_id,
            last_seen_at: now,
            last_seq: seq,
            battery_pct: None,
            temperature_c: None,
            signal_dbm: None,
            firmware: None,
        });
        e.last_seen_at = now;
        e.last_seq = e.last_seq.max(seq);
        match &msg.body {
            Body::Heartbeat {
                battery_pct,
                temperature_c,
                signal_dbm,
            } => {
                e.battery_pct = battery_pct.map(i32::from).or(e.battery_pct);
                e.temperature_c = temperature_c.map(f64::from).or(e.temperature_c);
                e.signal_dbm = signal_dbm.map(i32::from).or(e.signal_dbm);
            }
            Body::Firmware { version } => e.firmware = Some(version.clone()),
            _ => {}
        }
        Ok(())
    }

    /// Marks devices silent past their deadline offline. Sleeps until the earliest deadline.
    async fn watchdog(self: Arc<Self>) {
        loop {
            let next = self.deadlines.lock().next();
            let now_ms = Utc::now().timestamp_millis();
            match next {
                Some(t) if t <= now_ms => {
                    let expired = self.deadlines.lock().pop_expired(now_ms);
                    for id in expired {
                        if let Err(e) = self.mark_offline(id).await {
                            tracing::error!(error = %e, aed_id = id, "marking a device offline");
                        }
                    }
                }
                Some(t) => {
                    let wait = Duration::from_millis(u64::try_from(t - now_ms).unwrap_or(0));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    async fn mark_offline(&self, aed_id: i64) -> aednet_store::Result<()> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        if self.ensure_loaded(aed_id, &mut s).await.is_err() {
            return Ok(()); // deleted AED: nothing to mark
        }
        // A message may have moved the deadline while this waited for the slot.
        if self.deadlines.lock().next_for(aed_id).is_some() {
            return Ok(());
        }
        s.health.silent = true;
        let (status, reason) = s.health.derive();
        if status != s.status {
            let r = Readiness {
                status,
                reason: Some(reason),
                since: self.state.clock.now(),
            };
            self.state
                .store
                .set_aed_readiness(aed_id, &r, "watchdog")
                .await?;
            s.status = status;
            self.state
                .bus
                .publish(Event::AedReadinessChanged { id: aed_id, status });
        }
        Ok(())
    }

    /// Writes coalesced heartbeat state in batches, and refreshes the status gauges.
    async fn flusher(self: Arc<Self>) {
        let mut tick =
            tokio::time::interval(Duration::from_millis(self.cfg.flush_interval_ms.max(10)));
        let mut last_gauges = Instant::now() - Duration::from_secs(60);
        loop {
            tick.tick().await;
            let batch: Vec<DeviceState> = std::mem::take(&mut *self.pending.lock())
                .into_values()
                .collect();
            if let Err(e) = self.state.store.save_device_states(&batch).await {
                tracing::warn!(error = %e, n = batch.len(), "writing device state; will retry");
                let mut pending = self.pending.lock();
                for d in batch {
                    pending.entry(d.aed_id).or_insert(d);
                }
            }
            if last_gauges.elapsed() >= Duration::from_secs(10) {
                last_gauges = Instant::now();
                let mut counts: HashMap<ReadinessStatus, i64> = HashMap::new();
                for e in self.state.geo.aeds().iter() {
                    *counts.entry(e.status).or_default() += 1;
                }
                for s in ReadinessStatus::ALL {
                    self.metrics
                        .by_status
                        .with_label_values(&[s.as_str()])
                        .set(counts.get(&s).copied().unwrap_or(0));
                }
            }
        }
    }

    /// Writes what is pending now (shutdown, tests).
    pub async fn flush(&self) -> aednet_store::Result<()> {
        let batch: Vec<DeviceState> = std::mem::take(&mut *self.pending.lock())
            .into_values()
            .collect();
        self.state.store.save_device_states(&batch).await
    }

    async fn serve_device(
        self: Arc<Self>,
        mut socket: WebSocket,
        aed_id: i64,
        _permit: OwnedSemaphorePermit,
    ) {
        self.metrics.connections.inc();
        let idle = self.cfg.offline_after();
        let mut last_rx = Instant::now();
        let mut tokens = self.cfg.burst;
        let mut refilled = Instant::now();
        let mut strikes = 0u32;
        let mut ping =
            tokio::time::interval(Duration::from_secs_f64(self.cfg.ping_interval_s.max(0.1)));
        ping.tick().await;
        let end: Option<(u16, &'static str)> = loop {
            let msg = tokio::select! {
                r = socket.recv() => r,
                () = tokio::time::sleep_until((last_rx + idle).into()) => break Some((close::IDLE, "idle timeout")),
                _ = ping.tick() => {
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break None;
                    }
                    continue;
                }
            };
            last_rx = Instant::now();
            let text = match msg {
                None | Some(Ok(Message::Close(_))) => break None,
                Some(Err(e)) => {
                    let e = e.to_string();
                    if e.contains("too long") || e.contains("Space limit") || e.contains("capacity")
                    {
                        break Some((close::TOO_BIG, "message too big"));
                    }
                    tracing::debug!(error = %e, aed_id, "device socket error");
                    break None;
                }
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Binary(_))) => {
                    strikes += 1;
                    self.metrics.messages.with_label_values(&["invalid"]).inc();
                    let _ = send_error(
                        &mut socket,
                        None,
                        &Rejected::Malformed(
                            "binary frames are not supported; send JSON text".into(),
                        ),
                    )
                    .await;
                    if strikes >= self.cfg.bad_messages_before_close {
                        break Some((close::POLICY, "too many bad messages"));
                    }
                    continue;
                }
                Some(Ok(_)) => continue,
            };
            let started = Instant::now();
            // Token bucket.
            let now = Instant::now();
            tokens = (tokens
                + now.duration_since(refilled).as_secs_f64() * self.cfg.messages_per_s)
                .min(self.cfg.burst);
            refilled = now;
            let result = if tokens < 1.0 {
                Err((None, Rejected::RateLimited))
            } else {
                tokens -= 1.0;
                match serde_json::from_str::<DeviceMessage>(text.as_str()) {
                    Err(e) => {
                        let m = e.to_string();
                        let seq = serde_json::from_str::<serde_json::Value>(text.as_str())
                            .ok()
                            .and_then(|v| v["seq"].as_u64());
                        if m.contains("unknown variant") {
                            Err((seq, Rejected::UnknownType(m)))
                        } else {
                            Err((seq, Rejected::Malformed(m)))
                        }
                    }
                    Ok(m) if m.v != PROTOCOL_VERSION => {
                        Err((Some(m.seq), Rejected::UnsupportedVersion(m.v)))
                    }
                    Ok(m) => {
                        let seq = m.seq;
                        self.process(aed_id, &m)
                            .await
                            .map(|()| m)
                            .map_err(|r| (Some(seq), r))
                    }
                }
            };
            match result {
                Ok(m) => {
                    strikes = 0;
                    self.metrics
                        .messages
                        .with_label_values(&[m.body.kind()])
                        .inc();
                    let ack = format!(r#"{{"type":"ack","seq":{}}}"#, m.seq);
                    if socket.send(Message::Text(ack.into())).await.is_err() {
                        break None;
                    }
                    self.metrics
                        .ack_seconds
                        .observe(started.elapsed().as_secs_f64());
                }
                Err((seq, Rejected::Internal)) => {
                    // Our fault, not the device's: no strike; it resends.
                    if send_error(&mut socket, seq, &Rejected::Internal)
                        .await
                        .is_err()
                    {
                        break None;
                    }
                }
                Err((seq, r)) => {
                    strikes += 1;
                    self.metrics.messages.with_label_values(&["invalid"]).inc();
                    if send_error(&mut socket, seq, &r).await.is_err() {
                        break None;
                    }
                    if strikes >= self.cfg.bad_messages_before_close {
                        break Some((close::POLICY, "too many bad messages"));
                    }
                }
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
        self.metrics.connections.dec();
    }
}

async fn send_error(
    socket: &mut WebSocket,
    seq: Option<u64>,
    r: &Rejected,
) -> Result<(), axum::Error> {
    let body =
        json!({"type": "error", "seq": seq, "code": r.code(), "message": r.message()}).to_string();
    socket.send(Message::Text(body.into())).await
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
    let max = gw.cfg.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .on_upgrade(move |socket| gw.serve_device(socket, aed_id, permit))
}
