//! `aednet simulate dispatch`: a seeded simulation of cardiac arrests in the demo city, the same
//! rescuers and AEDs offered to several dispatch policies side by side.
//!
//! Each arrest is independent and happens at a random hour of a week, at a place drawn by
//! population (district by its population, then near one of the district's public sites —
//! the demo city's proxy for where people are). A quarter of the rescuers are on duty, at
//! places drawn the same way with a wider spread. AEDs are the demo city's, filtered as a
//! caller's query would be at that hour (opening hours, readiness, access) through the real
//! geoindex. Alerted rescuers accept with a probability after a reaction delay, and move at
//! 2.3 m/s over a 1.2 detour; unanswered offers time out and policies with waves alert again.
//! The aednet policy is [`aednet_dispatch::plan`] itself, wave by wave.

use std::collections::HashSet;
use std::fmt::Write as _;

use aednet_core::LatLon;
use aednet_dispatch::{plan, AedOption, Candidate, OfferRole, Policy};
use aednet_geoindex::{AedEntry, AedIndex, Filters, Schedules, WalkModel};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub incidents: usize,
    pub seed: u64,
    /// Probability an alerted rescuer accepts (field studies: 0.17–0.47).
    pub accept: f64,
    /// Share of rescuers on duty at any time.
    pub on_duty: f64,
    /// The aednet policy under test (the configured `[dispatch]` by default).
    pub policy: Policy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Aednet,
    GoodSam,
    HeartRunner,
    HartslagNu,
}

impl Style {
    pub const ALL: [Style; 4] = [
        Style::Aednet,
        Style::GoodSam,
        Style::HeartRunner,
        Style::HartslagNu,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Style::Aednet => "aednet (default policy)",
            Style::GoodSam => "GoodSAM-style (3 nearest ≤ 500 m/1 km, all direct)",
            Style::HeartRunner => "HeartRunner-style (≤ 20 within 1.8 km, first CPR, rest fetch)",
            Style::HartslagNu => "HartslagNu-style (≤ 30 within 1 km, 1/3 direct, 2/3 via AED)",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PolicyStats {
    pub aed_4: usize,
    pub aed_8: usize,
    pub cpr_times: Vec<f64>,
    pub alerts: usize,
    pub with_acceptance: usize,
    pub not_needed: usize,
    pub incidents: usize,
}

impl PolicyStats {
    fn pct(&self, n: usize) -> f64 {
        100.0 * n as f64 / self.incidents.max(1) as f64
    }
    /// Over all incidents: one where nobody came counts as never (`None` past that share).
    fn quantile(&self, q: f64) -> Option<f64> {
        let mut v = self.cpr_times.clone();
        v.sort_by(f64::total_cmp);
        let rank = ((self.incidents.max(1) - 1) as f64 * q).round() as usize;
        v.get(rank).copied()
    }
}

struct World {
    aeds: AedIndex,
    rescuers: Vec<LatLon>,
    sites: Vec<(usize, LatLon)>,
    weights: Vec<f64>,
}

fn jitter(rng: &mut ChaCha8Rng, p: LatLon, sd_m: f64) -> LatLon {
    // Box–Muller; 1° latitude ≈ 111 km.
    let (u1, u2): (f64, f64) = (rng.gen_range(1e-9..1.0), rng.gen());
    let r = (-2.0 * u1.ln()).sqrt() * sd_m;
    let a = std::f64::consts::TAU * u2;
    LatLon {
        lat: p.lat + r * a.cos() / 111_000.0,
        lon: p.lon + r * a.sin() / (111_000.0 * p.lat.to_radians().cos()),
    }
}

fn place(rng: &mut ChaCha8Rng, w: &World, sd_m: f64) -> LatLon {
    let total: f64 = w.weights.iter().sum();
    let mut x = rng.gen_range(0.0..total);
    let mut district = 0;
    for (i, wt) in w.weights.iter().enumerate() {
        if x < *wt {
            district = i;
            break;
        }
        x -= wt;
    }
    let sites: Vec<&LatLon> = w
        .sites
        .iter()
        .filter(|(d, _)| *d == district)
        .map(|(_, p)| p)
        .collect();
    let base = if sites.is_empty() {
        w.sites[rng.gen_range(0..w.sites.len())].1
    } else {
        *sites[rng.gen_range(0..sites.len())]
    };
    jitter(rng, base, sd_m)
}

fn world(seed: u64, now: DateTime<Utc>) -> World {
    let city = crate::demo::generate(seed, now);
    let mut schedules = Schedules::default();
    let entries: Vec<AedEntry> = city
        .aeds
        .iter()
        .enumerate()
        .map(|(i, (_, d))| AedEntry {
            id: i as i64 + 1,
            pos: d.location,
            access: d.access,
            status: d.readiness.status,
            indoor: d.indoor,
            floor: aednet_geoindex::parse_floor(d.level.as_deref()),
            cabinet_locked: d.cabinet_locked,
            schedule: schedules.get(d.opening_hours.as_deref(), d.time_zone, d.location),
            detail: Default::default(),
        })
        .collect();
    let mut sites: Vec<(usize, LatLon)> =
        city.aeds.iter().map(|(di, d)| (*di, d.location)).collect();
    sites.extend(city.stations.iter().map(|(di, s)| (*di, s.data.location)));
    let weights = city
        .districts
        .iter()
        .map(|d| d.population.unwrap_or(1) as f64)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7e5c);
    let w0 = World {
        aeds: AedIndex::default(),
        rescuers: Vec::new(),
        sites,
        weights,
    };
    let rescuers = city
        .rescuers
        .iter()
        .map(|_| place(&mut rng, &w0, 1500.0))
        .collect();
    World {
        aeds: AedIndex::build(entries),
        rescuers,
        ..w0
    }
}

/// One alerted rescuer's fate.
struct Alerted {
    accepts: bool,
    delay_s: f64,
}

fn travel(a: LatLon, b: LatLon) -> f64 {
    a.distance_m(&b) * 1.2 / 2.3
}

pub fn run(o: &SimOptions) -> Vec<(Style, PolicyStats)> {
    let week0 = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap(); // a Monday
    let w = world(o.seed, week0);
    let walk = WalkModel::default();
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let mut out: Vec<(Style, PolicyStats)> = Style::ALL
        .iter()
        .map(|s| (*s, PolicyStats::default()))
        .collect();
    for _ in 0..o.incidents {
        // Asia/Shanghai hour of the week, as UTC.
        let t = week0 + Duration::minutes(rng.gen_range(0..7 * 24 * 60)) - Duration::hours(8);
        let patient = place(&mut rng, &w, 800.0);
        let on_duty: Vec<(i64, LatLon)> = w
            .rescuers
            .iter()
            .enumerate()
            .filter(|_| rng.gen_bool(o.on_duty))
            .map(|(i, p)| (i as i64, *p))
            .collect();
        // The same rescuers answer the same way whatever the policy.
        let fate: Vec<Alerted> = (0..w.rescuers.len())
            .map(|_| Alerted {
                accepts: rng.gen_bool(o.accept),
                delay_s: rng.gen_range(20.0..90.0),
            })
            .collect();
        let mut f = Filters::caller_defaults(t);
        f.max_distance_m = Some(3000.0);
        let usable = w.aeds.nearest(patient, 30, &f, &walk);
        let aeds: Vec<AedOption> = usable
            .iter()
            .map(|n| AedOption {
                aed_id: n.id,
                pos: LatLon {
                    lat: n.lat,
                    lon: n.lon,
                },
                handling_s: (n.one_way_s - walk.walk_s(n.distance_m)).max(0.0),
            })
            .collect();
        for (style, stats) in &mut out {
            simulate_one(*style, &o.policy, patient, &on_duty, &aeds, &fate, stats);
        }
    }
    out
}

/// (alerted rescuer, fetch AED or direct, time offered) for one incident under a style.
fn simulate_one(
    style: Style,
    policy: &Policy,
    patient: LatLon,
    on_duty: &[(i64, LatLon)],
    aeds: &[AedOption],
    fate: &[Alerted],
    s: &mut PolicyStats,
) {
    let near = |r: f64, exclude: &HashSet<i64>| -> Vec<(f64, i64, LatLon)> {
        let mut v: Vec<(f64, i64, LatLon)> = on_duty
            .iter()
            .filter(|(id, p)| !exclude.contains(id) && p.distance_m(&patient) <= r)
            .map(|(id, p)| (p.distance_m(&patient), *id, *p))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let fetch_time =
        |p: LatLon, a: &AedOption| travel(p, a.pos) + a.handling_s + travel(a.pos, patient);
    // (arrival at patient, brings an AED)
    let mut arrivals: Vec<(f64, bool)> = Vec::new();
    let mut alerted: HashSet<i64> = HashSet::new();
    let timeout = 45.0;
    match style {
        Style::Aednet => {
            let wanted = policy.cpr_direct + policy.max_fetchers;
            let mut claimed: HashSet<i64> = HashSet::new();
            let mut accepted = 0;
            for (wave, radius) in policy.waves_m.iter().enumerate() {
                if accepted >= wanted {
                    break;
                }
                let t0 = wave as f64 * timeout;
                let cands: Vec<Candidate> = near(*radius, &alerted)
                    .into_iter()
                    .map(|(_, id, pos)| Candidate {
                        rescuer_id: id,
                        pos,
                    })
                    .collect();
                let free: Vec<AedOption> = aeds
                    .iter()
                    .filter(|a| !claimed.contains(&a.aed_id))
                    .copied()
                    .collect();
                let mut p = policy.clone();
                p.max_alerts = p.max_alerts.min((wanted - accepted) * 3);
                for offer in plan(patient, &cands, &free, &p) {
                    alerted.insert(offer.rescuer_id);
                    let a = &fate[offer.rescuer_id as usize];
                    if !a.accepts {
                        continue;
                    }
                    accepted += 1;
                    let pos = on_duty
                        .iter()
                        .find(|(id, _)| *id == offer.rescuer_id)
                        .map(|(_, p)| *p)
                        .unwrap_or(patient);
                    match offer.role {
                        OfferRole::Cpr => {
                            arrivals.push((t0 + a.delay_s + travel(pos, patient), false))
                        }
                        OfferRole::FetchAed { aed_id } => {
                            claimed.insert(aed_id);
                            let aed = free
                                .iter()
                                .find(|x| x.aed_id == aed_id)
                                .expect("planned AED");
                            arrivals.push((t0 + a.delay_s + fetch_time(pos, aed), true));
                        }
                    }
                }
            }
        }
        Style::GoodSam => {
            let mut pool = near(500.0, &HashSet::new());
            if pool.is_empty() {
                pool = near(1000.0, &HashSet::new());
            }
            // Three at a time; a decline or silence goes to the next after the time-out.
            for (wave, chunk) in pool.chunks(3).take(3).enumerate() {
                let t0 = wave as f64 * timeout;
                for (_, id, pos) in chunk {
                    alerted.insert(*id);
                    let a = &fate[*id as usize];
                    if a.accepts {
                        arrivals.push((t0 + a.delay_s + travel(*pos, patient), false));
                    }
                }
                if arrivals.len() >= 3 {
                    break;
                }
            }
        }
        Style::HeartRunner => {
            let mut first = true;
            let mut accepters: Vec<(f64, LatLon)> = near(1800.0, &HashSet::new())
                .into_iter()
                .take(20)
                .filter_map(|(_, id, pos)| {
                    alerted.insert(id);
                    let a = &fate[id as usize];
                    a.accepts.then_some((a.delay_s, pos))
                })
                .collect();
            accepters.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (delay, pos) in accepters {
                if first || aeds.is_empty() {
                    arrivals.push((delay + travel(pos, patient), false));
                    first = false;
                } else {
                    // The AED nearest to the responder, whether or not someone else took it.
                    let a = aeds
                        .iter()
                        .min_by(|x, y| pos.distance_m(&x.pos).total_cmp(&pos.distance_m(&y.pos)))
                        .expect("non-empty");
                    arrivals.push((delay + fetch_time(pos, a), true));
                }
            }
        }
        Style::HartslagNu => {
            let pool: Vec<(f64, i64, LatLon)> =
                near(1000.0, &HashSet::new()).into_iter().take(30).collect();
            let direct_n = pool.len().div_ceil(3);
            for (i, (_, id, pos)) in pool.iter().enumerate() {
                alerted.insert(*id);
                let a = &fate[*id as usize];
                if !a.accepts {
                    continue;
                }
                let direct = travel(*pos, patient);
                let via = aeds
                    .iter()
                    .map(|x| fetch_time(*pos, x))
                    .fold(f64::INFINITY, f64::min);
                // Via an AED only when it costs little over going direct.
                if i >= direct_n && via <= direct * 1.5 + 60.0 {
                    arrivals.push((a.delay_s + via, true));
                } else {
                    arrivals.push((a.delay_s + direct, false));
                }
            }
        }
    }
    s.incidents += 1;
    s.alerts += alerted.len();
    if !arrivals.is_empty() {
        s.with_acceptance += 1;
    }
    let cpr = arrivals.iter().map(|a| a.0).fold(f64::INFINITY, f64::min);
    let aed = arrivals
        .iter()
        .filter(|a| a.1)
        .map(|a| a.0)
        .fold(f64::INFINITY, f64::min);
    if cpr.is_finite() {
        s.cpr_times.push(cpr);
    }
    if aed <= 240.0 {
        s.aed_4 += 1;
    }
    if aed <= 480.0 {
        s.aed_8 += 1;
    }
    // Accepted rescuers whose arrival improved neither the first CPR nor the first AED.
    s.not_needed += arrivals
        .iter()
        .filter(|a| a.0 > cpr && !(a.1 && a.0 <= aed))
        .count();
}

pub fn table(o: &SimOptions, results: &[(Style, PolicyStats)]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{} simulated arrests in the demo city (seed {}), acceptance {:.0} %, {:.0} % of rescuers on duty", o.incidents, o.seed, o.accept * 100.0, o.on_duty * 100.0);
    let _ = writeln!(t);
    let _ = writeln!(t, "| policy | AED on scene ≤ 4 min | ≤ 8 min | first CPR p50 | p90 | alerts / incident | ≥ 1 acceptance | accepted, not needed / incident |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (style, s) in results {
        let q = |x: Option<f64>| x.map_or("never".to_string(), |v| format!("{:.0} s", v));
        let _ = writeln!(
            t,
            "| {} | {:.1} % | {:.1} % | {} | {} | {:.1} | {:.1} % | {:.2} |",
            style.name(),
            s.pct(s.aed_4),
            s.pct(s.aed_8),
            q(s.quantile(0.5)),
            q(s.quantile(0.9)),
            s.alerts as f64 / s.incidents.max(1) as f64,
            s.pct(s.with_acceptance),
            s.not_needed as f64 / s.incidents.max(1) as f64
        );
    }
    t
}

pub fn csv(results: &[(Style, PolicyStats)]) -> String {
    let mut t = String::from("policy,aed_4min_pct,aed_8min_pct,cpr_p50_s,cpr_p90_s,alerts_per_incident,acceptance_pct,not_needed_per_incident\n");
    for (style, s) in results {
        let _ = writeln!(
            t,
            "{:?},{:.2},{:.2},{:.1},{:.1},{:.2},{:.2},{:.3}",
            style,
            s.pct(s.aed_4),
            s.pct(s.aed_8),
            s.quantile(0.5).unwrap_or(f64::NAN),
            s.quantile(0.9).unwrap_or(f64::NAN),
            s.alerts as f64 / s.incidents.max(1) as f64,
            s.pct(s.with_acceptance),
            s.not_needed as f64 / s.incidents.max(1) as f64
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_every_policy_is_measured() {
        let o = SimOptions {
            incidents: 150,
            seed: 7,
            accept: 0.3,
            on_duty: 0.25,
            policy: Policy::default(),
        };
        let a = table(&o, &run(&o));
        let b = table(&o, &run(&o));
        assert_eq!(a, b, "the same seed gives the same table");
        let r = run(&o);
        for (style, s) in &r {
            assert_eq!(s.incidents, 150, "{style:?}");
            assert!(s.aed_4 <= s.aed_8 && s.aed_8 <= s.incidents);
            assert!(s.with_acceptance >= s.cpr_times.len().min(s.incidents));
        }
        // All-direct GoodSAM-style dispatch never brings an AED; role-based policies do.
        let get = |st: Style| &r.iter().find(|(s, _)| *s == st).unwrap().1;
        assert_eq!(get(Style::GoodSam).aed_8, 0);
        assert!(get(Style::Aednet).aed_8 > 0);
    }
}
