//! Message processing: the per-device state ([`Slot`]), loaded from the store on first use,
//! and [`Gateway::process`], which stores what must survive before a message is acked.

use std::borrow::Cow;

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
    pub(super) async fn ensure_loaded(&self, aed_id: i64, s: &mut Slot) -> Result<(), Rejected> {
        if s.loaded {
            return Ok(());
        }
        let internal = |e: aednet_store::StoreError| {
            tracing::error!(error = %e, aed_id, "loading device state");
            Rejected::Internal
        };
        let Some(aed) = self.state.store.get_aed(aed_id).await.map_err(internal)? else {
            return Err(Rejected::Internal);
        };
        s.over = self
            .state
            .store
            .get_readiness_override(aed_id)
            .await
            .map_err(internal)?;
        // Facts from the stored readiness, but not what an override put there.
        s.health = if s.over.is_some() {
            Health::default()
        } else {
            Health::from_readiness(&aed.data.readiness)
        };
        s.status = aed.data.readiness.status;
        s.last_durable_seq = self
            .state
            .store
            .device_event_seqs(aed_id)
            .await
            .map_err(internal)?
            .last()
            .and_then(|s| u64::try_from(*s).ok());
        s.armed = self.deadlines.lock().next_for(aed_id).is_some();
        s.loaded = true;
        Ok(())
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

        let durable = msg.body.is_durable();
        let in_order = !durable || s.last_durable_seq.is_none_or(|l| msg.seq > l);
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
                seq,
                kind: msg.body.kind().to_string(),
                body: serde_json::to_string(msg).unwrap_or_default(),
                device_ts: msg.ts,
                received_at: now,
            };
            match self
                .state
                .store
                .record_device_event(&rec, change.as_ref(), &dates)
                .await
            {
                Ok(Recorded::New) => {}
                // Stored before (an acked resend): nothing to apply again.
                Ok(Recorded::Duplicate) => return Ok(()),
                Err(e) => {
                    tracing::error!(error = %e, aed_id, seq, "storing a device message");
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
