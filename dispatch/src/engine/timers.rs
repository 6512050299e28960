//! Offer deadlines on the engine's clock: the earliest pending time-out of each incident, fired
//! by [`Engine::fire_due`] (the live timer task or the simulator).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};

use super::Engine;
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
    pub async fn fire_due(&self, now: DateTime<Utc>) -> usize {
        let now_ms = now.timestamp_millis();
        let mut handled = 0;
        loop {
            let due = {
                let mut d = self.deadlines.lock();
                match d.first().copied() {
                    Some((t, id)) if t <= now_ms => {
                        d.remove(&(t, id));
                        Some(id)
                    }
                    _ => None,
                }
            };
            let Some(id) = due else { break };
            if let Some(s) = self.slot(id) {
                let mut slot = s.lock().await;
                let fx = slot.incident.expire(now);
                if let Err(e) = self.apply_effects(&mut slot, &fx, "", now).await {
                    tracing::error!(error = %e, incident = id, "handling offer time-outs");
                }
                handled += 1;
            }
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
