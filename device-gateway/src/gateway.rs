//! The device connection loop, message processing with durable acks, manual readiness overrides,
//! the offline watchdog (with override expiry) and the coalescing flusher.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_api::auth::Caller;
use aednet_api::{ApiError, AppState};
use aednet_core::aed::{Readiness, ReadinessStatus};
use aednet_core::event::Event;
use aednet_core::telemetry::{Body, DeviceMessage, Health, ParseError, PROTOCOL_VERSION};
use aednet_core::Role;
use aednet_store::{ConsumableDates, DeviceEventRecord, DeviceState, ReadinessOverride, Recorded};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use futures::{FutureExt, SinkExt};
use parking_lot::Mutex;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{oneshot, Mutex as AsyncMutex, Notify, OwnedSemaphorePermit, Semaphore};

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
    /// A newer connection of the same device took over.
    pub const REPLACED: u16 = 4409;
}

/// Severity for combining a manual override with what telemetry says (docs/device-protocol.md):
/// an override holds readiness at least this bad; telemetry may make it worse, never better.
fn severity(s: ReadinessStatus) -> u8 {
    use ReadinessStatus as S;
    match s {
        S::Retired => 7,
        S::Offline => 6,
        S::InUse => 5,
        S::CabinetOpen => 4,
        S::Fault => 3,
        S::Degraded => 2,
        S::Ready => 1,
        S::Unknown => 0,
    }
}

#[derive(Debug, Default)]
struct Slot {
    loaded: bool,
    health: Health,
    status: ReadinessStatus,
    /// Highest sequence number of an applied durable message (heartbeats do not advance it, so
    /// a durable message resent after newer heartbeats still applies).
    last_durable_seq: Option<u64>,
    /// Time of the last message (ms since the epoch). The watchdog's deadline is not moved per
    /// message: when it fires, it compares against this and re-arms (lazy deadlines).
    last_seen_ms: i64,
    /// A deadline for this device is in the watchdog's set.
    armed: bool,
    over: Option<ReadinessOverride>,
}

impl Slot {
    /// The readiness to show: telemetry's, unless an active override is more severe.
    fn effective(
        &self,
        health: &Health,
        now: DateTime<Utc>,
    ) -> (ReadinessStatus, Cow<'static, str>) {
        let (status, reason) = health.derive();
        match &self.over {
            Some(o)
                if o.until.is_none_or(|u| u > now) && severity(o.status) >= severity(status) =>
            {
                (
                    o.status,
                    Cow::Owned(
                        o.reason
                            .clone()
                            .unwrap_or_else(|| "set by maintenance".into()),
                    ),
                )
            }
            _ => (status, reason),
        }
    }
}

#[derive(Debug)]
struct GatewayMetrics {
    connections: IntGauge,
    /// Per message type, resolved once: a label lookup per message costs more than the count.
    by_kind: Vec<IntCounter>,
    invalid: IntCounter,
    ack_seconds: Histogram,
    /// Indexed like [`ReadinessStatus::ALL`].
    by_status: Vec<IntGauge>,
}

impl GatewayMetrics {
    fn register(registry: &prometheus::Registry) -> Self {
        let messages = IntCounterVec::new(
            Opts::new(
                "aednet_device_messages_total",
                "Device messages by type (invalid for rejected ones)",
            ),
            &["type"],
        )
        .expect("static metric");
        let by_status = IntGaugeVec::new(
            Opts::new(
                "aednet_aeds_by_status",
                "AEDs by readiness status (moved on every change the gateway makes; recounted every 10 s for changes made elsewhere)",
            ),
            &["status"],
        )
        .expect("static metric");
        let m = Self {
            connections: IntGauge::new("aednet_device_connections", "Connected devices")
                .expect("static metric"),
            by_kind: Body::KINDS
                .iter()
                .map(|k| messages.with_label_values(&[k]))
                .collect(),
            invalid: messages.with_label_values(&["invalid"]),
            ack_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "aednet_device_ack_seconds",
                    "From receiving a device message to queueing its ack (written with the batch it was read in)",
                )
                .buckets(vec![
                    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
                ]),
            )
            .expect("static metric"),
            by_status: ReadinessStatus::ALL
                .iter()
                .map(|s| by_status.with_label_values(&[s.as_str()]))
                .collect(),
        };
        for c in [
            Box::new(m.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(messages),
            Box::new(m.ack_seconds.clone()),
            Box::new(by_status),
        ] {
            // A second gateway on the same registry (tests) keeps the first's metrics.
            let _ = registry.register(c);
        }
        m
    }

    fn status_gauge(&self, s: ReadinessStatus) -> &IntGauge {
        let i = ReadinessStatus::ALL
            .iter()
            .position(|x| *x == s)
            .unwrap_or(0);
        &self.by_status[i]
    }

    fn moved(&self, from: ReadinessStatus, to: ReadinessStatus) {
        if from != to {
            self.status_gauge(from).dec();
            self.status_gauge(to).inc();
        }
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

    /// From a frame that did not parse; the seq when it had one.
    pub fn from_parse(e: ParseError) -> (Option<u64>, Rejected) {
        let seq = e.seq();
        match e {
            ParseError::UnknownType { .. } => (seq, Rejected::UnknownType(e.to_string())),
            ParseError::Malformed { message, .. } => (seq, Rejected::Malformed(message)),
        }
    }
}

/// The outcome of a manual check or override change, for the API.
#[derive(Debug)]
pub struct ManualOutcome {
    pub readiness: Readiness,
    pub over: Option<ReadinessOverride>,
}

type SlotRef = Arc<AsyncMutex<Slot>>;

#[derive(Debug)]
pub struct Gateway {
    state: AppState,
    cfg: GatewayConfig,
    conns: Arc<Semaphore>,
    slots: Mutex<HashMap<i64, SlotRef>>,
    /// Offline deadlines, lazily re-armed (see [`Slot::last_seen_ms`]).
    deadlines: Mutex<Deadlines>,
    /// Expiry times of manual overrides with an `until`.
    override_ends: Mutex<Deadlines>,
    wake: Notify,
    pending: Mutex<HashMap<i64, DeviceState>>,
    /// The live connection of each device: a newer one closes the older (4409).
    live: Mutex<HashMap<i64, (u64, oneshot::Sender<()>)>>,
    next_conn: AtomicU64,
    /// AEDs were added, removed or imported: recount the status gauges at the next flush.
    recount_due: AtomicBool,
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
            override_ends: Mutex::new(Deadlines::default()),
            wake: Notify::new(),
            pending: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            recount_due: AtomicBool::new(false),
            metrics,
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    fn after_ms(&self) -> i64 {
        i64::try_from(self.cfg.offline_after().as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// Seeds the watchdog from the devices seen before a restart and the overrides' expiry
    /// times, counts AEDs by status, and starts the watchdog and flusher tasks.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let after = self.after_ms();
        for d in self.state.store.device_states().await? {
            self.deadlines
                .lock()
                .set(d.aed_id, d.last_seen_at.timestamp_millis() + after);
        }
        for o in self.state.store.readiness_overrides().await? {
            if let Some(u) = o.until {
                self.override_ends
                    .lock()
                    .set(o.aed_id, u.timestamp_millis());
            }
        }
        self.recount();
        let gw = self.clone();
        tokio::spawn(async move { gw.watchdog().await });
        let gw = self.clone();
        let mut events = self.state.bus.subscribe();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(
                        Event::AedUpserted { .. }
                        | Event::AedDeleted { .. }
                        | Event::BulkChange { .. },
                    )
                    | Err(RecvError::Lagged(_)) => gw.recount_due.store(true, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
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

    fn slot(&self, aed_id: i64) -> SlotRef {
        self.slots
            .lock()
            .entry(aed_id)
            .or_insert_with(|| Arc::new(AsyncMutex::new(Slot::default())))
            .clone()
    }

    async fn ensure_loaded(&self, aed_id: i64, s: &mut Slot) -> Result<(), Rejected> {
        if s.loaded {
            return Ok(());
        }
        let internal = |e: aednet_store::StoreError| {
            tracing::error!(error = %e, aed_id, "loading device state");
            Rejected::Internal
        };
        let Some(aed) = self.state.store.get_aed(aed_id).await.map_err(internal)? else {
            return Err(Rejected::Internal);
        };
        s.over = self
            .state
            .store
            .get_readiness_override(aed_id)
            .await
            .map_err(internal)?;
        // Facts from the stored readiness, but not what an override put there.
        s.health = if s.over.is_some() {
            Health::default()
        } else {
            Health::from_readiness(&aed.data.readiness)
        };
        s.status = aed.data.readiness.status;
        s.last_durable_seq = self
            .state
            .store
            .device_event_seqs(aed_id)
            .await
            .map_err(internal)?
            .last()
            .and_then(|s| u64::try_from(*s).ok());
        s.armed = self.deadlines.lock().next_for(aed_id).is_some();
        s.loaded = true;
        Ok(())
    }

    /// Puts a device's deadline in the watchdog's set; wakes it for a new earliest deadline.
    fn arm(&self, aed_id: i64, at_ms: i64) {
        let earliest = {
            let mut d = self.deadlines.lock();
            let earliest = d.next().is_none_or(|n| at_ms < n);
            d.set(aed_id, at_ms);
            earliest
        };
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Records a readiness change made here: gauges, then the event for the index, coverage,
    /// dispatch and the maintenance feed.
    fn changed(&self, aed_id: i64, from: ReadinessStatus, to: ReadinessStatus) {
        self.metrics.moved(from, to);
        self.state.bus.publish(Event::AedReadinessChanged {
            id: aed_id,
            status: to,
        });
    }

    /// Processes one message; `Ok` means it may be acked: whatever must survive is stored.
    pub async fn process(&self, aed_id: i64, msg: &DeviceMessage) -> Result<(), Rejected> {
        let slot = self.slot(aed_id);
        self.process_in(&slot, aed_id, msg).await
    }

    async fn process_in(
        &self,
        slot: &AsyncMutex<Slot>,
        aed_id: i64,
        msg: &DeviceMessage,
    ) -> Result<(), Rejected> {
        let seq = i64::try_from(msg.seq)
            .map_err(|_| Rejected::Malformed("seq is out of range".into()))?;
        let mut s = slot.lock().await;
        self.ensure_loaded(aed_id, &mut s).await?;
        let now = self.state.clock.now();
        let now_ms = now.timestamp_millis();
        s.last_seen_ms = now_ms;
        if !s.armed {
            s.armed = true;
            self.arm(aed_id, now_ms + self.after_ms());
        }

        let durable = msg.body.is_durable();
        let in_order = !durable || s.last_durable_seq.is_none_or(|l| msg.seq > l);
        let mut next = s.health.clone();
        if in_order {
            next.apply(&msg.body);
        }
        let (status, reason) = s.effective(&next, now);
        let change = (in_order && status != s.status).then(|| Readiness {
            status,
            reason: Some(reason.into_owned()),
            since: now,
        });
        if durable || change.is_some() {
            let dates = match &msg.body {
                Body::Pads { expiry, .. } => ConsumableDates {
                    pads_expiry: *expiry,
                    battery_expiry: None,
                },
                Body::Battery { expiry, .. } => ConsumableDates {
                    pads_expiry: None,
                    battery_expiry: *expiry,
                },
                _ => ConsumableDates::default(),
            };
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
                .record_device_event(&rec, change.as_ref(), &dates)
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
            let from = std::mem::replace(&mut s.status, r.status);
            self.changed(aed_id, from, r.status);
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
            Body::Battery {
                battery_pct: Some(b),
                ..
            } => e.battery_pct = Some(i32::from(*b)),
            Body::Firmware { version } => e.firmware = Some(version.clone()),
            _ => {}
        }
        Ok(())
    }

    /// A guardian's check: OK clears any override and sets ready; not OK holds the AED at
    /// `fault` with the note against telemetry, until cleared or until `until`.
    /// `Ok(None)`: no such AED.
    pub async fn guardian_check(
        &self,
        aed_id: i64,
        ok: bool,
        reason: String,
        until: Option<DateTime<Utc>>,
        by: &str,
    ) -> aednet_store::Result<Option<ManualOutcome>> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        if self.ensure_loaded(aed_id, &mut s).await.is_err() {
            // No such AED: do not keep a slot for every id someone asked about.
            self.slots.lock().remove(&aed_id);
            return Ok(None);
        }
        let now = self.state.clock.now();
        let (over, readiness) = if ok {
            let r = Readiness {
                status: ReadinessStatus::Ready,
                reason: Some(reason),
                since: now,
            };
            (None, r)
        } else {
            let o = ReadinessOverride {
                aed_id,
                status: ReadinessStatus::Fault,
                reason: Some(reason),
                since: now,
                until,
                set_by: by.to_string(),
            };
            let prev = s.over.replace(o.clone());
            let (status, why) = s.effective(&s.health, now);
            s.over = prev;
            let r = Readiness {
                status,
                reason: Some(why.into_owned()),
                since: now,
            };
            (Some(o), r)
        };
        self.apply_manual(aed_id, &mut s, over, readiness, "guardian")
            .await
    }

    /// Clears an AED's override: readiness goes back to what telemetry says (`unknown` for a
    /// cabinet without telemetry). `Ok(None)`: no such AED or no override.
    pub async fn clear_override(
        &self,
        aed_id: i64,
        by: &str,
    ) -> aednet_store::Result<Option<ManualOutcome>> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        if self.ensure_loaded(aed_id, &mut s).await.is_err() || s.over.is_none() {
            return Ok(None);
        }
        let now = self.state.clock.now();
        let readiness = self.without_override(&s, now, &format!("override cleared by {by}"));
        self.apply_manual(aed_id, &mut s, None, readiness, "maintenance")
            .await
    }

    /// What telemetry alone says, for a device whose override ends.
    fn without_override(&self, s: &Slot, now: DateTime<Utc>, note: &str) -> Readiness {
        let (status, why) = s.health.derive();
        Readiness {
            status,
            reason: Some(if s.health.heard {
                format!("{why} ({note})")
            } else {
                note.to_string()
            }),
            since: now,
        }
    }

    async fn apply_manual(
        &self,
        aed_id: i64,
        s: &mut Slot,
        over: Option<ReadinessOverride>,
        readiness: Readiness,
        source: &str,
    ) -> aednet_store::Result<Option<ManualOutcome>> {
        if self
            .state
            .store
            .set_readiness_override(aed_id, over.as_ref(), &readiness, source)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        match over.as_ref().and_then(|o| o.until) {
            Some(u) => {
                self.override_ends.lock().set(aed_id, u.timestamp_millis());
                self.wake.notify_one();
            }
            None => self.override_ends.lock().remove(aed_id),
        }
        s.over.clone_from(&over);
        let from = std::mem::replace(&mut s.status, readiness.status);
        self.changed(aed_id, from, readiness.status);
        Ok(Some(ManualOutcome { readiness, over }))
    }

    /// The watchdog's work for one device whose deadline passed: offline if it has been silent
    /// for the whole deadline, else re-armed at its real one.
    async fn mark_offline(&self, aed_id: i64) -> aednet_store::Result<()> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        if self.ensure_loaded(aed_id, &mut s).await.is_err() {
            return Ok(()); // deleted AED: nothing to mark
        }
        let now = self.state.clock.now();
        let due = s.last_seen_ms + self.after_ms();
        if s.last_seen_ms > 0 && due > now.timestamp_millis() {
            s.armed = true;
            self.arm(aed_id, due);
            return Ok(());
        }
        s.armed = false;
        s.health.silent = true;
        let (status, reason) = s.effective(&s.health, now);
        if status != s.status {
            let r = Readiness {
                status,
                reason: Some(reason.into_owned()),
                since: now,
            };
            self.state
                .store
                .set_aed_readiness(aed_id, &r, "watchdog")
                .await?;
            let from = std::mem::replace(&mut s.status, status);
            self.changed(aed_id, from, status);
        }
        Ok(())
    }

    /// An override's `until` passed: it ends, readiness returns to telemetry's.
    async fn end_override(&self, aed_id: i64) -> aednet_store::Result<()> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        if self.ensure_loaded(aed_id, &mut s).await.is_err() {
            return Ok(());
        }
        let now = self.state.clock.now();
        match s.over.as_ref().and_then(|o| o.until) {
            Some(u) if u <= now => {}
            // Replaced or cleared meanwhile.
            _ => return Ok(()),
        }
        let readiness = self.without_override(&s, now, "override expired");
        self.apply_manual(aed_id, &mut s, None, readiness, "override_expired")
            .await
            .map(|_| ())
    }

    /// Marks devices silent past their deadline offline and ends expired overrides. Sleeps
    /// until the earliest deadline of either kind.
    async fn watchdog(self: Arc<Self>) {
        loop {
            let next = [
                self.deadlines.lock().next(),
                self.override_ends.lock().next(),
            ]
            .into_iter()
            .flatten()
            .min();
            let now_ms = Utc::now().timestamp_millis();
            match next {
                Some(t) if t <= now_ms => {
                    let expired = self.deadlines.lock().pop_expired(now_ms);
                    for id in expired {
                        if let Err(e) = self.mark_offline(id).await {
                            tracing::error!(error = %e, aed_id = id, "marking a device offline");
                        }
                    }
                    let ended = self.override_ends.lock().pop_expired(now_ms);
                    for id in ended {
                        if let Err(e) = self.end_override(id).await {
                            tracing::error!(error = %e, aed_id = id, "ending an override");
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

    /// Sets the status gauges from the index (start-up, and a reconciliation for changes made
    /// outside the gateway: the registry API, imports).
    fn recount(&self) {
        let mut counts = [0i64; ReadinessStatus::ALL.len()];
        for e in self.state.geo.aeds().iter() {
            if let Some(i) = ReadinessStatus::ALL.iter().position(|s| *s == e.status) {
                counts[i] += 1;
            }
        }
        for (g, n) in self.metrics.by_status.iter().zip(counts) {
            g.set(n);
        }
    }

    /// Writes coalesced heartbeat state in batches, and reconciles the status gauges.
    async fn flusher(self: Arc<Self>) {
        let mut tick =
            tokio::time::interval(Duration::from_millis(self.cfg.flush_interval_ms.max(10)));
        let mut last_gauges = Instant::now();
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
            if self.recount_due.swap(false, Ordering::Relaxed)
                || last_gauges.elapsed() >= Duration::from_secs(10)
            {
                last_gauges = Instant::now();
                self.recount();
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
        let end: Option<(u16, &'static str)> = loop {
            let first = tokio::select! {
                // The cheap checks first, so a busy socket cannot starve them.
                biased;
                _ = &mut replaced => break Some((close::REPLACED, "replaced by a newer connection")),
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
        if m.v != PROTOCOL_VERSION {
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
    let max = gw.cfg.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(4 * 1024)
        // Replies are queued per batch of frames read together and flushed once; this is a
        // threshold, not an allocation.
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(64 * 1024)
        .on_upgrade(move |socket| gw.serve_device(socket, aed_id, permit))
}
