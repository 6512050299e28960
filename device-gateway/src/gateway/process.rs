//! Message processing: the per-device state ([`Slot`]), loaded from the store on first use,
//! and [`Gateway::process`], which stores what must survive before a message is acked.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use aednet_core::aed::{Readiness, ReadinessStatus};
use aednet_core::telemetry::{Body, DeviceMessage, Health};
use aednet_store::{ConsumableDates, DeviceEventRecord, DeviceState, ReadinessOverride, Recorded};
use chrono::{DateTime, Utc};
use tokio::sync::Mutex as AsyncMutex;

use super::{Gateway, Rejected};

/// Severity for combining a manual override with what telemetry says (docs/device-protocol.md):
/// an override holds readiness at least this bad; telemetry may make it worse, never better.
fn severity(s: ReadinessStatus) -> u8 {
    use ReadinessStatus as S;
    match s {
        S::Retired => 7,
        S::Offline => 6,
        S::InUse => 5,
        S::CabinetOpen => 4,
        S::Fault => 3,
        S::Degraded => 2,
        S::Ready => 1,
        S::Unknown => 0,
    }
}

#[derive(Debug, Default)]
pub(super) struct Slot {
    pub(super) loaded: bool,
    pub(super) health: Health,
    pub(super) status: ReadinessStatus,
    /// Highest sequence number of an applied durable message (heartbeats do not advance it, so
    /// a durable message resent after newer heartbeats still applies).
    pub(super) last_durable_seq: Option<u64>,
    /// Time of the last message (ms since the epoch). The watchdog's deadline is not moved per
    /// message: when it fires, it compares against this and re-arms (lazy deadlines).
    pub(super) last_seen_ms: i64,
    /// A deadline for this device is in the watchdog's set.
    pub(super) armed: bool,
    pub(super) over: Option<ReadinessOverride>,
    /// The AED's readiness revision this slot was loaded at or last wrote: writes are
    /// conditional on it (one writer of readiness: the store decides).
    pub(super) rev: i64,
    /// The device's current boot (protocol version 2; empty for version 1).
    pub(super) boot: String,
    /// [`Gateway::generation`] when loaded: a bulk change invalidates every slot at once.
    pub(super) generation: u64,
    /// A readiness event disagreed with this slot: before its next message, compare the
    /// store's revision with `rev` and reload only if someone else wrote. The event may be
    /// this gateway's own, already overtaken by its next write (a door flapping), and
    /// reloading facts from a stored status loses what was never reported (`heard`).
    pub(super) recheck: bool,
}

impl Slot {
    /// The readiness to show: telemetry's, unless an active override is more severe.
    pub(super) fn effective(
        &self,
        health: &Health,
        now: DateTime<Utc>,
    ) -> (ReadinessStatus, Cow<'static, str>) {
        let (status, reason) = health.derive();
        match &self.over {
            Some(o)
                if o.until.is_none_or(|u| u > now) && severity(o.status) >= severity(status) =>
            {
                (
                    o.status,
                    Cow::Owned(
                        o.reason
                            .clone()
                            .unwrap_or_else(|| "set by maintenance".into()),
                    ),
                )
            }
            _ => (status, reason),
        }
    }
}

impl Gateway {
    /// Loads the slot from the store unless it is current: loaded, and not invalidated since by
    /// a readiness change made elsewhere (the API, another node, the cluster's repair) or a
    /// bulk change. `Err(Internal)` for a store error or an AED that does not exist.
    pub(super) async fn ensure_loaded(&self, aed_id: i64, s: &mut Slot) -> Result<(), Rejected> {
        match self.load(aed_id, s).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Rejected::Internal),
            Err(e) => {
                tracing::error!(error = %e, aed_id, "loading device state");
                Err(Rejected::Internal)
            }
        }
    }

    /// [`Gateway::ensure_loaded`] telling a missing AED (`Ok(false)`) from a store error.
    pub(super) async fn load(&self, aed_id: i64, s: &mut Slot) -> aednet_store::Result<bool> {
        let generation = self.generation.load(Ordering::Acquire);
        if s.loaded && !s.recheck && s.generation == generation {
            return Ok(true);
        }
        let Some(snap) = self.state.store.device_snapshot(aed_id).await? else {
            return Ok(false);
        };
        if s.loaded && snap.rev == s.rev {
            // Nobody else wrote readiness since this slot did: its facts are current.
            s.recheck = false;
            s.generation = generation;
            return Ok(true);
        }
        // Facts from the stored readiness, but not what an override put there: whoever wrote
        // it last (a device, the watchdog, a maintainer's PUT) decides what the device's next
        // message is compared with.
        s.health = if snap.over.is_some() {
            Health::default()
        } else {
            Health::from_readiness(&snap.aed.data.readiness)
        };
        s.over = snap.over;
        s.status = snap.aed.data.readiness.status;
        s.rev = snap.rev;
        s.boot = snap.boot;
        s.last_durable_seq = snap.last_seq.and_then(|q| u64::try_from(q).ok());
        s.armed = self.deadlines.lock().next_for(aed_id).is_some();
        s.loaded = true;
        s.recheck = false;
        s.generation = generation;
        Ok(true)
    }

    /// Processes one message; `Ok` means it may be acked: whatever must survive is stored.
    pub async fn process(&self, aed_id: i64, msg: &DeviceMessage) -> Result<(), Rejected> {
        let slot = self.slot(aed_id);
        self.process_in(&slot, aed_id, msg).await
    }

    pub(super) async fn process_in(
        &self,
        slot: &AsyncMutex<Slot>,
        aed_id: i64,
        msg: &DeviceMessage,
    ) -> Result<(), Rejected> {
        let seq = i64::try_from(msg.seq)
            .map_err(|_| Rejected::Malformed("seq is out of range".into()))?;
        let mut s = slot.lock().await;
        self.ensure_loaded(aed_id, &mut s).await?;
        let now = self.state.clock.now();
        let now_ms = now.timestamp_millis();
        s.last_seen_ms = now_ms;
        if !s.armed {
            s.armed = true;
            self.arm(aed_id, now_ms + self.after_ms());
        }
        let internal = |e: aednet_store::StoreError| {
            tracing::error!(error = %e, aed_id, seq, "storing a device message");
            Rejected::Internal
        };
        let durable = msg.body.is_durable();
        let boot = msg.boot_id();
        // The store's revision guards the write: if someone else changed readiness since the
        // slot was loaded, the write is refused, the slot reloaded and the message applied to
        // what the store says now.
        let mut attempts = 0;
        loop {
            attempts += 1;
            // A new boot (protocol version 2) starts a new sequence window; a boot seen before
            // that is not the current one is an older boot resending: stored, not applied.
            let mut old_boot = false;
            if boot != s.boot {
                if self
                    .state
                    .store
                    .device_boot_seen(aed_id, boot)
                    .await
                    .map_err(internal)?
                {
                    old_boot = true;
                } else {
                    s.boot = boot.to_string();
                    s.last_durable_seq = None;
                }
            }
            let in_order =
                !old_boot && (!durable || s.last_durable_seq.is_none_or(|l| msg.seq > l));
            let mut next = s.health.clone();
            if in_order {
                next.apply(&msg.body);
            }
            let (status, reason) = s.effective(&next, now);
            let change = (in_order && status != s.status).then(|| Readiness {
                status,
                reason: Some(reason.into_owned()),
                since: now,
            });
            if durable || change.is_some() {
                let dates = match &msg.body {
                    Body::Pads { expiry, .. } => ConsumableDates {
                        pads_expiry: *expiry,
                        battery_expiry: None,
                    },
                    Body::Battery { expiry, .. } => ConsumableDates {
                        pads_expiry: None,
                        battery_expiry: *expiry,
                    },
                    _ => ConsumableDates::default(),
                };
                let rec = DeviceEventRecord {
                    aed_id,
                    boot: boot.to_string(),
                    seq,
                    kind: msg.body.kind().to_string(),
                    body: serde_json::to_string(msg).unwrap_or_default(),
                    device_ts: msg.ts,
                    received_at: now,
                };
                match self
                    .state
                    .store
                    .record_device_event(&rec, change.as_ref(), &dates, Some(s.rev))
                    .await
                    .map_err(internal)?
                {
                    Recorded::New { rev } => s.rev = rev,
                    // Stored before (an acked resend): nothing to apply again.
                    Recorded::Duplicate => return Ok(()),
                    Recorded::Stale if attempts < 4 => {
                        s.loaded = false;
                        self.ensure_loaded(aed_id, &mut s).await?;
                        continue;
                    }
                    Recorded::Stale => {
                        tracing::warn!(
                            aed_id,
                            seq,
                            "readiness kept changing under a device message; not acked"
                        );
                        return Err(Rejected::Internal);
                    }
                }
            }
            if in_order {
                s.health = next;
                if durable {
                    s.last_durable_seq = Some(msg.seq);
                }
            }
            if let Some(r) = change {
                let from = std::mem::replace(&mut s.status, r.status);
                self.changed(aed_id, from, r.status);
            }
            break;
        }
        drop(s);
        let mut pending = self.pending.lock();
        let e = pending.entry(aed_id).or_insert_with(|| DeviceState {
            aed_id,
            last_seen_at: now,
            last_seq: seq,
            battery_pct: None,
            temperature_c: None,
            signal_dbm: None,
            firmware: None,
        });
        e.last_seen_at = now;
        e.last_seq = e.last_seq.max(seq);
        match &msg.body {
            Body::Heartbeat {
                battery_pct,
                temperature_c,
                signal_dbm,
            } => {
                e.battery_pct = battery_pct.map(i32::from).or(e.battery_pct);
                e.temperature_c = temperature_c.map(f64::from).or(e.temperature_c);
                e.signal_dbm = signal_dbm.map(i32::from).or(e.signal_dbm);
            }
            Body::Battery {
                battery_pct: Some(b),
                ..
            } => e.battery_pct = Some(i32::from(*b)),
            Body::Firmware { version } => e.firmware = Some(version.clone()),
            _ => {}
        }
        Ok(())
    }
}
