//! Automated external defibrillators: where they are, when they can be reached, whether they work.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::geo_util::LatLon;
use crate::hours;
use crate::secret::Secret;
use crate::validate::{clean, max_len, FieldError, Validated};
use crate::Tags;

/// OSM `access` values that aednet understands. Anything else is imported as `unknown` and
/// reported; the API rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Yes,
    Public,
    Permissive,
    Customers,
    Private,
    No,
    #[default]
    Unknown,
}

impl Access {
    pub const ALL: [Access; 7] = [
        Access::Yes,
        Access::Public,
        Access::Permissive,
        Access::Customers,
        Access::Private,
        Access::No,
        Access::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Access::Yes => "yes",
            Access::Public => "public",
            Access::Permissive => "permissive",
            Access::Customers => "customers",
            Access::Private => "private",
            Access::No => "no",
            Access::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Access> {
        let s = s.trim();
        Access::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// Anyone may walk up and take it.
    pub fn is_public(self) -> bool {
        matches!(self, Access::Yes | Access::Public | Access::Permissive)
    }
}

/// Readiness of a device. Most registered AEDs have no telemetry: they stay `unknown` until a
/// device or a guardian check says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessStatus {
    Ready,
    /// Works, but needs attention soon (pads or battery expiring, low battery).
    Degraded,
    Fault,
    Offline,
    InUse,
    CabinetOpen,
    #[default]
    Unknown,
    Retired,
}

impl ReadinessStatus {
    pub const ALL: [ReadinessStatus; 8] = [
        ReadinessStatus::Ready,
        ReadinessStatus::Degraded,
        ReadinessStatus::Fault,
        ReadinessStatus::Offline,
        ReadinessStatus::InUse,
        ReadinessStatus::CabinetOpen,
        ReadinessStatus::Unknown,
        ReadinessStatus::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReadinessStatus::Ready => "ready",
            ReadinessStatus::Degraded => "degraded",
            ReadinessStatus::Fault => "fault",
            ReadinessStatus::Offline => "offline",
            ReadinessStatus::InUse => "in_use",
            ReadinessStatus::CabinetOpen => "cabinet_open",
            ReadinessStatus::Unknown => "unknown",
            ReadinessStatus::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<ReadinessStatus> {
        ReadinessStatus::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Known-bad states are excluded from caller answers; `unknown` is not.
    pub fn is_known_bad(self) -> bool {
        matches!(
            self,
            ReadinessStatus::Fault
                | ReadinessStatus::Offline
                | ReadinessStatus::InUse
                | ReadinessStatus::Retired
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub status: ReadinessStatus,
    /// Human-readable reason ("self-test fault E12", "no heartbeat for 30 min").
    pub reason: Option<String>,
    pub since: DateTime<Utc>,
}

/// Everything about an AED except its identity and timestamps: what a source (OSM, a CSV list,
/// the API) provides, validated, plus derived fields (time zone, whether the hours parse).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AedData {
    /// Where the record came from: `osm`, `csv:<name>`, `geojson:<name>`, `api`, `demo`.
    pub source: String,
    /// The record's id in its source (OSM `node/123`, a row id), unique per source.
    pub external_ref: Option<String>,
    #[schema(value_type = LatLon)]
    pub location: LatLon,
    pub name: Option<String>,
    pub address: Option<String>,
    pub operator: Option<String>,
    pub phone: Option<String>,
    pub indoor: Option<bool>,
    pub level: Option<String>,
    /// OSM `defibrillator:location`: "in the lobby, left of the lifts".
    pub location_description: Option<String>,
    pub access: Access,
    /// Raw OSM `opening_hours` value, kept verbatim even when it does not parse.
    pub opening_hours: Option<String>,
    pub opening_hours_valid: bool,
    /// IANA zone the hours are evaluated in; derived from the coordinates unless given.
    #[schema(value_type = String, example = "Asia/Shanghai")]
    pub time_zone: Tz,
    pub cabinet_locked: bool,
    /// Never present in public responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub cabinet_code: Option<Secret>,
    pub device_model: Option<String>,
    pub device_serial: Option<String>,
    pub pads_expiry: Option<NaiveDate>,
    pub battery_expiry: Option<NaiveDate>,
    pub readiness: Readiness,
    pub district_id: Option<i64>,
    /// Source tags aednet does not model, kept verbatim.
    #[schema(value_type = Object)]
    pub tags: Tags,
}

impl AedData {
    /// Equal in everything a source owns: readiness belongs to telemetry and maintenance, so a
    /// re-import must neither reset it nor count it as a change.
    pub fn same_source_content(&self, other: &AedData) -> bool {
        let mut a = self.clone();
        a.readiness = other.readiness.clone();
        &a == other
    }

    /// Removes what the public may not see.
    pub fn redact(&mut self) {
        self.cabinet_code = None;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Aed {
    pub id: i64,
    #[serde(flatten)]
    pub data: AedData,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a client sends to create or replace an AED.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AedInput {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub external_ref: Option<String>,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub indoor: Option<bool>,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub location_description: Option<String>,
    #[serde(default)]
    pub access: Option<Access>,
    #[serde(default)]
    pub opening_hours: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub time_zone: Option<Tz>,
    #[serde(default)]
    pub cabinet_locked: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub cabinet_code: Option<Secret>,
    #[serde(default)]
    pub device_model: Option<String>,
    #[serde(default)]
    pub device_serial: Option<String>,
    #[serde(default)]
    pub pads_expiry: Option<NaiveDate>,
    #[serde(default)]
    pub battery_expiry: Option<NaiveDate>,
    #[serde(default)]
    pub readiness_status: Option<ReadinessStatus>,
    #[serde(default)]
    pub readiness_reason: Option<String>,
    #[serde(default)]
    pub district_id: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tags: Tags,
}

impl AedInput {
    /// Validates and derives: the time zone from the coordinates when not given, and whether
    /// the opening hours parse. `now` stamps the readiness `since`.
    pub fn validate(self, now: DateTime<Utc>) -> Validated<AedData> {
        let location = LatLon::new(self.lat, self.lon)?;
        let name = clean(self.name);
        let address = clean(self.address);
        let operator = clean(self.operator);
        let phone = clean(self.phone);
        let level = clean(self.level);
        let location_description = clean(self.location_description);
        max_len("name", &name, 200)?;
        max_len("address", &address, 500)?;
        max_len("operator", &operator, 200)?;
        max_len("phone", &phone, 64)?;
        max_len("level", &level, 32)?;
        max_len("location_description", &location_description, 1000)?;
        let opening_hours = clean(self.opening_hours);
        max_len("opening_hours", &opening_hours, 1000)?;
        let opening_hours_valid = opening_hours.as_deref().is_some_and(hours::parses);
        let source = clean(self.source).unwrap_or_else(|| "api".to_string());
        max_len("source", &Some(source.clone()), 100)?;
        let external_ref = clean(self.external_ref);
        max_len("external_ref", &external_ref, 200)?;
        if let Some(code) = &self.cabinet_code {
            if code.expose().trim().is_empty() || code.expose().chars().count() > 64 {
                return Err(FieldError::new(
                    "cabinet_code",
                    "must be 1 to 64 characters",
                ));
            }
        }
        let time_zone = self
            .time_zone
            .unwrap_or_else(|| hours::time_zone_at(location));
        Ok(AedData {
            source,
            external_ref,
            location,
            name,
            address,
            operator,
            phone,
            indoor: self.indoor,
            level,
            location_description,
            access: self.access.unwrap_or_default(),
            opening_hours,
            opening_hours_valid,
            time_zone,
            cabinet_locked: self.cabinet_locked.unwrap_or(false) || self.cabinet_code.is_some(),
            cabinet_code: self.cabinet_code,
            device_model: clean(self.device_model),
            device_serial: clean(self.device_serial),
            pads_expiry: self.pads_expiry,
            battery_expiry: self.battery_expiry,
            readiness: Readiness {
                status: self.readiness_status.unwrap_or_default(),
                reason: clean(self.readiness_reason),
                since: now,
            },
            district_id: self.district_id,
            tags: self.tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AedInput {
        AedInput {
            lat: 28.97,
            lon: 118.87,
            name: Some(" 衢州站 ".into()),
            ..Default::default()
        }
    }

    #[test]
    fn validation_derives_zone_and_trims() {
        let d = input().validate(Utc::now()).unwrap();
        assert_eq!(d.time_zone, chrono_tz::Asia::Shanghai);
        assert_eq!(d.name.as_deref(), Some("衢州站"));
        assert_eq!(d.access, Access::Unknown);
        assert_eq!(d.readiness.status, ReadinessStatus::Unknown);
        assert!(!d.opening_hours_valid);
    }

    #[test]
    fn validation_names_the_field() {
        let e = AedInput {
            lat: 91.0,
            ..input()
        }
        .validate(Utc::now())
        .unwrap_err();
        assert_eq!(e.field, "lat");
        let e = AedInput {
            name: Some("x".repeat(201)),
            ..input()
        }
        .validate(Utc::now())
        .unwrap_err();
        assert_eq!(e.field, "name");
        let e = AedInput {
            cabinet_code: Some(Secret::new(" ")),
            ..input()
        }
        .validate(Utc::now())
        .unwrap_err();
        assert_eq!(e.field, "cabinet_code");
    }

    #[test]
    fn unknown_access_value_is_a_deserialisation_error() {
        let r: Result<AedInput, _> =
            serde_json::from_value(serde_json::json!({"lat": 1.0, "lon": 2.0, "access": "maybe"}));
        assert!(r.unwrap_err().to_string().contains("unknown variant"));
        assert_eq!(Access::parse(" YES "), Some(Access::Yes));
        assert_eq!(Access::parse("nur_für_berechtige"), None);
    }

    #[test]
    fn cabinet_code_implies_locked_and_is_redacted() {
        let mut d = AedInput {
            cabinet_code: Some(Secret::new("1234")),
            ..input()
        }
        .validate(Utc::now())
        .unwrap();
        assert!(d.cabinet_locked);
        assert!(!format!("{d:?}").contains("1234"));
        d.redact();
        assert!(!serde_json::to_string(&d).unwrap().contains("cabinet_code"));
    }

    #[test]
    fn readiness_is_not_source_content() {
        let a = input().validate(Utc::now()).unwrap();
        let mut b = a.clone();
        b.readiness.status = ReadinessStatus::Fault;
        assert!(a.same_source_content(&b));
        b.name = Some("other".into());
        assert!(!a.same_source_content(&b));
    }
}
