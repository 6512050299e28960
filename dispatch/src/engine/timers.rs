//! Offer deadlines on the engine's clock: the earliest pending time-out of each incident, fired
//! by [`Engine::fire_due`] (the live timer task or the simulator).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};

use super::Engine;

/// First wait before a failed time-out is tried again; doubled each time up to [`RETRY_MAX`].
pub const RETRY_FIRST: StdDuration = StdDuration::from_millis(250);
/// Longest wait between two tries of a failed time-out.
pub const RETRY_MAX: StdDuration = StdDuration::from_secs(10);
use crate::incident::Incident;

impl Engine {
    pub(super) fn schedule(&self, inc: &Incident) {
        let mut d = self.deadlines.lock();
        d.retain(|(_, id)| *id != inc.id);
        if let Some(t) = inc.next_deadline() {
            // Rounded up to the millisecond: rounded down, a timer firing in the same
            // millisecond but before the offer's exact expiry would find nothing expired and
            // reschedule the same deadline forever.
            let ms = t.timestamp_millis() + i64::from(t.timestamp_subsec_nanos() % 1_000_000 != 0);
            d.insert((ms, inc.id));
        }
        drop(d);
        self.wake.notify_one();
    }

    /// The earliest offer time-out among open incidents, on the engine's clock.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.deadlines
            .lock()
            .first()
            .and_then(|(t, _)| DateTime::from_timestamp_millis(*t))
    }

    /// Times out every offer due by `now` and sends the next waves; returns how many incidents
    /// were handled. The live timer task and the simulator both call this.
    ///
    /// An incident's deadline leaves the timer only once its change is stored: if the write
    /// fails (database busy, full or restarting) the incident is left as it was and tried again
    /// after a back-off ([`RETRY_FIRST`] doubling up to [`RETRY_MAX`]), counted in
    /// `aednet_dispatch_persist_retries_total`.
    pub async fn fire_due(&self, now: DateTime<Utc>) -> usize {
        let now_ms = now.timestamp_millis();
        let mut handled = 0;
        loop {
            let due = {
                let d = self.deadlines.lock();
                match d.first().copied() {
                    Some((t, id)) if t <= now_ms => Some((t, id)),
                    _ => None,
                }
            };
            let Some((t, id)) = due else { break };
            let Some(s) = self.slot(id) else {
                self.deadlines.lock().remove(&(t, id));
                continue;
            };
            let mut slot = s.lock().await;
            let mut next = slot.incident.clone();
            let fx = next.expire(now);
            match self.apply_effects(&mut slot, next, &fx, "", now).await {
                Ok(()) => {
                    self.retries.lock().remove(&id);
                }
                Err(e) => {
                    let attempt = {
                        let mut r = self.retries.lock();
                        let n = r.entry(id).or_insert(0);
                        *n = n.saturating_add(1);
                        *n
                    };
                    let wait = RETRY_FIRST
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(RETRY_MAX);
                    tracing::warn!(error = %e, incident = id, attempt, retry_in_ms = wait.as_millis() as u64,
                        "handling offer time-outs failed; the incident is unchanged and tried again");
                    self.persist_retries.inc();
                    // Still ours (a node of a cluster forgets an incident only when another
                    // node proves to own it): keep its timer, later.
                    let ours = self.open.lock().contains_key(&id);
                    let mut d = self.deadlines.lock();
                    d.remove(&(t, id));
                    if ours {
                        let retry_ms = now_ms + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                        d.retain(|(_, i)| *i != id);
                        d.insert((retry_ms, id));
                    }
                }
            }
            handled += 1;
        }
        handled
    }

    pub(super) async fn timers(self: Arc<Self>) {
        loop {
            self.fire_due(self.state.clock.now()).await;
            match self.next_deadline() {
                Some(t) => {
                    let wait = (t - self.state.clock.now())
                        .to_std()
                        .unwrap_or(StdDuration::ZERO);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}
