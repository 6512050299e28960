//! Rescuers' travel times on the walking network, for [`crate::policy::plan_with`]: one search
//! from the patient (to every rescuer and AED) cut off at the fetch budget's distance, and one
//! from each AED (to every rescuer) cut off at what is left of the budget after the AED's own
//! walk to the patient (a rescuer farther than that could not bring it within the budget; an
//! AED the patient's search did not reach gets no search at all), so a wave with 200 rescuers
//! and 50 AEDs costs at most 51 bounded searches rather than 10 000 walks. A place off the
//! network, on a part of it the other end does not reach, or farther than the cutoff keeps the
//! straight-line model (the latter at least the cutoff's time).

use std::collections::HashMap;

use aednet_core::LatLon;
use aednet_routing::{cost_m, Graph, Search, Snap, SnapOptions};

use crate::policy::{AedOption, Candidate, Policy};

/// A place, by its coordinates' bits.
type Key = (u64, u64);

fn key(p: LatLon) -> Key {
    (p.lat.to_bits(), p.lon.to_bits())
}

/// Travel times between a patient, rescuers and AEDs, measured once.
#[derive(Debug)]
pub struct NetworkTravel {
    /// (from, to) → metres walked, both orders (the network is undirected).
    walks: HashMap<(Key, Key), f64>,
    /// Each place on the network: its component.
    component: HashMap<Key, u32>,
    speed_mps: f64,
    detour_factor: f64,
    cutoff_m: f64,
    /// Each AED's own search cutoff (what is left of the budget after its walk to the
    /// patient): an unmeasured walk from one is longer than that.
    short_cutoff: HashMap<Key, f64>,
    /// The patient, searched from with the whole cutoff (walks to it keep `cutoff_m`).
    patient: Key,
}

impl NetworkTravel {
    pub fn new(
        graph: &Graph,
        opts: &SnapOptions,
        p: &Policy,
        patient: LatLon,
        rescuers: &[Candidate],
        aeds: &[AedOption],
    ) -> Self {
        let cutoff_m = p.fetch_budget_s * p.rescuer_speed_mps;
        let mut me = Self {
            walks: HashMap::new(),
            component: HashMap::new(),
            speed_mps: p.rescuer_speed_mps,
            detour_factor: p.detour_factor,
            cutoff_m,
            short_cutoff: HashMap::new(),
            patient: key(patient),
        };
        let snap = |pos: LatLon| graph.snap(pos, opts).map(|s| (pos, s));
        let rescuer_snaps: Vec<(LatLon, Snap)> =
            rescuers.iter().filter_map(|r| snap(r.pos)).collect();
        let aed_snaps: Vec<(LatLon, Snap)> = aeds.iter().filter_map(|a| snap(a.pos)).collect();
        for (pos, s) in rescuer_snaps.iter().chain(&aed_snaps) {
            me.component.insert(key(*pos), s.component);
        }
        let from_patient = snap(patient);
        if let Some((pos, s)) = &from_patient {
            me.component.insert(key(*pos), s.component);
        }
        let Some(from_patient) = from_patient else {
            // The patient is off the network: only rescuer → AED legs can use it.
            for a in &aed_snaps {
                me.measure(graph, a, &rescuer_snaps, cutoff_m);
            }
            return me;
        };
        let mut targets = rescuer_snaps.clone();
        targets.extend(aed_snaps.iter().copied());
        me.measure(graph, &from_patient, &targets, cutoff_m);
        for a in &aed_snaps {
            // A rescuer → AED walk longer than the budget left after AED → patient (as the
            // plan counts it: measured, at least the cutoff when connected but not reached,
            // or straight across parts that do not meet) can make no fetch within the budget:
            // search no farther, and not at all when nothing is left.
            let left = cutoff_m - me.travel_m(a.0, patient);
            me.short_cutoff.insert(key(a.0), left.max(0.0));
            if left > 0.0 {
                me.measure(graph, a, &rescuer_snaps, left);
            }
        }
        me
    }

    fn measure(
        &mut self,
        graph: &Graph,
        from: &(LatLon, Snap),
        to: &[(LatLon, Snap)],
        cutoff_m: f64,
    ) {
        let limit_cm = ((cutoff_m - from.1.off_m).max(0.0) * 100.0) as u32;
        aednet_routing::with_scratch(|scratch| {
            let mut search = Search::new(graph, scratch, &from.1);
            search.settle_within(limit_cm);
            for (pos, t) in to {
                if let Some(c) = search.cost_if_settled(t).filter(|&c| c <= limit_cm) {
                    let m = from.1.off_m + cost_m(c) + t.off_m;
                    self.walks.insert((key(from.0), key(*pos)), m);
                    self.walks.insert((key(*pos), key(from.0)), m);
                }
            }
        });
    }

    /// Seconds from `a` to `b` (both among the places measured, or the straight-line model).
    pub fn travel_s(&self, a: LatLon, b: LatLon) -> f64 {
        self.travel_m(a, b) / self.speed_mps
    }

    /// Metres from `a` to `b`, as [`Self::travel_s`] counts them.
    fn travel_m(&self, a: LatLon, b: LatLon) -> f64 {
        if let Some(m) = self.walks.get(&(key(a), key(b))) {
            return *m;
        }
        let straight = a.distance_m(&b) * self.detour_factor;
        let connected = matches!(
            (self.component.get(&key(a)), self.component.get(&key(b))),
            (Some(x), Some(y)) if x == y
        );
        // Connected but not measured: farther than the cutoff of the search that would have
        // found it, so at least that. Otherwise (off the network, or on parts that do not
        // meet) the straight-line model.
        if connected {
            let ends = [key(a), key(b)];
            let to_patient = ends.contains(&self.patient);
            let cutoff = ends
                .iter()
                .filter(|_| !to_patient)
                .filter_map(|k| self.short_cutoff.get(k))
                // More than the short cutoff (the search settled everything up to it), so a
                // fetch through that AED stays over the budget, never exactly on it.
                .fold(self.cutoff_m, |c, s| c.min(*s + 0.01));
            straight.max(cutoff)
        } else {
            straight
        }
    }

    /// Walks measured on the network (both orders counted once).
    pub fn measured(&self) -> usize {
        self.walks.len() / 2
    }
}

/// One leg walked: on the network when both ends are on connected parts of it, else straight.
/// Returns (metres, the walk's points from `a` to `b`).
pub fn walk_leg(
    graph: &Graph,
    opts: &SnapOptions,
    a: LatLon,
    b: LatLon,
    detour_factor: f64,
) -> (f64, Vec<LatLon>) {
    if let (Some(sa), Some(sb)) = (graph.snap(a, opts), graph.snap(b, opts)) {
        if let Some(r) = graph.route(&sa, &sb) {
            let mut pts = vec![a];
            pts.extend(r.coords);
            pts.push(b);
            pts.dedup();
            return (sa.off_m + cost_m(r.cost_cm) + sb.off_m, pts);
        }
    }
    (a.distance_m(&b) * detour_factor, vec![a, b])
}

/// A responder's way to the patient, via the AED for a fetch: (seconds, the points walked).
pub fn responder_route(
    graph: &Graph,
    opts: &SnapOptions,
    p: &Policy,
    from: LatLon,
    via: Option<LatLon>,
    to: LatLon,
) -> (f64, Vec<LatLon>) {
    let legs = match via {
        Some(v) => vec![(from, v), (v, to)],
        None => vec![(from, to)],
    };
    let (mut m, mut pts) = (0.0, Vec::new());
    for (a, b) in legs {
        let (lm, lp) = walk_leg(graph, opts, a, b, p.detour_factor);
        m += lm;
        pts.extend(lp);
    }
    pts.dedup();
    (m / p.rescuer_speed_mps, pts)
}
