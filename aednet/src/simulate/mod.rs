//! `aednet simulate dispatch`: a seeded discrete-event simulation of cardiac arrests in a city
//! — the demo city, its dense-core variant, or any database (an imported real city) — answered
//! through the real dispatch [`Engine`] on a virtual clock, one engine per policy side by side.
//!
//! - `world`: the city (AEDs, walking network, population cells), the rescuers generated at a
//!   density (the plans' 2 % by default) and the arrests drawn in it;
//! - `bench`: one policy's engine over a real store (in-memory SQLite), the real geoindex and a
//!   [`aednet_core::ManualClock`], and an arrest run through it event by event: rescuers'
//!   answers after a reaction delay, arrivals walked on the streets at their own speed, the
//!   engine's own deadlines (offer time-outs and the waves they trigger);
//! - `stats`: outcomes per arrest, bootstrap intervals and paired differences.
//!
//! What each rescuer would answer, how fast they walk and whether they are on duty is drawn
//! from the seed, the arrest and the rescuer only, so every policy meets the same people
//! answering the same way and the policies' differences are paired.

mod bench;
pub mod chart;
pub mod stats;
pub mod sweep;
pub mod world;

use std::fmt::Write as _;
use std::sync::Arc;

use aednet_core::LatLon;
use aednet_dispatch::Policy;
use chrono::{DateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use bench::Bench;
use stats::{ArrestOutcome, Metric, Summary};
use world::{Arrest, ArrestParams, World};

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub incidents: usize,
    pub seed: u64,
    /// Mean probability an alerted rescuer accepts; each rescuer has their own propensity
    /// around it. Field range: ~23 % (PulsePoint) to 72 % (SAMBA, Stockholm).
    pub accept: f64,
    /// Mean share of rescuers on duty, shaped by hour of day.
    pub on_duty: f64,
    /// Median walking speed where fewer than 8 000 people live per km² (Swedish GPS study:
    /// 2.3 m/s; in denser places scaled to its 1.8 m/s).
    pub speed_mps: f64,
    /// Median EMS arrival, seconds, in urban and in rural cells.
    pub ems_urban_s: f64,
    pub ems_rural_s: f64,
    /// Bootstrap resamples for the intervals.
    pub bootstrap: usize,
    /// The aednet policy under test (the configured `[dispatch]` by default).
    pub policy: Policy,
}

impl SimOptions {
    pub fn new(incidents: usize, seed: u64, policy: Policy) -> Self {
        Self {
            incidents,
            seed,
            accept: 0.3,
            on_duty: 0.25,
            speed_mps: world::SPEED_MEDIAN_MPS,
            ems_urban_s: 600.0,
            ems_rural_s: 900.0,
            bootstrap: 1000,
            policy,
        }
    }
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
/// The engine's run of an arrest ends here (the incident is closed); EMS arrival is drawn per
/// arrest and compared after.
const HORIZON_S: i64 = 20 * 60;
/// Off the streets, walks are the straight line times this.
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

    pub fn short(self) -> &'static str {
        match self {
            Style::Aednet => "aednet",
            Style::GoodSam => "GoodSAM-style",
            Style::HeartRunner => "HeartRunner-style",
            Style::HartslagNu => "HartslagNu-style",
        }
    }

    /// The style as the engine's [`Policy`]. Where a service decides something the engine's
    /// policy cannot express, the nearest expressible choice (see the README):
    /// HeartRunner gives roles on acceptance (first accepter CPR) — here the nearest gets CPR
    /// at offer time; HartslagNu's "1/3 direct, 2/3 via an AED if cheap" becomes 3 direct and
    /// fetch offers only within a short 6-minute rescuer → AED → patient budget.
    pub fn policy(self, aednet: &Policy) -> Policy {
        // Every field spelled out, none from `Policy::default()`: the other services' rules
        // must not change when aednet's defaults do (they once did — its per-AED fetchers and
        // acceptance target reached these rows unnoticed). One fetcher per AED, no acceptance
        // target and no learned acceptance: the services' published rules have none.
        let base = Policy {
            waves_m: vec![1000.0],
            min_rescuers: 0,
            min_aeds: 0,
            cpr_direct: 1,
            max_fetchers: 0,
            max_alerts: 1,
            fetch_budget_s: 10.0 * 60.0,
            fetchers_per_aed: 1,
            fetch_confidence: 0.0,
            expected_accept: 0.3,
            accept_from_record: false,
            cpr_target_s: 240.0,
            cpr_confidence: 0.0,
            aed_target_s: 0.0,
            reaction_s: 55.0,
            rescuer_speed_mps: 2.3,
            detour_factor: 1.2,
            offer_timeout_s: PEER_TIMEOUT_S,
            position_retention_days: 30,
            delivery_retention_days: 30,
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

/// What rescuer `r` does with an offer in arrest `n`, after how many seconds — whatever the
/// policy: accept with their own propensity, otherwise decline or stay silent (half each),
/// after a 20–90 s reaction.
fn fate(o: &SimOptions, n: usize, r: i64) -> (Reply, f64) {
    let p = world::propensity(o.seed, r, o.accept);
    let mut rng = ChaCha8Rng::seed_from_u64(mix(o.seed, n as u64, r as u64));
    let reply = if rng.gen_bool(p) {
        Reply::Accept
    } else if rng.gen_bool(0.5) {
        Reply::Decline
    } else {
        Reply::Silent
    };
    (reply, rng.gen_range(20.0..90.0))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reply {
    Accept,
    Decline,
    Silent,
}

pub(crate) fn mix(seed: u64, a: u64, b: u64) -> u64 {
    // SplitMix64 finaliser over the three: independent streams per (arrest, rescuer).
    let mut z =
        seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Metres to walk from `a` to `b`: along the streets when both are near connected ones, else
/// the straight line with a detour factor.
fn travel_m(graph: Option<&aednet_routing::Graph>, a: LatLon, b: LatLon) -> f64 {
    match graph {
        Some(g) => {
            let opts = aednet_routing::SnapOptions::default();
            aednet_dispatch::travel::walk_leg(g, &opts, a, b, DETOUR).0
        }
        None => a.distance_m(&b) * DETOUR,
    }
}

/// A Monday: arrests fall at random minutes of the week after it.
pub fn week0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
}

pub fn arrests(o: &SimOptions, w: &World) -> Vec<Arrest> {
    let reach_m = Style::ALL
        .iter()
        .flat_map(|s| s.policy(&o.policy).waves_m)
        .fold(0.0, f64::max)
        + 100.0;
    let p = ArrestParams {
        seed: o.seed,
        on_duty: o.on_duty,
        reach_m,
        ems_urban_s: o.ems_urban_s,
        ems_rural_s: o.ems_rural_s,
    };
    (0..o.incidents)
        .map(|n| world::arrest(w, &p, week0(), n))
        .collect()
}

/// Every policy over the same arrests; outcomes per arrest, in [`Style::ALL`] order.
pub async fn run(
    o: &SimOptions,
    w: Arc<World>,
) -> anyhow::Result<Vec<(Style, Vec<ArrestOutcome>)>> {
    run_styles(o, w, &Style::ALL).await
}

/// These policies over the same arrests, in the order given.
pub async fn run_styles(
    o: &SimOptions,
    w: Arc<World>,
    styles: &[Style],
) -> anyhow::Result<Vec<(Style, Vec<ArrestOutcome>)>> {
    let arrests = Arc::new(arrests(o, &w));
    // Policies are independent: one task each, results in a fixed order.
    let mut tasks = Vec::new();
    for &style in styles {
        let (w, arrests, o) = (w.clone(), arrests.clone(), o.clone());
        tasks.push(tokio::spawn(async move {
            let bench = Bench::new(&w, style.policy(&o.policy), week0()).await?;
            let mut out = Vec::with_capacity(arrests.len());
            for (n, a) in arrests.iter().enumerate() {
                out.push(bench.arrest(&o, &w, n, a).await?);
            }
            anyhow::Ok((style, out))
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await??);
    }
    Ok(out)
}

pub fn summary(o: &SimOptions, results: &[(Style, Vec<ArrestOutcome>)]) -> Summary {
    let cols: Vec<&[ArrestOutcome]> = results.iter().map(|(_, v)| v.as_slice()).collect();
    stats::summarize(&cols, o.bootstrap, o.seed)
}

/// One line on the city: people, rescuers and AEDs per density.
pub fn describe(w: &World) -> String {
    let pop = w.population();
    format!(
        "{}: {:.0} people on {:.0} km², {} rescuers ({:.1} per 1 000), {} AEDs ({:.2} per 10 000), {}",
        w.name,
        pop,
        w.area_km2(),
        w.rescuers.len(),
        w.rescuers.len() as f64 * 1000.0 / pop.max(1.0),
        w.aeds.len(),
        w.aeds.len() as f64 * 10_000.0 / pop.max(1.0),
        if w.graph.is_some() {
            "walks on its street network"
        } else {
            "no street network: straight lines × 1.2"
        }
    )
}

fn cell(m: Metric, i: &stats::Interval, signed: bool) -> String {
    let unit = if m.is_share() { " %" } else { "" };
    let sign = if signed && i.mean > 0.0 { "+" } else { "" };
    format!(
        "{sign}{}{unit} ({} – {})",
        m.show(i.mean),
        m.show(i.lo),
        m.show(i.hi)
    )
}

pub fn table(
    o: &SimOptions,
    w: &World,
    results: &[(Style, Vec<ArrestOutcome>)],
    s: &Summary,
) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{}", describe(w));
    let _ = writeln!(t, "{} simulated arrests (seed {}), mean acceptance {:.0} %, {:.0} % of rescuers on duty on average, walking {:.1} m/s median ({:.1} where > 8 000/km²), EMS median {:.0} min urban / {:.0} min rural; 95 % bootstrap intervals over arrests ({} resamples)", o.incidents, o.seed, o.accept * 100.0, o.on_duty * 100.0, o.speed_mps, o.speed_mps * world::SPEED_DENSE_MPS / world::SPEED_MEDIAN_MPS, o.ems_urban_s / 60.0, o.ems_rural_s / 60.0, o.bootstrap);
    let _ = writeln!(t);
    let head: Vec<&str> = s.metrics.iter().map(|m| m.label()).collect();
    let _ = writeln!(t, "| policy | {} |", head.join(" | "));
    let _ = writeln!(t, "|---|{}", "---:|".repeat(head.len()));
    for ((style, _), row) in results.iter().zip(&s.per_policy) {
        let cells: Vec<String> = s
            .metrics
            .iter()
            .zip(row)
            .map(|(m, i)| cell(*m, i, false))
            .collect();
        let _ = writeln!(t, "| {} | {} |", style.name(), cells.join(" | "));
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "Paired differences, aednet − each style, on the same arrests and answers (percentage points; 95 % interval):");
    let _ = writeln!(t);
    let _ = writeln!(t, "| aednet − | {} |", head.join(" | "));
    let _ = writeln!(t, "|---|{}", "---:|".repeat(head.len()));
    for ((style, _), row) in results[1..].iter().zip(&s.paired) {
        let cells: Vec<String> = s
            .metrics
            .iter()
            .zip(row)
            .map(|(m, i)| cell(*m, i, true).replace(" %", " pp"))
            .collect();
        let _ = writeln!(t, "| {} | {} |", style.short(), cells.join(" | "));
    }
    t
}

/// The summary as CSV: one row per policy (or aednet − style) and metric.
pub fn csv(results: &[(Style, Vec<ArrestOutcome>)], s: &Summary) -> String {
    let mut t = String::from("row,metric,mean,lo95,hi95\n");
    for ((style, _), row) in results.iter().zip(&s.per_policy) {
        for (m, i) in s.metrics.iter().zip(row) {
            let _ = writeln!(
                t,
                "{style:?},{},{:.5},{:.5},{:.5}",
                metric_key(*m),
                i.mean,
                i.lo,
                i.hi
            );
        }
    }
    for ((style, _), row) in results[1..].iter().zip(&s.paired) {
        for (m, i) in s.metrics.iter().zip(row) {
            let _ = writeln!(
                t,
                "Aednet-{style:?},{},{:.5},{:.5},{:.5}",
                metric_key(*m),
                i.mean,
                i.lo,
                i.hi
            );
        }
    }
    t
}

fn metric_key(m: Metric) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
