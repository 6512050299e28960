//! `aednet simulate sweep`: "what it takes" — the aednet policy's outcomes over a grid of
//! rescuer densities (per 1 000 people) and AED densities (per 10 000), the extra AEDs placed
//! at the coverage planner's greedy sites (the same `aednet_coverage::plan` as `aednet plan`
//! and `POST /api/v1/plan`), as a CSV and a chart.

use std::fmt::Write as _;
use std::sync::Arc;

use aednet_coverage::{CoverageMap, PlanRequest};
use aednet_geoindex::{AedEntry, Schedules};
use chrono_tz::Tz;
use serde::Serialize;

use super::stats::{self, Interval, Metric};
use super::world::World;
use super::{run_styles, SimOptions, Style};

#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Arrests per point, seed, answers… (the aednet policy only is run).
    pub sim: SimOptions,
    pub rescuers_per_1000: Vec<f64>,
    /// AEDs per 10 000 people; a density at or below today's network means today's network.
    pub aeds_per_10k: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub rescuers_per_1000: f64,
    /// As placed (today's network where the asked density is below it).
    pub aeds_per_10k: f64,
    pub aeds: usize,
    /// People within the planner's walking budget of an AED (static coverage).
    pub coverage_share: f64,
    pub aed4: Interval,
    pub aed8: Interval,
    pub cpr4: Interval,
    /// AED ≤ 4 min share per district (in [`World::districts`] order; NaN without arrests).
    pub districts: Vec<f64>,
}

/// New AEDs at the planner's sites: public, outdoor, unlocked, open 24/7 — what a plan buys.
fn new_aeds(w: &World, sites: &[aednet_coverage::Site]) -> Vec<AedEntry> {
    let mut schedules = Schedules::default();
    let mut next = w.aeds.iter().map(|a| a.id).max().unwrap_or(0) + 1;
    sites
        .iter()
        .map(|s| {
            let pos = aednet_core::LatLon {
                lat: s.lat,
                lon: s.lon,
            };
            next += 1;
            AedEntry {
                id: next - 1,
                pos,
                access: aednet_core::aed::Access::Yes,
                status: aednet_core::aed::ReadinessStatus::Ready,
                indoor: Some(false),
                floor: None,
                cabinet_locked: false,
                schedule: schedules.get(Some("24/7"), w.tz, pos),
                detail: Default::default(),
            }
        })
        .collect()
}

pub async fn sweep(
    o: &SweepOptions,
    base: &World,
    map: &CoverageMap,
    tz: Tz,
) -> anyhow::Result<Vec<SweepPoint>> {
    let pop = base.population().max(1.0);
    let mut densities = o.aeds_per_10k.clone();
    densities.sort_by(f64::total_cmp);
    // The greedy order once, for the largest network; smaller networks take its first sites
    // (greedy placement is nested: more AEDs never lose a site a smaller plan had).
    let most = densities
        .iter()
        .map(|d| ((d * pop / 10_000.0).round() as usize).saturating_sub(base.aeds.len()))
        .max()
        .unwrap_or(0);
    let plan = aednet_coverage::plan(
        map,
        &PlanRequest {
            add: most,
            district: None,
            candidates: None,
            relocate: 0,
            suggest_24_7: 0,
            tz: Some(tz),
        },
    );
    let mut out = Vec::new();
    for d in densities {
        let extra = ((d * pop / 10_000.0).round() as usize)
            .saturating_sub(base.aeds.len())
            .min(plan.sites.len());
        let mut w = base.clone();
        w.aeds.extend(new_aeds(base, &plan.sites[..extra]));
        let coverage_share = if extra == 0 {
            plan.before.share
        } else {
            // The planner's share with just these sites.
            aednet_coverage::plan(
                map,
                &PlanRequest {
                    add: extra,
                    district: None,
                    candidates: None,
                    relocate: 0,
                    suggest_24_7: 0,
                    tz: Some(tz),
                },
            )
            .after
            .share
        };
        for &r in &o.rescuers_per_1000 {
            let mut w = w.clone();
            w.generate_rescuers(Some(r), o.sim.seed);
            let w = Arc::new(w);
            let res = run_styles(&o.sim, w.clone(), &[Style::Aednet]).await?;
            let v = &res[0].1;
            let s = stats::summarize(&[v], o.sim.bootstrap, o.sim.seed);
            let get = |m: Metric| s.per_policy[0][s.metrics.iter().position(|x| *x == m).unwrap()];
            let arrests = super::arrests(&o.sim, &w);
            let districts = (0..w.districts.len())
                .map(|k| {
                    let mine: Vec<f64> = arrests
                        .iter()
                        .zip(v)
                        .filter(|(a, _)| a.district == k)
                        .map(|(_, x)| Metric::Aed4.value(x))
                        .collect();
                    mine.iter().sum::<f64>() / mine.len() as f64
                })
                .collect();
            out.push(SweepPoint {
                rescuers_per_1000: r,
                aeds_per_10k: w.aeds.len() as f64 * 10_000.0 / pop,
                aeds: w.aeds.len(),
                coverage_share,
                aed4: get(Metric::Aed4),
                aed8: get(Metric::Aed8),
                cpr4: get(Metric::Cpr4),
                districts,
            });
        }
    }
    Ok(out)
}

pub fn csv(w: &World, points: &[SweepPoint]) -> String {
    let mut t = String::from("rescuers_per_1000,aeds_per_10k,aeds,coverage_pct,aed4_pct,aed4_lo,aed4_hi,aed8_pct,aed8_lo,aed8_hi,cpr4_pct,cpr4_lo,cpr4_hi");
    for d in &w.districts {
        let _ = write!(t, ",aed4_pct {}", d.name.replace(',', " "));
    }
    t.push('\n');
    let pct = |x: f64| format!("{:.2}", x * 100.0);
    for p in points {
        let _ = write!(
            t,
            "{},{:.3},{},{}",
            p.rescuers_per_1000,
            p.aeds_per_10k,
            p.aeds,
            pct(p.coverage_share)
        );
        for i in [p.aed4, p.aed8, p.cpr4] {
            let _ = write!(t, ",{},{},{}", pct(i.mean), pct(i.lo), pct(i.hi));
        }
        for d in &p.districts {
            let _ = write!(t, ",{}", if d.is_nan() { String::new() } else { pct(*d) });
        }
        t.push('\n');
    }
    t
}
