//! First-aid stations: scenic-area aid stations, 博爱驿站 cabinets, school and community
//! stations, and first-aid kits on buses (a moving asset whose position is its last report).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::geo_util::LatLon;
use crate::hours;
use crate::validate::{clean, max_len, FieldError, Validated};
use crate::Tags;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StationKind {
    /// 景区救护站 — aid station in a rated scenic area.
    ScenicAidStation,
    /// 博爱驿站 — Red Cross service post with an integrated AED cabinet.
    BoaiStation,
    /// 校园救护站.
    SchoolStation,
    /// 社区救护站.
    CommunityStation,
    /// 公交车急救包 — a kit on a bus: moves, position is the last report.
    BusKit,
    /// A generic first-aid post (OSM `amenity=first_aid` and similar).
    FirstAidPost,
}

impl StationKind {
    pub const ALL: [StationKind; 6] = [
        StationKind::ScenicAidStation,
        StationKind::BoaiStation,
        StationKind::SchoolStation,
        StationKind::CommunityStation,
        StationKind::BusKit,
        StationKind::FirstAidPost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StationKind::ScenicAidStation => "scenic_aid_station",
            StationKind::BoaiStation => "boai_station",
            StationKind::SchoolStation => "school_station",
            StationKind::CommunityStation => "community_station",
            StationKind::BusKit => "bus_kit",
            StationKind::FirstAidPost => "first_aid_post",
        }
    }

    pub fn parse(s: &str) -> Option<StationKind> {
        StationKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_mobile(self) -> bool {
        self == StationKind::BusKit
    }
}

/// China's national tourist attraction rating (5A highest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ScenicRating {
    #[serde(rename = "5A")]
    A5,
    #[serde(rename = "4A")]
    A4,
    #[serde(rename = "3A")]
    A3,
    #[serde(rename = "2A")]
    A2,
    #[serde(rename = "1A")]
    A1,
}

impl ScenicRating {
    pub fn as_str(self) -> &'static str {
        match self {
            ScenicRating::A5 => "5A",
            ScenicRating::A4 => "4A",
            ScenicRating::A3 => "3A",
            ScenicRating::A2 => "2A",
            ScenicRating::A1 => "1A",
        }
    }
    pub fn parse(s: &str) -> Option<ScenicRating> {
        [
            ScenicRating::A5,
            ScenicRating::A4,
            ScenicRating::A3,
            ScenicRating::A2,
            ScenicRating::A1,
        ]
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StationData {
    pub source: String,
    pub external_ref: Option<String>,
    pub kind: StationKind,
    pub name: String,
    pub scenic_rating: Option<ScenicRating>,
    #[schema(value_type = LatLon)]
    pub location: LatLon,
    /// For a bus kit: when `location` was last reported.
    pub location_updated_at: Option<DateTime<Utc>>,
    pub address: Option<String>,
    /// Staffed hours in OSM `opening_hours` syntax.
    pub staffed_hours: Option<String>,
    pub staffed_hours_valid: bool,
    #[schema(value_type = String, example = "Asia/Shanghai")]
    pub time_zone: Tz,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    pub equipment: Vec<String>,
    /// AEDs kept at or belonging to this station.
    pub aed_ids: Vec<i64>,
    pub district_id: Option<i64>,
    #[schema(value_type = Object)]
    pub tags: Tags,
}

impl StationData {
    pub fn redact_personal(&mut self) {
        // A station's contact is an institutional number, published on the cabinet itself;
        // only a named person is personal data.
        self.contact_name = None;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Station {
    pub id: i64,
    #[serde(flatten)]
    pub data: StationData,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StationInput {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub external_ref: Option<String>,
    pub kind: StationKind,
    pub name: String,
    #[serde(default)]
    pub scenic_rating: Option<ScenicRating>,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub staffed_hours: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub time_zone: Option<Tz>,
    #[serde(default)]
    pub contact_name: Option<String>,
    #[serde(default)]
    pub contact_phone: Option<String>,
    #[serde(default)]
    pub equipment: Vec<String>,
    #[serde(default)]
    pub aed_ids: Vec<i64>,
    #[serde(default)]
    pub district_id: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tags: Tags,
}

impl StationInput {
    pub fn validate(self, now: DateTime<Utc>) -> Validated<StationData> {
        let location = LatLon::new(self.lat, self.lon)?;
        let name = self.name.trim().to_string();
        if name.is_empty() {
            return Err(FieldError::new("name", "must not be empty"));
        }
        max_len("name", &Some(name.clone()), 200)?;
        if self.scenic_rating.is_some() && self.kind != StationKind::ScenicAidStation {
            return Err(FieldError::new(
                "scenic_rating",
                "only a scenic_aid_station has a scenic rating",
            ));
        }
        let staffed_hours = clean(self.staffed_hours);
        max_len("staffed_hours", &staffed_hours, 1000)?;
        let mut aed_ids = self.aed_ids;
        aed_ids.sort_unstable();
        aed_ids.dedup();
        let equipment: Vec<String> = self
            .equipment
            .into_iter()
            .filter_map(|e| clean(Some(e)))
            .collect();
        if equipment.len() > 100 {
            return Err(FieldError::new("equipment", "at most 100 items"));
        }
        Ok(StationData {
            source: clean(self.source).unwrap_or_else(|| "api".to_string()),
            external_ref: clean(self.external_ref),
            kind: self.kind,
            name,
            scenic_rating: self.scenic_rating,
            location,
            location_updated_at: self.kind.is_mobile().then_some(now),
            address: clean(self.address),
            staffed_hours_valid: staffed_hours.as_deref().is_some_and(hours::parses),
            staffed_hours,
            time_zone: self
                .time_zone
                .unwrap_or_else(|| hours::time_zone_at(location)),
            contact_name: clean(self.contact_name),
            contact_phone: clean(self.contact_phone),
            equipment,
            aed_ids,
            district_id: self.district_id,
            tags: self.tags,
        })
    }
}
