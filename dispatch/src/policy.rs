//! Who is alerted, and to do what.
//!
//! Given the patient's position, the rescuers within the current wave's radius and the usable
//! AEDs (ready, open, accessible — the caller's filters), [`plan`] returns offers, giving each
//! rescuer the role in which they can be where they are needed first:
//!
//! 1. CPR: the `cpr_direct` rescuers who can reach the patient soonest run straight there; then
//!    (`cpr_confidence`) more of those who can be at the patient within `cpr_target_s`, nearest
//!    first, until at least one of them accepting is that likely — except a rescuer who would be
//!    there in time with an AED too: they fetch it;
//! 2. then fetchers: repeatedly the (rescuer, AED) pair whose rescuer → AED → patient time is
//!    smallest among unassigned rescuers and AEDs with room (`fetchers_per_aed`), while that
//!    time is within `fetch_budget_s`, until at least one accept among the fetchers who can
//!    bring the AED within `aed_target_s` is `fetch_confidence` likely — so the AED that can
//!    arrive first is taken first;
//! 3. remaining rescuers, nearest first, as extra CPR help up to `max_alerts` in all.
//!
//! How likely a rescuer is to accept is their own record when the engine has one (accepted
//! offers over answered or expired ones, shrunk towards `expected_accept`), else
//! `expected_accept`. "In time" counts `reaction_s` to read the offer and set off.
//!
//! Times use the rescuers' moving speed (median volunteer 2.3 m/s in the field studies) over
//! the street detour factor. Waves widen the radius (AED-Alert: 500 → 750 → 1000 m) until
//! enough rescuers and AEDs are in reach; the engine calls `plan` once per wave with who has not
//! been alerted yet.

use aednet_core::LatLon;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Search radii of successive waves, metres.
    pub waves_m: Vec<f64>,
    /// Widen to the next wave until at least this many rescuers…
    pub min_rescuers: usize,
    /// …and this many usable AEDs are in reach.
    pub min_aeds: usize,
    /// Rescuers sent straight to the patient.
    pub cpr_direct: usize,
    /// Fetch roles at most.
    pub max_fetchers: usize,
    /// Alerts per wave at most, all roles.
    pub max_alerts: usize,
    /// A fetch is offered only if the AED can reach the patient within this time.
    pub fetch_budget_s: f64,
    /// Fetch offers per AED at most. More than one where answers are uncertain: with most
    /// alerts unanswered, the best AED otherwise often gets nobody (the first at the cabinet
    /// takes it; the app shows the others the patient).
    pub fetchers_per_aed: usize,
    /// Fetch offers go out, best rescuer → AED → patient first, until the chance that at
    /// least one of them accepts reaches this (at `expected_accept` each); 0: up to
    /// `max_fetchers` whatever the chance.
    pub fetch_confidence: f64,
    /// The acceptance the plan counts on for a rescuer without a record of their own
    /// (field studies: 0.23 PulsePoint – 0.72 SAMBA), and the prior their record is shrunk to.
    pub expected_accept: f64,
    /// Count on each rescuer's own record of accepting (the engine's, shrunk towards
    /// `expected_accept`) rather than `expected_accept` for all.
    pub accept_from_record: bool,
    /// The CPR goal: extra CPR offers go to rescuers who can be at the patient within this
    /// (after `reaction_s`), nearest first, until one accepting is `cpr_confidence` likely.
    pub cpr_target_s: f64,
    /// 0: only the `cpr_direct` nearest are sent straight to the patient.
    pub cpr_confidence: f64,
    /// The AED goal: only fetchers who can bring the AED within this (after `reaction_s`)
    /// count towards `fetch_confidence`; 0: every fetcher counts.
    pub aed_target_s: f64,
    /// Time to read an offer, answer and set off (the simulator draws 20–90 s).
    pub reaction_s: f64,
    pub rescuer_speed_mps: f64,
    pub detour_factor: f64,
    /// How long a rescuer has to answer an offer before it goes to the next one.
    pub offer_timeout_s: f64,
    /// Rescuer positions recorded at accept and arrival are erased from an incident's record
    /// this many days after it closes (personal data; the engine's hourly retention job).
    pub position_retention_days: u32,
    /// Delivery records (which channel reached a rescuer when) of an incident are deleted this
    /// many days after it closes (personal data; the same job).
    pub delivery_retention_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            // Tuned with `aednet simulate dispatch` through the engine (see the README): wider
            // first waves than AED-Alert's 500/750/1000 m, one rescuer straight to CPR; offers
            // wait 90 s, since volunteers take 20–90 s to answer and
            // an accept after the time-out is lost (45 s lost 3 accepts per arrest).
            waves_m: vec![1000.0, 1800.0, 3000.0],
            min_rescuers: 6,
            min_aeds: 2,
            cpr_direct: 1,
            // Re-tuned at the plans' 2 % rescuers (issue 19, docs/simulator.md): fetch offers,
            // best rescuer → AED → patient first, up to 3 per AED, until at least one accept
            // is 90 % likely at 30 % acceptance (7 offers); one fetcher per AED and 4 in all
            // lost to HeartRunner-style mass alerting on AEDs within 8 minutes.
            max_fetchers: 8,
            max_alerts: 16,
            fetch_budget_s: 10.0 * 60.0,
            fetchers_per_aed: 3,
            fetch_confidence: 0.9,
            expected_accept: 0.3,
            // Roles by who can be where first (issue 19) are OFF by default: on Liechtenstein
            // they changed no outcome in the simulator, and the demo city has not been
            // re-measured with them. To try them: `cpr_confidence = 0.9` (CPR offers to those
            // who can start CPR within `cpr_target_s` until one accept is that likely),
            // `aed_target_s = 480` (fetchers counted only if their AED can be there in time),
            // `accept_from_record = true` (each rescuer's chance from their own record).
            accept_from_record: false,
            cpr_target_s: 240.0,
            cpr_confidence: 0.0,
            aed_target_s: 0.0,
            reaction_s: 55.0,
            rescuer_speed_mps: 2.3,
            detour_factor: 1.2,
            offer_timeout_s: 90.0,
            position_retention_days: 30,
            delivery_retention_days: 30,
        }
    }
}

impl Policy {
    pub fn travel_s(&self, a: LatLon, b: LatLon) -> f64 {
        a.distance_m(&b) * self.detour_factor / self.rescuer_speed_mps
    }

    /// The wave to use: the first whose radius reaches enough rescuers and AEDs, else the last.
    /// `counts(radius)` gives (rescuers, AEDs) within a radius.
    pub fn wave(&self, mut counts: impl FnMut(f64) -> (usize, usize)) -> f64 {
        let last = self.waves_m.last().copied().unwrap_or(1000.0);
        for &r in &self.waves_m {
            let (n, a) = counts(r);
            if n >= self.min_rescuers && a >= self.min_aeds {
                return r;
            }
        }
        last
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub rescuer_id: i64,
    pub pos: LatLon,
    /// This rescuer's own chance of accepting, from their record; `None`: `expected_accept`.
    pub accept: Option<f64>,
}

impl Policy {
    /// The chance a candidate accepts.
    pub fn accept_of(&self, c: &Candidate) -> f64 {
        c.accept.unwrap_or(self.expected_accept).clamp(0.0, 1.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AedOption {
    pub aed_id: i64,
    pub pos: LatLon,
    /// Extra seconds at the AED (floors, finding it indoors, opening the cabinet).
    pub handling_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum OfferRole {
    Cpr,
    FetchAed { aed_id: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Offer {
    pub rescuer_id: i64,
    #[serde(flatten)]
    pub role: OfferRole,
    /// Estimated time until this rescuer is at the patient (via the AED for a fetch).
    pub eta_s: f64,
}

pub fn plan(patient: LatLon, rescuers: &[Candidate], aeds: &[AedOption], p: &Policy) -> Vec<Offer> {
    plan_with(patient, rescuers, aeds, p, &|a, b| p.travel_s(a, b))
}

/// [`plan`] with travel times from `travel` (seconds from one place to another: the walking
/// network's, [`crate::travel::NetworkTravel`]).
pub fn plan_with(
    patient: LatLon,
    rescuers: &[Candidate],
    aeds: &[AedOption],
    p: &Policy,
    travel: &dyn Fn(LatLon, LatLon) -> f64,
) -> Vec<Offer> {
    let mut by_direct: Vec<(f64, Candidate)> = rescuers
        .iter()
        .map(|c| (travel(c.pos, patient), *c))
        .collect();
    by_direct.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then(a.1.rescuer_id.cmp(&b.1.rescuer_id))
    });
    let cap = p.max_alerts;
    // Every (rescuer, AED) pair within the fetch budget, fastest first.
    let to_patient: Vec<f64> = aeds.iter().map(|a| travel(a.pos, patient)).collect();
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (ri, (_, c)) in by_direct.iter().enumerate() {
        for (ai, a) in aeds.iter().enumerate() {
            let t = travel(c.pos, a.pos) + a.handling_s + to_patient[ai];
            if t <= p.fetch_budget_s {
                pairs.push((t, ri, ai));
            }
        }
    }
    pairs.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    let mut best_fetch = vec![f64::INFINITY; by_direct.len()];
    for &(t, ri, _) in &pairs {
        best_fetch[ri] = best_fetch[ri].min(t);
    }
    // Role per rescuer (index into by_direct): Some(None) CPR, Some(Some((AED, time))) fetch.
    let mut role: Vec<Option<Option<(usize, f64)>>> = vec![None; by_direct.len()];
    let mut order: Vec<usize> = Vec::new();
    // 1. CPR straight away, nearest first.
    let direct = p.cpr_direct.min(cap).min(by_direct.len());
    let cpr_in = (p.cpr_target_s - p.reaction_s).max(0.0);
    // The chance that nobody in time for CPR accepts, so far.
    let mut no_cpr = 1.0;
    for ri in 0..direct {
        role[ri] = Some(None);
        order.push(ri);
        if by_direct[ri].0 <= cpr_in {
            no_cpr *= 1.0 - p.accept_of(&by_direct[ri].1);
        }
    }
    if p.cpr_confidence > 0.0 {
        for ri in direct..by_direct.len() {
            if order.len() >= cap || 1.0 - no_cpr >= p.cpr_confidence {
                break;
            }
            if by_direct[ri].0 > cpr_in {
                break;
            }
            // With an AED in time as well: better a fetcher (step 2).
            if best_fetch[ri] <= cpr_in {
                continue;
            }
            role[ri] = Some(None);
            order.push(ri);
            no_cpr *= 1.0 - p.accept_of(&by_direct[ri].1);
        }
    }
    // 2. Fetchers: smallest rescuer → AED → patient first, up to `fetchers_per_aed` per AED.
    let aed_in = (p.aed_target_s - p.reaction_s).max(0.0);
    let mut aed_used = vec![0usize; aeds.len()];
    let per_aed = p.fetchers_per_aed.max(1);
    let mut fetchers = 0;
    // The chance that no fetch offer (in time) made so far is accepted.
    let mut none = 1.0;
    for &(t, ri, ai) in &pairs {
        if fetchers >= p.max_fetchers || order.len() >= cap {
            break;
        }
        if p.fetch_confidence > 0.0 && 1.0 - none >= p.fetch_confidence {
            break;
        }
        if role[ri].is_some() || aed_used[ai] >= per_aed {
            continue;
        }
        role[ri] = Some(Some((ai, t)));
        order.push(ri);
        aed_used[ai] += 1;
        fetchers += 1;
        if p.aed_target_s <= 0.0 || t <= aed_in {
            none *= 1.0 - p.accept_of(&by_direct[ri].1);
        }
    }
    // 3. The rest as extra CPR help, nearest first, up to the cap.
    for (ri, r) in role.iter_mut().enumerate() {
        if order.len() >= cap {
            break;
        }
        if r.is_none() {
            *r = Some(None);
            order.push(ri);
        }
    }
    order
        .into_iter()
        .map(|ri| {
            let (t, c) = by_direct[ri];
            match role[ri] {
                Some(Some((ai, eta_s))) => Offer {
                    rescuer_id: c.rescuer_id,
                    role: OfferRole::FetchAed {
                        aed_id: aeds[ai].aed_id,
                    },
                    eta_s,
                },
                _ => Offer {
                    rescuer_id: c.rescuer_id,
                    role: OfferRole::Cpr,
                    eta_s: t,
                },
            }
        })
        .collect()
}
