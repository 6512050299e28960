//! [`NotifyStore`] for both backends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{first_row, plain, PgStore, SqliteStore};
use crate::notify::{
    Channel, DeliveryRecord, DeliveryState, MessageKey, MessageKind, NotifyStore, PushSubscription,
};
use crate::{Result, StoreError};

#[derive(sqlx::FromRow)]
struct SubRow {
    id: i64,
    rescuer_id: i64,
    endpoint: String,
    p256dh: String,
    auth: String,
    created_at: DateTime<Utc>,
}

impl From<SubRow> for PushSubscription {
    fn from(r: SubRow) -> Self {
        PushSubscription {
            id: r.id,
            rescuer_id: r.rescuer_id,
            endpoint: r.endpoint,
            p256dh: r.p256dh,
            auth: r.auth,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    incident_id: i64,
    rescuer_id: i64,
    message: String,
    offer_id: i64,
    channel: String,
    state: String,
    reason: Option<String>,
    attempts: i32,
    updated_at: DateTime<Utc>,
}

impl TryFrom<DeliveryRow> for DeliveryRecord {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<Self> {
        let bad = |what: &str, v: &str| StoreError::Corrupt(format!("delivery {what} '{v}'"));
        Ok(DeliveryRecord {
            key: MessageKey {
                incident_id: r.incident_id,
                rescuer_id: r.rescuer_id,
                message: MessageKind::parse(&r.message)
                    .ok_or_else(|| bad("message", &r.message))?,
                offer_id: r.offer_id,
            },
            channel: Channel::parse(&r.channel).ok_or_else(|| bad("channel", &r.channel))?,
            state: DeliveryState::parse(&r.state).ok_or_else(|| bad("state", &r.state))?,
            reason: r.reason,
            attempts: r.attempts,
            updated_at: r.updated_at,
        })
    }
}

const SUB_COLS: &str = "id, rescuer_id, endpoint, p256dh, auth, created_at";

macro_rules! impl_notify {
    ($store:ident) => {
        #[async_trait]
        impl NotifyStore for $store {
            #[tracing::instrument(skip(self, endpoint, p256dh, auth))]
            async fn put_push_subscription(
                &self,
                rescuer_id: i64,
                endpoint: &str,
                p256dh: &str,
                auth: &str,
            ) -> Result<PushSubscription> {
                let rows = sqlx::query_as::<_, SubRow>(&format!(
                    "INSERT INTO push_subscriptions (rescuer_id, endpoint, p256dh, auth, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (endpoint) DO UPDATE SET \
                     rescuer_id = excluded.rescuer_id, p256dh = excluded.p256dh, auth = excluded.auth, \
                     created_at = excluded.created_at RETURNING {SUB_COLS}"
                ))
                .bind(rescuer_id)
                .bind(endpoint)
                .bind(p256dh)
                .bind(auth)
                .bind(Utc::now())
                .fetch_all(&self.pool)
                .await
                .map_err(|e| super::db_err(e, Some("rescuer_id")))?;
                Ok(first_row(rows).map_err(plain)?.into())
            }

            #[tracing::instrument(skip(self, endpoint))]
            async fn delete_push_subscription(&self, rescuer_id: i64, endpoint: &str) -> Result<bool> {
                let r = sqlx::query("DELETE FROM push_subscriptions WHERE rescuer_id = $1 AND endpoint = $2")
                    .bind(rescuer_id)
                    .bind(endpoint)
                    .execute(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(r.rows_affected() > 0)
            }

            async fn push_subscriptions(&self, rescuer_id: i64) -> Result<Vec<PushSubscription>> {
                Ok(sqlx::query_as::<_, SubRow>(&format!(
                    "SELECT {SUB_COLS} FROM push_subscriptions WHERE rescuer_id = $1 ORDER BY id"
                ))
                .bind(rescuer_id)
                .fetch_all(&self.pool)
                .await
                .map_err(plain)?
                .into_iter()
                .map(Into::into)
                .collect())
            }

            #[tracing::instrument(skip(self, endpoint))]
            async fn drop_push_endpoint(&self, endpoint: &str) -> Result<bool> {
                let r = sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1")
                    .bind(endpoint)
                    .execute(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(r.rows_affected() > 0)
            }

            async fn record_delivery(&self, d: &DeliveryRecord) -> Result<()> {
                self.record_deliveries(std::slice::from_ref(d)).await
            }

            async fn record_deliveries(&self, records: &[DeliveryRecord]) -> Result<()> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                // A statement per record (one multi-row upsert may not touch a row twice,
                // and a batch can hold a message's `queued` and its `sent`).
                for d in records {
                    sqlx::query(
                        "INSERT INTO deliveries (incident_id, rescuer_id, message, offer_id, channel, state, reason, attempts, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (incident_id, rescuer_id, message, offer_id, channel) DO UPDATE SET \
                         state = excluded.state, reason = excluded.reason, attempts = excluded.attempts, \
                         updated_at = excluded.updated_at WHERE deliveries.state <> 'delivered' \
                         AND (excluded.state <> 'queued' OR deliveries.state = 'queued')",
                    )
                    .bind(d.key.incident_id)
                    .bind(d.key.rescuer_id)
                    .bind(d.key.message.as_str())
                    .bind(d.key.offer_id)
                    .bind(d.channel.as_str())
                    .bind(d.state.as_str())
                    .bind(d.reason.as_deref())
                    .bind(d.attempts)
                    .bind(d.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(plain)?;
                }
                tx.commit().await.map_err(plain)?;
                Ok(())
            }

            async fn deliveries(&self, incident_id: i64) -> Result<Vec<DeliveryRecord>> {
                sqlx::query_as::<_, DeliveryRow>(
                    "SELECT incident_id, rescuer_id, message, offer_id, channel, state, reason, attempts, updated_at \
                     FROM deliveries WHERE incident_id = $1 ORDER BY rescuer_id, message, offer_id, channel",
                )
                .bind(incident_id)
                .fetch_all(&self.pool)
                .await
                .map_err(plain)?
                .into_iter()
                .map(DeliveryRecord::try_from)
                .collect()
            }

            #[tracing::instrument(skip(self))]
            async fn erase_deliveries(&self, closed_before: DateTime<Utc>) -> Result<u64> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let expired = sqlx::query(
                    "DELETE FROM deliveries WHERE incident_id IN (SELECT id FROM incidents \
                     WHERE state IN ('closed', 'cancelled') AND updated_at < $1)",
                )
                .bind(closed_before)
                .execute(&mut *tx)
                .await
                .map_err(plain)?
                .rows_affected();
                let orphaned = sqlx::query(
                    "DELETE FROM deliveries WHERE rescuer_id NOT IN (SELECT id FROM rescuers)",
                )
                .execute(&mut *tx)
                .await
                .map_err(plain)?
                .rows_affected();
                tx.commit().await.map_err(plain)?;
                Ok(expired + orphaned)
            }
        }
    };
}

impl_notify!(SqliteStore);
impl_notify!(PgStore);
