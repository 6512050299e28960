//! Retention of personal data: the rescuer positions recorded at accept and arrival in an
//! incident's record are erased `position_retention_days` after it closes (an hourly job,
//! counted in `aednet_retention_erased_total`), and at once when the rescuer is deleted
//! (from this node's open incidents and from the store). The same job deletes the delivery
//! records of incidents closed `delivery_retention_days` before, and those of deleted rescuers
//! (`aednet_retention_deliveries_erased_total`); history links of deleted rescuers go with
//! their positions. Push subscriptions go with the rescuer (the database's cascade).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use aednet_core::Event;
use chrono::{DateTime, Duration, Utc};
use tokio::sync::broadcast::error::RecvError;

use super::{Engine, EngineError};
use crate::incident::AuditEvent;

/// How often the retention job runs.
pub const RETENTION_EVERY: StdDuration = StdDuration::from_secs(3600);
/// How soon a failed run is tried again.
const RETENTION_RETRY: StdDuration = StdDuration::from_secs(60);

impl Engine {
    /// Erases the positions of incidents closed more than the retention period before `now`,
    /// and of rescuers who no longer exist; returns how many recorded positions went.
    pub async fn erase_expired_positions(&self, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let cutoff = now - Duration::days(i64::from(self.policy.position_retention_days));
        let old = self.state.store.erase_incident_positions(cutoff).await?;
        self.retention_erased.inc_by(old);
        let orphaned = self.state.store.erase_rescuer_positions(None).await?;
        self.retention_erased.inc_by(orphaned);
        if old + orphaned > 0 {
            tracing::info!(
                expired = old,
                deleted_rescuers = orphaned,
                "recorded rescuer positions erased"
            );
        }
        self.erase_expired_deliveries(now).await?;
        Ok(old + orphaned)
    }

    /// Deletes the delivery records of incidents closed more than `delivery_retention_days`
    /// before `now`, and of rescuers who no longer exist; returns how many went.
    pub async fn erase_expired_deliveries(&self, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let cutoff = now - Duration::days(i64::from(self.policy.delivery_retention_days));
        let n = self.state.store.erase_deliveries(cutoff).await?;
        self.deliveries_erased.inc_by(n);
        if n > 0 {
            tracing::info!(records = n, "delivery records erased");
        }
        Ok(n)
    }

    /// A rescuer was deleted: their recorded positions leave this node's open incidents (so a
    /// later save cannot write them back) and every incident in the store.
    pub async fn erase_rescuer_positions(&self, rescuer_id: i64) -> Result<u64, EngineError> {
        let slots: Vec<_> = self.open.lock().values().cloned().collect();
        for s in slots {
            let mut slot = s.lock().await;
            for e in &mut slot.incident.audit {
                match &mut e.event {
                    AuditEvent::Accepted {
                        rescuer_id: r,
                        position,
                        ..
                    }
                    | AuditEvent::Arrived {
                        rescuer_id: r,
                        position,
                        ..
                    } if *r == rescuer_id => *position = None,
                    _ => {}
                }
            }
        }
        let n = self
            .state
            .store
            .erase_rescuer_positions(Some(rescuer_id))
            .await?;
        self.retention_erased.inc_by(n);
        Ok(n)
    }

    /// The hourly job, and erasure on every rescuer deletion.
    pub(super) fn spawn_retention(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let wait = match me.erase_expired_positions(me.state.clock.now()).await {
                    Ok(_) => RETENTION_EVERY,
                    Err(e) => {
                        tracing::warn!(error = %e, "erasing expired positions; trying again soon");
                        RETENTION_RETRY
                    }
                };
                tokio::time::sleep(wait).await;
            }
        });
        let mut events = self.state.bus.subscribe();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::RescuerDeleted { id }) => {
                        // A failure here is caught by the hourly job (rescuers who no longer
                        // exist); memory is already clean.
                        if let Err(e) = me.erase_rescuer_positions(id).await {
                            tracing::warn!(error = %e, rescuer = id, "erasing a deleted rescuer's positions");
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        if let Err(e) = me.state.store.erase_rescuer_positions(None).await {
                            tracing::warn!(error = %e, "erasing deleted rescuers' positions");
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }
}
