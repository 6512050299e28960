//! aednet across several nodes sharing one PostgreSQL (see docs/operations.md, "Scaling out").
//!
//! Three things travel between nodes, each over the engine that fits it:
//!
//! - **Stored changes** ([`aednet_core::Event`]) go through [`NatsBus`], an
//!   [`aednet_core::EventBus`] over a NATS JetStream stream (`<prefix>.events.<event type>`,
//!   stream `<PREFIX>_EVENTS`, file storage, kept `stream_max_age_s`). `publish` hands the event
//!   to this node's subscribers at once, like the in-process bus, and queues it for one
//!   publisher task that JetStream-publishes in order, awaiting each ack (retried a few times
//!   with backoff and deduplicated by `Nats-Msg-Id`, then logged as an error and dropped: the
//!   store has the change, and the other nodes catch up at their next reload). Every node
//!   follows the stream with an *ordered* consumer created in [`Cluster::connect`], so a caller
//!   that subscribes and then loads from the store misses nothing. A node skips its own
//!   messages (header `Aednet-Node`), since its subscribers already had them.
//! - **Live messages** ([`aednet_core::Signal`]) and **calls to an incident's owner**
//!   ([`aednet_core::IncidentCall`]) go through [`NatsPeers`] on core NATS: memory only, never
//!   stored (rescuer positions must never land in a stream). A node down misses them.
//! - **Incident ownership** ([`aednet_core::Leases`]) is a PostgreSQL advisory lock per
//!   incident, held by [`PgLeases`] on one dedicated session per node.
//!
//! # Failure behaviour
//!
//! - *NATS connection lost*: the client reconnects forever. Publishes wait in the queue (their
//!   retries may run out during a long outage: logged as errors). The ordered consumer is
//!   recreated from the last stream sequence seen + 1, so the node catches up from the stream.
//! - *Events missed for good* (the node was away longer than `stream_max_age_s`, or the stream
//!   was purged past its position): detected as a gap in stream sequences, or by a periodic
//!   look at the stream's first sequence; this node's subscribers then receive
//!   `Event::BulkChange { source: "resync" }` and reload from the store, which is the truth.
//! - *Lease session lost* (PostgreSQL restarted, backend terminated, network): the heartbeat
//!   (`SELECT 1` every `lease_heartbeat_ms`) or any failing lease query notices, the held set is
//!   cleared and [`aednet_core::Leases::lost`] changes, so the dispatch engine forgets its
//!   incidents; the session is reopened with backoff, and until then `try_acquire` fails. The
//!   server frees a dead session's locks when the session ends; TCP keepalives (5 s idle, 3
//!   probes 1 s apart) bound that when the holder's machine vanishes without closing its socket.
//! - *An incident's owner died*: calls to it get [`aednet_core::PeerError::NoAnswer`] after the
//!   caller's timeout until another node takes the lease.
//!
//! Nothing here logs a database or NATS password: URLs are never logged whole.

mod bus;
mod leases;
mod peers;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use bus::{BusStats, NatsBus};
pub use leases::PgLeases;
pub use peers::NatsPeers;

/// The header naming the node that published a message, so it can skip its own.
pub const NODE_HEADER: &str = "Aednet-Node";

/// How the nodes reach each other. With no `nats_url` a node runs alone and nothing here is used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClusterConfig {
    /// `nats://host:4222`; None = single node.
    pub nats_url: Option<String>,
    /// Subject prefix: `<prefix>.events.<event type>`, `<prefix>.signal`,
    /// `<prefix>.incident.<id>`; the stream is named after it (see [`stream_name`]).
    pub prefix: String,
    /// How far back a node can catch up from the stream.
    pub stream_max_age_s: u64,
    /// Stream replicas: 1 on a single NATS server, 3 in production with a NATS cluster.
    pub stream_replicas: usize,
    /// Default wait for an incident's owner to answer a call.
    pub call_timeout_ms: u64,
    /// How often the lease session is checked.
    pub lease_heartbeat_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            prefix: "aednet".into(),
            stream_max_age_s: 86_400,
            stream_replicas: 1,
            call_timeout_ms: 1000,
            lease_heartbeat_ms: 1000,
        }
    }
}

impl ClusterConfig {
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
    pub fn lease_heartbeat(&self) -> Duration {
        Duration::from_millis(self.lease_heartbeat_ms)
    }
}

/// The JetStream stream holding a prefix's events: `aednet` -> `AEDNET_EVENTS` (uppercase,
/// anything but ASCII letters and digits becomes `_`).
pub fn stream_name(prefix: &str) -> String {
    let mut name: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    name.push_str("_EVENTS");
    name
}

/// One node's membership in the cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub node_id: String,
    pub bus: Arc<NatsBus>,
    pub peers: Arc<NatsPeers>,
}

impl Cluster {
    /// Connects to NATS, creates (or finds) the event stream and starts following it, and
    /// subscribes to the signal and call subjects. Fails when NATS cannot be reached now; once
    /// connected, the client reconnects on its own for ever.
    pub async fn connect(cfg: &ClusterConfig) -> anyhow::Result<Cluster> {
        let url = cfg
            .nats_url
            .as_deref()
            .context("cluster: nats_url is not set")?;
        check_prefix(&cfg.prefix)?;
        let node_id = new_node_id();
        let shown_url = redact_url(url);
        let log_node = node_id.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("aednet {node_id}"))
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let node = log_node.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            tracing::info!(node = %node, "NATS connected")
                        }
                        async_nats::Event::SlowConsumer(_) | async_nats::Event::ServerError(_) => {
                            tracing::warn!(node = %node, %event, "NATS")
                        }
                        other => tracing::warn!(node = %node, event = %other, "NATS connection"),
                    }
                }
            })
            .connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {shown_url}"))?;
        let bus = NatsBus::start(client.clone(), cfg, &node_id).await?;
        let peers = NatsPeers::start(client.clone(), &cfg.prefix, &node_id).await?;
        // `flush` would only write out the SUBs; a round trip on the same connection proves the
        // server has processed them, so a signal or call sent right after `connect` returns
        // is not missed.
        // (Any request answered by the server does; the reply itself is not needed.)
        client
            .request("$JS.API.INFO", bytes::Bytes::new())
            .await
            .context("NATS round trip after subscribing")?;
        tracing::info!(node = %node_id, nats = %shown_url, prefix = %cfg.prefix, "joined the cluster");
        Ok(Cluster {
            node_id,
            bus: Arc::new(bus),
            peers: Arc::new(peers),
        })
    }
}

fn check_prefix(prefix: &str) -> anyhow::Result<()> {
    let ok = !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    anyhow::ensure!(
        ok,
        "cluster: prefix {prefix:?} must be dot-separated tokens of letters, digits, '_' or '-'"
    );
    Ok(())
}

/// `<hostname>-<pid>-<4 random hex>`: unique per process, readable in logs.
fn new_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..4])
}

/// The URL without its user info (`nats://user:secret@host` -> `nats://***@host`).
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &url[..scheme_end + 3], &url[at..])
        }
        (None, Some(at)) => format!("***{}", &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_and_prefixes() {
        assert_eq!(stream_name("aednet"), "AEDNET_EVENTS");
        assert_eq!(stream_name("t1.x-y"), "T1_X_Y_EVENTS");
        assert!(check_prefix("aednet").is_ok());
        assert!(check_prefix("a.b_c-d").is_ok());
        for bad in ["", "a..b", "a.*", "a b", "a.>"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_lose_their_secrets() {
        assert_eq!(
            redact_url("nats://u:secret@127.0.0.1:4222"),
            "nats://***@127.0.0.1:4222"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            redact_url("postgres://postgres:pw@db/aednet"),
            "postgres://***@db/aednet"
        );
    }

    #[test]
    fn node_ids_are_unique_and_readable() {
        let a = new_node_id();
        let b = new_node_id();
        assert_ne!(a, b);
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    }

    #[test]
    fn config_defaults_and_partial_files() {
        let cfg: ClusterConfig =
            serde_json::from_str(r#"{"nats_url":"nats://127.0.0.1:4222"}"#).unwrap();
        assert_eq!(cfg.prefix, "aednet");
        assert_eq!(cfg.stream_max_age_s, 86_400);
        assert_eq!(cfg.stream_replicas, 1);
        assert_eq!(cfg.call_timeout(), Duration::from_secs(1));
        assert_eq!(cfg.lease_heartbeat(), Duration::from_secs(1));
    }
}
