//! A small extract built into an archive and read back: each tile decodes to the layers and
//! features expected at its zoom, with the names the labels use.

use std::collections::{BTreeMap, HashSet};

use aednet_basemap::mvt::{decode_tile, GeomType, Prop};
use aednet_basemap::{archive, build, Archive, TileOptions};
use aednet_core::osm::{Area, Extract, Node, Origin, Polygon, Way};
use aednet_core::LatLon;

fn tags(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn p(lat: f64, lon: f64) -> LatLon {
    LatLon { lat, lon }
}

fn way(id: i64, kv: &[(&str, &str)], coords: Vec<LatLon>) -> Way {
    let n = coords.len() as i64;
    let mut nodes: Vec<i64> = (0..n).map(|i| id * 1000 + i).collect();
    if coords.first() == coords.last() {
        *nodes.last_mut().unwrap() = nodes[0];
    }
    Way {
        id,
        tags: tags(kv),
        nodes,
        coords,
    }
}

/// A village around (47.14, 9.52): a named street, a footpath, a river, a lake, a park,
/// a building, a railway, a place node and a municipal boundary.
fn village(origin: Origin) -> Extract {
    let square = |lat: f64, lon: f64, d: f64| {
        vec![
            p(lat, lon),
            p(lat, lon + d),
            p(lat + d, lon + d),
            p(lat + d, lon),
            p(lat, lon),
        ]
    };
    Extract {
        nodes: vec![Node {
            id: 1,
            pos: p(47.141, 9.521),
            tags: tags(&[
                ("place", "town"),
                ("name", "Vaduz"),
                ("name:zh", "瓦杜兹"),
                ("name:en", "Vaduz"),
            ]),
        }],
        ways: vec![
            way(
                10,
                &[
                    ("highway", "residential"),
                    ("name", "Städtle"),
                    ("name:zh", "老城街"),
                ],
                vec![p(47.130, 9.500), p(47.140, 9.520), p(47.150, 9.540)],
            ),
            way(
                11,
                &[("highway", "footway")],
                vec![p(47.139, 9.519), p(47.141, 9.523)],
            ),
            way(
                12,
                &[("waterway", "river"), ("name", "Rhein")],
                vec![p(47.10, 9.49), p(47.20, 9.51)],
            ),
            way(13, &[("natural", "water")], square(47.135, 9.530, 0.004)),
            way(14, &[("leisure", "park")], square(47.143, 9.515, 0.003)),
            way(15, &[("building", "yes")], square(47.1405, 9.5205, 0.0002)),
            way(
                16,
                &[("railway", "rail")],
                vec![p(47.12, 9.50), p(47.16, 9.53)],
            ),
        ],
        areas: vec![Area {
            id: 20,
            tags: tags(&[
                ("type", "boundary"),
                ("boundary", "administrative"),
                ("admin_level", "8"),
                ("name", "Vaduz"),
            ]),
            polygons: vec![Polygon {
                outer: square(47.12, 9.49, 0.05),
                inner: vec![],
            }],
        }],
        origin,
        ways_with_missing_nodes: 0,
    }
}

fn tile_at(a: &Archive, z: u8, lat: f64, lon: f64) -> Vec<aednet_basemap::mvt::Decoded> {
    let w = aednet_basemap::tiler::project(lon, lat);
    let n = f64::from(1u32 << z);
    let (x, y) = ((w[0] * n) as u32, (w[1] * n) as u32);
    let gz = a
        .tile(z, x, y)
        .unwrap_or_else(|| panic!("tile {z}/{x}/{y}"));
    decode_tile(&archive::gunzip(gz).unwrap()).unwrap()
}

fn layers(f: &[aednet_basemap::mvt::Decoded]) -> HashSet<String> {
    f.iter().map(|d| d.layer.clone()).collect()
}

#[test]
fn tiles_decode_to_the_expected_layers_and_features() {
    let mut zooms = vec![];
    let built = build(&village(Origin::Osm), &TileOptions::default(), |z| {
        zooms.push(z)
    });
    assert_eq!(zooms, (8..=16).collect::<Vec<u8>>());
    let a = Archive::decode(&built.bytes).unwrap();
    assert_eq!(
        a.meta.attribution.as_deref(),
        Some("© OpenStreetMap contributors")
    );
    assert_eq!(a.meta.origin, "osm");
    assert_eq!(a.meta.tiles as usize, a.len());

    // Street level: everything, the street with its names, the building as a polygon.
    let z16 = tile_at(&a, 16, 47.1406, 9.5206);
    let l = layers(&z16);
    for want in ["transportation", "transportation_name", "building", "place"] {
        assert!(l.contains(want), "z16 has {want}: {l:?}");
    }
    let street = z16
        .iter()
        .find(|f| f.layer == "transportation_name")
        .expect("street name");
    assert_eq!(street.props.get("name"), Some(&Prop::Str("Städtle".into())));
    assert_eq!(
        street.props.get("name:zh"),
        Some(&Prop::Str("老城街".into()))
    );
    assert_eq!(street.kind, GeomType::Linestring);
    let building = z16.iter().find(|f| f.layer == "building").unwrap();
    assert_eq!(building.kind, GeomType::Polygon);
    // A ~15 m square at z16 is a few dozen tile units across, closed by ClosePath.
    let ring = &building.parts[0];
    assert!(ring.len() >= 4, "{ring:?}");
    let town = z16.iter().find(|f| f.layer == "place").unwrap();
    assert_eq!(town.props.get("name:zh"), Some(&Prop::Str("瓦杜兹".into())));
    assert_eq!(town.kind, GeomType::Point);
    // Every coordinate lies in the tile or its buffer.
    for f in &z16 {
        for pt in f.parts.iter().flatten() {
            assert!(
                (-64..=4160).contains(&pt[0]) && (-64..=4160).contains(&pt[1]),
                "{f:?}"
            );
        }
    }

    // Overview: the river, the town and the boundary's level, no buildings, streets or paths.
    let z8 = tile_at(&a, 8, 47.14, 9.52);
    let l = layers(&z8);
    assert!(l.contains("waterway") && l.contains("place"), "{l:?}");
    assert!(
        !l.contains("building") && !l.contains("transportation_name"),
        "{l:?}"
    );
    assert!(z8
        .iter()
        .all(|f| f.props.get("class") != Some(&Prop::Str("minor".into()))));
    // z12: residential streets appear; footpaths only from z14.
    let z12 = tile_at(&a, 12, 47.14, 9.52);
    let classes: HashSet<_> = z12
        .iter()
        .filter(|f| f.layer == "transportation")
        .filter_map(|f| match f.props.get("class") {
            Some(Prop::Str(s)) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert!(
        classes.contains("minor") && classes.contains("rail") && !classes.contains("path"),
        "{classes:?}"
    );
    let z14 = tile_at(&a, 14, 47.140, 9.521);
    assert!(z14
        .iter()
        .any(|f| f.props.get("class") == Some(&Prop::Str("path".into()))));
    assert!(
        layers(&z14).contains("water") || layers(&tile_at(&a, 14, 47.137, 9.532)).contains("water")
    );

    // The municipal boundary from z10 (its ring as a line), not at z8.
    let z10 = tile_at(&a, 10, 47.12, 9.49);
    let b = z10
        .iter()
        .find(|f| f.layer == "boundary")
        .expect("boundary at z10");
    assert_eq!(b.props.get("admin_level"), Some(&Prop::Int(8)));
    assert_eq!(b.kind, GeomType::Linestring);
    assert!(!layers(&z8).contains("boundary"));

    // Outside the data: no tile.
    assert!(a.tile(16, 0, 0).is_none());
    assert!(
        built.summary().contains("tiles z8–16"),
        "{}",
        built.summary()
    );
}

#[test]
fn the_demo_city_carries_no_osm_attribution() {
    let built = build(&village(Origin::Synthetic), &TileOptions::default(), |_| {});
    let a = Archive::decode(&built.bytes).unwrap();
    assert_eq!(a.meta.attribution, None);
    assert_eq!(a.meta.origin, "synthetic");
    assert!(!a.is_empty());
}

#[test]
fn an_empty_extract_builds_no_tiles() {
    let built = build(&Extract::default(), &TileOptions::default(), |_| {});
    assert_eq!(built.meta.tiles, 0);
    assert!(Archive::decode(&built.bytes).unwrap().is_empty());
}
