//! OpenStreetMap PBF: `emergency=defibrillator` nodes and ways (a way becomes the centroid of
//! its nodes), first-aid posts, and districts from `boundary=administrative` relations at one
//! `admin_level`, with their multipolygons assembled from member ways.
//!
//! Three passes over the file keep memory small for large extracts: (1) tagged nodes, ways and
//! relations of interest; (2) the member ways of boundary relations; (3) the coordinates of
//! every node those ways use.
//!
//! District population comes from the relation's `population` tag; many boundaries (all of
//! Liechtenstein's) have none, so it falls back, as OSM tools commonly do, to the `admin_centre`
//! member node, then the `label` node, then a populated place node inside the polygon
//! (preferring one of the same name).

use std::collections::{HashMap, HashSet};

use aednet_core::district::DistrictInput;
use aednet_core::station::StationKind;
use aednet_core::Tags;
use geo::{Area, Contains, Coord, LineString, MultiPolygon, Point, Polygon};
use osmpbf::{Element, ElementReader, RelMemberType};

use crate::tags::{aed_from_tags, is_first_aid_post, station_from_tags};
use crate::{Flagged, ImportError, ImportOptions, Parsed};

struct TaggedWay {
    id: i64,
    refs: Vec<i64>,
    tags: Tags,
    kind: WayKind,
}

enum WayKind {
    Aed,
    Station,
}

struct Boundary {
    id: i64,
    tags: Tags,
    outer: Vec<i64>,
    inner: Vec<i64>,
    admin_centre: Option<i64>,
    label: Option<i64>,
}

struct Place {
    lat: f64,
    lon: f64,
    name: Option<String>,
    population: i64,
}

fn tags_of<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> Tags {
    it.map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn pbf_err(e: osmpbf::Error) -> ImportError {
    ImportError::Pbf(e.to_string())
}

/// OSM population values are sometimes "5,229" or "ca. 5000": take the digits of the first number.
fn parse_population(s: &str) -> Option<i64> {
    let digits: String = s
        .trim()
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '\'' || *c == ' ')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

pub(crate) fn parse(bytes: &[u8], opts: &ImportOptions) -> Result<Parsed, ImportError> {
    let mut parsed = Parsed::default();
    let admin_level = opts.admin_level.to_string();
    let mut aed_nodes: Vec<(i64, f64, f64, Tags)> = Vec::new();
    let mut station_nodes: Vec<(i64, f64, f64, Tags)> = Vec::new();
    let mut places: HashMap<i64, Place> = HashMap::new();
    let mut ways: Vec<TaggedWay> = Vec::new();
    let mut boundaries: Vec<Boundary> = Vec::new();
    // Administrative boundaries per admin_level, to point at a better level when the chosen one
    // finds (almost) nothing: countries number their municipalities differently.
    let mut levels: std::collections::BTreeMap<u8, usize> = std::collections::BTreeMap::new();

    // Pass 1: everything tagged that we want.
    let mut on_node = |id: i64, lat: f64, lon: f64, tags: Tags| {
        if tags.get("emergency").is_some_and(|v| v == "defibrillator") {
            aed_nodes.push((id, lat, lon, tags));
        } else if is_first_aid_post(&tags) {
            station_nodes.push((id, lat, lon, tags));
        } else if tags.contains_key("place") {
            if let Some(population) = tags.get("population").and_then(|p| parse_population(p)) {
                places.insert(
                    id,
                    Place {
                        lat,
                        lon,
                        name: tags.get("name").cloned(),
                        population,
                    },
                );
            }
        }
    };
    ElementReader::new(bytes)
        .for_each(|el| match el {
            Element::Node(n) => {
                let tags = tags_of(n.tags());
                if !tags.is_empty() {
                    on_node(n.id(), n.lat(), n.lon(), tags);
                }
            }
            Element::DenseNode(n) => {
                let mut it = n.tags().peekable();
                if it.peek().is_some() {
                    on_node(n.id(), n.lat(), n.lon(), tags_of(it));
                }
            }
            Element::Way(w) => {
                let tags = tags_of(w.tags());
                let kind = if tags.get("emergency").is_some_and(|v| v == "defibrillator") {
                    Some(WayKind::Aed)
                } else if is_first_aid_post(&tags) {
                    Some(WayKind::Station)
                } else {
                    None
                };
                if let Some(kind) = kind {
                    ways.push(TaggedWay {
                        id: w.id(),
                        refs: w.refs().collect(),
                        tags,
                        kind,
                    });
                }
            }
            Element::Relation(r) => {
                let tags = tags_of(r.tags());
                let administrative = tags.get("boundary").is_some_and(|v| v == "administrative");
                if administrative {
                    if let Some(l) = tags
                        .get("admin_level")
                        .and_then(|v| v.trim().parse::<u8>().ok())
                    {
                        *levels.entry(l).or_insert(0usize) += 1;
                    }
                }
                let is_boundary = administrative
                    && tags
                        .get("admin_level")
                        .is_some_and(|v| v.trim() == admin_level);
                if is_boundary {
                    let mut b = Boundary {
                        id: r.id(),
                        tags,
                        outer: vec![],
                        inner: vec![],
                        admin_centre: None,
                        label: None,
                    };
                    for m in r.members() {
                        let role = m.role().unwrap_or("");
                        match (m.member_type, role) {
                            (RelMemberType::Way, "inner") => b.inner.push(m.member_id),
                            (RelMemberType::Way, _) => b.outer.push(m.member_id),
                            (RelMemberType::Node, "admin_centre") => {
                                b.admin_centre = Some(m.member_id)
                            }
                            (RelMemberType::Node, "label") => b.label = Some(m.member_id),
                            _ => {}
                        }
                    }
                    boundaries.push(b);
                }
            }
        })
        .map_err(pbf_err)?;

    if let Some(note) = level_hint(opts.admin_level, boundaries.len(), &levels) {
        parsed.district_notes.push(Flagged {
            record: "admin_level".into(),
            value: note,
        });
    }

    // Pass 2: the member ways of the boundaries.
    let wanted_ways: HashSet<i64> = boundaries
        .iter()
        .flat_map(|b| b.outer.iter().chain(&b.inner))
        .copied()
        .collect();
    let mut member_ways: HashMap<i64, Vec<i64>> = HashMap::new();
    if !wanted_ways.is_empty() {
        ElementReader::new(bytes)
            .for_each(|el| {
                if let Element::Way(w) = el {
                    if wanted_ways.contains(&w.id()) {
                        member_ways.insert(w.id(), w.refs().collect());
                    }
                }
            })
            .map_err(pbf_err)?;
    }

    // Pass 3: coordinates of every node the ways use.
    let wanted_nodes: HashSet<i64> = member_ways
        .values()
        .flatten()
        .chain(ways.iter().flat_map(|w| w.refs.iter()))
        .copied()
        .collect();
    let mut coords: HashMap<i64, Coord<f64>> = HashMap::with_capacity(wanted_nodes.len());
    if !wanted_nodes.is_empty() {
        ElementReader::new(bytes)
            .for_each(|el| match el {
                Element::Node(n) if wanted_nodes.contains(&n.id()) => {
                    coords.insert(
                        n.id(),
                        Coord {
                            x: n.lon(),
                            y: n.lat(),
                        },
                    );
                }
                Element::DenseNode(n) if wanted_nodes.contains(&n.id()) => {
                    coords.insert(
                        n.id(),
                        Coord {
                            x: n.lon(),
                            y: n.lat(),
                        },
                    );
                }
                _ => {}
            })
            .map_err(pbf_err)?;
    }

    for (id, lat, lon, tags) in aed_nodes {
        let record = format!("node/{id}");
        let input = aed_from_tags(&record, Some(record.clone()), lat, lon, tags, &mut parsed);
        parsed.aeds.push((record, input));
    }
    for (id, lat, lon, tags) in station_nodes {
        let record = format!("node/{id}");
        parsed.stations.push((
            record.clone(),
            station_from_tags(Some(record), lat, lon, StationKind::FirstAidPost, tags),
        ));
    }
    for w in ways {
        let record = format!("way/{}", w.id);
        let pts: Vec<Coord<f64>> = w
            .refs
            .iter()
            .filter_map(|r| coords.get(r))
            .copied()
            .collect();
        let Some(c) = centroid(&pts) else {
            parsed.rejections.push(crate::Rejection {
                record,
                field: Some("location".into()),
                reason: "way has no nodes with coordinates in this extract".into(),
            });
            continue;
        };
        match w.kind {
            WayKind::Aed => {
                let input =
                    aed_from_tags(&record, Some(record.clone()), c.y, c.x, w.tags, &mut parsed);
                parsed.aeds.push((record, input));
            }
            WayKind::Station => {
                let s = station_from_tags(
                    Some(record.clone()),
                    c.y,
                    c.x,
                    StationKind::FirstAidPost,
                    w.tags,
                );
                parsed.stations.push((record, s));
            }
        }
    }

    for b in boundaries {
        let record = format!("relation/{}", b.id);
        let name = b
            .tags
            .get("name")
            .cloned()
            .unwrap_or_else(|| record.clone());
        let outer = assemble_rings(&b.outer, &member_ways, &coords);
        let inner = assemble_rings(&b.inner, &member_ways, &coords);
        let (outer, inner) = match (outer, inner) {
            (Ok(o), Ok(i)) if !o.is_empty() => (o, i),
            (Err(e), _) | (_, Err(e)) => {
                parsed.district_notes.push(Flagged {
                    record,
                    value: format!("{name}: skipped, {e}"),
                });
                continue;
            }
            _ => {
                parsed.district_notes.push(Flagged {
                    record,
                    value: format!("{name}: skipped, no outer ring"),
                });
                continue;
            }
        };
        let mp = build_multipolygon(outer, inner);
        let population = b
            .tags
            .get("population")
            .and_then(|p| parse_population(p))
            .or_else(|| {
                b.admin_centre
                    .and_then(|n| places.get(&n))
                    .map(|p| p.population)
            })
            .or_else(|| b.label.and_then(|n| places.get(&n)).map(|p| p.population))
            .or_else(|| place_inside(&mp, &name, &places));
        if population.is_none() {
            parsed.district_notes.push(Flagged {
                record: record.clone(),
                value: format!("{name}: no population found"),
            });
        }
        let boundary = geojson::Geometry::new(geojson::Value::from(&mp));
        parsed.districts.push((
            record.clone(),
            DistrictInput {
                source: None,
                external_ref: Some(record),
                name,
                code: b
                    .tags
                    .get("ref")
                    .or_else(|| b.tags.get("de:amtlicher_gemeindeschluessel"))
                    .cloned(),
                admin_level: Some(i32::from(opts.admin_level)),
                population,
                boundary: Some(boundary),
                target_aeds_per_10k: None,
                target_rescuers: None,
                tags: b.tags,
            },
        ));
    }
    Ok(parsed)
}

/// When the chosen `admin_level` holds at most one boundary and another level holds several,
/// says which (the nearest such level) so the user can import again with it.
fn level_hint(
    chosen: u8,
    found: usize,
    levels: &std::collections::BTreeMap<u8, usize>,
) -> Option<String> {
    if found > 1 {
        return None;
    }
    let (level, n) = levels
        .iter()
        .filter(|(l, n)| **l != chosen && **n > found.max(1))
        .min_by_key(|(l, n)| (l.abs_diff(chosen), std::cmp::Reverse(**n)))?;
    Some(format!(
        "--admin-level {chosen} found {found} district(s), but admin_level {level} has {n} boundaries in this extract: \
         import again with --admin-level {level} if those are the districts you want"
    ))
}

fn centroid(pts: &[Coord<f64>]) -> Option<Coord<f64>> {
    if pts.is_empty() {
        return None;
    }
    let n = pts.len() as f64;
    Some(Coord {
        x: pts.iter().map(|c| c.x).sum::<f64>() / n,
        y: pts.iter().map(|c| c.y).sum::<f64>() / n,
    })
}

/// The populated place inside the polygon named like the district. Never "the largest place
/// inside": a country's or a region's node lies inside one of its municipalities, and villages
/// inside others (CONVENTIONS).
fn place_inside(mp: &MultiPolygon<f64>, name: &str, places: &HashMap<i64, Place>) -> Option<i64> {
    places
        .values()
        .filter(|p| p.name.as_deref() == Some(name))
        .find(|p| mp.contains(&Point::new(p.lon, p.lat)))
        .map(|p| p.population)
}

/// Joins way chains into closed rings by matching end points. Fails if a member way is
/// missing from the extract or the chains do not close.
pub(crate) fn assemble_rings(
    way_ids: &[i64],
    ways: &HashMap<i64, Vec<i64>>,
    coords: &HashMap<i64, Coord<f64>>,
) -> Result<Vec<LineString<f64>>, String> {
    let mut pending: Vec<Vec<i64>> = Vec::with_capacity(way_ids.len());
    for id in way_ids {
        match ways.get(id) {
            Some(refs) if refs.len() >= 2 => pending.push(refs.clone()),
            Some(_) => {}
            None => {
                return Err(format!(
                    "member way/{id} is not in this extract (boundary cut by the extract)"
                ))
            }
        }
    }
    let mut rings = Vec::new();
    while let Some(mut ring) = pending.pop() {
        while ring.first() != ring.last() {
            let end = *ring.last().expect("ring has nodes");
            let Some(pos) = pending
                .iter()
                .position(|w| w.first() == Some(&end) || w.last() == Some(&end))
            else {
                return Err(format!("ring does not close at node/{end}"));
            };
            let mut next = pending.swap_remove(pos);
            if next.first() != Some(&end) {
                next.reverse();
            }
            ring.extend_from_slice(&next[1..]);
        }
        let mut pts = Vec::with_capacity(ring.len());
        for n in &ring {
            pts.push(
                *coords
                    .get(n)
                    .ok_or_else(|| format!("node/{n} of the boundary is not in this extract"))?,
            );
        }
        if pts.len() >= 4 {
            rings.push(LineString::new(pts));
        }
    }
    Ok(rings)
}

/// Each inner ring goes to the smallest outer ring that contains it.
pub(crate) fn build_multipolygon(
    outer: Vec<LineString<f64>>,
    inner: Vec<LineString<f64>>,
) -> MultiPolygon<f64> {
    let mut polys: Vec<(Polygon<f64>, Vec<LineString<f64>>)> = outer
        .into_iter()
        .map(|o| (Polygon::new(o, vec![]), vec![]))
        .collect();
    for hole in inner {
        let probe = Point::from(hole.0[0]);
        let target = polys
            .iter_mut()
            .filter(|(p, _)| p.contains(&probe))
            .min_by(|a, b| a.0.unsigned_area().total_cmp(&b.0.unsigned_area()));
        if let Some((_, holes)) = target {
            holes.push(hole);
        }
    }
    MultiPolygon::new(
        polys
            .into_iter()
            .map(|(p, holes)| Polygon::new(p.exterior().clone(), holes))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> HashMap<i64, Coord<f64>> {
        // 1 (0,0) 2 (2,0) 3 (2,2) 4 (0,2); hole 5..8 inside.
        [
            (1, 0.0, 0.0),
            (2, 2.0, 0.0),
            (3, 2.0, 2.0),
            (4, 0.0, 2.0),
            (5, 0.5, 0.5),
            (6, 1.0, 0.5),
            (7, 1.0, 1.0),
            (8, 0.5, 1.0),
        ]
        .into_iter()
        .map(|(id, x, y)| (id, Coord { x, y }))
        .collect()
    }

    #[test]
    fn joins_a_square_split_over_two_ways_in_any_direction() {
        let ways: HashMap<i64, Vec<i64>> = [(10, vec![1, 2, 3]), (11, vec![1, 4, 3])]
            .into_iter()
            .collect();
        let rings = assemble_rings(&[10, 11], &ways, &grid()).unwrap();
        assert_eq!(rings.len(), 1);
        let poly = Polygon::new(rings[0].clone(), vec![]);
        assert!((poly.unsigned_area() - 4.0).abs() < 1e-12);
    }

    #[test]
    fn holes_are_cut_out_and_open_rings_rejected() {
        let ways: HashMap<i64, Vec<i64>> = [
            (10, vec![1, 2, 3, 4, 1]),
            (20, vec![5, 6, 7, 8, 5]),
            (30, vec![1, 2, 3]),
        ]
        .into_iter()
        .collect();
        let outer = assemble_rings(&[10], &ways, &grid()).unwrap();
        let inner = assemble_rings(&[20], &ways, &grid()).unwrap();
        let mp = build_multipolygon(outer, inner);
        assert!((mp.unsigned_area() - 3.75).abs() < 1e-12);
        assert!(!mp.contains(&Point::new(0.75, 0.75)));
        assert!(mp.contains(&Point::new(1.5, 1.5)));
        assert!(assemble_rings(&[30], &ways, &grid())
            .unwrap_err()
            .contains("does not close"));
        assert!(assemble_rings(&[99], &ways, &grid())
            .unwrap_err()
            .contains("not in this extract"));
    }

    #[test]
    fn a_better_admin_level_is_named_when_the_chosen_one_finds_one() {
        let levels = [(2u8, 1usize), (4, 1), (6, 3), (7, 12), (8, 1)]
            .into_iter()
            .collect();
        let hint = level_hint(8, 1, &levels).unwrap();
        assert!(hint.contains("admin_level 7 has 12"), "{hint}");
        assert!(level_hint(8, 11, &levels).is_none());
        // Nothing better anywhere: no hint.
        let only = [(2u8, 1usize), (8, 1)].into_iter().collect();
        assert!(level_hint(8, 1, &only).is_none());
        assert!(level_hint(8, 0, &only).is_none());
    }

    #[test]
    fn only_a_same_named_place_stands_in_for_population() {
        let square = MultiPolygon::new(vec![Polygon::new(
            LineString::from(vec![
                (0.0, 0.0),
                (2.0, 0.0),
                (2.0, 2.0),
                (0.0, 2.0),
                (0.0, 0.0),
            ]),
            vec![],
        )]);
        let place = |name: &str, population, lon| Place {
            lat: 1.0,
            lon,
            name: Some(name.into()),
            population,
        };
        let mut places: HashMap<i64, Place> = HashMap::new();
        places.insert(1, place("Liechtenstein", 38_000, 1.0));
        assert_eq!(place_inside(&square, "Vaduz", &places), None);
        places.insert(2, place("Vaduz", 5229, 1.5));
        places.insert(3, place("Vaduz", 99, 5.0)); // same name, outside
        assert_eq!(place_inside(&square, "Vaduz", &places), Some(5229));
    }

    #[test]
    fn population_values_are_parsed_leniently() {
        assert_eq!(parse_population("5229"), Some(5229));
        assert_eq!(parse_population("5,229"), Some(5229));
        assert_eq!(parse_population("ca. 5000"), Some(5000));
        assert_eq!(parse_population("unknown"), None);
    }
}
