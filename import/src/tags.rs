//! OSM tag vocabulary → domain inputs. OSM tags are the lingua franca: the GeoJSON and CSV
//! importers translate their columns into the same keys and come through here too. Tags that
//! aednet does not model are kept verbatim.

use aednet_core::aed::{Access, AedInput};
use aednet_core::station::{StationInput, StationKind};
use aednet_core::Tags;

use crate::{Flagged, Parsed};

/// Keys consumed into typed fields (everything else stays in `tags`).
const AED_KEYS: &[&str] = &[
    "name",
    "operator",
    "phone",
    "contact:phone",
    "indoor",
    "level",
    "defibrillator:location",
    "access",
    "opening_hours",
    "description",
];

fn first<'a>(tags: &'a Tags, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| tags.get(*k))
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

/// `addr:street` + `addr:housenumber`, `addr:postcode addr:city` — or `addr:full`.
pub fn address(tags: &Tags) -> Option<String> {
    if let Some(full) = first(tags, &["addr:full", "address"]) {
        return Some(full.to_string());
    }
    let street = match (
        first(tags, &["addr:street", "addr:place"]),
        first(tags, &["addr:housenumber"]),
    ) {
        (Some(s), Some(n)) => Some(format!("{s} {n}")),
        (Some(s), None) => Some(s.to_string()),
        (None, Some(n)) => Some(n.to_string()),
        (None, None) => None,
    };
    let city = match (first(tags, &["addr:postcode"]), first(tags, &["addr:city"])) {
        (Some(p), Some(c)) => Some(format!("{p} {c}")),
        (a, b) => a.or(b).map(str::to_string),
    };
    match (street, city) {
        (Some(s), Some(c)) => Some(format!("{s}, {c}")),
        (s, c) => s.or(c),
    }
}

fn yes_no(v: Option<&str>) -> Option<bool> {
    match v?.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "是" | "室内" => Some(true),
        "no" | "false" | "0" | "否" | "室外" => Some(false),
        _ => None,
    }
}

/// Builds an AED input from tags at a position, noting access problems in `parsed`.
pub fn aed_from_tags(
    record: &str,
    external_ref: Option<String>,
    lat: f64,
    lon: f64,
    tags: Tags,
    parsed: &mut Parsed,
) -> AedInput {
    let access = match tags
        .get("access")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => {
            parsed.missing_access.push(record.to_string());
            Access::Unknown
        }
        Some(raw) => Access::parse(raw).unwrap_or_else(|| {
            parsed.unknown_access.push(Flagged {
                record: record.to_string(),
                value: raw.to_string(),
            });
            Access::Unknown
        }),
    };
    // defibrillator:location often comes per language; prefer the plain key.
    let location_description = first(
        &tags,
        &[
            "defibrillator:location",
            "defibrillator:location:zh",
            "defibrillator:location:en",
            "defibrillator:location:de",
            "description",
        ],
    )
    .map(str::to_string);
    let mut rest = tags.clone();
    for k in AED_KEYS {
        rest.remove(*k);
    }
    AedInput {
        external_ref,
        lat,
        lon,
        name: first(&tags, &["name", "name:zh", "name:en", "name:de"]).map(str::to_string),
        address: address(&tags),
        operator: first(&tags, &["operator"]).map(str::to_string),
        phone: first(&tags, &["phone", "contact:phone", "emergency:phone"]).map(str::to_string),
        indoor: yes_no(tags.get("indoor").map(String::as_str)),
        level: first(&tags, &["level"]).map(str::to_string),
        location_description,
        access: Some(access),
        opening_hours: first(&tags, &["opening_hours"]).map(str::to_string),
        tags: rest,
        ..Default::default()
    }
}

/// Whether tags describe a first-aid post aednet should import as a station.
pub fn is_first_aid_post(tags: &Tags) -> bool {
    tags.get("amenity").is_some_and(|v| v == "first_aid")
        || tags.get("healthcare").is_some_and(|v| v == "first_aid")
        || tags
            .get("emergency")
            .is_some_and(|v| v == "first_aid_kit" || v == "first_aid")
}

pub fn station_from_tags(
    external_ref: Option<String>,
    lat: f64,
    lon: f64,
    kind: StationKind,
    tags: Tags,
) -> StationInput {
    let name = first(&tags, &["name", "name:zh", "name:en"])
        .map(str::to_string)
        .unwrap_or_else(|| match kind {
            StationKind::FirstAidPost => "First aid / 急救点".to_string(),
            other => other.as_str().to_string(),
        });
    StationInput {
        source: None,
        external_ref,
        kind,
        name,
        scenic_rating: None,
        lat,
        lon,
        address: address(&tags),
        staffed_hours: first(&tags, &["opening_hours"]).map(str::to_string),
        time_zone: None,
        contact_name: None,
        contact_phone: first(&tags, &["phone", "contact:phone"]).map(str::to_string),
        equipment: Vec::new(),
        aed_ids: Vec::new(),
        district_id: None,
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(kv: &[(&str, &str)]) -> Tags {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn maps_osm_tags_and_keeps_the_rest() {
        let mut p = Parsed::default();
        let t = tags(&[
            ("emergency", "defibrillator"),
            ("name", "Rathaus"),
            ("addr:street", "Städtle"),
            ("addr:housenumber", "6"),
            ("addr:postcode", "9490"),
            ("addr:city", "Vaduz"),
            ("indoor", "yes"),
            ("level", "0"),
            ("defibrillator:location:de", "Eingang links"),
            ("access", "yes"),
            ("opening_hours", "24/7"),
        ]);
        let a = aed_from_tags("node/1", Some("node/1".into()), 47.1, 9.5, t, &mut p);
        assert_eq!(a.address.as_deref(), Some("Städtle 6, 9490 Vaduz"));
        assert_eq!(a.indoor, Some(true));
        assert_eq!(a.location_description.as_deref(), Some("Eingang links"));
        assert_eq!(a.access, Some(Access::Yes));
        assert_eq!(
            a.tags.get("emergency").map(String::as_str),
            Some("defibrillator")
        );
        assert!(a.tags.contains_key("addr:street"), "source tags are kept");
        assert!(!a.tags.contains_key("name"));
    }

    #[test]
    fn access_problems_are_reported() {
        let mut p = Parsed::default();
        let a = aed_from_tags(
            "node/2",
            None,
            1.0,
            1.0,
            tags(&[("access", "nur_für_berechtige")]),
            &mut p,
        );
        assert_eq!(a.access, Some(Access::Unknown));
        let _ = aed_from_tags("node/3", None, 1.0, 1.0, tags(&[]), &mut p);
        assert_eq!(
            p.unknown_access,
            vec![Flagged {
                record: "node/2".into(),
                value: "nur_für_berechtige".into()
            }]
        );
        assert_eq!(p.missing_access, vec!["node/3".to_string()]);
    }
}
