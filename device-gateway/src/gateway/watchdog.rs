//! The timers: the offline watchdog (one lazily re-armed deadline per device), override
//! expiry, and the flusher that writes coalesced last-seen state and reconciles the gauges.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_core::aed::{Readiness, ReadinessStatus};
use aednet_store::{DeviceState, OverrideChange, Written};
use chrono::Utc;

use super::manual::Applied;
use super::{Gateway, Timer};

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
    /// for the whole deadline, else re-armed at its real one. An error leaves the device armed:
    /// the watchdog schedules it again ([`Gateway::retry_timer`]).
    pub(super) async fn mark_offline(&self, aed_id: i64) -> aednet_store::Result<()> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        if !self.load(aed_id, &mut s).await? {
            return Ok(()); // deleted AED: nothing to mark
        }
        // Its deadline was taken from the set: it is in the watchdog's hands until marked.
        s.armed = true;
        let now = self.state.clock.now();
        let due = s.last_seen_ms + self.after_ms();
        if s.last_seen_ms > 0 && due > now.timestamp_millis() {
            self.arm(aed_id, due);
            return Ok(());
        }
        for _ in 0..4 {
            let mut silent = s.health.clone();
            silent.silent = true;
            let (status, reason) = s.effective(&silent, now);
            if status == s.status {
                s.health = silent;
                s.armed = false;
                return Ok(());
            }
            let r = Readiness {
                status,
                reason: Some(reason.into_owned()),
                since: now,
            };
            match self
                .state
                .store
                .write_readiness(aed_id, &r, OverrideChange::Keep, "watchdog", Some(s.rev))
                .await?
            {
                Written::Done { rev, .. } => {
                    s.rev = rev;
                    s.health = silent;
                    s.armed = false;
                    let from = std::mem::replace(&mut s.status, status);
                    self.changed(aed_id, from, status);
                    return Ok(());
                }
                // Someone else wrote readiness meanwhile: decide again on what the store says.
                Written::Stale => {
                    s.loaded = false;
                    if !self.load(aed_id, &mut s).await? {
                        s.armed = false;
                        return Ok(());
                    }
                }
                Written::Missing => {
                    s.armed = false;
                    return Ok(());
                }
            }
        }
        Err(aednet_store::StoreError::Conflict {
            field: None,
            message: "readiness kept changing while marking a device offline".into(),
        })
    }

    /// An override's `until` passed: it ends, readiness returns to telemetry's.
    pub(super) async fn end_override(&self, aed_id: i64) -> aednet_store::Result<()> {
        let slot = self.slot(aed_id);
        let mut s = slot.lock().await;
        for _ in 0..4 {
            if !self.load(aed_id, &mut s).await? {
                return Ok(());
            }
            let now = self.state.clock.now();
            match s.over.as_ref().and_then(|o| o.until) {
                Some(u) if u <= now => {}
                Some(u) => {
                    // Replaced by a later one: its own timer.
                    self.override_ends.lock().set(aed_id, u.timestamp_millis());
                    self.wake.notify_one();
                    return Ok(());
                }
                None => return Ok(()),
            }
            let readiness = self.without_override(&s, now, "override expired");
            match self
                .apply_manual(aed_id, &mut s, None, readiness, "override_expired")
                .await?
            {
                Applied::Stale => continue,
                Applied::Done(_) | Applied::Missing => return Ok(()),
            }
        }
        Err(aednet_store::StoreError::Conflict {
            field: None,
            message: "readiness kept changing while ending an override".into(),
        })
    }

    /// A timer's write failed (the store is down, busy, full): schedule it again with
    /// exponential back-off (250 ms doubling to 30 s) — never forget it.
    fn retry_timer(&self, timer: Timer, aed_id: i64, now_ms: i64) {
        let n = {
            let mut r = self.retries.lock();
            let n = r.entry((timer, aed_id)).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = (250i64 << n.min(8).saturating_sub(1)).min(30_000);
        self.metrics.timer_retries.inc();
        match timer {
            Timer::Offline => self.arm(aed_id, now_ms + delay),
            Timer::OverrideEnd => {
                self.override_ends.lock().set(aed_id, now_ms + delay);
                self.wake.notify_one();
            }
        }
    }

    fn timer_done(&self, timer: Timer, aed_id: i64) {
        let mut r = self.retries.lock();
        if !r.is_empty() {
            r.remove(&(timer, aed_id));
        }
    }

    /// Marks devices silent past their deadline offline and ends expired overrides. Sleeps
    /// until the earliest deadline of either kind. A failed write is retried with back-off.
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
                        match self.mark_offline(id).await {
                            Ok(()) => self.timer_done(Timer::Offline, id),
                            Err(e) => {
                                tracing::error!(error = %e, aed_id = id, "marking a device offline; will retry");
                                self.retry_timer(Timer::Offline, id, now_ms);
                            }
                        }
                    }
                    let ended = self.override_ends.lock().pop_expired(now_ms);
                    for id in ended {
                        match self.end_override(id).await {
                            Ok(()) => self.timer_done(Timer::OverrideEnd, id),
                            Err(e) => {
                                tracing::error!(error = %e, aed_id = id, "ending an override; will retry");
                                self.retry_timer(Timer::OverrideEnd, id, now_ms);
                            }
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

    /// Writes what is pending now (shutdown, tests); on an error it stays pending.
    pub async fn flush(&self) -> aednet_store::Result<()> {
        let batch: Vec<DeviceState> = std::mem::take(&mut *self.pending.lock())
            .into_values()
            .collect();
        let result = self.state.store.save_device_states(&batch).await;
        if result.is_err() {
            let mut pending = self.pending.lock();
            for d in batch {
                pending.entry(d.aed_id).or_insert(d);
            }
        }
        result
    }
}
