//! The inverse question: what it takes to bring a share of the people within the walking
//! budget of an AED — how many new AEDs and where (the greedy plan's shortest prefix that
//! reaches the share), and how many rescuers must be on duty for a rescuer to be likely to
//! bring one in time.
//!
//! The rescuer estimate is a stated model, not a simulation (`aednet simulate sweep` measures
//! the same question through the dispatch engine): rescuers live where people live, so the
//! on-duty ones near a person are `on-duty per person × people per km²`; an accepting rescuer
//! within `reach = (budget − reaction) × speed / (2 × detour)` of the patient can run to an AED
//! that close and back in time; with Poisson-scattered rescuers, at least one such is there
//! with probability `1 − exp(−λ)`, `λ = on-duty density × accept × π reach²`. The plan asks for
//! `confidence` (90 %) at the sparsest place inside the target share (densest places first).

use serde::Serialize;

use crate::map::CoverageMap;
use crate::placement::{plan, Coverage, PlanRequest, Site};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RescuerModel {
    /// Share of alerted rescuers who accept (field: 0.23 PulsePoint – 0.72 SAMBA).
    pub accept: f64,
    /// Share of registered rescuers on duty at a time.
    pub on_duty: f64,
    /// Walking speed, m/s (Swedish GPS study of volunteers: median 2.3).
    pub speed_mps: f64,
    /// From the alert to setting off, seconds.
    pub reaction_s: f64,
    pub detour: f64,
    /// Wanted chance that an accepting rescuer is within reach.
    pub confidence: f64,
}

impl Default for RescuerModel {
    fn default() -> Self {
        Self {
            accept: 0.3,
            on_duty: 0.25,
            speed_mps: 2.3,
            reaction_s: 60.0,
            detour: 1.2,
            confidence: 0.9,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RescuersNeeded {
    /// People per km² at the sparsest place inside the target share.
    pub sparsest_density_per_km2: f64,
    /// How far from the patient a rescuer can be and still bring an AED that close in time.
    pub reach_m: f64,
    pub on_duty_per_km2: f64,
    pub on_duty_per_1000: f64,
    /// On duty at any time across the scope, and registered (on duty / on-duty share).
    pub on_duty: f64,
    pub registered: f64,
    pub registered_per_1000: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetPlan {
    pub target_share: f64,
    /// Whether the share is reached within the AEDs the request allowed.
    pub reached: bool,
    pub before: Coverage,
    pub after: Coverage,
    pub aeds_to_add: usize,
    pub sites: Vec<Site>,
    /// `None` when nobody lives in scope (shares are then per cell).
    pub rescuers: Option<RescuersNeeded>,
}

/// `req.add` is the most AEDs to consider adding.
pub fn plan_for_share(
    map: &CoverageMap,
    req: &PlanRequest,
    target_share: f64,
    m: &RescuerModel,
) -> TargetPlan {
    let full = plan(
        map,
        &PlanRequest {
            relocate: 0,
            suggest_24_7: 0,
            ..req.clone()
        },
    );
    let total = full.before.population;
    let weighted = total > 0.0;
    // Gains are in the units of the shares: people, or cells where nobody lives.
    let scale = if weighted {
        total
    } else if full.before.share > 0.0 {
        full.before.covered_population / full.before.share
    } else {
        f64::NAN
    };
    let mut covered = full.before.covered_population;
    let mut k = 0;
    while k < full.sites.len() && covered < target_share * scale - 1e-9 {
        covered += full.sites[k].gain_population;
        k += 1;
    }
    let sites = full.sites[..k].to_vec();
    let share = if scale > 0.0 { covered / scale } else { 0.0 };
    let after = Coverage {
        share,
        covered_population: covered,
        population: total,
    };
    let rescuers = weighted.then(|| rescuers_needed(map, req, &sites, target_share.min(share), m));
    TargetPlan {
        target_share,
        reached: share + 1e-9 >= target_share,
        before: full.before,
        after,
        aeds_to_add: sites.len(),
        sites,
        rescuers,
    }
}

fn rescuers_needed(
    map: &CoverageMap,
    req: &PlanRequest,
    sites: &[Site],
    share: f64,
    m: &RescuerModel,
) -> RescuersNeeded {
    let grid = map.grid();
    let mut covered: Vec<bool> = (0..grid.cells.len())
        .map(|i| map.covered(i as u32))
        .collect();
    for s in sites {
        for c in map.cover_set_at(aednet_core::LatLon {
            lat: s.lat,
            lon: s.lon,
        }) {
            covered[c as usize] = true;
        }
    }
    let in_scope = |c: &crate::Cell| req.district.is_none_or(|d| c.district == Some(d));
    let population: f64 = grid
        .cells
        .iter()
        .filter(|c| in_scope(c))
        .map(|c| c.population)
        .sum();
    let mut cells: Vec<(f64, f64)> = grid
        .cells
        .iter()
        .zip(&covered)
        .filter(|(c, cov)| **cov && in_scope(c) && c.population > 0.0)
        .map(|(c, _)| (c.population / (c.cell.area_m2() / 1e6), c.population))
        .collect();
    cells.sort_by(|a, b| b.0.total_cmp(&a.0));
    let need = share * population;
    let mut sum = 0.0;
    let mut sparsest = cells.first().map_or(0.0, |c| c.0);
    for (density, people) in &cells {
        if sum >= need {
            break;
        }
        sum += people;
        sparsest = *density;
    }
    let budget = map.params().budget_s;
    let reach_m = ((budget - m.reaction_s).max(0.0) * m.speed_mps / (2.0 * m.detour)).max(1.0);
    let lambda = -(1.0 - m.confidence.clamp(0.0, 0.999_999)).ln();
    let on_duty_per_km2 =
        lambda / (m.accept.max(1e-6) * std::f64::consts::PI * (reach_m / 1000.0).powi(2));
    let on_duty_per_person = if sparsest > 0.0 {
        on_duty_per_km2 / sparsest
    } else {
        f64::INFINITY
    };
    let on_duty = on_duty_per_person * population;
    let registered = on_duty / m.on_duty.max(1e-6);
    RescuersNeeded {
        sparsest_density_per_km2: sparsest,
        reach_m,
        on_duty_per_km2,
        on_duty_per_1000: on_duty_per_person * 1000.0,
        on_duty,
        registered,
        registered_per_1000: registered * 1000.0 / population.max(1.0),
    }
}
