//! One policy's real dispatch [`Engine`] on its own store, index and virtual clock, and one
//! arrest run through it event by event.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use aednet_api::AppState;
use aednet_core::event::LocalBus;
use aednet_core::{Clock, LatLon, ManualClock};
use aednet_dispatch::{Answer, Engine, OfferState, Outcome, Policy};
use aednet_geoindex::{AedIndex, Filters};
use chrono::{DateTime, Duration, Utc};

use super::stats::ArrestOutcome;
use super::world::{pace, Arrest, World, DENSE_PER_KM2, SPEED_DENSE_MPS};
use super::{fate, travel_m, Reply, SimOptions, HORIZON_S};

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

pub(super) struct Bench {
    pub(super) engine: Arc<Engine>,
    pub(super) state: AppState,
    clock: Arc<ManualClock>,
    /// Rescuers beyond the policy's widest wave are never alerted: left out of the index.
    reach_m: f64,
}

impl Bench {
    pub(super) async fn new(w: &World, policy: Policy, at: DateTime<Utc>) -> anyhow::Result<Self> {
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
        let reach_m = policy.waves_m.iter().copied().fold(0.0, f64::max) + 50.0;
        let engine = Engine::new(state.clone(), policy);
        Ok(Self {
            engine,
            state,
            clock,
            reach_m,
        })
    }

    /// One arrest from the first alert to the ambulance, event by event.
    pub(super) async fn arrest(
        &self,
        o: &SimOptions,
        w: &World,
        n: usize,
        a: &Arrest,
    ) -> anyhow::Result<ArrestOutcome> {
        let geo = &self.state.geo;
        let graph = w.graph.as_deref();
        self.clock.set(a.at);
        let near: Vec<(i64, LatLon)> = a
            .on_duty
            .iter()
            .filter(|(_, p)| p.distance_m(&a.patient) <= self.reach_m)
            .copied()
            .collect();
        let pos: HashMap<i64, LatLon> = near.iter().copied().collect();
        for &(r, p) in &near {
            geo.rescuer_moved(r, p, a.at);
        }
        // How fast each walks here: the median of the place (slower in crowds), their pace.
        let base = o.speed_mps
            * if a.density > DENSE_PER_KM2 {
                SPEED_DENSE_MPS / super::world::SPEED_MEDIAN_MPS
            } else {
                1.0
            };
        let speed = |r: i64| base * pace(o.seed, r);
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
        // Per arrival: when, and for a fetch, which AED and when they were at it.
        let mut arrivals: Vec<(f64, Option<(i64, f64)>)> = Vec::new();
        let mut trips: HashMap<u32, Option<(i64, f64)>> = HashMap::new();
        let mut out = ArrestOutcome {
            aed_s: f64::INFINITY,
            cpr_s: f64::INFINITY,
            ems_s: a.ems_s,
            alerts: 0,
            accepted: 0,
            wasted: 0,
            too_late: 0,
            fetch_alerts: 0,
        };
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
                        let from = pos.get(&rescuer).copied().unwrap_or(a.patient);
                        let answer = if reply == Reply::Accept {
                            // The phone sends its position with the accept.
                            geo.rescuer_moved(rescuer, from, t);
                            Answer::Accept
                        } else {
                            Answer::Decline
                        };
                        match self.engine.answer(inc.id, offer, rescuer, answer).await {
                            Ok(done) if done.offer.state == OfferState::Accepted => {
                                out.accepted += 1;
                                let since = (t - a.at).num_milliseconds() as f64 / 1000.0;
                                let (dt, fetch) = match done
                                    .offer
                                    .fetch_aed
                                    .and_then(|id| Some((id, aeds.get(&id)?)))
                                {
                                    Some((id, (at, handling))) => {
                                        let to_aed =
                                            travel_m(graph, from, *at) / speed(rescuer) + handling;
                                        (
                                            to_aed
                                                + travel_m(graph, *at, a.patient) / speed(rescuer),
                                            Some((id, since + to_aed)),
                                        )
                                    }
                                    None => {
                                        (travel_m(graph, from, a.patient) / speed(rescuer), None)
                                    }
                                };
                                trips.insert(offer, fetch);
                                seq += 1;
                                queue.push(Reverse((
                                    t + Duration::milliseconds((dt * 1000.0) as i64),
                                    seq,
                                    Event::Arrive { offer, rescuer },
                                )));
                            }
                            Ok(_) => {}
                            Err(_) if reply == Reply::Accept => out.too_late += 1,
                            Err(_) => {}
                        }
                    }
                    Event::Arrive { offer, rescuer } => {
                        geo.rescuer_moved(rescuer, a.patient, t);
                        self.engine
                            .answer(inc.id, offer, rescuer, Answer::Arrived)
                            .await?;
                        let secs = (t - a.at).num_milliseconds() as f64 / 1000.0;
                        arrivals.push((secs, trips.get(&offer).copied().flatten()));
                    }
                }
            }
            inc = self.engine.get(inc.id).await?;
        }
        // Where a policy sends two fetchers to one AED, the first at the cabinet takes it; the
        // other comes on without one.
        let first_at = |id: i64| {
            arrivals
                .iter()
                .filter_map(|x| x.1.filter(|f| f.0 == id).map(|f| f.1))
                .fold(f64::INFINITY, f64::min)
        };
        let with_aed =
            |x: &(f64, Option<(i64, f64)>)| x.1.is_some_and(|(id, at)| at <= first_at(id));
        out.aed_s = arrivals
            .iter()
            .filter(|x| with_aed(x))
            .map(|x| x.0)
            .fold(f64::INFINITY, f64::min);
        out.cpr_s = arrivals.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
        self.clock.set(end.max(self.clock.now()));
        self.engine
            .close(
                inc.id,
                Some(Outcome {
                    aed_applied: out.aed_s.is_finite(),
                    shock_delivered: false,
                    handed_to_ems: true,
                }),
            )
            .await?;
        for &(r, _) in &near {
            geo.rescuer_gone(r);
        }
        out.alerts = inc.offers.len() as u32;
        out.fetch_alerts = inc.offers.iter().filter(|x| x.fetch_aed.is_some()).count() as u32;
        // Accepted rescuers who were neither the first at the patient nor the first AED.
        let useful = u32::from(out.cpr_s.is_finite())
            + u32::from(
                out.aed_s.is_finite() && !arrivals.iter().any(|x| with_aed(x) && x.0 == out.cpr_s),
            );
        out.wasted = out.accepted.saturating_sub(useful);
        Ok(out)
    }
}
