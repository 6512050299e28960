//! The demo city's tests: deterministic, its street network joined at shared nodes and
//! connected across the rivers only by bridges, people where the streets are.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use aednet_core::aed::ReadinessStatus;
use aednet_core::osm::Way;
use aednet_core::station::ScenicRating;
use chrono::TimeZone;

use super::geo::{dist_to_segment, segments_cross, to_xy, Xy};
use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap()
}

/// The committed demo city, generated once for the tests that only read it.
fn city() -> &'static DemoCity {
    static CITY: OnceLock<DemoCity> = OnceLock::new();
    CITY.get_or_init(|| generate(crate::bootstrap::DEFAULT_SEED, now()))
}

fn xy(w: &Way, k: usize) -> Xy {
    to_xy(w.coords[k].lat, w.coords[k].lon)
}

fn streets(c: &DemoCity) -> Vec<&Way> {
    c.extract
        .ways
        .iter()
        .filter(|w| streets::is_street(w))
        .collect()
}

/// Connected groups of ways, by breadth-first search over ways sharing a node.
fn components(ways: &[&Way]) -> Vec<Vec<usize>> {
    let mut by_node: HashMap<i64, Vec<usize>> = HashMap::new();
    for (k, w) in ways.iter().enumerate() {
        for n in &w.nodes {
            by_node.entry(*n).or_default().push(k);
        }
    }
    let mut seen = vec![false; ways.len()];
    let mut out = Vec::new();
    for start in 0..ways.len() {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let (mut group, mut queue) = (Vec::new(), VecDeque::from([start]));
        while let Some(k) = queue.pop_front() {
            group.push(k);
            for n in &ways[k].nodes {
                for &j in &by_node[n] {
                    if !seen[j] {
                        seen[j] = true;
                        queue.push_back(j);
                    }
                }
            }
        }
        out.push(group);
    }
    out
}

#[test]
fn street_ways_meet_at_shared_node_ids() {
    let c = city();
    let ways = streets(c);
    assert!(ways.len() > 1000, "{} street ways", ways.len());
    let mut at: HashMap<i64, (u64, u64)> = HashMap::new();
    let mut uses: HashMap<i64, usize> = HashMap::new();
    for w in &ways {
        assert!(
            w.nodes.len() >= 2,
            "way {} has {} nodes",
            w.id,
            w.nodes.len()
        );
        assert_eq!(w.nodes.len(), w.coords.len());
        for (n, p) in w.nodes.iter().zip(&w.coords) {
            let bits = (p.lat.to_bits(), p.lon.to_bits());
            assert_eq!(
                *at.entry(*n).or_insert(bits),
                bits,
                "node {n} in two places"
            );
            *uses.entry(*n).or_default() += 1;
        }
    }
    let junctions = uses.values().filter(|u| **u >= 2).count();
    assert!(junctions > 2000, "{junctions} junctions");
    let ids: HashSet<i64> = c.extract.ways.iter().map(|w| w.id).collect();
    assert_eq!(ids.len(), c.extract.ways.len(), "way ids unique");
}

#[test]
fn streets_are_one_network_joined_across_the_rivers_by_bridges() {
    let c = city();
    let ways = streets(c);
    let all = components(&ways);
    assert_eq!(
        all.len(),
        1,
        "one network: {:?}",
        all.iter().map(Vec::len).collect::<Vec<_>>()
    );

    let rivers: Vec<&Way> = c
        .extract
        .ways
        .iter()
        .filter(|w| w.tag("waterway") == Some("river"))
        .collect();
    assert_eq!(rivers.len(), spec::RIVERS.len());
    let crosses = |w: &Way| {
        (0..w.coords.len() - 1).any(|k| {
            rivers.iter().any(|r| {
                (0..r.coords.len() - 1)
                    .any(|j| segments_cross(xy(w, k), xy(w, k + 1), xy(r, j), xy(r, j + 1)))
            })
        })
    };
    let (bridges, land): (Vec<&Way>, Vec<&Way>) =
        ways.iter().partition(|w| w.tag("bridge") == Some("yes"));
    for w in &land {
        assert!(
            !crosses(w),
            "way {} ({:?}) crosses a river without a bridge",
            w.id,
            w.tag("name")
        );
    }
    let crossing = bridges.iter().filter(|w| crosses(w)).count();
    assert!(crossing >= 10, "{crossing} bridges over a river");
    // Without its bridges the network falls apart into the banks (and the pieces are big).
    let banks = components(&land);
    let big = banks.iter().filter(|g| g.len() > 50).count();
    assert!(big >= 4, "{big} large pieces without bridges");
}

#[test]
fn parks_have_footpaths_and_steps_and_places_have_names() {
    let c = city();
    let count = |k: &str, v: &str| {
        c.extract
            .ways
            .iter()
            .filter(|w| w.tag(k) == Some(v))
            .count()
    };
    assert!(count("leisure", "park") >= 8, "parks");
    assert!(count("highway", "footway") >= 50, "footways");
    assert!(count("highway", "steps") >= 8, "steps");
    assert!(count("landuse", "residential") >= 50, "town outlines");
    assert!(c
        .extract
        .areas
        .iter()
        .all(|a| a.tags.get("natural").map(String::as_str) == Some("water")));
    assert_eq!(c.extract.areas.len(), spec::RIVERS.len());
    for w in streets(c).iter().filter(|w| w.tags.contains_key("name")) {
        assert_eq!(w.tags.get("name"), w.tags.get("name:zh"));
        let zh = &w.tags["name"];
        assert!(
            zh.chars().any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch)),
            "{zh}"
        );
        let en = &w.tags["name:en"];
        assert!(en.is_ascii() || en.contains('–'), "{en}");
    }
    let named_streets = streets(c)
        .iter()
        .filter(|w| w.tags.contains_key("name:en"))
        .count();
    assert!(named_streets > 1000);
    for place in ["city", "town", "village", "suburb"] {
        let n = c
            .extract
            .nodes
            .iter()
            .filter(|n| n.tags.get("place").map(String::as_str) == Some(place))
            .count();
        assert!(n >= 1, "place={place}");
    }
    assert_eq!(c.extract.origin, aednet_core::osm::Origin::Synthetic);
}

#[test]
fn population_adds_up_to_the_districts_and_lives_in_the_towns() {
    let c = city();
    for (di, d) in c.districts.iter().enumerate() {
        let sum: i64 = c
            .population
            .iter()
            .filter(|p| p.district == di)
            .map(|p| p.population)
            .sum();
        assert_eq!(Some(sum), d.population, "{}", d.name);
    }
    let towns = towns::settlements(
        &mut ChaCha8Rng::seed_from_u64(crate::bootstrap::DEFAULT_SEED),
        &DistrictLocator::new(c.districts.iter().enumerate().map(|(i, d)| (i as i64, d))),
        &towns::rivers(),
    );
    for t in towns.iter().filter(|t| t.seat) {
        let here = |p: &PopulationCell| {
            let q = to_xy(p.pos.lat, p.pos.lon);
            (q.0 - t.center.0).hypot(q.1 - t.center.1)
        };
        let core = c
            .population
            .iter()
            .filter(|p| here(p) < 600.0)
            .map(|p| p.population as f64 / p.area_km2)
            .fold(0.0, f64::max);
        let mut hills: Vec<f64> = c
            .population
            .iter()
            .filter(|p| p.district == t.district && p.area_km2 >= 1.0)
            .map(|p| p.population as f64 / p.area_km2)
            .collect();
        hills.sort_by(f64::total_cmp);
        let hills = hills[hills.len() / 2];
        println!(
            "{}: core {core:.0}/km², hills (median) {hills:.0}/km²",
            t.name
        );
        assert!(core >= 2000.0, "{}: core {core}", t.name);
        assert!(hills <= 150.0, "{}: hills {hills}", t.name);
        assert!(core > 30.0 * hills);
    }
    // The CSV reads back as the coverage map reads it.
    let (points, bad) =
        aednet_api::coverage::read_population_csv(&population_csv(&c.population)).unwrap();
    assert_eq!((points.len(), bad), (c.population.len(), 0));
}

#[test]
fn aeds_stand_beside_streets() {
    let c = city();
    let segs: Vec<(Xy, Xy, &str)> = streets(c)
        .iter()
        .filter(|w| !matches!(w.tag("highway"), Some("footway" | "steps")))
        .flat_map(|w| {
            let name = w.tag("name").unwrap_or("");
            (0..w.coords.len() - 1).map(move |k| (xy(w, k), xy(w, k + 1), name))
        })
        .collect();
    // Beside a street, and the address names it.
    let near = c
        .aeds
        .iter()
        .filter(|(_, a)| {
            let p = to_xy(a.location.lat, a.location.lon);
            let address = a.address.as_deref().unwrap_or("");
            segs.iter().any(|(s, e, name)| {
                dist_to_segment(p, *s, *e) < 40.0 && !name.is_empty() && address.contains(name)
            })
        })
        .count();
    assert!(
        near * 100 >= c.aeds.len() * 95,
        "{near} of {} beside a street",
        c.aeds.len()
    );
}

#[test]
fn same_seed_same_city() {
    let (a, b) = (generate(7, now()), generate(7, now()));
    assert_eq!(format!("{:?}", a.aeds), format!("{:?}", b.aeds));
    assert_eq!(format!("{:?}", a.rescuers), format!("{:?}", b.rescuers));
    assert_eq!(a.districts, b.districts);
    assert!(a.extract == b.extract, "same streets");
    assert_eq!(a.population, b.population);
    let c = generate(8, now());
    assert_ne!(format!("{:?}", a.aeds), format!("{:?}", c.aeds));
    assert!(a.extract != c.extract, "another seed, other streets");
}

#[test]
fn districts_fall_short_of_their_targets_by_plausible_amounts() {
    let city = city();
    let locator = DistrictLocator::new(
        city.districts
            .iter()
            .enumerate()
            .map(|(i, d)| (i as i64, d)),
    );
    for (di, d) in city.districts.iter().enumerate() {
        let n = city.aeds.iter().filter(|(i, _)| *i == di).count() as f64;
        let target = d.target_aeds().unwrap() as f64;
        assert!(
            (0.7 * target..=target).contains(&n),
            "{}: {n} of {target}",
            d.name
        );
    }
    for (di, a) in &city.aeds {
        assert_eq!(
            locator.locate(a.location),
            Some(*di as i64),
            "AED outside its district"
        );
    }
    assert!(city.aeds.len() >= 300, "{}", city.aeds.len());
}

#[test]
fn realistic_mix_of_data() {
    let city = city();
    for kind in [
        StationKind::ScenicAidStation,
        StationKind::BoaiStation,
        StationKind::SchoolStation,
        StationKind::CommunityStation,
        StationKind::BusKit,
    ] {
        assert!(
            city.stations.iter().any(|(_, s)| s.data.kind == kind),
            "{kind:?}"
        );
    }
    assert!(city
        .stations
        .iter()
        .any(|(_, s)| s.data.scenic_rating == Some(ScenicRating::A5)));
    assert!(
        city.aeds
            .iter()
            .any(|(_, a)| a.opening_hours.is_some() && !a.opening_hours_valid),
        "malformed hours"
    );
    assert!(
        city.aeds
            .iter()
            .filter(|(_, a)| a.cabinet_code.is_some())
            .count()
            >= 12
    );
    let always = city
        .aeds
        .iter()
        .filter(|(_, a)| a.opening_hours.as_deref() == Some("24/7"))
        .count() as f64;
    let share = always / city.aeds.len() as f64;
    assert!((0.25..0.55).contains(&share), "24/7 share {share}");
    let expired = city
        .rescuers
        .iter()
        .filter(|(_, r)| !r.is_certified_on(now().date_naive()))
        .count() as f64;
    let share = expired / city.rescuers.len() as f64;
    assert!((0.02..0.15).contains(&share), "expired share {share}");
    let unknown = city
        .aeds
        .iter()
        .filter(|(_, a)| a.readiness.status == ReadinessStatus::Unknown)
        .count() as f64;
    assert!(
        unknown / city.aeds.len() as f64 > 0.3,
        "most AEDs have no telemetry"
    );
}

/// Draws the city as SVG for a person to look at:
/// `cargo test -p aednet --lib demo::tests::draw -- --ignored` writes
/// `target/demo-city.svg` (everything) and `target/demo-quzhou.svg` (the seat of 柯城区).
#[test]
#[ignore]
fn draw() {
    use std::fmt::Write;
    let c = city();
    let views = [
        ("demo-city.svg", to_xy(28.38, 118.18), to_xy(29.42, 119.42)),
        (
            "demo-quzhou.svg",
            to_xy(28.93, 118.82),
            to_xy(29.01, 118.92),
        ),
    ];
    for (file, lo, hi) in views {
        let (w, h) = (1200.0, 1200.0 * (hi.1 - lo.1) / (hi.0 - lo.0));
        let s = w / (hi.0 - lo.0);
        let pt = |p: &aednet_core::LatLon| {
            let q = to_xy(p.lat, p.lon);
            format!("{:.1},{:.1}", (q.0 - lo.0) * s, h - (q.1 - lo.1) * s)
        };
        let mut svg = format!(
            "<svg xmlns='http://www.w3.org/2000/svg' width='{w:.0}' height='{h:.0}'><rect width='100%' height='100%' fill='#f4f1ea'/>"
        );
        for p in &c.population {
            let d = p.population as f64 / p.area_km2;
            let r = (p.area_km2.sqrt() * 1000.0 * s / 2.0).max(0.5);
            let a = (d / 20000.0).clamp(0.0, 1.0).sqrt() * 0.6;
            let _ = write!(
                svg,
                "<circle cx='{}' r='{r:.1}' fill='#d06000' fill-opacity='{a:.2}'/>",
                pt(&p.pos).replace(',', "' cy='")
            );
        }
        for d in &c.districts {
            if let Some(geojson::Value::Polygon(rings)) = d.boundary.as_ref().map(|b| &b.value) {
                let pts: Vec<String> = rings[0]
                    .iter()
                    .map(|v| {
                        pt(&aednet_core::LatLon {
                            lat: v[1],
                            lon: v[0],
                        })
                    })
                    .collect();
                let _ = write!(svg, "<polygon points='{}' fill='none' stroke='#7a4ca0' stroke-width='2' stroke-dasharray='6 3'/>", pts.join(" "));
            }
        }
        for a in &c.extract.areas {
            let pts: Vec<String> = a.polygons[0].outer.iter().map(pt).collect();
            let _ = write!(svg, "<polygon points='{}' fill='#9cc3e6'/>", pts.join(" "));
        }
        for wy in &c.extract.ways {
            let (colour, width) = match (
                wy.tag("highway"),
                wy.tag("leisure"),
                wy.tag("landuse"),
                wy.tag("waterway"),
            ) {
                (_, Some(_), _, _) => ("#8bc97a", 0.0),
                (_, _, Some(_), _) => ("#e0d8c8", 0.0),
                (_, _, _, Some(_)) => ("#4a90d9", 1.0),
                (Some("primary"), ..) => ("#e07b39", 2.5),
                (Some("secondary"), ..) => ("#f0b03c", 2.0),
                (Some("tertiary" | "unclassified"), ..) => ("#c9a227", 1.5),
                (Some("footway"), ..) => ("#2e8b57", 1.0),
                (Some("steps"), ..) => ("#c00000", 2.5),
                _ => ("#777", 0.8),
            };
            let pts: Vec<String> = wy.coords.iter().map(pt).collect();
            if width == 0.0 {
                let _ = write!(
                    svg,
                    "<polygon points='{}' fill='{colour}' fill-opacity='0.6'/>",
                    pts.join(" ")
                );
            } else {
                let stroke = if wy.tag("bridge").is_some() {
                    "#000"
                } else {
                    colour
                };
                let _ = write!(
                    svg,
                    "<polyline points='{}' fill='none' stroke='{stroke}' stroke-width='{width}'/>",
                    pts.join(" ")
                );
            }
        }
        for (_, a) in &c.aeds {
            let _ = write!(
                svg,
                "<circle cx='{}' r='3' fill='#c8102e'/>",
                pt(&a.location).replace(',', "' cy='")
            );
        }
        svg.push_str("</svg>");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(file);
        std::fs::write(&path, svg).unwrap();
        println!("{}", path.display());
    }
}
