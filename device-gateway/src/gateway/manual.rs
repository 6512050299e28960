//! Manual readiness: a guardian's check, and overrides held against telemetry until cleared or
//! their `until`.

use aednet_core::aed::{Readiness, ReadinessStatus};
use aednet_store::{OverrideChange, ReadinessOverride, Written};
use chrono::{DateTime, Utc};

use super::{Gateway, ManualOutcome, Slot};

/// The outcome of a conditional manual write.
pub(super) enum Applied {
    Done(ManualOutcome),
    Missing,
    /// Someone else wrote readiness since the slot was loaded: reload and decide again.
    Stale,
}

/// Attempts at a manual change before giving up on a readiness that keeps changing.
const ATTEMPTS: usize = 4;

fn kept_changing() -> aednet_store::StoreError {
    aednet_store::StoreError::Conflict {
        field: None,
        message: "readiness kept changing; try again".into(),
    }
}

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
        for _ in 0..ATTEMPTS {
            if !self.load(aed_id, &mut s).await? {
                // No such AED: do not keep a slot for every id someone asked about.
                drop(s);
                self.slots.lock().remove(&aed_id);
                return Ok(None);
            }
            let now = self.state.clock.now();
            let (over, readiness) = if ok {
                let r = Readiness {
                    status: ReadinessStatus::Ready,
                    reason: Some(reason.clone()),
                    since: now,
                };
                (None, r)
            } else {
                let o = ReadinessOverride {
                    aed_id,
                    status: ReadinessStatus::Fault,
                    reason: Some(reason.clone()),
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
            match self
                .apply_manual(aed_id, &mut s, over, readiness, "guardian")
                .await?
            {
                Applied::Done(o) => return Ok(Some(o)),
                Applied::Missing => return Ok(None),
                Applied::Stale => {}
            }
        }
        Err(kept_changing())
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
        for _ in 0..ATTEMPTS {
            if !self.load(aed_id, &mut s).await? || s.over.is_none() {
                return Ok(None);
            }
            let now = self.state.clock.now();
            let readiness = self.without_override(&s, now, &format!("override cleared by {by}"));
            match self
                .apply_manual(aed_id, &mut s, None, readiness, "maintenance")
                .await?
            {
                Applied::Done(o) => return Ok(Some(o)),
                Applied::Missing => return Ok(None),
                Applied::Stale => {}
            }
        }
        Err(kept_changing())
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

    /// Writes a manual change, conditional on the slot's revision; on success the slot, the
    /// override timer, the gauges and the event follow.
    pub(super) async fn apply_manual(
        &self,
        aed_id: i64,
        s: &mut Slot,
        over: Option<ReadinessOverride>,
        readiness: Readiness,
        source: &str,
    ) -> aednet_store::Result<Applied> {
        let change = match &over {
            Some(o) => OverrideChange::Set(o),
            None => OverrideChange::Clear,
        };
        let rev = match self
            .state
            .store
            .write_readiness(aed_id, &readiness, change, source, Some(s.rev))
            .await?
        {
            Written::Done { rev, .. } => rev,
            Written::Stale => {
                // Someone else wrote readiness: the caller reloads and decides again.
                s.loaded = false;
                return Ok(Applied::Stale);
            }
            Written::Missing => return Ok(Applied::Missing),
        };
        s.rev = rev;
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
        Ok(Applied::Done(ManualOutcome { readiness, over }))
    }
}
