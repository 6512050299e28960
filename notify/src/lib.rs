//! Offer delivery beyond the rescuer's WebSocket. The dispatch engine sends every offer,
//! stand-down and cancel on the rescuer's socket first; when there is none, or the app has not
//! confirmed it within `[notify] ack_timeout_s`, the engine hands it to the [`Notifier`], which
//! sends it on every configured channel:
//!
//! - [`webpush`]: RFC 8030 delivery to each of the rescuer's browser subscriptions, the body
//!   encrypted per RFC 8291 (`aes128gcm`), the sender identified by VAPID (RFC 8292), urgency
//!   `high`, TTL until the offer's deadline; a 404/410 removes the subscription;
//! - [`webhook`]: a signed JSON POST to the deployment's adapter (SMS gateway, JPush, Getui …)
//!   with retries and back-off.
//!
//! Each channel has its own bounded queues and caps on requests in flight, so a slow or dead
//! push service delays neither the WebSocket (which never waits for this crate) nor the other
//! channel; a full queue fails the message at once (recorded, counted) rather than growing.
//! Within a channel, offers have a queue and slots of their own, apart from stand-downs and
//! cancels: a wave of offers never waits for slots held by the previous incident's
//! stand-downs while a slow push service takes its time to answer them.
//! Every step is a [`DeliveryRecord`] in the store (queued, sent, delivered when the app
//! confirms, failed with the reason), shown on the dispatcher's board and counted in
//! `aednet_notify_messages_total{channel,state}`.

pub mod webhook;
pub mod webpush;

use std::sync::Arc;
use std::time::Duration;

use aednet_store::{Channel, DeliveryRecord, DeliveryState, DynStore, MessageKey, MessageKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

pub use reqwest::Url;
pub use webpush::Vapid;

/// Delivery records stored per transaction at most.
const RECORD_BATCH: usize = 256;

/// `[notify]`: when to fall back from the WebSocket and how to reach the phone then.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// Seconds the app has to confirm a socket frame before the message is pushed as well.
    pub ack_timeout_s: f64,
    pub web_push: WebPushConfig,
    pub webhook: WebhookConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            ack_timeout_s: 3.0,
            web_push: WebPushConfig::default(),
            webhook: WebhookConfig::default(),
        }
    }
}

impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("ack_timeout_s", &self.ack_timeout_s)
            .field("web_push", &self.web_push)
            .field("webhook", &self.webhook)
            .finish()
    }
}

/// `[notify.web_push]`; off until a VAPID key is set (`aednet push keys` makes one).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebPushConfig {
    /// The VAPID private key, base64url (a secret: redacted in logs).
    pub vapid_private_key: Option<String>,
    /// The contact the push service's operators see, `mailto:` or `https:`.
    pub subject: String,
    /// Push requests in flight at once, for offers and again for stand-downs and cancels. A
    /// slot is held until the push service answers: at 200 ms an answer, 64 slots carried at
    /// most 320 offers a second, and four incidents' waves of 16 within 200 ms made the next
    /// wave wait for slots (incident → last push p99 98–137 ms; 256 slots: 35 ms). A request
    /// in flight is a pending future and, over HTTP/1.1, a socket (HTTP/2 push services, which
    /// the big ones are, carry them all on one connection).
    pub concurrency: usize,
    /// Messages waiting for a free slot (offers, and again the others); beyond it a message
    /// fails at once.
    pub queue: usize,
    /// Seconds before a push service that does not answer counts as failed.
    pub timeout_s: f64,
    /// Accept `http:` subscription endpoints (loopback test push services); real push services
    /// are HTTPS, and refusing others keeps the server from posting to arbitrary hosts.
    pub allow_http_endpoints: bool,
}

impl Default for WebPushConfig {
    fn default() -> Self {
        Self {
            vapid_private_key: None,
            subject: "mailto:admin@example.invalid".into(),
            concurrency: 256,
            queue: 10_000,
            timeout_s: 10.0,
            allow_http_endpoints: false,
        }
    }
}

impl std::fmt::Debug for WebPushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPushConfig")
            .field(
                "vapid_private_key",
                &self.vapid_private_key.as_ref().map(|_| "[REDACTED]"),
            )
            .field("subject", &self.subject)
            .field("concurrency", &self.concurrency)
            .field("queue", &self.queue)
            .field("timeout_s", &self.timeout_s)
            .field("allow_http_endpoints", &self.allow_http_endpoints)
            .finish()
    }
}

/// `[notify.webhook]`; off until `url` is set.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: Option<String>,
    /// The HMAC-SHA256 key shared with the receiver (a secret: redacted in logs).
    pub secret: Option<String>,
    /// Tries per message, the first included.
    pub attempts: u32,
    /// The wait before the second try, doubled for each one after.
    pub backoff_ms: u64,
    pub concurrency: usize,
    pub queue: usize,
    pub timeout_s: f64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            url: None,
            secret: None,
            attempts: 4,
            backoff_ms: 500,
            concurrency: 16,
            queue: 10_000,
            timeout_s: 5.0,
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .field("attempts", &self.attempts)
            .field("backoff_ms", &self.backoff_ms)
            .field("concurrency", &self.concurrency)
            .field("queue", &self.queue)
            .field("timeout_s", &self.timeout_s)
            .finish()
    }
}

/// One message for one rescuer: the socket frame (`offer`, `stand_down` or `cancel`) and, for
/// an offer, its deadline (the push's TTL).
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub key: MessageKey,
    pub frame: Value,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Outgoing {
    /// From a socket frame; `None` for frames that are not delivered beyond the socket
    /// (`update`: live distance is only useful while the app is open).
    pub fn of_frame(rescuer_id: i64, frame: &Value) -> Option<Self> {
        let message = MessageKind::parse(frame["type"].as_str()?)?;
        let incident_id = frame["incident_id"].as_i64()?;
        let offer_id = match message {
            MessageKind::Offer => frame["offer_id"].as_i64()?,
            _ => 0,
        };
        let expires_at = frame["expires_at"]
            .as_str()
            .and_then(|s| s.parse::<DateTime<Utc>>().ok());
        Some(Self {
            key: MessageKey {
                incident_id,
                rescuer_id,
                message,
                offer_id,
            },
            frame: frame.clone(),
            expires_at,
        })
    }
}

/// A channel's two queues: offers, and stand-downs and cancels; each has its own worker and
/// `concurrency` slots.
struct Lanes {
    offers: mpsc::Sender<Outgoing>,
    others: mpsc::Sender<Outgoing>,
}

impl Lanes {
    fn new(queue: usize) -> (Self, [mpsc::Receiver<Outgoing>; 2]) {
        let (offers, offers_rx) = mpsc::channel(queue.max(1));
        let (others, others_rx) = mpsc::channel(queue.max(1));
        (Self { offers, others }, [offers_rx, others_rx])
    }

    fn of(&self, msg: &Outgoing) -> &mpsc::Sender<Outgoing> {
        if msg.key.message == MessageKind::Offer {
            &self.offers
        } else {
            &self.others
        }
    }
}

/// Told of every delivery record written (the dispatcher's board).
pub type Observer = Arc<dyn Fn(&DeliveryRecord) + Send + Sync>;

struct Metrics {
    messages: prometheus::IntCounterVec,
    seconds: prometheus::HistogramVec,
    removed: prometheus::IntCounter,
}

/// The channels beyond the socket (see the module docs).
pub struct Notifier {
    store: DynStore,
    config: NotifyConfig,
    vapid: Option<Vapid>,
    http: reqwest::Client,
    push_tx: Option<Lanes>,
    hook_tx: Option<Lanes>,
    metrics: Metrics,
    observer: std::sync::RwLock<Option<Observer>>,
    /// Records for the writer task ([`Notifier::write_records`]), which stores them in
    /// batches: a wave's records take the database's write lock once.
    records: mpsc::UnboundedSender<DeliveryRecord>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts the channels' workers (inside a Tokio runtime); metrics go to `registry`.
    pub fn start(
        store: DynStore,
        config: NotifyConfig,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<Arc<Self>> {
        let vapid = match &config.web_push.vapid_private_key {
            Some(k) => Some(
                Vapid::from_private(k, &config.web_push.subject)
                    .map_err(|e| anyhow::anyhow!("notify.web_push.vapid_private_key: {e}"))?,
            ),
            None => None,
        };
        if let Some(url) = &config.webhook.url {
            reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("notify.webhook.url: {e}"))?;
            anyhow::ensure!(
                config
                    .webhook
                    .secret
                    .as_deref()
                    .is_some_and(|s| s.len() >= 16),
                "notify.webhook.secret: at least 16 characters are needed to sign the webhook"
            );
        }
        anyhow::ensure!(
            config.ack_timeout_s >= 0.0 && config.ack_timeout_s <= 60.0,
            "notify.ack_timeout_s must be between 0 and 60"
        );
        let messages = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "aednet_notify_messages_total",
                "Offer, stand-down and cancel messages by channel and what became of them",
            ),
            &["channel", "state"],
        )?;
        let seconds = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "aednet_notify_send_seconds",
                "Time for one message on a channel, from leaving the queue to the last answer",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["channel"],
        )?;
        let removed = prometheus::IntCounter::new(
            "aednet_notify_subscriptions_removed_total",
            "Push subscriptions removed because the push service said they are gone (404/410)",
        )?;
        let _ = registry.register(Box::new(messages.clone()));
        let _ = registry.register(Box::new(seconds.clone()));
        let _ = registry.register(Box::new(removed.clone()));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let (push_tx, push_rx) = if vapid.is_some() {
            let (tx, rx) = Lanes::new(config.web_push.queue);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (hook_tx, hook_rx) = if config.webhook.url.is_some() {
            let (tx, rx) = Lanes::new(config.webhook.queue);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (records, records_rx) = mpsc::unbounded_channel();
        let me = Arc::new(Self {
            store,
            records,
            vapid,
            http,
            push_tx,
            hook_tx,
            metrics: Metrics {
                messages,
                seconds,
                removed,
            },
            observer: std::sync::RwLock::new(None),
            config,
        });
        tokio::spawn(Self::write_records(
            me.store.clone(),
            Arc::downgrade(&me),
            records_rx,
        ));
        for rx in push_rx.into_iter().flatten() {
            tokio::spawn(
                me.clone()
                    .worker(rx, me.config.web_push.concurrency, Channel::WebPush),
            );
        }
        for rx in hook_rx.into_iter().flatten() {
            tokio::spawn(
                me.clone()
                    .worker(rx, me.config.webhook.concurrency, Channel::Webhook),
            );
        }
        Ok(me)
    }

    /// The public key browsers subscribe with (`applicationServerKey`), when Web Push is on.
    pub fn vapid_public_key(&self) -> Option<&str> {
        self.vapid.as_ref().map(Vapid::public_key)
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    /// Whether any channel beyond the socket is configured.
    pub fn has_fallback(&self) -> bool {
        self.push_tx.is_some() || self.hook_tx.is_some()
    }

    pub fn ack_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.config.ack_timeout_s)
    }

    /// Told of every record written from now on.
    pub fn observe(&self, observer: Observer) {
        *self.observer.write().expect("not poisoned") = Some(observer);
    }

    /// Hands `msg` to every configured channel's queue without waiting; a full queue fails the
    /// message on that channel at once.
    pub fn fallback(self: &Arc<Self>, msg: Outgoing) {
        for (tx, channel) in [
            (&self.push_tx, Channel::WebPush),
            (&self.hook_tx, Channel::Webhook),
        ] {
            let Some(lanes) = tx else { continue };
            let key = msg.key;
            match lanes.of(&msg).try_send(msg.clone()) {
                Ok(()) => self.record(key, channel, DeliveryState::Queued, None, 0),
                Err(_) => self.record(
                    key,
                    channel,
                    DeliveryState::Failed,
                    Some("queue full".into()),
                    0,
                ),
            }
        }
    }

    /// Writes a delivery record in the background (the caller never waits for the store) and
    /// counts it once written.
    pub fn record(
        &self,
        key: MessageKey,
        channel: Channel,
        state: DeliveryState,
        reason: Option<String>,
        attempts: i32,
    ) {
        let rec = DeliveryRecord {
            key,
            channel,
            state,
            reason,
            attempts,
            updated_at: Utc::now(),
        };
        // The writer task lives as long as the notifier: this cannot fail while `self` does.
        let _ = self.records.send(rec);
    }

    /// The writer task: takes whatever records are waiting (up to [`RECORD_BATCH`]), stores
    /// them in one transaction, in the order they came, then counts them and tells the
    /// observer. Ends with the notifier.
    async fn write_records(
        store: DynStore,
        me: std::sync::Weak<Self>,
        mut rx: mpsc::UnboundedReceiver<DeliveryRecord>,
    ) {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            if let Err(e) = store.record_deliveries(&batch).await {
                tracing::warn!(error = %e, records = batch.len(), "delivery records not written");
            }
            if let Some(me) = me.upgrade() {
                for rec in &batch {
                    me.counted(rec);
                }
            }
            batch.clear();
        }
    }

    /// The app confirmed it has the message (over `channel`).
    pub async fn confirm(&self, key: MessageKey, channel: Channel) -> aednet_store::Result<()> {
        let rec = DeliveryRecord {
            key,
            channel,
            state: DeliveryState::Delivered,
            reason: None,
            attempts: 0,
            updated_at: Utc::now(),
        };
        self.store.record_delivery(&rec).await?;
        self.counted(&rec);
        Ok(())
    }

    fn counted(&self, rec: &DeliveryRecord) {
        self.metrics
            .messages
            .with_label_values(&[rec.channel.as_str(), rec.state.as_str()])
            .inc();
        let observer = self.observer.read().expect("not poisoned").clone();
        if let Some(o) = observer {
            o(rec);
        }
    }

    async fn worker(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Outgoing>,
        concurrency: usize,
        channel: Channel,
    ) {
        let slots = Arc::new(Semaphore::new(concurrency.max(1)));
        while let Some(msg) = rx.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let (state, reason, attempts) = match channel {
                    Channel::WebPush => me.web_push(&msg).await,
                    _ => me.webhook(&msg).await,
                };
                me.metrics
                    .seconds
                    .with_label_values(&[channel.as_str()])
                    .observe(started.elapsed().as_secs_f64());
                me.record(msg.key, channel, state, reason, attempts);
                drop(permit);
            });
        }
    }

    /// To every subscription of the rescuer; sent when one push service took it.
    async fn web_push(&self, msg: &Outgoing) -> (DeliveryState, Option<String>, i32) {
        let Some(vapid) = &self.vapid else {
            return (DeliveryState::Failed, Some("web push is off".into()), 0);
        };
        let subs = match self.store.push_subscriptions(msg.key.rescuer_id).await {
            Ok(s) => s,
            Err(e) => return (DeliveryState::Failed, Some(format!("store: {e}")), 0),
        };
        if subs.is_empty() {
            return (DeliveryState::Failed, Some("no subscription".into()), 0);
        }
        let now = Utc::now();
        // The offer is worthless after its deadline; a stand-down a few minutes at most.
        let ttl = match msg.expires_at {
            Some(t) => (t - now).num_seconds().max(0),
            None => 300,
        };
        let payload = msg.frame.to_string();
        let mut reasons = Vec::new();
        let mut sent = false;
        for sub in &subs {
            match self.push_one(vapid, sub, &payload, ttl, msg.key).await {
                Ok(()) => sent = true,
                Err(reason) => reasons.push(reason),
            }
        }
        let attempts = i32::try_from(subs.len()).unwrap_or(i32::MAX);
        if sent {
            (DeliveryState::Sent, None, attempts)
        } else {
            (DeliveryState::Failed, Some(reasons.join("; ")), attempts)
        }
    }

    async fn push_one(
        &self,
        vapid: &Vapid,
        sub: &aednet_store::PushSubscription,
        payload: &str,
        ttl: i64,
        key: MessageKey,
    ) -> Result<(), String> {
        let ua = webpush::UaKeys::decode(&sub.p256dh, &sub.auth).map_err(|e| e.to_string())?;
        let body = webpush::encrypt(payload.as_bytes(), &ua).map_err(|e| e.to_string())?;
        let exp = Utc::now().timestamp() + 12 * 3600;
        let auth = vapid
            .authorization(&sub.endpoint, exp)
            .map_err(|e| e.to_string())?;
        let res = self
            .http
            .post(&sub.endpoint)
            .timeout(Duration::from_secs_f64(self.config.web_push.timeout_s))
            .header("authorization", auth)
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("ttl", ttl.to_string())
            .header("urgency", "high")
            // A stand-down replaces an offer for the same incident still waiting at the
            // push service, so a phone that was off does not ring for a finished incident.
            .header("topic", format!("incident-{}", key.incident_id))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "timeout".to_string()
                } else {
                    "unreachable".to_string()
                }
            })?;
        let status = res.status().as_u16();
        match status {
            200..=299 => Ok(()),
            404 | 410 => {
                match self.store.drop_push_endpoint(&sub.endpoint).await {
                    Ok(true) => self.metrics.removed.inc(),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "gone push subscription not removed"),
                }
                Err(format!("HTTP {status}: subscription gone, removed"))
            }
            _ => Err(format!("HTTP {status}")),
        }
    }

    /// One signed POST, tried `attempts` times with doubling waits on 5xx, 429 and network
    /// errors; other 4xx answers are final.
    async fn webhook(&self, msg: &Outgoing) -> (DeliveryState, Option<String>, i32) {
        let cfg = &self.config.webhook;
        let (Some(url), Some(secret)) = (&cfg.url, &cfg.secret) else {
            return (DeliveryState::Failed, Some("webhook is off".into()), 0);
        };
        let phone = match self.store.get_rescuer(msg.key.rescuer_id).await {
            Ok(r) => r.and_then(|r| r.data.phone),
            Err(e) => return (DeliveryState::Failed, Some(format!("store: {e}")), 0),
        };
        let body = webhook_body(msg, phone.as_deref()).to_string();
        let mut reason = String::new();
        let tries = cfg.attempts.max(1);
        for attempt in 1..=tries {
            if attempt > 1 {
                let wait = cfg.backoff_ms.saturating_mul(1 << (attempt - 2).min(16));
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            let ts = Utc::now().timestamp();
            let res = self
                .http
                .post(url)
                .timeout(Duration::from_secs_f64(cfg.timeout_s))
                .header("content-type", "application/json")
                .header(webhook::TIMESTAMP_HEADER, ts.to_string())
                .header(
                    webhook::SIGNATURE_HEADER,
                    webhook::sign(secret.as_bytes(), ts, body.as_bytes()),
                )
                .body(body.clone())
                .send()
                .await;
            let n = i32::try_from(attempt).unwrap_or(i32::MAX);
            match res {
                Ok(r) if r.status().is_success() => return (DeliveryState::Sent, None, n),
                Ok(r) => {
                    let s = r.status().as_u16();
                    reason = format!("HTTP {s}");
                    if !(s == 429 || s >= 500) {
                        return (DeliveryState::Failed, Some(reason), n);
                    }
                }
                Err(e) => {
                    reason = if e.is_timeout() {
                        "timeout".into()
                    } else {
                        "unreachable".into()
                    };
                }
            }
        }
        (
            DeliveryState::Failed,
            Some(format!("{reason} after {tries} attempts")),
            i32::try_from(tries).unwrap_or(i32::MAX),
        )
    }
}

/// What the adapter gets: who (id and phone, for SMS), which message, a short text in both
/// languages ready for an SMS or a notification, and the frame the app would get. No patient
/// details beyond the place the rescuer must go to.
pub fn webhook_body(msg: &Outgoing, phone: Option<&str>) -> Value {
    let f = &msg.frame;
    let place = f["address"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "{:.5},{:.5}",
                f["lat"].as_f64().unwrap_or_default(),
                f["lon"].as_f64().unwrap_or_default()
            )
        });
    let (zh, en) = match msg.key.message {
        MessageKind::Offer if f["role"] == "fetch_aed" => (
            format!("【AED急救】附近有人心脏骤停：请取 AED（{}）送往 {place}。打开应用接受或拒绝。", f["aed"]["name"].as_str().unwrap_or("AED")),
            format!("[AED alert] Cardiac arrest nearby: fetch the AED ({}) and bring it to {place}. Open the app to accept or decline.", f["aed"]["name"].as_str().unwrap_or("AED")),
        ),
        MessageKind::Offer => (
            format!("【AED急救】附近有人心脏骤停：请前往 {place} 实施心肺复苏。打开应用接受或拒绝。"),
            format!("[AED alert] Cardiac arrest nearby: go to {place} and start CPR. Open the app to accept or decline."),
        ),
        MessageKind::StandDown => (
            "【AED急救】已有足够救护员前往，您无需前往，谢谢。".to_string(),
            "[AED alert] Enough responders are on the way: you can stand down. Thank you.".to_string(),
        ),
        MessageKind::Cancel => (
            "【AED急救】调度员已取消此次呼叫，谢谢。".to_string(),
            "[AED alert] The dispatcher cancelled this alert. Thank you.".to_string(),
        ),
    };
    json!({
        "id": format!("{}-{}-{}-{}", msg.key.incident_id, msg.key.rescuer_id, msg.key.message.as_str(), msg.key.offer_id),
        "message": msg.key.message,
        "incident_id": msg.key.incident_id,
        "offer_id": (msg.key.offer_id != 0).then_some(msg.key.offer_id),
        "rescuer_id": msg.key.rescuer_id,
        "phone": phone,
        "expires_at": msg.expires_at,
        "text": {"zh-CN": zh, "en": en},
        "frame": f,
    })
}
