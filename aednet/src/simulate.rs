//! `aednet simulate dispatch`: a seeded discrete-event simulation of cardiac arrests in the demo
//! city, answered through the real dispatch [`Engine`] on a virtual clock, one engine per policy
//! side by side.
//!
//! Each policy gets its own engine over a real store (in-memory SQLite), the real geoindex
//! (the demo city's AEDs with readiness and opening hours; rescuers in the live index) and a
//! [`ManualClock`]. Arrests happen one after another at random hours of a week, at homes drawn
//! from the demo's population grid (where people live); rescuers live there too, moving a few
//! hundred metres about. For each,
//! a share of the rescuers are on duty at their places; the engine is asked to create the
//! incident and then time moves from event to event, never sleeping:
//!
//! - a rescuer's answer, a reaction delay after the offer reached them: accept with the given
//!   probability, otherwise decline or stay silent (half each) — silence ends in the engine's
//!   own time-out, and an accept after the time-out is refused by the engine like a real one;
//! - an accepted rescuer's arrival at the patient (via the AED for a fetch, at 2.3 m/s over a
//!   1.2 detour, plus the AED's floors and cabinet), reported to the engine as `arrived`;
//! - the engine's own deadlines ([`Engine::next_deadline`] → [`Engine::fire_due`]): offer
//!   time-outs and the waves they trigger.
//!
//! An incident runs until nothing is left to happen or 20 minutes have passed (the ambulance is
//! there), then it is closed. What each rescuer would answer is drawn from the seed, the arrest
//! and the rescuer only, so every policy meets the same people answering the same way.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use aednet_api::AppState;
use aednet_core::event::LocalBus;
use aednet_core::{Clock, LatLon, ManualClock};
use aednet_dispatch::{Answer, Engine, OfferState, Outcome, Policy};
use aednet_geoindex::{AedEntry, AedIndex, Filters, Schedules};
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

/// Offer time-out of the other services' styles: as long as the slowest simulated reaction,
/// so no style loses an acceptance to its time-out and the rows compare who is alerted.
const PEER_TIMEOUT_S: f64 = 90.0;
/// The ambulance is on scene: the incident is closed.
const HORIZON_S: i64 = 20 * 60;
/// How volunteers really move (field studies), whatever a policy assumes.
const SPEED_MPS: f64 = 2.3;
const DETOUR: f64 = 1.2;

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
            Style::HeartRunner => "HeartRunner-style (≤ 20 within 1.8 km, 1 CPR, rest fetch)",
            Style::HartslagNu => "HartslagNu-style (≤ 30 within 1 km, AED route only if short)",
        }
    }

    /// The style as the engine's [`Policy`]. Where a service decides something the engine's
    /// policy cannot express, the nearest expressible choice (see the README):
    /// HeartRunner gives roles on acceptance (first accepter CPR) — here the nearest gets CPR
    /// at offer time; HartslagNu's "1/3 direct, 2/3 via an AED if cheap" becomes 3 direct and
    /// fetch offers only within a short 6-minute rescuer → AED → patient budget.
    pub fn policy(self, aednet: &Policy) -> Policy {
        let base = Policy {
            offer_timeout_s: PEER_TIMEOUT_S,
            ..Policy::default()
        };
        match self {
            Style::Aednet => aednet.clone(),
            Style::GoodSam => Policy {
                waves_m: vec![500.0, 1000.0],
                min_rescuers: 3,
                min_aeds: 0,
                cpr_direct: 3,
                max_fetchers: 0,
                max_alerts: 3,
                ..base
            },
            Style::HeartRunner => Policy {
                waves_m: vec![1800.0],
                min_rescuers: 20,
                min_aeds: 0,
                cpr_direct: 1,
                max_fetchers: 19,
                max_alerts: 20,
                fetch_budget_s: 30.0 * 60.0,
                ..base
            },
            Style::HartslagNu => Policy {
                waves_m: vec![1000.0],
                min_rescuers: 30,
                min_aeds: 0,
                cpr_direct: 3,
                max_fetchers: 27,
                max_alerts: 30,
                fetch_budget_s: 6.0 * 60.0,
                ..base
            },
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
    /// Accepts that came after the offer had timed out (refused by the engine).
    pub too_late: usize,
    /// Offers with a fetch-an-AED role.
    pub fetch_alerts: usize,
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
    fn per_incident(&self, n: usize) -> f64 {
        n as f64 / self.incidents.max(1) as f64
    }
}

struct World {
    aeds: Vec<AedEntry>,
    rescuers: Vec<LatLon>,
    /// The demo's streets as a walking network: every walk (the engine's plans and ETAs, and
    /// the rescuers' arrivals) is timed on it; `None` would fall back to straight lines.
    graph: Option<Arc<aednet_routing::Graph>>,
    /// The demo's population grid: each point with the side of its square (metres), and the
    /// running total of people, to draw a person's home in proportion to where people live.
    cells: Vec<(LatLon, f64)>,
    cumulative: Vec<f64>,
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

/// Where someone is: a point of the population grid drawn by its people, a place in its
/// square, then `sd_m` of moving about (0: at home).
fn place(rng: &mut ChaCha8Rng, w: &World, sd_m: f64) -> LatLon {
    let total = w.cumulative.last().copied().unwrap_or(0.0);
    let x = rng.gen_range(0.0..total.max(f64::MIN_POSITIVE));
    let k = w
        .cumulative
        .partition_point(|c| *c <= x)
        .min(w.cells.len().saturating_sub(1));
    let (p, side) = w.cells[k];
    let (dx, dy) = (
        rng.gen_range(-0.5..0.5) * side,
        rng.gen_range(-0.5..0.5) * side,
    );
    let home = LatLon {
        lat: p.lat + dy / 111_000.0,
        lon: p.lon + dx / (111_000.0 * p.lat.to_radians().cos()),
    };
    if sd_m > 0.0 {
        jitter(rng, home, sd_m)
    } else {
        home
    }
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
    let cells: Vec<(LatLon, f64)> = city
        .population
        .iter()
        .map(|c| (c.pos, c.area_km2.sqrt() * 1000.0))
        .collect();
    let cumulative = city
        .population
        .iter()
        .scan(0.0, |sum, c| {
            *sum += c.population as f64;
            Some(*sum)
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7e5c);
    let (graph, _) = aednet_routing::build(&city.extract);
    let graph = (graph.node_count() > 0).then(|| Arc::new(graph));
    let w0 = World {
        aeds: Vec::new(),
        rescuers: Vec::new(),
        graph,
        cells,
        cumulative,
    };
    let rescuers = city
        .rescuers
        .iter()
        .map(|_| place(&mut rng, &w0, 300.0))
        .collect();
    World {
        aeds: entries,
        rescuers,
        ..w0
    }
}

/// One arrest, drawn from the seed and its number only.
struct Arrest {
    at: DateTime<Utc>,
    patient: LatLon,
    /// Rescuer ids (index + 1) on duty at that moment.
    on_duty: Vec<i64>,
}

fn mix(seed: u64, a: u64, b: u64) -> u64 {
    // SplitMix64 finaliser over the three: independent streams per (arrest, rescuer).
    let mut z =
        seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn arrest(o: &SimOptions, w: &World, week0: DateTime<Utc>, n: usize) -> Arrest {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(o.seed, n as u64, u64::MAX));
    // Asia/Shanghai hour of the week, as UTC.
    let at = week0 + Duration::minutes(rng.gen_range(0..7 * 24 * 60)) - Duration::hours(8);
    let patient = place(&mut rng, w, 0.0);
    let on_duty = (0..w.rescuers.len())
        .filter(|_| rng.gen_bool(o.on_duty))
        .map(|i| i as i64 + 1)
        .collect();
    Arrest {
        at,
        patient,
        on_duty,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reply {
    Accept,
    Decline,
    Silent,
}

/// What rescuer `r` does with an offer in arrest `n`, after how many seconds — whatever the policy.
fn fate(o: &SimOptions, n: usize, r: i64) -> (Reply, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(o.seed, n as u64, r as u64));
    let reply = if rng.gen_bool(o.accept) {
        Reply::Accept
    } else if rng.gen_bool(0.5) {
        Reply::Decline
    } else {
        Reply::Silent
    };
    (reply, rng.gen_range(20.0..90.0))
}

/// Seconds to walk from `a` to `b`: along the streets when both are near connected ones, else
/// the straight line with a detour factor.
fn travel(graph: Option<&aednet_routing::Graph>, a: LatLon, b: LatLon) -> f64 {
    let m = match graph {
        Some(g) => {
            let opts = aednet_routing::SnapOptions::default();
            aednet_dispatch::travel::walk_leg(g, &opts, a, b, DETOUR).0
        }
        None => a.distance_m(&b) * DETOUR,
    };
    m / SPEED_MPS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Answer {
        offer: u32,
        rescuer: i64,
        reply: Reply,
    },
    Arrive {
        offer: u32,
        rescuer: i64,
    },
}

/// One policy's engine on its own store, index and virtual clock.
struct Bench {
    engine: Arc<Engine>,
    state: AppState,
    clock: Arc<ManualClock>,
}

impl Bench {
    async fn new(w: &World, policy: Policy, at: DateTime<Utc>) -> anyhow::Result<Self> {
        let store = aednet_store::connect("sqlite::memory:").await?;
        let clock = Arc::new(ManualClock::new(at));
        let state = AppState::new(store, Arc::new(LocalBus::default()), clock.clone());
        state.geo.replace_aeds(AedIndex::build(w.aeds.clone()));
        if let Some(g) = &w.graph {
            // As a serving node holds the stored network: the engine plans and times on it.
            state.walk_graph.set(aednet_api::artifacts::Loaded {
                info: aednet_store::ArtifactInfo {
                    kind: aednet_store::artifacts::kind::WALK_GRAPH.into(),
                    version: 1,
                    built_at: at,
                    meta: "{}".into(),
                    size_bytes: 0,
                },
                value: g.clone(),
            });
        }
        let engine = Engine::new(state.clone(), policy);
        Ok(Self {
            engine,
            state,
            clock,
        })
    }

    /// One arrest from the first alert to the ambulance, event by event.
    async fn arrest(
        &self,
        o: &SimOptions,
        w: &World,
        n: usize,
        a: &Arrest,
        s: &mut PolicyStats,
    ) -> anyhow::Result<()> {
        let geo = &self.state.geo;
        let graph = w.graph.as_deref();
        self.clock.set(a.at);
        let home = |r: i64| w.rescuers[(r - 1) as usize];
        for &r in &a.on_duty {
            geo.rescuer_moved(r, home(r), a.at);
        }
        // Where each usable AED is and its extra time (floors, cabinet), as the engine sees it.
        let mut f = Filters::caller_defaults(a.at);
        f.max_distance_m = Some(10_000.0);
        f.readiness = aednet_geoindex::ReadinessFilter::Any;
        f.hours = aednet_geoindex::HoursPolicy::Any;
        let aeds: HashMap<i64, (LatLon, f64)> = geo
            .nearest_aeds(a.patient, 1000, &f, &self.state.walk)
            .into_iter()
            .map(|x| {
                let handling = (x.one_way_s - self.state.walk.walk_s(x.distance_m)).max(0.0);
                (
                    x.id,
                    (
                        LatLon {
                            lat: x.lat,
                            lon: x.lon,
                        },
                        handling,
                    ),
                )
            })
            .collect();

        let mut inc = self.engine.create(a.patient, None, None).await?;
        let end = a.at + Duration::seconds(HORIZON_S);
        let mut queue: BinaryHeap<Reverse<(DateTime<Utc>, u64, Event)>> = BinaryHeap::new();
        let mut seq = 0u64;
        let mut seen = 0usize;
        let mut arrivals: Vec<(f64, bool)> = Vec::new();
        let mut accepted = 0usize;
        loop {
            // Offers the engine made since the last step reach their rescuers.
            for off in &inc.offers[seen..] {
                let (reply, delay) = fate(o, n, off.rescuer_id);
                if reply != Reply::Silent {
                    let t = off.offered_at + Duration::milliseconds((delay * 1000.0) as i64);
                    seq += 1;
                    queue.push(Reverse((
                        t,
                        seq,
                        Event::Answer {
                            offer: off.id,
                            rescuer: off.rescuer_id,
                            reply,
                        },
                    )));
                }
            }
            seen = inc.offers.len();
            let next_event = queue.peek().map(|Reverse((t, _, _))| *t);
            let deadline = self.engine.next_deadline();
            // A rescuer's answer at the very moment of a time-out still counts.
            let timer_first = match (deadline, next_event) {
                (Some(d), Some(e)) => d < e,
                (Some(_), None) => true,
                _ => false,
            };
            if timer_first {
                let t = deadline.expect("checked");
                if t > end {
                    break;
                }
                self.clock.set(t);
                self.engine.fire_due(t).await;
            } else {
                let Some(Reverse((t, _, ev))) = queue.pop() else {
                    break;
                };
                if t > end {
                    break;
                }
                self.clock.set(t);
                match ev {
                    Event::Answer {
                        offer,
                        rescuer,
                        reply,
                    } => {
                        let state = inc.offers.iter().find(|x| x.id == offer).map(|x| x.state);
                        // Told to stand down before they answered: they do nothing.
                        if state == Some(OfferState::StoodDown) {
                            continue;
                        }
                        let answer = if reply == Reply::Accept {
                            // The phone sends its position with the accept.
                            geo.rescuer_moved(rescuer, home(rescuer), t);
                            Answer::Accept
                        } else {
                            Answer::Decline
                        };
                        match self.engine.answer(inc.id, offer, rescuer, answer).await {
                            Ok(done) if done.offer.state == OfferState::Accepted => {
                                accepted += 1;
                                let from = home(rescuer);
                                let dt = match done.offer.fetch_aed.and_then(|id| aeds.get(&id)) {
                                    Some((pos, handling)) => {
                                        travel(graph, from, *pos)
                                            + handling
                                            + travel(graph, *pos, a.patient)
                                    }
                                    None => travel(graph, from, a.patient),
                                };
                                seq += 1;
                                queue.push(Reverse((
                                    t + Duration::milliseconds((dt * 1000.0) as i64),
                                    seq,
                                    Event::Arrive { offer, rescuer },
                                )));
                            }
                            Ok(_) => {}
                            Err(_) if reply == Reply::Accept => s.too_late += 1,
                            Err(_) => {}
                        }
                    }
                    Event::Arrive { offer, rescuer } => {
                        geo.rescuer_moved(rescuer, a.patient, t);
                        let done = self
                            .engine
                            .answer(inc.id, offer, rescuer, Answer::Arrived)
                            .await?;
                        let secs = (t - a.at).num_milliseconds() as f64 / 1000.0;
                        arrivals.push((secs, done.offer.fetch_aed.is_some()));
                    }
                }
            }
            inc = self.engine.get(inc.id).await?;
        }
        let aed = arrivals
            .iter()
            .filter(|x| x.1)
            .map(|x| x.0)
            .fold(f64::INFINITY, f64::min);
        let cpr = arrivals.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
        self.clock.set(end.max(self.clock.now()));
        self.engine
            .close(
                inc.id,
                Some(Outcome {
                    aed_applied: aed.is_finite(),
                    shock_delivered: false,
                    handed_to_ems: true,
                }),
            )
            .await?;
        for &r in &a.on_duty {
            geo.rescuer_gone(r);
        }

        s.incidents += 1;
        s.alerts += inc.offers.len();
        s.fetch_alerts += inc.offers.iter().filter(|x| x.fetch_aed.is_some()).count();
        if accepted > 0 {
            s.with_acceptance += 1;
        }
        if cpr.is_finite() {
            s.cpr_times.push(cpr);
        }
        if aed <= 240.0 {
            s.aed_4 += 1;
        }
        if aed <= 480.0 {
            s.aed_8 += 1;
        }
        // Accepted rescuers who were neither the first at the patient nor the first AED.
        let useful = usize::from(cpr.is_finite())
            + usize::from(aed.is_finite() && !arrivals.iter().any(|x| x.1 && x.0 == cpr));
        s.not_needed += accepted.saturating_sub(useful);
        Ok(())
    }
}

pub async fn run(o: &SimOptions) -> anyhow::Result<Vec<(Style, PolicyStats)>> {
    let week0 = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap(); // a Monday
    let w = Arc::new(world(o.seed, week0));
    let arrests: Arc<Vec<Arrest>> =
        Arc::new((0..o.incidents).map(|n| arrest(o, &w, week0, n)).collect());
    // Policies are independent: one task each, results in a fixed order.
    let mut tasks = Vec::new();
    for style in Style::ALL {
        let (w, arrests, o) = (w.clone(), arrests.clone(), o.clone());
        tasks.push(tokio::spawn(async move {
            let bench = Bench::new(&w, style.policy(&o.policy), week0).await?;
            let mut stats = PolicyStats::default();
            for (n, a) in arrests.iter().enumerate() {
                bench.arrest(&o, &w, n, a, &mut stats).await?;
            }
            anyhow::Ok((style, stats))
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

pub fn table(o: &SimOptions, results: &[(Style, PolicyStats)]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{} simulated arrests in the demo city (seed {}), acceptance {:.0} %, {:.0} % of rescuers on duty, through the dispatch engine on a virtual clock", o.incidents, o.seed, o.accept * 100.0, o.on_duty * 100.0);
    let _ = writeln!(t);
    let _ = writeln!(t, "| policy | AED on scene ≤ 4 min | ≤ 8 min | first CPR p50 | p90 | alerts / incident | ≥ 1 acceptance | accepted, not needed / incident | accepts after time-out / incident |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (style, s) in results {
        let q = |x: Option<f64>| x.map_or("never".to_string(), |v| format!("{:.0} s", v));
        let _ = writeln!(
            t,
            "| {} | {:.1} % | {:.1} % | {} | {} | {:.1} | {:.1} % | {:.2} | {:.2} |",
            style.name(),
            s.pct(s.aed_4),
            s.pct(s.aed_8),
            q(s.quantile(0.5)),
            q(s.quantile(0.9)),
            s.per_incident(s.alerts),
            s.pct(s.with_acceptance),
            s.per_incident(s.not_needed),
            s.per_incident(s.too_late),
        );
    }
    t
}

pub fn csv(results: &[(Style, PolicyStats)]) -> String {
    let mut t = String::from("policy,aed_4min_pct,aed_8min_pct,cpr_p50_s,cpr_p90_s,alerts_per_incident,acceptance_pct,not_needed_per_incident,too_late_per_incident\n");
    for (style, s) in results {
        let _ = writeln!(
            t,
            "{:?},{:.2},{:.2},{:.1},{:.1},{:.2},{:.2},{:.3},{:.3}",
            style,
            s.pct(s.aed_4),
            s.pct(s.aed_8),
            s.quantile(0.5).unwrap_or(f64::NAN),
            s.quantile(0.9).unwrap_or(f64::NAN),
            s.per_incident(s.alerts),
            s.pct(s.with_acceptance),
            s.per_incident(s.not_needed),
            s.per_incident(s.too_late),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_are_timed_on_the_demo_streets() {
        let w = world(7, Utc::now());
        let g = w.graph.as_deref().expect("the demo city has streets");
        let mut differ = 0;
        for pair in w.aeds.windows(2).take(30) {
            let (a, b) = (pair[0].pos, pair[1].pos);
            let streets = travel(Some(g), a, b);
            // Never shorter than the straight line (up to rounding of the snap).
            assert!(streets * SPEED_MPS >= a.distance_m(&b) - 1.0, "{a:?} {b:?}");
            if (streets - travel(None, a, b)).abs() > 1.0 {
                differ += 1;
            }
        }
        assert!(
            differ > 0,
            "the streets changed no walk: the network is not used"
        );
    }

    fn opts(seed: u64) -> SimOptions {
        SimOptions {
            incidents: 40,
            seed,
            accept: 0.3,
            on_duty: 0.25,
            policy: Policy::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deterministic_through_the_engine_and_every_policy_is_measured() {
        let o = opts(7);
        let started = std::time::Instant::now();
        let r = run(&o).await.unwrap();
        let a = table(&o, &r);
        let b = table(&o, &run(&o).await.unwrap());
        assert_eq!(a, b, "the same seed gives the same table");
        // Virtual time: 40 arrests of up to 20 minutes each (13 hours if anything slept on
        // real time) run in seconds; the bound is loose on purpose, this is not a speed test.
        assert!(started.elapsed() < std::time::Duration::from_secs(600));
        let c = table(&opts(8), &run(&opts(8)).await.unwrap());
        assert_ne!(a, c, "another seed, other arrests");
        for (style, s) in &r {
            assert_eq!(s.incidents, 40, "{style:?}");
            assert!(s.aed_4 <= s.aed_8 && s.aed_8 <= s.incidents);
            assert!(s.cpr_times.len() <= s.with_acceptance);
            assert!(s.alerts > 0, "{style:?} alerted nobody");
        }
        // All-direct GoodSAM-style dispatch never brings an AED; role-based policies do, and
        // GoodSAM alerts at most 3 at a time.
        let get = |st: Style| &r.iter().find(|(s, _)| *s == st).unwrap().1;
        assert_eq!(get(Style::GoodSam).aed_8, 0);
        assert_eq!(get(Style::GoodSam).fetch_alerts, 0);
        assert!(get(Style::Aednet).fetch_alerts > 0);
        assert!(get(Style::HeartRunner).fetch_alerts > 0);
        assert!(get(Style::HeartRunner).alerts >= get(Style::GoodSam).alerts);
    }

    #[tokio::test]
    async fn an_arrest_runs_through_the_engine_with_its_audit_trail() {
        // One arrest, one policy, by hand: the engine's store holds the closed incident with
        // offers, answers and time-outs on the virtual clock.
        let o = SimOptions {
            incidents: 1,
            ..opts(3)
        };
        let week0 = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        let w = world(o.seed, week0);
        let mut n = 0;
        let a = loop {
            let a = arrest(&o, &w, week0, n);
            if a.on_duty.len() > 100 {
                break a;
            }
            n += 1;
        };
        let bench = Bench::new(&w, Style::GoodSam.policy(&o.policy), week0)
            .await
            .unwrap();
        let mut s = PolicyStats::default();
        bench.arrest(&o, &w, n, &a, &mut s).await.unwrap();
        let inc = bench.engine.get(1).await.unwrap();
        assert!(!inc.state.is_open(), "closed at the end");
        assert!(inc.closed_at.unwrap() >= a.at, "on the virtual clock");
        assert!(inc.offers.iter().all(|x| x.offered_at >= a.at));
        let audit = bench.state.store.incident_audit(1).await.unwrap();
        assert_eq!(audit.len(), inc.audit.len(), "every step persisted");
        assert_eq!(s.alerts, inc.offers.len());
    }
}
