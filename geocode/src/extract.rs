//! [`Place`]s from the map features of an import ([`Extract`]): addresses (`addr:*` on nodes,
//! entrances, buildings and multipolygons, or `addr:full`), named POIs, named places and named
//! streets. A street is usually many ways: ways of one name within a few hundred metres of
//! each other become one street, answered at its vertex nearest the map view. A label without
//! a town gets the nearest town, village or suburb, so "Landstrasse" in Vaduz and in Schaan
//! read apart.

use std::collections::HashMap;

use aednet_core::geo_util::LatLon;
use aednet_core::osm::Extract;
use aednet_core::Tags;

use crate::{Kind, Place};

/// Tags that make a named feature a POI, with the values that count (`None`: any value).
const POI_KEYS: &[(&str, Option<&[&str]>)] = &[
    ("amenity", None),
    ("shop", None),
    ("tourism", None),
    ("leisure", None),
    ("office", None),
    ("healthcare", None),
    ("historic", None),
    ("craft", None),
    ("emergency", Some(&["defibrillator", "ambulance_station"])),
    ("railway", Some(&["station", "halt", "tram_stop"])),
    ("public_transport", Some(&["station"])),
    ("highway", Some(&["bus_stop"])),
    ("aeroway", Some(&["aerodrome", "terminal", "helipad"])),
    ("building", None),
    ("natural", Some(&["peak", "cave_entrance"])),
];

const PLACE_VALUES: &[&str] = &[
    "city",
    "town",
    "village",
    "suburb",
    "hamlet",
    "quarter",
    "neighbourhood",
    "borough",
    "locality",
    "isolated_dwelling",
];
/// Places a label may be completed with.
const TOWN_VALUES: &[&str] = &["city", "town", "village", "suburb", "hamlet"];

/// Ways of one street name closer than this (metres, between bounding boxes) are one street.
const STREET_JOIN_M: f64 = 400.0;

fn poi_category(t: &Tags) -> Option<String> {
    for (k, vals) in POI_KEYS {
        if let Some(v) = t.get(*k) {
            if v == "no" {
                continue;
            }
            if vals.is_none_or(|vs| vs.contains(&v.as_str())) {
                if *k == "building" && v == "yes" {
                    return Some("building".into());
                }
                return Some(v.clone());
            }
        }
    }
    None
}

fn has_addr(t: &Tags) -> bool {
    t.contains_key("addr:housenumber") || t.contains_key("addr:full")
}

fn is_poi(t: &Tags) -> bool {
    t.contains_key("name") && poi_category(t).is_some()
}

fn is_place(t: &Tags) -> bool {
    t.contains_key("name")
        && t.get("place")
            .is_some_and(|v| PLACE_VALUES.contains(&v.as_str()))
}

fn is_street(t: &Tags) -> bool {
    t.contains_key("name")
        && t.get("highway").is_some_and(|h| {
            !matches!(
                h.as_str(),
                "bus_stop" | "platform" | "proposed" | "construction" | "elevator"
            )
        })
}

/// The nodes the index wants (for the import's feature filter).
pub fn filter_node(t: &Tags) -> bool {
    has_addr(t) || is_poi(t) || is_place(t)
}

pub fn filter_way(t: &Tags) -> bool {
    has_addr(t) || is_poi(t) || is_street(t)
}

pub fn filter_area(t: &Tags) -> bool {
    has_addr(t) || is_poi(t)
}

/// Counts for the import report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractSummary {
    pub addresses: usize,
    pub pois: usize,
    pub streets: usize,
    pub places: usize,
    /// The same address on several features (an entrance and its building) kept once.
    pub duplicates: usize,
}

/// Name variants a feature is also found by.
fn variants(t: &Tags) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (k, v) in t {
        // `name:etymology:wikidata` and the like are not names.
        let named = (k.starts_with("name:") && !k.contains("etymology") && !k.contains("wiki"))
            || matches!(
                k.as_str(),
                "alt_name" | "official_name" | "short_name" | "old_name" | "loc_name" | "brand"
            );
        if named && !v.is_empty() && !out.contains(v) && Some(v) != t.get("name") {
            out.push(v.clone());
        }
    }
    out
}

fn has_cjk(s: &str) -> bool {
    s.chars().any(crate::text::is_cjk)
}

fn centroid(pts: &[LatLon]) -> Option<LatLon> {
    // A closed ring repeats its first point; leave it out of the mean.
    let pts = if pts.len() > 2 && pts.first() == pts.last() {
        &pts[..pts.len() - 1]
    } else {
        pts
    };
    if pts.is_empty() {
        return None;
    }
    let n = pts.len() as f64;
    Some(LatLon {
        lat: pts.iter().map(|p| p.lat).sum::<f64>() / n,
        lon: pts.iter().map(|p| p.lon).sum::<f64>() / n,
    })
}

struct Towns {
    towns: Vec<(LatLon, String)>,
}

impl Towns {
    fn nearest(&self, p: LatLon) -> Option<&str> {
        self.towns
            .iter()
            .min_by(|a, b| p.distance_m(&a.0).total_cmp(&p.distance_m(&b.0)))
            .map(|t| t.1.as_str())
    }
}

/// "Äulestrasse 5, 9490 Vaduz" or "衢州市柯城区人民路12号".
fn address_text(t: &Tags, towns: &Towns, pos: LatLon) -> Option<(String, Vec<String>)> {
    let get = |k: &str| t.get(k).map(String::as_str).filter(|s| !s.is_empty());
    let hn = get("addr:housenumber");
    let street = get("addr:street").or(get("addr:place"));
    let city = get("addr:city").or_else(|| towns.nearest(pos));
    let mut extra: Vec<String> = Vec::new();
    for k in ["addr:full", "addr:district", "addr:suburb", "addr:province"] {
        if let Some(v) = get(k) {
            extra.push(v.to_string());
        }
    }
    let label = match (street, hn) {
        (Some(s), Some(h)) if has_cjk(s) => {
            let mut l = String::new();
            for k in ["addr:city", "addr:district"] {
                if let Some(v) = get(k) {
                    l.push_str(v);
                }
            }
            l.push_str(s);
            l.push_str(h);
            if h.chars().all(|c| c.is_ascii_alphanumeric()) {
                l.push('号');
            }
            l
        }
        (Some(s), Some(h)) => {
            let mut l = format!("{s} {h}");
            match (get("addr:postcode"), city) {
                (Some(pc), Some(c)) => l.push_str(&format!(", {pc} {c}")),
                (None, Some(c)) => l.push_str(&format!(", {c}")),
                _ => {}
            }
            l
        }
        _ => get("addr:full")?.to_string(),
    };
    if let Some(c) = city {
        extra.push(c.to_string());
    }
    Some((label, extra))
}

fn with_town(name: &str, towns: &Towns, pos: LatLon, t: &Tags) -> String {
    match t
        .get("addr:city")
        .map(String::as_str)
        .or_else(|| towns.nearest(pos))
    {
        Some(town) if town != name && has_cjk(town) && has_cjk(name) => format!("{name}（{town}）"),
        Some(town) if town != name => format!("{name}, {town}"),
        _ => name.to_string(),
    }
}

struct Builder<'a> {
    towns: &'a Towns,
    out: Vec<Place>,
    seen: HashMap<String, Vec<LatLon>>,
    summary: ExtractSummary,
}

impl Builder<'_> {
    fn feature(&mut self, t: &Tags, pos: LatLon) {
        if is_place(t) {
            let name = &t["name"];
            self.out.push(Place {
                label: name.clone(),
                kind: Kind::Place,
                category: t.get("place").cloned(),
                lat: pos.lat,
                lon: pos.lon,
                texts: variants(t),
                line: vec![],
            });
            self.summary.places += 1;
            return;
        }
        let addr = if has_addr(t) {
            address_text(t, self.towns, pos)
        } else {
            None
        };
        if is_poi(t) {
            let name = &t["name"];
            let mut texts = variants(t);
            let label = match &addr {
                Some((a, extra)) => {
                    texts.extend(extra.iter().cloned());
                    format!("{name}, {a}")
                }
                None => with_town(name, self.towns, pos, t),
            };
            self.out.push(Place {
                label,
                kind: Kind::Poi,
                category: poi_category(t),
                lat: pos.lat,
                lon: pos.lon,
                texts,
                line: vec![],
            });
            self.summary.pois += 1;
        } else if let Some((label, texts)) = addr {
            // An entrance and its building often carry the same address: keep one.
            let near = self.seen.entry(label.clone()).or_default();
            if near.iter().any(|p| p.distance_m(&pos) < 150.0) {
                self.summary.duplicates += 1;
                return;
            }
            near.push(pos);
            self.out.push(Place {
                label,
                kind: Kind::Address,
                category: None,
                lat: pos.lat,
                lon: pos.lon,
                texts,
                line: vec![],
            });
            self.summary.addresses += 1;
        }
    }
}

/// Bounding box (min lat, min lon, max lat, max lon).
type Bbox = [f64; 4];

fn bbox(pts: &[LatLon]) -> Bbox {
    let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for p in pts {
        b[0] = b[0].min(p.lat);
        b[1] = b[1].min(p.lon);
        b[2] = b[2].max(p.lat);
        b[3] = b[3].max(p.lon);
    }
    b
}

fn bbox_gap_m(a: &Bbox, b: &Bbox) -> f64 {
    let dlat = (a[0] - b[2]).max(b[0] - a[2]).max(0.0);
    let dlon = (a[1] - b[3]).max(b[1] - a[3]).max(0.0);
    let k = ((a[0] + a[2]) * 0.5).to_radians().cos();
    ((dlat * 111_320.0).powi(2) + (dlon * 111_320.0 * k).powi(2)).sqrt()
}

/// Every searchable place in `extract`.
pub fn from_extract(extract: &Extract) -> (Vec<Place>, ExtractSummary) {
    let towns = Towns {
        towns: extract
            .nodes
            .iter()
            .filter(|n| {
                n.tags.contains_key("name")
                    && n.tags
                        .get("place")
                        .is_some_and(|v| TOWN_VALUES.contains(&v.as_str()))
            })
            .map(|n| (n.pos, n.tags["name"].clone()))
            .collect(),
    };
    let mut b = Builder {
        towns: &towns,
        out: Vec::new(),
        seen: HashMap::new(),
        summary: ExtractSummary::default(),
    };
    for n in &extract.nodes {
        b.feature(&n.tags, n.pos);
    }
    // Streets: ways of a name, joined when close.
    struct Street {
        name: String,
        tags: Tags,
        bbox: Bbox,
        pts: Vec<LatLon>,
    }
    let mut streets: Vec<Street> = Vec::new();
    let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
    for w in &extract.ways {
        if is_street(&w.tags) && !w.tags.contains_key("addr:housenumber") {
            let name = w.tags["name"].clone();
            let wb = bbox(&w.coords);
            let group = by_name.entry(name.clone()).or_default();
            match group
                .iter()
                .find(|i| bbox_gap_m(&streets[**i].bbox, &wb) < STREET_JOIN_M)
            {
                Some(&i) => {
                    let s = &mut streets[i];
                    s.pts.extend(w.coords.iter().copied());
                    s.bbox = [
                        s.bbox[0].min(wb[0]),
                        s.bbox[1].min(wb[1]),
                        s.bbox[2].max(wb[2]),
                        s.bbox[3].max(wb[3]),
                    ];
                    for (k, v) in &w.tags {
                        s.tags.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                None => {
                    group.push(streets.len());
                    streets.push(Street {
                        name,
                        tags: w.tags.clone(),
                        bbox: wb,
                        pts: w.coords.clone(),
                    });
                }
            }
            continue;
        }
        if let Some(c) = centroid(&w.coords) {
            b.feature(&w.tags, c);
        }
    }
    for a in &extract.areas {
        let outer: Vec<LatLon> = a
            .polygons
            .iter()
            .flat_map(|p| p.outer.iter().copied())
            .collect();
        if let Some(c) = centroid(&outer) {
            b.feature(&a.tags, c);
        }
    }
    for s in streets {
        let centre = LatLon {
            lat: (s.bbox[0] + s.bbox[2]) * 0.5,
            lon: (s.bbox[1] + s.bbox[3]) * 0.5,
        };
        let mid = s
            .pts
            .iter()
            .copied()
            .min_by(|a, b| centre.distance_m(a).total_cmp(&centre.distance_m(b)))
            .unwrap_or(centre);
        let mut line: Vec<[f64; 2]> = s.pts.iter().map(|p| [p.lat, p.lon]).collect();
        line.dedup();
        b.out.push(Place {
            label: with_town(&s.name, &towns, mid, &Tags::default()),
            kind: Kind::Street,
            category: s.tags.get("highway").cloned(),
            lat: mid.lat,
            lon: mid.lon,
            texts: variants(&s.tags),
            line,
        });
        b.summary.streets += 1;
    }
    (b.out, b.summary)
}
