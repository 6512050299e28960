//! Events published after a write reaches the store. Indexes, the coverage map, dispatch and
//! WebSocket subscribers update from these; they never read a half-finished write.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::aed::ReadinessStatus;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    AedUpserted {
        id: i64,
    },
    AedDeleted {
        id: i64,
    },
    AedReadinessChanged {
        id: i64,
        status: ReadinessStatus,
    },
    StationUpserted {
        id: i64,
    },
    StationDeleted {
        id: i64,
    },
    DistrictUpserted {
        id: i64,
    },
    DistrictDeleted {
        id: i64,
    },
    RescuerUpserted {
        id: i64,
    },
    RescuerDeleted {
        id: i64,
    },
    /// A bearer token was revoked: every node drops its cache of verified tokens.
    TokenRevoked {
        id: i64,
    },
    /// A token's role changed: every node drops its cache and closes the token's sockets (the
    /// client reconnects with its new rights).
    TokenChanged {
        id: i64,
    },
    /// Many records changed at once (an import): subscribers reload rather than replay.
    BulkChange {
        source: String,
    },
    /// An import stored a new artifact (walking graph, basemap, address index): its holders
    /// load it in the background and swap it in. Nodes also poll for versions, so an import
    /// run by another process is picked up without this event.
    ArtifactReplaced {
        kind: String,
        version: i64,
    },
}

/// The event bus. In-process by default; a NATS JetStream implementation serves several nodes.
pub trait EventBus: Send + Sync + std::fmt::Debug {
    fn publish(&self, event: Event);
    fn subscribe(&self) -> broadcast::Receiver<Event>;
    /// To this node's subscribers only: a node repairing its own view (a change it missed)
    /// without telling the others again. On one node this is [`EventBus::publish`].
    fn publish_local(&self, event: Event) {
        self.publish(event);
    }
}

/// Single-node bus on a tokio broadcast channel. A subscriber that falls more than `capacity`
/// events behind gets `Lagged` and must resynchronise from the store.
#[derive(Debug, Clone)]
pub struct LocalBus {
    tx: broadcast::Sender<Event>,
}

impl LocalBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
        }
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventBus for LocalBus {
    fn publish(&self, event: Event) {
        // No subscribers is fine: nobody needs to hear it.
        let _ = self.tx.send(event);
    }
    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_receive_published_events_in_order() {
        let bus = LocalBus::new(8);
        let mut rx = bus.subscribe();
        bus.publish(Event::AedUpserted { id: 1 });
        bus.publish(Event::AedDeleted { id: 1 });
        assert_eq!(rx.try_recv().unwrap(), Event::AedUpserted { id: 1 });
        assert_eq!(rx.try_recv().unwrap(), Event::AedDeleted { id: 1 });
        let json = serde_json::to_string(&Event::AedReadinessChanged {
            id: 3,
            status: ReadinessStatus::Fault,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"type":"aed_readiness_changed","id":3,"status":"fault"}"#
        );
    }
}
