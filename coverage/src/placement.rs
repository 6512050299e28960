//! Where the next AEDs should go: greedy maximal covering with lazy evaluation over candidate
//! sites, relocation of existing units, and which AEDs to convert to 24/7 cabinets.
//!
//! Greedy maximal covering picks, k times, the site that covers the most not-yet-covered
//! people. Coverage is submodular, so the result is never below (1 − 1/e) ≈ 63 % of the best
//! possible choice of k sites (Nemhauser, Wolsey & Fisher 1978); the tests check this against
//! exhaustive search. Lazy evaluation: a site's gain can only shrink as others are picked, so a
//! stale gain is an upper bound and most sites are never re-evaluated.

use std::collections::BinaryHeap;

use aednet_core::LatLon;
use aednet_geoindex::aed_index::OrdF64;
use chrono_tz::Tz;
use serde::Serialize;

use crate::grid::Cell;
use crate::map::CoverageMap;

/// Picks up to `k` of `sets` (each a list of element indices) maximising the weight of newly
/// covered elements; `covered` is updated. Returns (set index, gain) in the order picked; stops
/// early when nothing more can be gained.
pub fn greedy_max_cover(
    weights: &[f64],
    sets: &[Vec<u32>],
    covered: &mut [bool],
    k: usize,
) -> Vec<(usize, f64)> {
    let gain = |s: &[u32], covered: &[bool]| -> f64 {
        s.iter()
            .filter(|&&e| !covered[e as usize])
            .map(|&e| weights[e as usize])
            .sum()
    };
    // Ties go to the lower index (Reverse), so results are deterministic.
    let mut heap: BinaryHeap<(OrdF64, std::cmp::Reverse<usize>)> = sets
        .iter()
        .enumerate()
        .map(|(i, s)| (OrdF64(gain(s, covered)), std::cmp::Reverse(i)))
        .collect();
    let mut picked = Vec::with_capacity(k);
    while picked.len() < k {
        let Some((OrdF64(stale), std::cmp::Reverse(i))) = heap.pop() else {
            break;
        };
        if stale <= 0.0 {
            break;
        }
        let fresh = gain(&sets[i], covered);
        // Taken only if it still beats every other set's upper bound, ties included (so the
        // choice is the plain greedy's: highest gain, then lowest index).
        let beats = heap
            .peek()
            .is_none_or(|top| (OrdF64(fresh), std::cmp::Reverse(i)) >= *top);
        if beats {
            if fresh <= 0.0 {
                break;
            }
            for &e in &sets[i] {
                covered[e as usize] = true;
            }
            picked.push((i, fresh));
        } else {
            heap.push((OrdF64(fresh), std::cmp::Reverse(i)));
        }
    }
    picked
}

/// The best choice of `k` sets by trying every combination: the reference for tests on small
/// instances (C(n, k) combinations).
pub fn exhaustive_max_cover(
    weights: &[f64],
    sets: &[Vec<u32>],
    covered: &[bool],
    k: usize,
) -> (Vec<usize>, f64) {
    fn value(weights: &[f64], sets: &[Vec<u32>], covered: &[bool], pick: &[usize]) -> f64 {
        let mut c = covered.to_vec();
        let mut v = 0.0;
        for &i in pick {
            for &e in &sets[i] {
                if !c[e as usize] {
                    c[e as usize] = true;
                    v += weights[e as usize];
                }
            }
        }
        v
    }
    fn rec(
        weights: &[f64],
        sets: &[Vec<u32>],
        covered: &[bool],
        k: usize,
        from: usize,
        cur: &mut Vec<usize>,
        best: &mut (Vec<usize>, f64),
    ) {
        if cur.len() == k || from == sets.len() {
            let v = value(weights, sets, covered, cur);
            if v > best.1 {
                *best = (cur.clone(), v);
            }
            return;
        }
        for i in from..sets.len() {
            cur.push(i);
            rec(weights, sets, covered, k, i + 1, cur, best);
            cur.pop();
        }
    }
    let mut best = (Vec::new(), 0.0);
    rec(
        weights,
        sets,
        covered,
        k.min(sets.len()),
        0,
        &mut Vec::new(),
        &mut best,
    );
    best
}

/// A place a unit could go.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub pos: LatLon,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// New units to place.
    pub add: usize,
    /// Only this district's cells count (and default candidates come from it).
    pub district: Option<i64>,
    /// Candidate sites; default: the centres of the district's (or grid's) cells.
    pub candidates: Option<Vec<Candidate>>,
    /// Existing units that may be moved to a candidate site.
    pub relocate: usize,
    /// Suggest AEDs to convert to 24/7 outdoor cabinets (this many at most).
    pub suggest_24_7: usize,
    /// Time zone of the week for 24/7 suggestions.
    pub tz: Option<Tz>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Coverage {
    pub share: f64,
    pub covered_population: f64,
    pub population: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    pub lat: f64,
    pub lon: f64,
    pub cell: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub gain_population: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Relocation {
    pub aed_id: i64,
    pub from: Point,
    pub to: Point,
    /// People newly covered at the new site minus those only the unit covered where it stood.
    pub gain_population: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversion {
    pub aed_id: i64,
    pub name: Option<String>,
    /// People covered on average over the week who are not now (hours it is closed and nothing
    /// else covers them), if it were open 24/7.
    pub gain: f64,
    /// The same, over night hours (00:00–06:00 local) only.
    pub night_gain: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub before: Coverage,
    pub after: Coverage,
    pub sites: Vec<Site>,
    pub relocations: Vec<Relocation>,
    pub conversions_24_7: Vec<Conversion>,
    /// Candidate sites considered.
    pub candidates: usize,
}

fn coverage(cells: &[Cell], in_scope: &[bool], covered: &[bool]) -> Coverage {
    let (mut pop, mut cov, mut n, mut nc) = (0.0, 0.0, 0usize, 0usize);
    for (i, c) in cells.iter().enumerate() {
        if in_scope[i] {
            pop += c.population;
            n += 1;
            if covered[i] {
                cov += c.population;
                nc += 1;
            }
        }
    }
    let share = if pop > 0.0 {
        cov / pop
    } else if n > 0 {
        nc as f64 / n as f64
    } else {
        0.0
    };
    Coverage {
        share,
        covered_population: cov,
        population: pop,
    }
}

/// Plans additions, relocations and 24/7 conversions on the map as it stands at its time.
pub fn plan(map: &CoverageMap, req: &PlanRequest) -> Plan {
    let grid = map.grid();
    let cells = &grid.cells;
    let in_scope: Vec<bool> = cells
        .iter()
        .map(|c| req.district.is_none_or(|d| c.district == Some(d)))
        .collect();
    // Without population anywhere in scope, every cell weighs one (cover area instead).
    let any_pop = cells
        .iter()
        .zip(&in_scope)
        .any(|(c, s)| *s && c.population > 0.0);
    let weights: Vec<f64> = cells
        .iter()
        .zip(&in_scope)
        .map(|(c, s)| match (s, any_pop) {
            (false, _) => 0.0,
            (true, true) => c.population,
            (true, false) => 1.0,
        })
        .collect();
    let mut counts = map.cover_counts();
    let mut covered: Vec<bool> = counts.iter().map(|&n| n > 0).collect();
    let before = coverage(cells, &in_scope, &covered);

    let candidates: Vec<Candidate> = req.candidates.clone().unwrap_or_else(|| {
        cells
            .iter()
            .zip(&in_scope)
            .filter(|(_, s)| **s)
            .map(|(c, _)| Candidate {
                pos: c.center,
                name: None,
            })
            .collect()
    });
    let sets: Vec<Vec<u32>> = candidates.iter().map(|c| map.cover_set_at(c.pos)).collect();
    let to_site = |i: usize, gain: f64| {
        let c = &candidates[i];
        Site {
            lat: c.pos.lat,
            lon: c.pos.lon,
            cell: crate::grid::cell_at(c.pos, grid.res)
                .map(|c| c.to_string())
                .unwrap_or_default(),
            name: c.name.clone(),
            gain_population: gain,
        }
    };
    let picked = greedy_max_cover(&weights, &sets, &mut covered, req.add);
    for (i, _) in &picked {
        for &e in &sets[*i] {
            counts[e as usize] += 1;
        }
    }
    let sites: Vec<Site> = picked.iter().map(|&(i, g)| to_site(i, g)).collect();

    // Relocation: repeatedly move the unit whose loss (people only it covers) is smallest to
    // the candidate that gains most, while that is a net gain.
    let mut relocations = Vec::new();
    let mut moved = std::collections::HashSet::new();
    for _ in 0..req.relocate {
        let unit = map
            .entries()
            .filter(|e| map.is_active(e.id) && !moved.contains(&e.id))
            .filter(|e| {
                crate::grid::cell_at(e.pos, grid.res)
                    .and_then(|c| grid.index_of(c))
                    .is_some_and(|i| in_scope[i as usize])
            })
            .map(|e| {
                let set = map.cover_set(e.id);
                let loss: f64 = set
                    .iter()
                    .filter(|&&c| counts[c as usize] == 1)
                    .map(|&c| weights[c as usize])
                    .sum();
                (OrdF64(loss), e.id, e.pos, set)
            })
            .min_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let Some((OrdF64(loss), id, from, set)) = unit else {
            break;
        };
        for &c in &set {
            counts[c as usize] -= 1;
        }
        let covered_without: Vec<bool> = counts.iter().map(|&n| n > 0).collect();
        let best = sets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let g: f64 = s
                    .iter()
                    .filter(|&&c| !covered_without[c as usize])
                    .map(|&c| weights[c as usize])
                    .sum();
                (OrdF64(g), std::cmp::Reverse(i))
            })
            .max();
        match best {
            Some((OrdF64(gain), std::cmp::Reverse(i))) if gain > loss => {
                for &c in &sets[i] {
                    counts[c as usize] += 1;
                }
                moved.insert(id);
                let to = candidates[i].pos;
                relocations.push(Relocation {
                    aed_id: id,
                    from: Point {
                        lat: from.lat,
                        lon: from.lon,
                    },
                    to: Point {
                        lat: to.lat,
                        lon: to.lon,
                    },
                    gain_population: gain - loss,
                });
            }
            _ => {
                for &c in &set {
                    counts[c as usize] += 1;
                }
                break;
            }
        }
    }
    let covered_after: Vec<bool> = counts.iter().map(|&n| n > 0).collect();
    let after = coverage(cells, &in_scope, &covered_after);

    let conversions_24_7 = if req.suggest_24_7 > 0 {
        conversions(map, req, &weights)
    } else {
        Vec::new()
    };
    Plan {
        before,
        after,
        sites,
        relocations,
        conversions_24_7,
        candidates: candidates.len(),
    }
}

/// For each usable AED that is closed at some hour of the week: the people it would cover in
/// the hours it is closed and nothing else covers them, averaged over the week.
fn conversions(map: &CoverageMap, req: &PlanRequest, weights: &[f64]) -> Vec<Conversion> {
    let p = map.params();
    let tz = req.tz.unwrap_or(Tz::UTC);
    let instants = map.week_instants(tz);
    let eligible: Vec<&aednet_geoindex::AedEntry> =
        map.entries().filter(|e| p.eligible(e)).collect();
    let sets: Vec<Vec<u32>> = eligible.iter().map(|e| map.cover_set(e.id)).collect();
    let mut gain = vec![0.0; eligible.len()];
    let mut night = vec![0.0; eligible.len()];
    let mut closed_ever = vec![false; eligible.len()];
    for t in &instants {
        let open: Vec<bool> = eligible
            .iter()
            .map(|e| p.open_in(e.schedule.hours().state(*t)))
            .collect();
        let mut counts = vec![0u32; map.grid().len()];
        for (i, s) in sets.iter().enumerate() {
            if open[i] {
                for &c in s {
                    counts[c as usize] += 1;
                }
            }
        }
        let is_night = {
            use chrono::Timelike;
            t.with_timezone(&tz).hour() < 6
        };
        for (i, s) in sets.iter().enumerate() {
            if open[i] {
                continue;
            }
            closed_ever[i] = true;
            let g: f64 = s
                .iter()
                .filter(|&&c| counts[c as usize] == 0)
                .map(|&c| weights[c as usize])
                .sum();
            gain[i] += g / instants.len() as f64;
            if is_night {
                night[i] += g / 42.0;
            }
        }
    }
    let mut out: Vec<Conversion> = eligible
        .iter()
        .enumerate()
        .filter(|(i, _)| closed_ever[*i] && gain[*i] > 0.0)
        .map(|(i, e)| Conversion {
            aed_id: e.id,
            name: e.detail.name.clone(),
            gain: gain[i],
            night_gain: night[i],
        })
        .collect();
    out.sort_by(|a, b| b.gain.total_cmp(&a.gain).then(a.aed_id.cmp(&b.aed_id)));
    out.truncate(req.suggest_24_7);
    out
}
