//! The device gateway: its configuration, metrics and shared state. The work is split by
//! concern: the socket loop ([`connection`]), message processing and the per-device state
//! ([`process`]), manual readiness (guardian checks, overrides: [`manual`]) and the timers
//! (offline watchdog, override expiry, the coalescing flusher: [`watchdog`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aednet_api::AppState;
use aednet_core::aed::{Readiness, ReadinessStatus};
use aednet_core::event::Event;
use aednet_core::telemetry::{Body, ParseError};
use aednet_store::{DeviceState, ReadinessOverride};
use parking_lot::Mutex;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch, Mutex as AsyncMutex, Notify, Semaphore};

use crate::deadlines::Deadlines;

mod connection;
mod manual;
mod process;
mod watchdog;

pub use connection::device_socket;
use process::Slot;

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
    /// Also take device messages from this MQTT broker (`mqtt://127.0.0.1:1883`, or
    /// `mqtts://host:8883` over TLS); off when unset.
    pub mqtt_url: Option<String>,
    /// Topic prefix: devices publish to `{prefix}/devices/{aed_id}/telemetry`.
    pub mqtt_prefix: String,
    /// Empty: `aednet-gateway-<host>-<random>`, unique per node (clean session). Set a stable
    /// id per node to keep a persistent session (QoS 1 backlog) across restarts.
    pub mqtt_client_id: String,
    /// aednet's login at the broker (see [`crate::mqtt`]).
    pub mqtt_username: Option<String>,
    pub mqtt_password: Option<aednet_core::secret::Secret>,
    /// PEM CA certificate(s) to trust for `mqtts://`; the system's roots when unset.
    pub mqtt_ca_file: Option<std::path::PathBuf>,
    /// Refuse MQTT messages without the device's own token in a `"token"` field.
    pub mqtt_require_token: bool,
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
            mqtt_client_id: String::new(),
            mqtt_username: None,
            mqtt_password: None,
            mqtt_ca_file: None,
            mqtt_require_token: false,
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
    /// The device's token was revoked or its AED deleted.
    pub const REVOKED: u16 = aednet_api::sessions::CLOSE_REVOKED;
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
    /// Watchdog writes (offline, override expiry) that failed and were scheduled again.
    timer_retries: IntCounter,
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
            timer_retries: IntCounter::new(
                "aednet_device_watchdog_retries_total",
                "Watchdog writes (offline, override expiry) that failed and were scheduled again with back-off",
            )
            .expect("static metric"),
        };
        for c in [
            Box::new(m.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.timer_retries.clone()),
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
                format!(
                    "protocol version {v} is not supported; use one of {:?}",
                    aednet_core::telemetry::PROTOCOL_VERSIONS
                )
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
    /// Bumped by a bulk change (an import) or a missed event: every slot reloads from the store.
    generation: AtomicU64,
    /// Failed watchdog writes per (timer, AED): the attempt count for the back-off.
    retries: Mutex<HashMap<(Timer, i64), u32>>,
    /// Set at shutdown: device sockets close with 1001.
    closing: watch::Sender<bool>,
    metrics: GatewayMetrics,
}

/// The watchdog's two kinds of timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Timer {
    Offline,
    OverrideEnd,
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
            generation: AtomicU64::new(0),
            retries: Mutex::new(HashMap::new()),
            closing: watch::Sender::new(false),
            metrics,
        })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.cfg
    }

    pub(crate) fn app_state(&self) -> &AppState {
        &self.state
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
                    Ok(Event::AedReadinessChanged { id, status }) => {
                        gw.follow(id, Some(status)).await
                    }
                    Ok(Event::AedUpserted { id } | Event::AedDeleted { id }) => {
                        gw.recount_due.store(true, Ordering::Relaxed);
                        gw.follow(id, None).await;
                    }
                    Ok(Event::BulkChange { .. }) | Err(RecvError::Lagged(_)) => {
                        gw.recount_due.store(true, Ordering::Relaxed);
                        gw.generation.fetch_add(1, Ordering::AcqRel);
                    }
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
            crate::mqtt::run(self.clone()).await?;
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

    /// A readiness change (`Some`) or a record change (`None`) published by anyone — this
    /// gateway, the API, another node, the cluster's repair: a loaded slot that disagrees
    /// reloads from the store before its next message. (Its next write would find out anyway:
    /// every write is conditional on the slot's revision; this keeps heartbeats honest too.)
    async fn follow(&self, aed_id: i64, status: Option<ReadinessStatus>) {
        let Some(slot) = self.slots.lock().get(&aed_id).cloned() else {
            return;
        };
        let mut s = slot.lock().await;
        if s.loaded && status.is_none_or(|st| st != s.status) {
            s.recheck = true;
        }
    }

    /// Closes every device socket (1001) and writes the pending last-seen state: called once
    /// the HTTP server has stopped, so nothing acked is lost at a graceful shutdown.
    pub async fn shutdown(&self) {
        self.closing.send_replace(true);
        let all = u32::try_from(self.cfg.max_connections).unwrap_or(u32::MAX);
        // Every connection holds a permit: all of them back means every socket has ended.
        if tokio::time::timeout(Duration::from_secs(5), self.conns.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!("device sockets still open after 5 s; flushing anyway");
        }
        let mut wait = Duration::from_millis(100);
        for attempt in 1..=5 {
            match self.flush().await {
                Ok(()) => return,
                Err(e) if attempt < 5 => {
                    tracing::warn!(error = %e, "writing device state at shutdown; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    tracing::error!(error = %e, "device last-seen state not written at shutdown")
                }
            }
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
}
