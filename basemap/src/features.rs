//! Which map features go into which layer, from which zoom, with which properties: the
//! schema of the basemap, decided on OSM tags alone (the demo city carries the same tags).
//!
//! The layer names and classes follow OpenMapTiles' shape (transportation, water, landuse,
//! building, place, boundary), trimmed to what a person reading a city map on a phone needs;
//! the minimum zooms follow planetiler's OpenMapTiles profile in spirit: major roads and
//! towns from z8, streets from z12, paths, buildings and street names from z13–14.

use aednet_core::Tags;

use crate::mvt::Prop;

/// Layers in drawing order (the style draws them in the same order).
pub const LAYERS: &[&str] = &[
    "landuse",
    "water",
    "waterway",
    "boundary",
    "building",
    "transportation",
    "transportation_name",
    "place",
];

/// Layers dropped, in this order, from a tile over the size budget.
pub const DROP_ORDER: &[&str] = &["building", "landuse", "transportation_name", "waterway"];

pub fn layer_index(name: &str) -> usize {
    LAYERS.iter().position(|l| *l == name).expect("known layer")
}

fn tag<'a>(t: &'a Tags, k: &str) -> Option<&'a str> {
    t.get(k).map(String::as_str)
}

/// A road, path or railway line: its class and the first zoom it shows at.
pub fn transport_class(t: &Tags) -> Option<(&'static str, u8)> {
    if tag(t, "area") == Some("yes") {
        return None;
    }
    if let Some(h) = tag(t, "highway") {
        return Some(match h {
            "motorway" | "motorway_link" => ("motorway", if h.ends_with("link") { 10 } else { 8 }),
            "trunk" | "trunk_link" => ("trunk", if h.ends_with("link") { 10 } else { 8 }),
            "primary" | "primary_link" => ("primary", if h.ends_with("link") { 11 } else { 8 }),
            "secondary" | "secondary_link" => ("secondary", 9),
            "tertiary" | "tertiary_link" => ("tertiary", 10),
            "unclassified" | "residential" | "living_street" | "road" => ("minor", 12),
            "pedestrian" => ("pedestrian", 13),
            "service" => ("service", 13),
            "track" => ("track", 13),
            "footway" | "path" | "cycleway" | "bridleway" | "steps" | "corridor" => ("path", 14),
            _ => return None,
        });
    }
    match tag(t, "railway")? {
        "rail" => Some(("rail", 9)),
        "light_rail" | "tram" | "subway" | "narrow_gauge" | "funicular" => Some(("transit", 12)),
        _ => None,
    }
}

/// A river, canal or stream drawn as a line.
pub fn waterway_class(t: &Tags) -> Option<(&'static str, u8)> {
    match tag(t, "waterway")? {
        "river" => Some(("river", 8)),
        "canal" => Some(("canal", 10)),
        "stream" | "ditch" | "drain" => Some(("stream", 13)),
        _ => None,
    }
}

/// Lakes, rivers drawn as areas, reservoirs.
pub fn is_water_area(t: &Tags) -> bool {
    tag(t, "natural") == Some("water")
        || tag(t, "waterway") == Some("riverbank")
        || matches!(tag(t, "landuse"), Some("reservoir" | "basin"))
}

/// Land use and cover by class, with the first zoom (large areas of small zooms are still
/// dropped by their pixel size).
pub fn landuse_class(t: &Tags) -> Option<(&'static str, u8)> {
    let c = match (tag(t, "landuse"), tag(t, "natural"), tag(t, "leisure")) {
        (Some("forest"), ..) | (_, Some("wood" | "scrub"), _) => ("wood", 8),
        (Some("residential"), ..) => ("residential", 10),
        (Some("commercial" | "retail"), ..) => ("commercial", 11),
        (Some("industrial" | "railway" | "quarry"), ..) => ("industrial", 11),
        (
            Some(
                "farmland" | "farmyard" | "meadow" | "grass" | "orchard" | "vineyard"
                | "allotments" | "village_green",
            ),
            _,
            _,
        )
        | (_, Some("grassland" | "heath"), _) => ("grass", 10),
        (Some("cemetery"), ..) => ("cemetery", 12),
        (
            _,
            _,
            Some(
                "park" | "garden" | "nature_reserve" | "golf_course" | "playground" | "pitch"
                | "sports_centre" | "recreation_ground",
            ),
        ) => ("park", 11),
        (_, Some("bare_rock" | "scree" | "glacier" | "sand" | "beach"), _) => ("rock", 10),
        (_, Some("wetland"), _) => ("wetland", 10),
        _ => return None,
    };
    Some(c)
}

pub fn is_building(t: &Tags) -> bool {
    t.get("building").is_some_and(|v| v != "no")
}

/// Place labels by class: the first zoom and a rank (1 = most important) for the style.
pub fn place_class(t: &Tags) -> Option<(&'static str, u8, i64)> {
    tag(t, "name")?;
    match tag(t, "place")? {
        "city" => Some(("city", 8, 1)),
        "town" => Some(("town", 8, 2)),
        "village" => Some(("village", 10, 3)),
        "suburb" | "quarter" => Some(("suburb", 11, 4)),
        "hamlet" => Some(("hamlet", 12, 5)),
        "neighbourhood" | "locality" | "isolated_dwelling" => Some(("locality", 14, 6)),
        _ => None,
    }
}

/// Administrative boundaries: the admin level and first zoom (countries and regions from z8,
/// municipalities from z10).
pub fn admin_level(t: &Tags) -> Option<(i64, u8)> {
    if tag(t, "boundary") != Some("administrative") {
        return None;
    }
    let level: i64 = tag(t, "admin_level")?.parse().ok()?;
    match level {
        ..=4 => Some((level, 8)),
        5..=8 => Some((level, 10)),
        _ => None,
    }
}

/// `name`, `name:zh` and `name:en` as properties (what the style's labels choose from).
pub fn names(t: &Tags) -> Vec<(&'static str, Prop)> {
    let mut out = Vec::new();
    if let Some(n) = tag(t, "name") {
        out.push(("name", Prop::Str(n.to_string())));
    }
    if let Some(n) = tag(t, "name:zh").or_else(|| tag(t, "name:zh-Hans")) {
        out.push(("name:zh", Prop::Str(n.to_string())));
    }
    if let Some(n) = tag(t, "name:en") {
        out.push(("name:en", Prop::Str(n.to_string())));
    }
    out
}

/// For the import's feature filter: nodes the basemap reads.
pub fn wants_node(t: &Tags) -> bool {
    place_class(t).is_some()
}

/// For the import's feature filter: ways the basemap reads.
pub fn wants_way(t: &Tags) -> bool {
    transport_class(t).is_some()
        || waterway_class(t).is_some()
        || is_water_area(t)
        || landuse_class(t).is_some()
        || is_building(t)
}

/// For the import's feature filter: multipolygon and boundary relations the basemap reads.
pub fn wants_area(t: &Tags) -> bool {
    is_water_area(t) || landuse_class(t).is_some() || is_building(t) || admin_level(t).is_some()
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
    fn classes_and_filters() {
        assert_eq!(
            transport_class(&tags(&[("highway", "residential")])),
            Some(("minor", 12))
        );
        assert_eq!(
            transport_class(&tags(&[("highway", "pedestrian"), ("area", "yes")])),
            None
        );
        assert_eq!(
            transport_class(&tags(&[("railway", "rail")])),
            Some(("rail", 9))
        );
        assert_eq!(
            landuse_class(&tags(&[("natural", "wood")])),
            Some(("wood", 8))
        );
        assert_eq!(
            landuse_class(&tags(&[("leisure", "park")])),
            Some(("park", 11))
        );
        assert!(wants_way(&tags(&[("building", "yes")])));
        assert!(!wants_way(&tags(&[("building", "no")])));
        assert!(
            !wants_node(&tags(&[("place", "town")])),
            "a place without a name"
        );
        assert!(wants_area(&tags(&[
            ("boundary", "administrative"),
            ("admin_level", "8")
        ])));
        assert!(!wants_area(&tags(&[
            ("boundary", "administrative"),
            ("admin_level", "10")
        ])));
        let n = names(&tags(&[("name", "Vaduz"), ("name:zh-Hans", "瓦杜兹")]));
        assert_eq!(n[1], ("name:zh", Prop::Str("瓦杜兹".into())));
        assert_eq!(layer_index("place"), LAYERS.len() - 1);
    }
}
