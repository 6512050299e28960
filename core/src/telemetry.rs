//! The device telemetry protocol (version 1) and readiness derivation.
//!
//! Devices send JSON text frames, each `{"v": 1, "seq": n, "ts": RFC 3339, "type": …, …}`;
//! `docs/device-protocol.md` documents the schema, acks and close codes. [`Health`] folds a
//! device's messages into the facts that decide readiness; [`Health::derive`] turns them into a
//! status with a human-readable reason, most severe first.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::aed::{Readiness, ReadinessStatus};

pub const PROTOCOL_VERSION: u8 = 1;

/// Unknown fields inside a message type are rejected (`Body` denies them); the envelope cannot
/// (serde does not combine `flatten` with `deny_unknown_fields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceMessage {
    pub v: u8,
    /// Per-device, increasing; the ack names it.
    pub seq: u64,
    /// Device clock time of the observation.
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadsState {
    Ok,
    Expiring,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageEvent {
    PoweredOn,
    ShockDelivered,
    PoweredOff,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    Heartbeat {
        #[serde(default)]
        battery_pct: Option<u8>,
        #[serde(default)]
        temperature_c: Option<f32>,
        #[serde(default)]
        signal_dbm: Option<i16>,
    },
    SelfTest {
        ok: bool,
        #[serde(default)]
        fault_codes: Vec<String>,
    },
    BatteryLow {
        #[serde(default)]
        battery_pct: Option<u8>,
    },
    Pads {
        state: PadsState,
        #[serde(default)]
        expiry: Option<NaiveDate>,
    },
    Door {
        open: bool,
    },
    /// The AED taken out of (`present: false`) or put back into (`true`) its cabinet.
    AedPresence {
        present: bool,
    },
    Usage {
        event: UsageEvent,
    },
    Position {
        lat: f64,
        lon: f64,
    },
    Firmware {
        version: String,
    },
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Heartbeat { .. } => "heartbeat",
            Body::SelfTest { .. } => "self_test",
            Body::BatteryLow { .. } => "battery_low",
            Body::Pads { .. } => "pads",
            Body::Door { .. } => "door",
            Body::AedPresence { .. } => "aed_presence",
            Body::Usage { .. } => "usage",
            Body::Position { .. } => "position",
            Body::Firmware { .. } => "firmware",
        }
    }

    /// Plain heartbeats change nothing that must survive a crash: they are coalesced, not
    /// logged. Everything else is stored before it is acked.
    pub fn is_durable(&self) -> bool {
        !matches!(self, Body::Heartbeat { .. })
    }
}

/// What the server knows about a device's health, from its messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub self_test_fault: Option<String>,
    pub battery_low: bool,
    pub pads: Option<PadsState>,
    pub door_open: bool,
    pub aed_removed: bool,
    /// Powered on or shock delivered since it was last put back.
    pub used: Option<UsageEvent>,
    /// No heartbeat within the deadline.
    pub silent: bool,
    /// At least one self-test result or heartbeat has been seen.
    pub heard: bool,
}

impl Health {
    /// Seeds health from a stored readiness, for a device reconnecting after a restart: the
    /// facts behind a bad state persist until a message clears them.
    pub fn from_readiness(r: &Readiness) -> Self {
        let reason = r.reason.clone().unwrap_or_default();
        let mut h = Health {
            heard: r.status != ReadinessStatus::Unknown,
            ..Health::default()
        };
        match r.status {
            ReadinessStatus::Fault => h.self_test_fault = Some(reason),
            ReadinessStatus::Degraded => h.battery_low = true,
            ReadinessStatus::InUse => h.aed_removed = true,
            ReadinessStatus::CabinetOpen => h.door_open = true,
            _ => {}
        }
        h
    }

    /// Applies one message.
    pub fn apply(&mut self, body: &Body) {
        self.silent = false;
        match body {
            Body::Heartbeat { battery_pct, .. } => {
                self.heard = true;
                if let Some(b) = battery_pct {
                    self.battery_low = *b < 20;
                }
            }
            Body::SelfTest { ok, fault_codes } => {
                self.heard = true;
                self.self_test_fault = (!ok).then(|| {
                    if fault_codes.is_empty() {
                        "self-test failed".to_string()
                    } else {
                        format!("self-test fault {}", fault_codes.join(", "))
                    }
                });
            }
            Body::BatteryLow { .. } => self.battery_low = true,
            Body::Pads { state, .. } => self.pads = Some(*state),
            Body::Door { open } => self.door_open = *open,
            Body::AedPresence { present } => {
                self.aed_removed = !present;
                if *present {
                    self.used = None;
                }
            }
            Body::Usage { event } => {
                if *event != UsageEvent::PoweredOff || self.used.is_none() {
                    self.used = Some(*event);
                }
            }
            Body::Position { .. } | Body::Firmware { .. } => {}
        }
    }

    /// Status and reason, most severe first.
    pub fn derive(&self) -> (ReadinessStatus, String) {
        use ReadinessStatus as S;
        if self.silent {
            return (S::Offline, "no heartbeat within the deadline".into());
        }
        if let Some(u) = self.used {
            let what = match u {
                UsageEvent::ShockDelivered => "shock delivered",
                UsageEvent::PoweredOn => "powered on",
                UsageEvent::PoweredOff => "used (powered off since)",
            };
            return (S::InUse, format!("may have been used: {what}"));
        }
        if self.aed_removed {
            return (
                S::InUse,
                "may have been used: AED removed from cabinet".into(),
            );
        }
        if self.door_open {
            return (S::CabinetOpen, "cabinet door open".into());
        }
        if let Some(f) = &self.self_test_fault {
            return (S::Fault, f.clone());
        }
        if self.pads == Some(PadsState::Expired) {
            return (S::Fault, "pads expired".into());
        }
        if self.battery_low {
            return (S::Degraded, "battery low".into());
        }
        if self.pads == Some(PadsState::Expiring) {
            return (S::Degraded, "pads expiring".into());
        }
        if self.heard {
            (S::Ready, "device reports ready".into())
        } else {
            (S::Unknown, "no self-test or heartbeat yet".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReadinessStatus as S;

    fn msg(json: &str) -> DeviceMessage {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn parses_every_type_and_rejects_unknown_ones() {
        let m = msg(
            r#"{"v":1,"seq":5,"ts":"2026-11-24T08:00:00Z","type":"self_test","ok":false,"fault_codes":["E12"]}"#,
        );
        assert_eq!(m.seq, 5);
        assert_eq!(m.body.kind(), "self_test");
        assert!(m.body.is_durable());
        for j in [
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"heartbeat","battery_pct":80}"#,
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"pads","state":"expiring","expiry":"2027-01-01"}"#,
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"door","open":true}"#,
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"aed_presence","present":false}"#,
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"usage","event":"shock_delivered"}"#,
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"position","lat":28.9,"lon":118.8}"#,
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"firmware","version":"2.1"}"#,
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"battery_low"}"#,
        ] {
            serde_json::from_str::<DeviceMessage>(j).unwrap();
        }
        for bad in [
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"teleport"}"#,
            r#"{"v":1,"seq":-1,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#,
            r#"{"v":1,"seq":1,"type":"heartbeat"}"#,
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"door"}"#,
            r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"door","open":true,"colour":"red"}"#,
        ] {
            assert!(serde_json::from_str::<DeviceMessage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn derivation_follows_severity_and_recovery() {
        let mut h = Health::default();
        assert_eq!(h.derive().0, S::Unknown);
        h.apply(&Body::SelfTest {
            ok: true,
            fault_codes: vec![],
        });
        assert_eq!(h.derive().0, S::Ready);
        h.apply(&Body::Pads {
            state: PadsState::Expiring,
            expiry: None,
        });
        assert_eq!(h.derive(), (S::Degraded, "pads expiring".into()));
        h.apply(&Body::SelfTest {
            ok: false,
            fault_codes: vec!["E12".into()],
        });
        assert_eq!(h.derive(), (S::Fault, "self-test fault E12".into()));
        h.apply(&Body::Door { open: true });
        assert_eq!(h.derive().0, S::CabinetOpen);
        h.apply(&Body::AedPresence { present: false });
        assert_eq!(h.derive().0, S::InUse);
        h.apply(&Body::Usage {
            event: UsageEvent::ShockDelivered,
        });
        assert!(h.derive().1.contains("shock"));
        h.apply(&Body::AedPresence { present: true });
        h.apply(&Body::Door { open: false });
        assert_eq!(
            h.derive().0,
            S::Fault,
            "a fault stays until a passing self-test"
        );
        h.apply(&Body::SelfTest {
            ok: true,
            fault_codes: vec![],
        });
        h.apply(&Body::Pads {
            state: PadsState::Ok,
            expiry: None,
        });
        assert_eq!(h.derive().0, S::Ready);
        h.silent = true;
        assert_eq!(h.derive().0, S::Offline);
        h.apply(&Body::Heartbeat {
            battery_pct: Some(10),
            temperature_c: None,
            signal_dbm: None,
        });
        assert_eq!(h.derive(), (S::Degraded, "battery low".into()));
        let seeded = Health::from_readiness(&Readiness {
            status: S::Fault,
            reason: Some("self-test fault E3".into()),
            since: Utc::now(),
        });
        assert_eq!(seeded.derive(), (S::Fault, "self-test fault E3".into()));
    }
}
