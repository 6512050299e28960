//! The timers: the offline watchdog (one lazily re-armed deadline per device), override
//! expiry, and the flusher that writes coalesced last-seen state and reconciles the gauges.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_core::aed::{Readiness, ReadinessStatus};
use aednet_store::DeviceState;
use chrono::Utc;

use super::Gateway;

impl Gateway {
    /// Puts a device's deadline in the watchdog's set; wakes it for a new earliest deadline.
    pub(super) fn arm(&self, aed_id: i64, at_ms: i64) {
        let earliest = {
            let mut d = self.deadlines.lock();
            let earliest = d.next().is_none_or(|n| at_ms < n);
            d.set(aed_id, at_ms);
            earliest
        };
        if earliest {
            self.wake.notify_one();
        }
    }

    /// The watchdog's work for one device whose deadline passed: offline if it has been silent
    /// for the whole deadline, else re-armed at its real one.
    pub(super) async fn mark_offline(&self, aed_id: i64) -> aednet_store::Result<()> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        if self.ensure_loaded(aed_id, &mut s).await.is_err() {
            return Ok(()); // deleted AED: nothing to mark
        }
        let now = self.state.clock.now();
        let due = s.last_seen_ms + self.after_ms();
        if s.last_seen_ms > 0 && due > now.timestamp_millis() {
            s.armed = true;
            self.arm(aed_id, due);
            return Ok(());
        }
        s.armed = false;
        s.health.silent = true;
        let (status, reason) = s.effective(&s.health, now);
        if status != s.status {
            let r = Readiness {
                status,
                reason: Some(reason.into_owned()),
                since: now,
            };
            self.state
                .store
                .set_aed_readiness(aed_id, &r, "watchdog")
                .await?;
            let from = std::mem::replace(&mut s.status, status);
            self.changed(aed_id, from, status);
        }
        Ok(())
    }

    /// An override's `until` passed: it ends, readiness returns to telemetry's.
    pub(super) async fn end_override(&self, aed_id: i64) -> aednet_store::Result<()> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        if self.ensure_loaded(aed_id, &mut s).await.is_err() {
            return Ok(());
        }
        let now = self.state.clock.now();
        match s.over.as_ref().and_then(|o| o.until) {
            Some(u) if u <= now => {}
            // Replaced or cleared meanwhile.
            _ => return Ok(()),
        }
        let readiness = self.without_override(&s, now, "override expired");
        self.apply_manual(aed_id, &mut s, None, readiness, "override_expired")
            .await
            .map(|_| ())
    }

    /// Marks devices silent past their deadline offline and ends expired overrides. Sleeps
    /// until the earliest deadline of either kind.
    pub(super) async fn watchdog(self: Arc<Self>) {
        loop {
            let next = [
                self.deadlines.lock().next(),
                self.override_ends.lock().next(),
            ]
            .into_iter()
            .flatten()
            .min();
            let now_ms = Utc::now().timestamp_millis();
            match next {
                Some(t) if t <= now_ms => {
                    let expired = self.deadlines.lock().pop_expired(now_ms);
                    for id in expired {
                        if let Err(e) = self.mark_offline(id).await {
                            tracing::error!(error = %e, aed_id = id, "marking a device offline");
                        }
                    }
                    let ended = self.override_ends.lock().pop_expired(now_ms);
                    for id in ended {
                        if let Err(e) = self.end_override(id).await {
                            tracing::error!(error = %e, aed_id = id, "ending an override");
                        }
                    }
                }
                Some(t) => {
                    let wait = Duration::from_millis(u64::try_from(t - now_ms).unwrap_or(0));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// Sets the status gauges from the index (start-up, and a reconciliation for changes made
    /// outside the gateway: the registry API, imports).
    pub(super) fn recount(&self) {
        let mut counts = [0i64; ReadinessStatus::ALL.len()];
        for e in self.state.geo.aeds().iter() {
            if let Some(i) = ReadinessStatus::ALL.iter().position(|s| *s == e.status) {
                counts[i] += 1;
            }
        }
        for (g, n) in self.metrics.by_status.iter().zip(counts) {
            g.set(n);
        }
    }

    /// Writes coalesced heartbeat state in batches, and reconciles the status gauges.
    pub(super) async fn flusher(self: Arc<Self>) {
        let mut tick =
            tokio::time::interval(Duration::from_millis(self.cfg.flush_interval_ms.max(10)));
        let mut last_gauges = Instant::now();
        loop {
            tick.tick().await;
            let batch: Vec<DeviceState> = std::mem::take(&mut *self.pending.lock())
                .into_values()
                .collect();
            if let Err(e) = self.state.store.save_device_states(&batch).await {
                tracing::warn!(error = %e, n = batch.len(), "writing device state; will retry");
                let mut pending = self.pending.lock();
                for d in batch {
                    pending.entry(d.aed_id).or_insert(d);
                }
            }
            if self.recount_due.swap(false, Ordering::Relaxed)
                || last_gauges.elapsed() >= Duration::from_secs(10)
            {
                last_gauges = Instant::now();
                self.recount();
            }
        }
    }

    /// Writes what is pending now (shutdown, tests).
    pub async fn flush(&self) -> aednet_store::Result<()> {
        let batch: Vec<DeviceState> = std::mem::take(&mut *self.pending.lock())
            .into_values()
            .collect();
        self.state.store.save_device_states(&batch).await
    }
}
