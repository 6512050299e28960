//! Manual readiness: a guardian's check, and overrides held against telemetry until cleared or
//! their `until`.

use aednet_core::aed::{Readiness, ReadinessStatus};
use aednet_store::ReadinessOverride;
use chrono::{DateTime, Utc};

use super::{Gateway, ManualOutcome, Slot};

impl Gateway {
    /// A guardian's check: OK clears any override and sets ready; not OK holds the AED at
    /// `fault` with the note against telemetry, until cleared or until `until`.
    /// `Ok(None)`: no such AED.
    pub async fn guardian_check(
        &self,
        aed_id: i64,
        ok: bool,
        reason: String,
        until: Option<DateTime<Utc>>,
        by: &str,
    ) -> aednet_store::Result<Option<ManualOutcome>> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        if self.ensure_loaded(aed_id, &mut s).await.is_err() {
            // No such AED: do not keep a slot for every id someone asked about.
            self.slots.lock().remove(&aed_id);
            return Ok(None);
        }
        let now = self.state.clock.now();
        let (over, readiness) = if ok {
            let r = Readiness {
                status: ReadinessStatus::Ready,
                reason: Some(reason),
                since: now,
            };
            (None, r)
        } else {
            let o = ReadinessOverride {
                aed_id,
                status: ReadinessStatus::Fault,
                reason: Some(reason),
                since: now,
                until,
                set_by: by.to_string(),
            };
            let prev = s.over.replace(o.clone());
            let (status, why) = s.effective(&s.health, now);
            s.over = prev;
            let r = Readiness {
                status,
                reason: Some(why.into_owned()),
                since: now,
            };
            (Some(o), r)
        };
        self.apply_manual(aed_id, &mut s, over, readiness, "guardian")
            .await
    }

    /// Clears an AED's override: readiness goes back to what telemetry says (`unknown` for a
    /// cabinet without telemetry). `Ok(None)`: no such AED or no override.
    pub async fn clear_override(
        &self,
        aed_id: i64,
        by: &str,
    ) -> aednet_store::Result<Option<ManualOutcome>> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        if self.ensure_loaded(aed_id, &mut s).await.is_err() || s.over.is_none() {
            return Ok(None);
        }
        let now = self.state.clock.now();
        let readiness = self.without_override(&s, now, &format!("override cleared by {by}"));
        self.apply_manual(aed_id, &mut s, None, readiness, "maintenance")
            .await
    }

    /// What telemetry alone says, for a device whose override ends.
    pub(super) fn without_override(&self, s: &Slot, now: DateTime<Utc>, note: &str) -> Readiness {
        let (status, why) = s.health.derive();
        Readiness {
            status,
            reason: Some(if s.health.heard {
                format!("{why} ({note})")
            } else {
                note.to_string()
            }),
            since: now,
        }
    }

    pub(super) async fn apply_manual(
        &self,
        aed_id: i64,
        s: &mut Slot,
        over: Option<ReadinessOverride>,
        readiness: Readiness,
        source: &str,
    ) -> aednet_store::Result<Option<ManualOutcome>> {
        if self
            .state
            .store
            .set_readiness_override(aed_id, over.as_ref(), &readiness, source)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        match over.as_ref().and_then(|o| o.until) {
            Some(u) => {
                self.override_ends.lock().set(aed_id, u.timestamp_millis());
                self.wake.notify_one();
            }
            None => self.override_ends.lock().remove(aed_id),
        }
        s.over.clone_from(&over);
        let from = std::mem::replace(&mut s.status, readiness.status);
        self.changed(aed_id, from, readiness.status);
        Ok(Some(ManualOutcome { readiness, over }))
    }
}
