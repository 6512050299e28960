//! The device telemetry protocol (versions 1 and 2) and readiness derivation.
//!
//! Devices send JSON text frames, each `{"v": 2, "boot": id, "seq": n, "ts": RFC 3339, "type":
//! …, …}` (version 1: no `boot`);
//! `docs/device-protocol.md` documents the schema, acks and close codes. [`Health`] folds a
//! device's messages into the facts that decide readiness; [`Health::derive`] turns them into a
//! status with a human-readable reason, most severe first.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::aed::{Readiness, ReadinessStatus};

/// The newest protocol version.
pub const PROTOCOL_VERSION: u8 = 2;
/// Every version the server accepts.
pub const PROTOCOL_VERSIONS: [u8; 2] = [1, 2];
/// Longest accepted `boot` id, in bytes.
pub const MAX_BOOT_LEN: usize = 64;

/// One device message. Parsed in one pass without an intermediate JSON tree ([`parse`]): the
/// envelope and the fields of its type; a field that does not belong to the type is rejected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceMessage {
    pub v: u8,
    /// Version 2: the device's boot (session) id, new at every start of its controller; the
    /// sequence numbers of a boot are a window of their own. Version 1 has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// Per-device (per boot), increasing; the ack names it.
    pub seq: u64,
    /// Device clock time of the observation.
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub body: Body,
}

/// Why a frame could not be parsed; `seq` when the frame had a readable one, for the error frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    Malformed { seq: Option<u64>, message: String },
    UnknownType { seq: Option<u64>, kind: String },
}

impl ParseError {
    pub fn seq(&self) -> Option<u64> {
        match self {
            ParseError::Malformed { seq, .. } | ParseError::UnknownType { seq, .. } => *seq,
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Malformed { message, .. } => f.write_str(message),
            ParseError::UnknownType { kind, .. } => write!(
                f,
                "unknown message type `{kind}`, expected one of {}",
                Body::KINDS.join(", ")
            ),
        }
    }
}

impl std::error::Error for ParseError {}

/// Every field any type may carry, flat: serde reads straight into it (strings borrowed from the
/// frame unless escaped), then [`Raw::into_message`] checks that each present field belongs to
/// the type. `#[serde(flatten)]` over a tagged enum would buffer the whole frame first.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw<'a> {
    v: u8,
    #[serde(borrow)]
    boot: Option<Cow<'a, str>>,
    seq: u64,
    #[serde(borrow)]
    ts: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    battery_pct: Option<u8>,
    temperature_c: Option<f32>,
    signal_dbm: Option<i16>,
    ok: Option<bool>,
    fault_codes: Option<Vec<String>>,
    state: Option<PadsState>,
    expiry: Option<NaiveDate>,
    open: Option<bool>,
    present: Option<bool>,
    event: Option<UsageEvent>,
    lat: Option<f64>,
    lon: Option<f64>,
    version: Option<String>,
}

impl Raw<'_> {
    /// Names of the present fields, in declaration order (for "does not belong" checks).
    fn present(&self) -> [(&'static str, bool); 13] {
        [
            ("battery_pct", self.battery_pct.is_some()),
            ("temperature_c", self.temperature_c.is_some()),
            ("signal_dbm", self.signal_dbm.is_some()),
            ("ok", self.ok.is_some()),
            ("fault_codes", self.fault_codes.is_some()),
            ("state", self.state.is_some()),
            ("expiry", self.expiry.is_some()),
            ("open", self.open.is_some()),
            ("present", self.present.is_some()),
            ("event", self.event.is_some()),
            ("lat", self.lat.is_some()),
            ("lon", self.lon.is_some()),
            ("version", self.version.is_some()),
        ]
    }

    fn into_message(self) -> Result<DeviceMessage, ParseError> {
        let seq = Some(self.seq);
        let bad = |message: String| ParseError::Malformed { seq, message };
        let ts = self
            .ts
            .parse::<DateTime<Utc>>()
            .map_err(|e| bad(format!("ts: {e} (RFC 3339 expected)")))?;
        let boot = match (self.v, self.boot.as_deref()) {
            (1, Some(_)) => {
                return Err(bad(
                    "unknown field `boot` for protocol version 1 (use v 2)".into()
                ))
            }
            (2, None) => return Err(bad("missing field `boot` (protocol version 2)".into())),
            (_, Some(b)) => {
                if b.is_empty() || b.len() > MAX_BOOT_LEN || b.chars().any(char::is_control) {
                    return Err(bad(format!(
                        "boot: 1 to {MAX_BOOT_LEN} bytes of printable text expected"
                    )));
                }
                Some(b.to_string())
            }
            (_, None) => None,
        };
        let allowed: &[&str] = match self.kind.as_ref() {
            "heartbeat" => &["battery_pct", "temperature_c", "signal_dbm"],
            "self_test" => &["ok", "fault_codes"],
            "battery_low" => &["battery_pct"],
            "battery" => &["battery_pct", "expiry"],
            "pads" => &["state", "expiry"],
            "door" => &["open"],
            "aed_presence" => &["present"],
            "usage" => &["event"],
            "position" => &["lat", "lon"],
            "firmware" => &["version"],
            other => {
                return Err(ParseError::UnknownType {
                    seq,
                    kind: other.to_string(),
                })
            }
        };
        if let Some((f, _)) = self
            .present()
            .into_iter()
            .find(|(f, on)| *on && !allowed.contains(f))
        {
            return Err(bad(format!("unknown field `{f}` for type `{}`", self.kind)));
        }
        let missing = |f: &str| bad(format!("missing field `{f}` for type `{}`", self.kind));
        let body = match self.kind.as_ref() {
            "heartbeat" => Body::Heartbeat {
                battery_pct: self.battery_pct,
                temperature_c: self.temperature_c,
                signal_dbm: self.signal_dbm,
            },
            "self_test" => Body::SelfTest {
                ok: self.ok.ok_or_else(|| missing("ok"))?,
                fault_codes: self.fault_codes.unwrap_or_default(),
            },
            "battery_low" => Body::BatteryLow {
                battery_pct: self.battery_pct,
            },
            "battery" => Body::Battery {
                battery_pct: self.battery_pct,
                expiry: self.expiry,
            },
            "pads" => Body::Pads {
                state: self.state.ok_or_else(|| missing("state"))?,
                expiry: self.expiry,
            },
            "door" => Body::Door {
                open: self.open.ok_or_else(|| missing("open"))?,
            },
            "aed_presence" => Body::AedPresence {
                present: self.present.ok_or_else(|| missing("present"))?,
            },
            "usage" => Body::Usage {
                event: self.event.ok_or_else(|| missing("event"))?,
            },
            "position" => {
                let (lat, lon) = (
                    self.lat.ok_or_else(|| missing("lat"))?,
                    self.lon.ok_or_else(|| missing("lon"))?,
                );
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    return Err(bad("lat/lon out of range".into()));
                }
                Body::Position { lat, lon }
            }
            _ => Body::Firmware {
                version: self.version.ok_or_else(|| missing("version"))?,
            },
        };
        Ok(DeviceMessage {
            v: self.v,
            boot,
            seq: self.seq,
            ts,
            body,
        })
    }
}

impl DeviceMessage {
    /// Whether the server speaks this message's protocol version.
    pub fn version_supported(&self) -> bool {
        PROTOCOL_VERSIONS.contains(&self.v)
    }

    /// The boot the sequence number belongs to: empty for version 1 (one endless boot).
    pub fn boot_id(&self) -> &str {
        self.boot.as_deref().unwrap_or("")
    }

    /// Parses one frame (JSON text as bytes).
    pub fn parse(frame: &[u8]) -> Result<DeviceMessage, ParseError> {
        match serde_json::from_slice::<Raw<'_>>(frame) {
            Ok(raw) => raw.into_message(),
            Err(e) => {
                // The rare bad frame: a second, lenient look for its seq (for the error frame).
                let seq = serde_json::from_slice::<serde_json::Value>(frame)
                    .ok()
                    .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64));
                Err(ParseError::Malformed {
                    seq,
                    message: e.to_string(),
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for DeviceMessage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Raw::deserialize(d)?
            .into_message()
            .map_err(serde::de::Error::custom)
    }
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

/// The typed part of a message; serialized with its `type` tag (the durable log keeps it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
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
    /// The battery pack's state: charge and/or its replacement date.
    Battery {
        #[serde(default)]
        battery_pct: Option<u8>,
        #[serde(default)]
        expiry: Option<NaiveDate>,
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
    pub const KINDS: [&'static str; 10] = [
        "heartbeat",
        "self_test",
        "battery_low",
        "battery",
        "pads",
        "door",
        "aed_presence",
        "usage",
        "position",
        "firmware",
    ];

    /// Index into [`Body::KINDS`] (per-type counters without a label lookup).
    pub fn kind_index(&self) -> usize {
        match self {
            Body::Heartbeat { .. } => 0,
            Body::SelfTest { .. } => 1,
            Body::BatteryLow { .. } => 2,
            Body::Battery { .. } => 3,
            Body::Pads { .. } => 4,
            Body::Door { .. } => 5,
            Body::AedPresence { .. } => 6,
            Body::Usage { .. } => 7,
            Body::Position { .. } => 8,
            Body::Firmware { .. } => 9,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Body::Heartbeat { .. } => "heartbeat",
            Body::SelfTest { .. } => "self_test",
            Body::BatteryLow { .. } => "battery_low",
            Body::Battery { .. } => "battery",
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
            Body::Battery { battery_pct, .. } => {
                if let Some(b) = battery_pct {
                    self.battery_low = *b < 20;
                }
            }
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

    /// Status and reason, most severe first. Allocates only for a self-test fault's reason: this
    /// runs for every message.
    pub fn derive(&self) -> (ReadinessStatus, Cow<'static, str>) {
        use ReadinessStatus as S;
        if self.silent {
            return (S::Offline, "no heartbeat within the deadline".into());
        }
        if let Some(u) = self.used {
            let why = match u {
                UsageEvent::ShockDelivered => "may have been used: shock delivered",
                UsageEvent::PoweredOn => "may have been used: powered on",
                UsageEvent::PoweredOff => "may have been used: used (powered off since)",
            };
            return (S::InUse, why.into());
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
            return (S::Fault, f.clone().into());
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
            assert!(DeviceMessage::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_one_pass_parser_names_what_is_wrong() {
        let p = |s: &str| DeviceMessage::parse(s.as_bytes());
        // Same result as through serde, escaped strings included.
        let j =
            r#"{"v":1,"seq":9,"ts":"2026-11-24T08:00:00Z","type":"firmware","version":"2.\u0031"}"#;
        assert_eq!(p(j).unwrap(), msg(j));
        assert_eq!(
            p(j).unwrap().body,
            Body::Firmware {
                version: "2.1".into()
            }
        );
        assert_eq!(
            p(r#"{"v":1,"seq":3,"ts":"2026-11-24T08:00:00Z","type":"teleport"}"#),
            Err(ParseError::UnknownType {
                seq: Some(3),
                kind: "teleport".into()
            })
        );
        let e = p(r#"{"v":1,"seq":4,"ts":"2026-11-24T08:00:00Z","type":"heartbeat","open":true}"#)
            .unwrap_err();
        assert_eq!(e.seq(), Some(4));
        assert!(e.to_string().contains("`open`"), "{e}");
        let e = p(r#"{"v":1,"seq":5,"ts":"2026-11-24T08:00:00Z","type":"pads"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `state`"), "{e}");
        let e = p(r#"{"v":1,"seq":6,"ts":"yesterday","type":"heartbeat"}"#).unwrap_err();
        assert!(e.to_string().starts_with("ts:"), "{e}");
        let e = p(r#"{"v":1,"seq":7,"ts":"2026-11-24T08:00:00Z","type":"heartbeat","mood":1}"#)
            .unwrap_err();
        assert_eq!(
            e.seq(),
            Some(7),
            "the seq of an unparseable frame is still named"
        );
        assert_eq!(p("[]").unwrap_err().seq(), None);
        let b = p(r#"{"v":1,"seq":8,"ts":"2026-11-24T08:00:00Z","type":"battery","battery_pct":55,"expiry":"2028-03-01"}"#)
            .unwrap();
        assert_eq!(
            b.body,
            Body::Battery {
                battery_pct: Some(55),
                expiry: NaiveDate::from_ymd_opt(2028, 3, 1)
            }
        );
        assert_eq!(Body::KINDS[b.body.kind_index()], b.body.kind());
        // What the durable log stores reads back as the same message.
        let text = serde_json::to_string(&b).unwrap();
        assert_eq!(p(&text).unwrap(), b);
    }

    #[test]
    fn version_2_carries_a_boot_and_version_1_has_none() {
        let p = |s: &str| DeviceMessage::parse(s.as_bytes());
        let m =
            p(r#"{"v":2,"boot":"b-7f3a","seq":1,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#)
                .unwrap();
        assert_eq!(
            (m.boot_id(), m.seq, m.version_supported()),
            ("b-7f3a", 1, true)
        );
        // The stored form reads back the same, boot included.
        assert_eq!(p(&serde_json::to_string(&m).unwrap()).unwrap(), m);
        let v1 = p(r#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#).unwrap();
        assert_eq!((v1.boot.as_deref(), v1.boot_id()), (None, ""));
        assert!(!serde_json::to_string(&v1).unwrap().contains("boot"));
        for (bad, why) in [
            (
                r#"{"v":2,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#,
                "missing field `boot`",
            ),
            (
                r#"{"v":1,"boot":"x","seq":1,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#,
                "`boot`",
            ),
            (
                r#"{"v":2,"boot":"","seq":1,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#,
                "boot:",
            ),
            (
                r#"{"v":2,"boot":"a\u0000b","seq":1,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#,
                "boot:",
            ),
        ] {
            let e = p(bad).unwrap_err();
            assert_eq!(e.seq(), Some(1), "{bad}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        let long = format!(
            r#"{{"v":2,"boot":"{}","seq":1,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}}"#,
            "b".repeat(MAX_BOOT_LEN + 1)
        );
        assert!(p(&long).is_err());
        // A future version parses (and is answered `unsupported_version` by the gateway).
        let v3 = p(r#"{"v":3,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#).unwrap();
        assert!(!v3.version_supported());
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
