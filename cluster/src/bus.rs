//! [`NatsBus`]: the event bus over a JetStream stream (see the crate docs for the design).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aednet_core::{Event, EventBus};
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

use crate::{ClusterConfig, NODE_HEADER};

const LOCAL_CAPACITY: usize = 4096;
/// Publish attempts per event before it is logged and dropped.
const PUBLISH_ATTEMPTS: u32 = 5;
/// How often an idle follower asks the stream whether events it has not seen were removed.
const GAP_CHECK: Duration = Duration::from_secs(5);
const API_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters since start (cheap, relaxed atomics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Handed to `publish` on this node.
    pub queued: u64,
    /// Stored in the stream (ack received).
    pub published: u64,
    /// Given up after every retry (logged as errors).
    pub publish_failed: u64,
    /// Other nodes' events delivered to this node's subscribers.
    pub received: u64,
    /// This node's own events seen on the stream and skipped.
    pub skipped_own: u64,
    /// Messages that did not decode (logged and skipped).
    pub bad_payloads: u64,
    /// `BulkChange { source: "resync" }` sent because events were missed for good.
    pub resyncs: u64,
    /// Consumers this node created to follow the stream (1 + recreations by this crate).
    pub consumers_created: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    published: AtomicU64,
    publish_failed: AtomicU64,
    received: AtomicU64,
    skipped_own: AtomicU64,
    bad_payloads: AtomicU64,
    resyncs: AtomicU64,
    consumers_created: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The event bus of a node in a cluster.
#[derive(Debug)]
pub struct NatsBus {
    node_id: String,
    stream_name: String,
    local: broadcast::Sender<Event>,
    queue: mpsc::UnboundedSender<Event>,
    counters: Arc<Counters>,
    follower: AbortHandle,
}

impl NatsBus {
    pub(crate) async fn start(
        client: async_nats::Client,
        cfg: &ClusterConfig,
        node_id: &str,
    ) -> anyhow::Result<NatsBus> {
        let js = jetstream::new(client);
        let stream_name = crate::stream_name(&cfg.prefix);
        let wanted = stream::Config {
            name: stream_name.clone(),
            subjects: vec![format!("{}.events.>", cfg.prefix)],
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(cfg.stream_max_age_s),
            num_replicas: cfg.stream_replicas.max(1),
            description: Some("aednet events between nodes".into()),
            ..Default::default()
        };
        let mut stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .with_context(|| format!("creating or opening the JetStream stream {stream_name}"))?;
        let info = stream
            .info()
            .await
            .with_context(|| format!("reading stream {stream_name}"))?;
        if info.config.max_age != wanted.max_age || info.config.num_replicas != wanted.num_replicas
        {
            tracing::warn!(
                stream = %stream_name,
                max_age_s = info.config.max_age.as_secs(),
                replicas = info.config.num_replicas,
                "the event stream exists with other limits than configured; keeping them (change them with `nats stream edit`)"
            );
        }
        // Starting at the sequence after the last one stored (rather than DeliverPolicy::New)
        // gives the follower a known base, so a gap is visible from the first message on.
        let next_seq = info.state.last_sequence + 1;

        let counters = Arc::new(Counters::default());
        let local = broadcast::channel(LOCAL_CAPACITY).0;
        let follower = Follower {
            node_id: node_id.to_string(),
            consumer_name: consumer_name(node_id),
            stream: stream.clone(),
            local: local.clone(),
            counters: counters.clone(),
            next_seq,
            recreations: 0,
        };
        let messages = follower
            .create_consumer()
            .await
            .context("creating the event stream consumer")?;
        let follower = tokio::spawn(follower.run(messages)).abort_handle();

        let (queue, rx) = mpsc::unbounded_channel();
        // Not aborted on drop: it drains the queue and ends when the sender goes.
        tokio::spawn(publish_loop(
            js,
            rx,
            cfg.prefix.clone(),
            node_id.to_string(),
            counters.clone(),
        ));

        Ok(NatsBus {
            node_id: node_id.to_string(),
            stream_name,
            local,
            queue,
            counters,
            follower,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The JetStream stream this bus publishes to.
    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    pub fn stats(&self) -> BusStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BusStats {
            queued: get(&c.queued),
            published: get(&c.published),
            publish_failed: get(&c.publish_failed),
            received: get(&c.received),
            skipped_own: get(&c.skipped_own),
            bad_payloads: get(&c.bad_payloads),
            resyncs: get(&c.resyncs),
            consumers_created: get(&c.consumers_created),
        }
    }

    /// Waits until every event published so far is stored in the stream or given up on;
    /// false if that takes longer than `timeout` (on shutdown, so the other nodes hear the
    /// last changes).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.stats();
            if s.published + s.publish_failed >= s.queued {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for NatsBus {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl EventBus for NatsBus {
    fn publish(&self, event: Event) {
        // This node's subscribers hear it now, as on the in-process bus; the stream copy is
        // for the other nodes (and skipped here by its node header).
        let _ = self.local.send(event.clone());
        bump(&self.counters.queued);
        if self.queue.send(event).is_err() {
            // Only when the publisher task is gone, i.e. the runtime is shutting down.
            bump(&self.counters.publish_failed);
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }

    fn publish_local(&self, event: Event) {
        // A repair of this node's own view: the others have it already (from the store).
        let _ = self.local.send(event);
    }
}

/// Consumer names may not hold `.`, `*`, `>` or whitespace; a host name may hold dots.
fn consumer_name(node_id: &str) -> String {
    node_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `type` tag of an event (`aed_upserted`, …), the last token of its subject.
fn event_type(event: &Event) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

async fn publish_loop(
    js: jetstream::Context,
    mut rx: mpsc::UnboundedReceiver<Event>,
    prefix: String,
    node_id: String,
    counters: Arc<Counters>,
) {
    let mut serial: u64 = 0;
    while let Some(event) = rx.recv().await {
        serial += 1;
        let subject = format!("{prefix}.events.{}", event_type(&event));
        let payload = match serde_json::to_vec(&event) {
            Ok(json) => Bytes::from(json),
            Err(e) => {
                bump(&counters.publish_failed);
                tracing::error!(error = %e, "event does not serialise; not published");
                continue;
            }
        };
        // The same id on every attempt: a retry after a lost ack is not stored twice.
        let msg_id = format!("{node_id}-{serial}");
        let mut attempt = 1;
        loop {
            let mut headers = HeaderMap::new();
            headers.insert(NODE_HEADER, node_id.as_str());
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .headers(headers)
                .message_id(&msg_id);
            let result = match js.send_publish(subject.clone(), publish).await {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(()) => {
                    bump(&counters.published);
                    break;
                }
                Err(e) if attempt < PUBLISH_ATTEMPTS => {
                    tracing::warn!(%subject, attempt, error = %e, "event publish failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    bump(&counters.publish_failed);
                    tracing::error!(
                        %subject, attempts = attempt, error = %e,
                        "event not published: the other nodes miss it until they reload"
                    );
                    break;
                }
            }
        }
    }
}

type Messages = consumer::pull::Ordered;

/// Follows the stream for one node, from `next_seq` on.
struct Follower {
    node_id: String,
    consumer_name: String,
    stream: stream::Stream,
    local: broadcast::Sender<Event>,
    counters: Arc<Counters>,
    /// The stream sequence this node expects next: everything before it was seen or resynced.
    next_seq: u64,
    recreations: u64,
}

enum Position {
    Fine,
    /// The stream was deleted and made again: its sequences started over.
    Reset,
}

impl Follower {
    async fn create_consumer(&self) -> anyhow::Result<Messages> {
        // The library's ordered consumer recreates itself on sequence mismatches and missed
        // heartbeats; this crate only recreates it when it gives up (see `run`).
        let name = if self.recreations == 0 {
            self.consumer_name.clone()
        } else {
            format!("{}_r{}", self.consumer_name, self.recreations)
        };
        let consumer = tokio::time::timeout(
            API_TIMEOUT,
            self.stream.create_consumer(consumer::pull::OrderedConfig {
                name: Some(name),
                description: Some(format!("aednet node {}", self.node_id)),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: self.next_seq,
                },
                ..Default::default()
            }),
        )
        .await
        .context("timed out")??;
        bump(&self.counters.consumers_created);
        Ok(consumer.messages().await?)
    }

    async fn run(mut self, mut messages: Messages) {
        let mut check = tokio::time::interval(GAP_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.tick().await;
        loop {
            tokio::select! {
                item = messages.next() => match item {
                    Some(Ok(message)) => self.handle(&message),
                    Some(Err(e)) => {
                        tracing::warn!(node = %self.node_id, error = %e, "event stream consumer failed; recreating it");
                        messages = self.recreate().await;
                    }
                    None => {
                        tracing::warn!(node = %self.node_id, "event stream consumer ended; recreating it");
                        messages = self.recreate().await;
                    }
                },
                _ = check.tick() => {
                    if let Some(Position::Reset) = self.check_position().await {
                        messages = self.recreate().await;
                    }
                }
            }
        }
    }

    /// A new ordered consumer from `next_seq`, retried with backoff until it exists.
    async fn recreate(&mut self) -> Messages {
        let mut backoff = Duration::from_millis(100);
        loop {
            self.check_position().await;
            self.recreations += 1;
            match self.create_consumer().await {
                Ok(messages) => {
                    tracing::info!(node = %self.node_id, from = self.next_seq, "following the event stream again");
                    return messages;
                }
                Err(e) => {
                    tracing::warn!(node = %self.node_id, error = %e, "cannot recreate the event stream consumer; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Compares `next_seq` with what the stream still holds; resyncs when events this node has
    /// not seen were removed. None when the stream cannot be asked now.
    async fn check_position(&mut self) -> Option<Position> {
        let info = match tokio::time::timeout(API_TIMEOUT, self.stream.get_info()).await {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                tracing::debug!(node = %self.node_id, error = %e, "event stream info unavailable");
                return None;
            }
            Err(_) => return None,
        };
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        if last + 1 < self.next_seq {
            self.resync(&format!(
                "the event stream starts over (its last sequence {last} is behind this node's {})",
                self.next_seq - 1
            ));
            self.next_seq = last + 1;
            return Some(Position::Reset);
        }
        if first > self.next_seq && last >= self.next_seq {
            self.resync(&format!(
                "events {}..{} left the stream before this node saw them",
                self.next_seq,
                first - 1
            ));
            self.next_seq = first;
        }
        Some(Position::Fine)
    }

    fn resync(&self, why: &str) {
        bump(&self.counters.resyncs);
        tracing::warn!(node = %self.node_id, "{why}; subscribers reload from the store");
        let _ = self.local.send(Event::BulkChange {
            source: "resync".into(),
        });
    }

    fn handle(&mut self, message: &jetstream::Message) {
        let seq = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(e) => {
                bump(&self.counters.bad_payloads);
                tracing::warn!(node = %self.node_id, error = %e, "event stream message without JetStream info; skipped");
                return;
            }
        };
        if seq < self.next_seq {
            // Seen already, or covered by a resync.
            return;
        }
        if seq > self.next_seq {
            self.resync(&format!(
                "events {}..{} are missing from the stream",
                self.next_seq,
                seq - 1
            ));
        }
        self.next_seq = seq + 1;
        let from = message
            .headers
            .as_ref()
            .and_then(|h| h.get(NODE_HEADER))
            .map(|v| v.as_str());
        if from == Some(self.node_id.as_str()) {
            bump(&self.counters.skipped_own);
            return;
        }
        match serde_json::from_slice::<Event>(&message.payload) {
            Ok(event) => {
                bump(&self.counters.received);
                let _ = self.local.send(event);
            }
            Err(e) => {
                bump(&self.counters.bad_payloads);
                tracing::warn!(
                    node = %self.node_id, subject = %message.subject, seq, error = %e,
                    "undecodable event on the stream; skipped"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_consumer_names() {
        assert_eq!(event_type(&Event::AedUpserted { id: 1 }), "aed_upserted");
        assert_eq!(
            event_type(&Event::BulkChange {
                source: "import".into()
            }),
            "bulk_change"
        );
        assert_eq!(
            consumer_name("web-1.example.org-12-ab3f"),
            "web-1_example_org-12-ab3f"
        );
    }
}
