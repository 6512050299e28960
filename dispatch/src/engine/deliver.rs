//! Beyond the socket: every offer, stand-down and cancel pushed to a rescuer's socket is also
//! given to the notifier (Web Push, webhook) when no socket on this node took it, or when the
//! app has not confirmed it (`received`) within `[notify] ack_timeout_s`. Nothing here waits:
//! the socket frame has already gone out, and the check runs in its own task.

use std::sync::Arc;

use aednet_notify::{Notifier, Outgoing};
use aednet_store::{Channel, DeliveryRecord, DeliveryState, MessageKey, MessageKind};
use serde_json::{json, Value};

use super::Engine;
use crate::incident::OfferState;

impl Engine {
    /// Sends what the socket did not confirm on the notifier's channels, and records
    /// deliveries (posted to dispatcher consoles as `{"type": "delivery", …}` frames).
    pub fn set_notifier(&self, notifier: Arc<Notifier>) {
        let me = self.me.clone();
        notifier.observe(Arc::new(move |rec: &DeliveryRecord| {
            if let Some(e) = me.upgrade() {
                e.post_board(delivery_frame(rec).to_string());
            }
        }));
        *self.notifier.write() = Some(notifier);
    }

    pub fn notifier(&self) -> Option<Arc<Notifier>> {
        self.notifier.read().clone()
    }

    /// Called for every frame pushed to a rescuer; `on_socket`: a socket on this node has it.
    pub(super) fn deliver(&self, rescuer_id: i64, msg: &Value, on_socket: bool) {
        let Some(n) = self.notifier() else {
            return;
        };
        let Some(out) = Outgoing::of_frame(rescuer_id, msg) else {
            return;
        };
        if on_socket {
            n.record(out.key, Channel::Ws, DeliveryState::Sent, None, 1);
        }
        if !n.has_fallback() {
            return;
        }
        // No socket anywhere (one node): no reason to wait for a confirmation.
        if !on_socket && self.peers.is_none() {
            n.fallback(out);
            return;
        }
        let me = self.me.clone();
        let wait = n.ack_timeout();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let Some(engine) = me.upgrade() else { return };
            if engine.still_unconfirmed(&out.key).await {
                n.fallback(out);
            }
        });
    }

    /// Neither confirmed on any channel nor, for an offer, answered or expired meanwhile.
    async fn still_unconfirmed(&self, key: &MessageKey) -> bool {
        match self.state.store.deliveries(key.incident_id).await {
            Ok(recs) => {
                if recs
                    .iter()
                    .any(|d| d.key == *key && d.state == DeliveryState::Delivered)
                {
                    return false;
                }
            }
            // Better a push too many than an alert lost.
            Err(e) => tracing::warn!(error = %e, "delivery records unreadable; pushing anyway"),
        }
        if key.message == MessageKind::Offer {
            if let Ok(inc) = self.get(key.incident_id).await {
                return inc.offers.iter().any(|o| {
                    i64::from(o.id) == key.offer_id
                        && o.rescuer_id == key.rescuer_id
                        && o.state == OfferState::Offered
                });
            }
        }
        true
    }

    /// The rescuer's app confirms it has a message (`received` over the socket, or over HTTP
    /// from the service worker after a push): recorded as delivered on `channel`. 404 for an
    /// incident or offer that is not theirs.
    pub async fn confirm_received(
        &self,
        key: MessageKey,
        channel: Channel,
    ) -> Result<(), super::EngineError> {
        let inc = self.get(key.incident_id).await?;
        let theirs = match key.message {
            MessageKind::Offer => inc
                .offers
                .iter()
                .any(|o| i64::from(o.id) == key.offer_id && o.rescuer_id == key.rescuer_id),
            _ => inc.offers.iter().any(|o| o.rescuer_id == key.rescuer_id),
        };
        if !theirs {
            return Err(super::EngineError::NotFound);
        }
        if let Some(n) = self.notifier() {
            n.confirm(key, channel).await?;
        } else {
            // Without a notifier the record is still kept (the board shows it).
            self.state
                .store
                .record_delivery(&DeliveryRecord {
                    key,
                    channel,
                    state: DeliveryState::Delivered,
                    reason: None,
                    attempts: 0,
                    updated_at: chrono::Utc::now(),
                })
                .await?;
        }
        Ok(())
    }
}

/// `{"type": "delivery", "incident_id", "offer_id", "rescuer_id", "message", "channel",
/// "state", "reason"}` for dispatcher consoles.
pub(crate) fn delivery_frame(d: &DeliveryRecord) -> Value {
    json!({"type": "delivery", "incident_id": d.key.incident_id, "rescuer_id": d.key.rescuer_id,
        "message": d.key.message, "offer_id": d.key.offer_id, "channel": d.channel,
        "state": d.state, "reason": d.reason, "attempts": d.attempts, "updated_at": d.updated_at})
}
