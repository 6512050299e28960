//! The demo city's streets, rivers and parks as an OpenStreetMap [`Extract`] — tagged and
//! joined the way an OSM import produces them — so the builders of derived data (walking
//! graph, basemap, address index) read the demo like any other extract.
//!
//! Each settlement gets a grid of streets (turned a little, clipped to its outline): an avenue
//! through the centre, arterials every third street, residential streets between. Ways run the
//! length of a street with a node at every crossing, shared by the crossing street (as in OSM:
//! junctions are shared node ids). A street meeting a river stops at the bank, except the
//! arterials of cities and towns, which cross on a separate `bridge=yes` way. Parks
//! (`leisure=park`) replace a few blocks, with footways through them and a flight of steps.
//! Roads join the settlements (a minimum spanning tree, bridged where they cross a river).
//! Whatever a river leaves unreachable is dropped, so the network is one piece.

use std::collections::HashMap;

use aednet_core::osm::{Area, Extract, Node, Origin, Polygon, Way};
use aednet_core::Tags;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::geo::{dist, mix, noise, to_ll, Xy};
use super::spec::{Kind, WORDS};
use super::towns::{River, RiverIndex, Town};

/// Nodes this close to a river's bank (metres) are in the water for a street.
const BANK_M: f64 = 15.0;

pub struct Streets {
    pub extract: Extract,
    /// Per settlement (same order as the towns), its street segments in metres with the
    /// street's name: where AEDs
    /// and stations go.
    pub segments: Vec<Vec<(Xy, Xy, String)>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Seg {
    Street,
    Bridge,
    Cut,
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn named(mut t: Tags, zh: &str, en: &str) -> Tags {
    t.insert("name".into(), zh.into());
    t.insert("name:zh".into(), zh.into());
    t.insert("name:en".into(), en.into());
    t
}

struct Builder {
    water: RiverIndex,
    next_node: i64,
    next_way: i64,
    pos: HashMap<i64, Xy>,
    ways: Vec<Way>,
    nodes: Vec<Node>,
    areas: Vec<Area>,
}

impl Builder {
    fn node(&mut self, p: Xy) -> i64 {
        self.next_node += 1;
        self.pos.insert(self.next_node, p);
        self.next_node
    }

    fn way(&mut self, nodes: Vec<i64>, tags: Tags) {
        self.next_way += 1;
        let coords = nodes.iter().map(|n| to_ll(self.pos[n])).collect();
        self.ways.push(Way {
            id: self.next_way,
            tags,
            nodes,
            coords,
        });
    }

    fn closed(&mut self, ring: &[Xy], tags: Tags) {
        let mut ids: Vec<i64> = ring[..ring.len() - 1]
            .iter()
            .map(|p| self.node(*p))
            .collect();
        ids.push(ids[0]);
        self.way(ids, tags);
    }

    fn place(&mut self, p: Xy, place: &str, zh: &str, en: &str) {
        let id = self.node(p);
        self.nodes.push(Node {
            id,
            pos: to_ll(p),
            tags: named(tags(&[("place", place)]), zh, en),
        });
    }

    fn wet(&self, p: Xy) -> bool {
        self.water.bank_distance(p) < BANK_M
    }

    fn crosses(&self, a: Xy, b: Xy) -> bool {
        self.water.crosses(a, b)
    }

    /// Splits a line of points into ways by segment class: streets and bridges are ways,
    /// cuts are gaps. A bridge must land on dry ground at both ends.
    fn runs(&mut self, ids: &[i64], segs: &[Seg], street: &Tags) {
        let mut k = 0;
        while k < segs.len() {
            let class = segs[k];
            let start = k;
            while k < segs.len() && segs[k] == class {
                k += 1;
            }
            if class == Seg::Cut {
                continue;
            }
            let run = ids[start..=k].to_vec();
            let mut t = street.clone();
            if class == Seg::Bridge {
                let ends = [self.pos[&run[0]], self.pos[&run[run.len() - 1]]];
                if ends.iter().any(|p| self.wet(*p)) {
                    continue;
                }
                t.insert("bridge".into(), "yes".into());
                t.insert("layer".into(), "1".into());
            }
            self.way(run, t);
        }
    }
}

/// Street and park names of one settlement: its own order of the words.
struct Names {
    order: Vec<usize>,
}

impl Names {
    fn street(&self, n: usize, zh: &str, en: &str) -> (String, String) {
        let (w, round) = (WORDS[self.order[n % WORDS.len()]], n / WORDS.len());
        let (rz, re) = [("", ""), ("二", "2nd "), ("三", "3rd "), ("四", "4th ")][round.min(3)];
        (format!("{}{rz}{zh}", w.0), format!("{} {re}{en}", w.1))
    }

    fn park(&self, k: usize) -> (String, String) {
        let w = WORDS[self.order[(k * 7 + 3) % WORDS.len()]];
        (format!("{}公园", w.0), format!("{} Park", w.1))
    }
}

/// A 2 × 2-block park at grid (i0, j0).
#[derive(Clone, Copy)]
struct Park {
    i0: i32,
    j0: i32,
}

impl Park {
    fn interior(&self, ew: bool, line: i32, m: i32) -> bool {
        let (across, along) = if ew {
            (self.j0, self.i0)
        } else {
            (self.i0, self.j0)
        };
        across < line && line < across + 2 && along <= m && m < along + 2
    }
}

struct Grid<'t> {
    t: &'t Town,
    ids: HashMap<(i32, i32), i64>,
}

impl Grid<'_> {
    fn at(&self, i: i32, j: i32) -> Xy {
        let s = self.t.block();
        let (c, sn) = (self.t.angle.cos(), self.t.angle.sin());
        let (x, y) = (f64::from(i) * s, f64::from(j) * s);
        (
            self.t.center.0 + x * c - y * sn,
            self.t.center.1 + x * sn + y * c,
        )
    }

    fn id(&mut self, b: &mut Builder, i: i32, j: i32) -> i64 {
        if let Some(id) = self.ids.get(&(i, j)) {
            return *id;
        }
        let id = b.node(self.at(i, j));
        self.ids.insert((i, j), id);
        id
    }
}

fn town_streets(b: &mut Builder, t: &Town, rng: &mut ChaCha8Rng) -> i64 {
    let n = (t.radius * 1.4 / t.block()).ceil() as i32;
    let mut names = Names {
        order: (0..WORDS.len()).collect(),
    };
    names.order.shuffle(rng);
    let mut g = Grid {
        t,
        ids: HashMap::new(),
    };
    let ok = |g: &Grid<'_>, b: &Builder, i: i32, j: i32| {
        let p = g.at(i, j);
        t.inside(p) && !b.wet(p)
    };
    let parks_wanted = match t.kind {
        Kind::City => 2,
        Kind::Town => 1,
        Kind::Village => 0,
    };
    let mut parks: Vec<Park> = Vec::new();
    for _ in 0..40 {
        if parks.len() == parks_wanted {
            break;
        }
        let p = Park {
            i0: rng.gen_range(-n / 2..n / 2),
            j0: rng.gen_range(-n / 2..n / 2),
        };
        let all_dry = (0..3).all(|a| (0..3).all(|c| ok(&g, b, p.i0 + a, p.j0 + c)))
            && !b.crosses(g.at(p.i0, p.j0), g.at(p.i0 + 2, p.j0 + 2))
            && !b.crosses(g.at(p.i0 + 2, p.j0), g.at(p.i0, p.j0 + 2));
        let clear = (p.i0, p.j0) != (-1, -1)
            && parks
                .iter()
                .all(|q| (q.i0 - p.i0).abs() >= 3 || (q.j0 - p.j0).abs() >= 3);
        if all_dry && clear {
            parks.push(p);
        }
    }
    for ew in [true, false] {
        for line in -n..=n {
            let arterial = line % 3 == 0 && t.kind != Kind::Village;
            let highway = match (t.kind, line == 0, arterial) {
                (Kind::City, true, _) => "primary",
                (Kind::City, _, true) | (Kind::Town, true, _) => "secondary",
                (Kind::Town, _, true) => "tertiary",
                (Kind::Village, true, _) => "unclassified",
                _ => "residential",
            };
            let serial = (line + n) as usize + if ew { 0 } else { (2 * n + 1) as usize };
            let (zh, en) = match (line == 0 && t.kind != Kind::Village, ew) {
                (true, _) => ("大道", "Avenue"),
                (false, true) => ("路", "Road"),
                (false, false) => ("街", "Street"),
            };
            let (name, name_en) = names.street(serial, zh, en);
            let street = named(tags(&[("highway", highway)]), &name, &name_en);
            let ij = |m: i32| if ew { (m, line) } else { (line, m) };
            let segs: Vec<Seg> = (-n..n)
                .map(|m| {
                    let (a, c) = (ij(m), ij(m + 1));
                    let (pa, pc) = (g.at(a.0, a.1), g.at(c.0, c.1));
                    if !t.inside(pa)
                        || !t.inside(pc)
                        || parks.iter().any(|p| p.interior(ew, line, m))
                    {
                        Seg::Cut
                    } else if b.wet(pa) || b.wet(pc) || b.crosses(pa, pc) {
                        if arterial {
                            Seg::Bridge
                        } else {
                            Seg::Cut
                        }
                    } else {
                        Seg::Street
                    }
                })
                .collect();
            if segs.iter().all(|s| *s == Seg::Cut) {
                continue;
            }
            // Ids only for the points a kept segment touches.
            let ids: Vec<i64> = (-n..=n)
                .enumerate()
                .map(|(k, m)| {
                    let used = (k > 0 && segs[k - 1] != Seg::Cut)
                        || (k < segs.len() && segs[k] != Seg::Cut);
                    let (i, j) = ij(m);
                    if used {
                        g.id(b, i, j)
                    } else {
                        0
                    }
                })
                .collect();
            b.runs(&ids, &segs, &street);
        }
    }
    for (k, p) in parks.iter().enumerate() {
        let corner = |a: i32, c: i32| (p.i0 + a, p.j0 + c);
        let mid = g.at(p.i0 + 1, p.j0 + 1);
        let centre = g.id(b, p.i0 + 1, p.j0 + 1);
        let footway = tags(&[("highway", "footway")]);
        for (a, c) in [
            (0, 0),
            (2, 0),
            (2, 2),
            (0, 2),
            (1, 0),
            (2, 1),
            (1, 2),
            (0, 1),
        ] {
            let (i, j) = corner(a, c);
            let from = g.id(b, i, j);
            if (a, c) == (0, 0) {
                // A flight of steps halfway along the first diagonal.
                let (pa, pm) = (g.at(i, j), mid);
                let lerp = |t: f64| (pa.0 + t * (pm.0 - pa.0), pa.1 + t * (pm.1 - pa.1));
                let (q1, q2) = (b.node(lerp(0.4)), b.node(lerp(0.6)));
                b.way(vec![from, q1], footway.clone());
                b.way(
                    vec![q1, q2],
                    tags(&[
                        ("highway", "steps"),
                        ("incline", "up"),
                        ("step_count", "24"),
                    ]),
                );
                b.way(vec![q2, centre], footway.clone());
            } else {
                b.way(vec![from, centre], footway.clone());
            }
        }
        // The park's edge, set back from the kerb.
        let ring: Vec<Xy> = [(0, 0), (2, 0), (2, 2), (0, 2), (0, 0)]
            .iter()
            .map(|&(a, c)| {
                let q = g.at(p.i0 + a, p.j0 + c);
                (q.0 + (mid.0 - q.0) * 0.06, q.1 + (mid.1 - q.1) * 0.06)
            })
            .collect();
        let (zh, en) = names.park(k);
        b.closed(&ring, named(tags(&[("leisure", "park")]), &zh, &en));
    }
    g.id(b, 0, 0)
}

/// Union-find over node ids: which ways hang together.
struct Components {
    parent: HashMap<i64, i64>,
}

impl Components {
    fn new(ways: &[Way]) -> Self {
        let mut c = Components {
            parent: HashMap::new(),
        };
        for w in ways {
            for pair in w.nodes.windows(2) {
                c.union(pair[0], pair[1]);
            }
        }
        c
    }

    fn find(&mut self, x: i64) -> i64 {
        let p = *self.parent.entry(x).or_insert(x);
        if p == x {
            return x;
        }
        let r = self.find(p);
        self.parent.insert(x, r);
        r
    }

    fn union(&mut self, a: i64, b: i64) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent.insert(ra, rb);
        }
    }
}

pub fn is_street(w: &Way) -> bool {
    w.tags.contains_key("highway")
}

/// Keeps the streets joined to `anchor`, drops the rest (pieces a river cut off).
fn keep_joined(ways: &mut Vec<Way>, from: usize, anchor: i64) {
    let mut c = Components::new(&ways[from..]);
    let root = c.find(anchor);
    let mut k = from;
    while k < ways.len() {
        if is_street(&ways[k]) && c.find(ways[k].nodes[0]) != root {
            ways.swap_remove(k);
        } else {
            k += 1;
        }
    }
}

/// Minimum spanning tree over the settlements (Prim): which pairs a road joins.
fn road_pairs(towns: &[Town]) -> Vec<(usize, usize)> {
    let mut best: Vec<(f64, usize)> = towns
        .iter()
        .map(|t| (dist(t.center, towns[0].center), 0))
        .collect();
    let mut done = vec![false; towns.len()];
    done[0] = true;
    let mut pairs = Vec::new();
    for _ in 1..towns.len() {
        let Some(k) = (0..towns.len())
            .filter(|k| !done[*k])
            .min_by(|a, b| best[*a].0.total_cmp(&best[*b].0))
        else {
            break;
        };
        done[k] = true;
        pairs.push((best[k].1, k));
        for j in 0..towns.len() {
            let d = dist(towns[j].center, towns[k].center);
            if !done[j] && d < best[j].0 {
                best[j] = (d, k);
            }
        }
    }
    pairs
}

/// Metres between house numbers along a street, and from the centre line to the door.
const HOUSE_SPACING_M: f64 = 45.0;
const HOUSE_SETBACK_M: f64 = 12.0;

/// House numbers along every town street (odd on the left, even on the right, counted along
/// the street from its first segment), as `addr:*` nodes the way OSM maps them: the demo
/// dispatcher can type "人民路 12 号" as on a real call. No randomness, so the rest of the city
/// does not move.
fn house_numbers(b: &mut Builder, towns: &[Town], segments: &[Vec<(Xy, Xy, String)>]) {
    for (k, t) in towns.iter().enumerate() {
        let mut next: HashMap<&str, (u32, u32)> = HashMap::new();
        for (p, q, name) in &segments[k] {
            if name.is_empty() {
                continue;
            }
            let len = dist(*p, *q);
            if len < 1.0 {
                continue;
            }
            let (ux, uy) = ((q.0 - p.0) / len, (q.1 - p.1) / len);
            let mut d = HOUSE_SPACING_M / 2.0;
            while d < len {
                let (odd, even) = next.entry(name.as_str()).or_insert((1, 2));
                for (side, no) in [(1.0, odd), (-1.0, even)] {
                    let at: Xy = (
                        p.0 + ux * d - uy * HOUSE_SETBACK_M * side,
                        p.1 + uy * d + ux * HOUSE_SETBACK_M * side,
                    );
                    b.next_node += 1;
                    b.nodes.push(Node {
                        id: b.next_node,
                        pos: to_ll(at),
                        tags: tags(&[
                            ("addr:street", name),
                            ("addr:housenumber", &no.to_string()),
                            ("addr:city", &t.name),
                        ]),
                    });
                    *no += 2;
                }
                d += HOUSE_SPACING_M;
            }
        }
    }
}

/// The streets, parks, rivers and roads of the demo city, with place nodes.
pub fn build(towns: &[Town], rivers: &[River], rng: &mut ChaCha8Rng) -> Streets {
    let mut b = Builder {
        water: RiverIndex::new(rivers),
        next_node: 0,
        next_way: 0,
        pos: HashMap::new(),
        ways: Vec::new(),
        nodes: Vec::new(),
        areas: Vec::new(),
    };
    let mut centres = Vec::new();
    // Per town, its street nodes that roads may start from.
    let mut ends: Vec<Vec<(i64, Xy)>> = Vec::new();
    for t in towns {
        let from = b.ways.len();
        let centre = town_streets(&mut b, t, rng);
        keep_joined(&mut b.ways, from, centre);
        centres.push(centre);
        let mut nodes: Vec<(i64, Xy)> = b.ways[from..]
            .iter()
            .filter(|w| is_street(w) && !w.tags.contains_key("bridge"))
            .flat_map(|w| w.nodes.iter().map(|n| (*n, b.pos[n])))
            .collect();
        nodes.sort_by_key(|n| n.0);
        nodes.dedup_by_key(|n| n.0);
        ends.push(nodes);
        let outline = t.outline();
        b.closed(&outline, tags(&[("landuse", "residential")]));
        b.place(t.center, t.kind.place(), &t.name, &t.en);
        for (zh, en, p) in &t.suburbs {
            b.place(*p, "suburb", zh, en);
        }
    }
    for (a, c) in road_pairs(towns) {
        let nearest = |from: usize, to: Xy| {
            ends[from]
                .iter()
                .min_by(|p, q| dist(p.1, to).total_cmp(&dist(q.1, to)))
                .copied()
        };
        let (Some(pa), Some(pc)) = (nearest(a, towns[c].center), nearest(c, towns[a].center))
        else {
            continue;
        };
        let len = dist(pa.1, pc.1);
        let n = (len / 400.0).ceil().max(1.0) as usize;
        let (nx, ny) = (
            -(pc.1 .1 - pa.1 .1) / len.max(1.0),
            (pc.1 .0 - pa.1 .0) / len.max(1.0),
        );
        let amp = (len * 0.04).min(250.0);
        let key = mix((a * 1000 + c) as u64);
        let pts: Vec<Xy> = (0..=n)
            .map(|i| {
                let s = i as f64 / n as f64;
                let off = amp * (std::f64::consts::PI * s).sin() * noise(key, s * len / 1200.0);
                (
                    pa.1 .0 + s * (pc.1 .0 - pa.1 .0) + off * nx,
                    pa.1 .1 + s * (pc.1 .1 - pa.1 .1) + off * ny,
                )
            })
            .collect();
        let ids: Vec<i64> = (0..=n)
            .map(|i| match i {
                0 => pa.0,
                i if i == n => pc.0,
                i => b.node(pts[i]),
            })
            .collect();
        let segs: Vec<Seg> = pts
            .windows(2)
            .map(|w| {
                if b.wet(w[0]) || b.wet(w[1]) || b.crosses(w[0], w[1]) {
                    Seg::Bridge
                } else {
                    Seg::Street
                }
            })
            .collect();
        let major = towns[a].kind != Kind::Village && towns[c].kind != Kind::Village;
        let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
        let short = |s: &str| s.trim_end_matches(" Village").to_string();
        let road = named(
            tags(&[("highway", if major { "secondary" } else { "tertiary" })]),
            &format!("{}{}线", first(&towns[a].name), first(&towns[c].name)),
            &format!("{}–{} Road", short(&towns[a].en), short(&towns[c].en)),
        );
        b.runs(&ids, &segs, &road);
    }
    if let Some(&anchor) = centres.first() {
        keep_joined(&mut b.ways, 0, anchor);
    }
    for r in rivers {
        let ids: Vec<i64> = r.line.iter().map(|p| b.node(*p)).collect();
        b.way(ids, named(tags(&[("waterway", "river")]), r.name, r.en));
        let half = r.width / 2.0;
        let side = |sign: f64| -> Vec<Xy> {
            (0..r.line.len())
                .map(|k| {
                    let a = r.line[k.saturating_sub(1)];
                    let c = r.line[(k + 1).min(r.line.len() - 1)];
                    let l = dist(a, c).max(1e-9);
                    let (nx, ny) = (-(c.1 - a.1) / l, (c.0 - a.0) / l);
                    (
                        r.line[k].0 + sign * half * nx,
                        r.line[k].1 + sign * half * ny,
                    )
                })
                .collect()
        };
        let mut outer = side(1.0);
        outer.extend(side(-1.0).into_iter().rev());
        outer.push(outer[0]);
        b.next_way += 1;
        b.areas.push(Area {
            id: b.next_way,
            tags: named(
                tags(&[("natural", "water"), ("water", "river")]),
                r.name,
                r.en,
            ),
            polygons: vec![Polygon {
                outer: outer.into_iter().map(to_ll).collect(),
                inner: vec![],
            }],
        });
    }
    let mut segments = vec![Vec::new(); towns.len()];
    for (k, t) in towns.iter().enumerate() {
        let (lo, hi) = (
            ends[k].first().map_or(0, |n| n.0),
            ends[k].last().map_or(0, |n| n.0),
        );
        for w in b.ways.iter().filter(|w| {
            is_street(w)
                && !w.tags.contains_key("bridge")
                && matches!(
                    w.tag("highway"),
                    Some("primary" | "secondary" | "tertiary" | "residential" | "unclassified")
                )
                && w.nodes.iter().all(|n| (lo..=hi).contains(n))
        }) {
            let name = w.tags.get("name").cloned().unwrap_or_default();
            for pair in w.nodes.windows(2) {
                let (p, q) = (b.pos[&pair[0]], b.pos[&pair[1]]);
                if t.inside(p) && t.inside(q) {
                    segments[k].push((p, q, name.clone()));
                }
            }
        }
    }
    house_numbers(&mut b, towns, &segments);
    Streets {
        extract: Extract {
            nodes: b.nodes,
            ways: b.ways,
            areas: b.areas,
            origin: Origin::Synthetic,
            ways_with_missing_nodes: 0,
        },
        segments,
    }
}
