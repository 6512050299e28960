//! Several `aednet serve` nodes over one PostgreSQL: what they tell each other besides the stored
//! changes on the [`crate::EventBus`], and who owns which incident.
//!
//! A single node needs none of this: [`LocalLeases`] grants every lease and there are no peers.
//! The NATS / PostgreSQL implementations live in the `aednet-cluster` crate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// A message for the other nodes, delivered now and never stored (a node that is down misses
/// it; what it carries is either re-derivable from the store or only useful live).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Signal {
    /// A frame for a rescuer's live channel (`offer`, `update`, `stand_down`, `cancel`): the
    /// node holding that rescuer's socket delivers it.
    ToRescuer { rescuer_id: i64, frame: String },
    /// A frame for dispatcher consoles (`/ws/dispatch`) on every node.
    Board { frame: String },
    /// A rescuer's accepted position, so every node can plan with it. Positions travel only
    /// between nodes (core NATS, never a stream) and live only in memory.
    RescuerMoved {
        rescuer_id: i64,
        lat: f64,
        lon: f64,
        at: DateTime<Utc>,
    },
}

/// A request about one incident for the node that owns it (an answer, a close, a cancel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentCall {
    pub incident_id: i64,
    pub body: serde_json::Value,
}

/// A call from another node and where its reply goes. A node that does not own the incident
/// drops it without replying (the owner, if any, answers).
#[derive(Debug)]
pub struct IncidentRequest {
    pub call: IncidentCall,
    pub reply: oneshot::Sender<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("no node answered for incident {0}")]
    NoAnswer(i64),
    #[error("cluster transport: {0}")]
    Transport(String),
}

/// The other nodes.
#[async_trait::async_trait]
pub trait Peers: Send + Sync + std::fmt::Debug {
    /// This node's name in logs and messages (unique per process).
    fn node_id(&self) -> &str;
    /// Whether the link to the other nodes is up now (for `/readyz`).
    fn connected(&self) -> bool {
        true
    }
    /// To every other node, best effort (never echoed back to this node).
    fn signal(&self, signal: Signal);
    /// Signals from the other nodes.
    fn signals(&self) -> broadcast::Receiver<Signal>;
    /// Asks whichever node owns the incident; [`PeerError::NoAnswer`] after `timeout` when none
    /// does (it died and nobody has taken over yet).
    async fn call(
        &self,
        call: &IncidentCall,
        timeout: Duration,
    ) -> Result<serde_json::Value, PeerError>;
    /// Calls from the other nodes; the first caller takes the receiver (the dispatch engine).
    fn take_calls(&self) -> Option<mpsc::Receiver<IncidentRequest>>;
}

/// Ownership of incidents: whoever holds an incident's lease runs its timers and applies its
/// changes. A lease ends when released or when its holder dies.
#[async_trait::async_trait]
pub trait Leases: Send + Sync + std::fmt::Debug {
    /// Takes the lease if nobody holds it; `Ok(true)` also when this node holds it already.
    async fn try_acquire(&self, incident_id: i64) -> Result<bool, PeerError>;
    async fn release(&self, incident_id: i64);
    /// Changes when this node may have lost every lease it held (its lease session broke):
    /// the holder must acquire them again before it writes (`try_acquire` fails while the
    /// session is down, and answers `Ok(false)` for one another node took meanwhile).
    fn lost(&self) -> watch::Receiver<u64>;
}

/// One node: every lease is granted, none is ever lost.
#[derive(Debug)]
pub struct LocalLeases {
    lost: watch::Sender<u64>,
}

impl Default for LocalLeases {
    fn default() -> Self {
        Self {
            lost: watch::channel(0).0,
        }
    }
}

#[async_trait::async_trait]
impl Leases for LocalLeases {
    async fn try_acquire(&self, _incident_id: i64) -> Result<bool, PeerError> {
        Ok(true)
    }
    async fn release(&self, _incident_id: i64) {}
    fn lost(&self) -> watch::Receiver<u64> {
        self.lost.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_have_a_stable_wire_form() {
        let s = Signal::ToRescuer {
            rescuer_id: 7,
            frame: r#"{"type":"offer"}"#.into(),
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"type":"to_rescuer","rescuer_id":7,"frame":"{\"type\":\"offer\"}"}"#
        );
        assert_eq!(serde_json::from_str::<Signal>(&json).unwrap(), s);
    }
}
