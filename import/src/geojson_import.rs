//! GeoJSON FeatureCollections of AEDs (points), stations (points with a `kind` property) and
//! districts (polygons). Properties may use aednet's field names or OSM tag names.

use aednet_core::district::DistrictInput;
use aednet_core::station::{ScenicRating, StationKind};
use aednet_core::Tags;
use serde_json::Value;

use crate::tags::{aed_from_tags, station_from_tags};
use crate::{GeoJsonKind, ImportError, Parsed, Rejection};

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.to_string()),
        _ => None,
    }
}

/// Properties as a flat tag map; aednet field names are translated to OSM keys.
fn props_to_tags(props: &serde_json::Map<String, Value>) -> Tags {
    props
        .iter()
        .filter_map(|(k, v)| {
            let key = match k.as_str() {
                "location_description" => "defibrillator:location",
                "address" => "addr:full",
                "staffed_hours" => "opening_hours",
                other => other,
            };
            text(v).map(|t| (key.to_string(), t))
        })
        .collect()
}

fn num(props: &serde_json::Map<String, Value>, key: &str) -> Option<f64> {
    props.get(key).and_then(|v| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
    })
}

pub(crate) fn parse(bytes: &[u8], forced: Option<GeoJsonKind>) -> Result<Parsed, ImportError> {
    let gj: geojson::GeoJson = std::str::from_utf8(bytes)
        .map_err(|_| ImportError::GeoJson("not UTF-8".into()))?
        .parse()
        .map_err(|e: geojson::Error| ImportError::GeoJson(e.to_string()))?;
    let features = match gj {
        geojson::GeoJson::FeatureCollection(fc) => fc.features,
        geojson::GeoJson::Feature(f) => vec![f],
        geojson::GeoJson::Geometry(_) => {
            return Err(ImportError::GeoJson(
                "expected a Feature or FeatureCollection, got a bare geometry".into(),
            ))
        }
    };
    let mut parsed = Parsed::default();
    for (i, f) in features.into_iter().enumerate() {
        let props = f.properties.clone().unwrap_or_default();
        let id = f.id.as_ref().map(|id| match id {
            geojson::feature::Id::String(s) => s.clone(),
            geojson::feature::Id::Number(n) => n.to_string(),
        });
        let record = id
            .clone()
            .map(|id| format!("feature {id}"))
            .unwrap_or_else(|| format!("feature #{}", i + 1));
        let external_ref = id
            .or_else(|| props.get("external_ref").and_then(text))
            .or_else(|| props.get("ref").and_then(text));
        let Some(geometry) = f.geometry else {
            parsed.rejections.push(Rejection {
                record,
                field: Some("geometry".into()),
                reason: "feature has no geometry".into(),
            });
            continue;
        };
        let is_area = matches!(
            geometry.value,
            geojson::Value::Polygon(_) | geojson::Value::MultiPolygon(_)
        );
        let kind = forced.unwrap_or(if is_area {
            GeoJsonKind::Districts
        } else if props.contains_key("kind") {
            GeoJsonKind::Stations
        } else {
            GeoJsonKind::Aeds
        });
        if kind == GeoJsonKind::Districts {
            if !is_area {
                parsed.rejections.push(Rejection {
                    record,
                    field: Some("geometry".into()),
                    reason: "a district needs a Polygon or MultiPolygon".into(),
                });
                continue;
            }
            let tags = props_to_tags(&props);
            parsed.districts.push((
                record.clone(),
                DistrictInput {
                    source: None,
                    external_ref: external_ref.or(Some(record)),
                    name: tags.get("name").cloned().unwrap_or_default(),
                    code: tags.get("code").cloned(),
                    admin_level: num(&props, "admin_level").map(|v| v as i32),
                    population: num(&props, "population").map(|v| v.round() as i64),
                    boundary: Some(geometry),
                    target_aeds_per_10k: num(&props, "target_aeds_per_10k"),
                    target_rescuers: num(&props, "target_rescuers").map(|v| v.round() as i64),
                    tags,
                },
            ));
            continue;
        }
        let geojson::Value::Point(pos) = &geometry.value else {
            parsed.rejections.push(Rejection {
                record,
                field: Some("geometry".into()),
                reason: "expected a Point".into(),
            });
            continue;
        };
        let (lon, lat) = (pos[0], pos.get(1).copied().unwrap_or(f64::NAN));
        let tags = props_to_tags(&props);
        if kind == GeoJsonKind::Stations {
            let raw_kind = tags.get("kind").cloned().unwrap_or_default();
            let Some(station_kind) = StationKind::parse(&raw_kind) else {
                parsed.rejections.push(Rejection {
                    record,
                    field: Some("kind".into()),
                    reason: format!("unknown station kind '{raw_kind}'"),
                });
                continue;
            };
            let mut s = station_from_tags(external_ref, lat, lon, station_kind, tags);
            s.scenic_rating = props
                .get("scenic_rating")
                .and_then(text)
                .and_then(|r| ScenicRating::parse(&r));
            s.contact_name = props.get("contact_name").and_then(text);
            s.equipment = props
                .get("equipment")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(text).collect())
                .unwrap_or_default();
            parsed.stations.push((record, s));
        } else {
            let input = aed_from_tags(&record, external_ref, lat, lon, tags, &mut parsed);
            parsed.aeds.push((record, input));
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_kinds_per_feature() {
        let doc = serde_json::json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": "a1", "geometry": {"type": "Point", "coordinates": [118.87, 28.97]},
             "properties": {"name": "衢州站", "opening_hours": "24/7", "access": "yes", "location_description": "候车大厅"}},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [118.57, 28.53]},
             "properties": {"kind": "scenic_aid_station", "name": "江郎山救护站", "scenic_rating": "5A", "equipment": ["AED", "担架"]}},
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[118.8, 28.9], [118.9, 28.9], [118.9, 29.0], [118.8, 28.9]]]},
             "properties": {"name": "柯城区", "population": 440000, "target_aeds_per_10k": 1.5}},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1.0, 2.0]}, "properties": {"kind": "castle"}},
            {"type": "Feature", "geometry": null, "properties": {}}
        ]});
        let p = parse(doc.to_string().as_bytes(), None).unwrap();
        assert_eq!(p.aeds.len(), 1);
        assert_eq!(
            p.aeds[0].1.location_description.as_deref(),
            Some("候车大厅")
        );
        assert_eq!(p.aeds[0].1.external_ref.as_deref(), Some("a1"));
        assert_eq!(p.stations.len(), 1);
        assert_eq!(p.stations[0].1.scenic_rating, Some(ScenicRating::A5));
        assert_eq!(
            p.stations[0].1.equipment,
            vec!["AED".to_string(), "担架".to_string()]
        );
        assert_eq!(p.districts.len(), 1);
        assert_eq!(p.districts[0].1.population, Some(440_000));
        assert_eq!(p.rejections.len(), 2);
        assert!(parse(b"{\"type\": \"Point\", \"coordinates\": [1, 2]}", None).is_err());
        assert!(parse(b"not json", None).is_err());
    }
}
