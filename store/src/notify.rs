//! Offer delivery beyond the rescuer's WebSocket: Web Push subscriptions per rescuer (personal
//! data: never public, removed with the rescuer by the database's cascade) and the delivery
//! record of each message on each channel, which the dispatcher's board shows next to an offer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;

/// A browser's push subscription (the `PushSubscription.toJSON()` of the Push API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSubscription {
    pub id: i64,
    pub rescuer_id: i64,
    /// The push service URL this subscription receives messages at.
    pub endpoint: String,
    /// The user agent's P-256 public key, base64url (65 bytes uncompressed).
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
    pub created_at: DateTime<Utc>,
}

/// Which message a delivery record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Offer,
    StandDown,
    Cancel,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Offer => "offer",
            MessageKind::StandDown => "stand_down",
            MessageKind::Cancel => "cancel",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "offer" => Some(MessageKind::Offer),
            "stand_down" => Some(MessageKind::StandDown),
            "cancel" => Some(MessageKind::Cancel),
            _ => None,
        }
    }
}

/// The way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Ws,
    WebPush,
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Ws, Channel::WebPush, Channel::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Ws => "ws",
            Channel::WebPush => "web_push",
            Channel::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Where a message is on one channel. `Delivered` (the app confirmed it) is final: later
/// writes of other states for the same record are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Sent,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(DeliveryState::Queued),
            "sent" => Some(DeliveryState::Sent),
            "delivered" => Some(DeliveryState::Delivered),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// Identifies one message to one rescuer (`offer_id` 0 for stand-down and cancel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageKey {
    pub incident_id: i64,
    pub rescuer_id: i64,
    pub message: MessageKind,
    pub offer_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    #[serde(flatten)]
    pub key: MessageKey,
    pub channel: Channel,
    pub state: DeliveryState,
    /// Why it failed (the push service's status, a time-out, a full queue).
    pub reason: Option<String>,
    pub attempts: i32,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait NotifyStore: Send + Sync {
    /// Stores a subscription for `rescuer_id`; an endpoint already stored (the same browser
    /// subscribing again, or signed in as someone else now) is replaced.
    async fn put_push_subscription(
        &self,
        rescuer_id: i64,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<PushSubscription>;
    /// Removes the rescuer's subscription with this endpoint (`false`: there was none).
    async fn delete_push_subscription(&self, rescuer_id: i64, endpoint: &str) -> Result<bool>;
    async fn push_subscriptions(&self, rescuer_id: i64) -> Result<Vec<PushSubscription>>;
    /// Removes a subscription the push service says is gone (404/410), whoever's it was.
    async fn drop_push_endpoint(&self, endpoint: &str) -> Result<bool>;
    /// Writes the record (insert or update). States only move forward: a record already
    /// `delivered` stays so, and `queued` (written in the background as a message enters a
    /// channel's queue) never replaces the outcome of a send that finished first.
    async fn record_delivery(&self, record: &DeliveryRecord) -> Result<()>;
    /// [`NotifyStore::record_delivery`] for each, in order, in one transaction: a wave's
    /// records take the database's write lock once, not once each.
    async fn record_deliveries(&self, records: &[DeliveryRecord]) -> Result<()>;
    /// Every delivery record of an incident, by rescuer, message and channel.
    async fn deliveries(&self, incident_id: i64) -> Result<Vec<DeliveryRecord>>;
    /// Retention: deletes the delivery records of incidents closed or cancelled (last changed)
    /// before `closed_before`, and those of rescuers who no longer exist. Returns how many went.
    async fn erase_deliveries(&self, closed_before: DateTime<Utc>) -> Result<u64>;
}
