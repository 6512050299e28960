//! Who is offered next: the policy's plan over free rescuers and unclaimed AEDs near the
//! patient, widened wave by wave.

use std::collections::HashSet;

use aednet_core::LatLon;
use aednet_geoindex::Filters;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::{Engine, EngineError};
use crate::incident::{Incident, OfferRecord, OfferState};
use crate::policy::{plan, plan_with, AedOption, Candidate};

impl Engine {
    /// An `offer` frame; the AED to fetch is described from the index.
    pub(super) fn offer_message(&self, inc: &Incident, o: &OfferRecord) -> Value {
        let aed = o.fetch_aed.and_then(|id| {
            let aeds = self.state.geo.aeds();
            aeds.get(id).map(|n| {
                json!({"id": n.id, "name": n.detail.name, "lat": n.pos.lat, "lon": n.pos.lon,
                    "indoor": n.indoor, "level": n.detail.level,
                    "location_description": n.detail.location_description,
                    "cabinet_locked": n.cabinet_locked})
            })
        });
        json!({"type": "offer", "incident_id": inc.id, "offer_id": o.id,
            "role": if o.fetch_aed.is_some() { "fetch_aed" } else { "cpr" },
            "lat": inc.lat, "lon": inc.lon, "address": inc.address, "eta_s": o.eta_s,
            "expires_at": o.expires_at, "aed": aed})
    }

    /// Offers the next wave; returns the messages to push (after persisting).
    pub(super) async fn next_wave(
        &self,
        inc: &mut Incident,
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, Value)>, EngineError> {
        let _planning = self.planning.lock().await;
        let pos = LatLon {
            lat: inc.lat,
            lon: inc.lon,
        };
        let geo = &self.state.geo;
        let mut busy: HashSet<i64> = self.committed.lock().keys().copied().collect();
        if self.peers.is_some() {
            // Rescuers other nodes' incidents hold are busy too.
            for other in self.stored_open().await? {
                if other.id != inc.id && self.slot(other.id).is_none() {
                    busy.extend(
                        other
                            .offers
                            .iter()
                            .filter(|o| o.state.holds())
                            .map(|o| o.rescuer_id),
                    );
                }
            }
        }
        let asked: HashSet<i64> = inc.offered_rescuers().into_iter().collect();
        let claimed: HashSet<i64> = inc.claimed_aeds().into_iter().collect();
        let free = |id: i64| !busy.contains(&id) && !asked.contains(&id);
        let aeds_within = |r: f64| {
            let mut f = Filters::caller_defaults(now);
            f.max_distance_m = Some(r);
            geo.nearest_aeds(pos, 50, &f, &self.state.walk)
        };
        let radius = self.policy.wave(|r| {
            (
                geo.rescuers_within(pos, r, 1000, now, free).len(),
                aeds_within(r).len(),
            )
        });
        let candidates: Vec<Candidate> = geo
            .rescuers_within(pos, radius, 200, now, free)
            .into_iter()
            .map(|n| Candidate {
                rescuer_id: n.id,
                pos: n.fix.pos,
                accept: if self.policy.accept_from_record {
                    self.acceptance(n.id)
                } else {
                    None
                },
            })
            .collect();
        // AEDs a little beyond the radius can still be on a rescuer's way.
        let nearby: Vec<aednet_geoindex::Nearest> = aeds_within(radius * 1.5)
            .into_iter()
            .filter(|n| !claimed.contains(&n.id))
            .collect();
        let options: Vec<AedOption> = nearby
            .iter()
            .map(|n| AedOption {
                aed_id: n.id,
                pos: LatLon {
                    lat: n.lat,
                    lon: n.lon,
                },
                handling_s: (n.one_way_s - self.state.walk.walk_s(n.distance_m)).max(0.0),
            })
            .collect();
        let pending = inc
            .offers
            .iter()
            .filter(|o| o.state == OfferState::Offered)
            .count();
        let mut p = self.policy.clone();
        p.max_alerts = p.max_alerts.saturating_sub(pending);
        // On the walking network when one is loaded: one bounded search from the patient and
        // one from each AED.
        let graph = self.state.walk_graph.get();
        let offers = match graph.as_deref() {
            Some(g) => {
                let opts = aednet_geoindex::network::snap_options(&self.state.walk);
                let travel = crate::travel::NetworkTravel::new(
                    &g.value,
                    &opts,
                    &p,
                    pos,
                    &candidates,
                    &options,
                );
                plan_with(pos, &candidates, &options, &p, &|a, b| {
                    travel.travel_s(a, b)
                })
            }
            None => plan(pos, &candidates, &options, &p),
        };
        let timeout = Duration::milliseconds((self.policy.offer_timeout_s * 1000.0) as i64);
        let sent = inc.offer(&offers, timeout, now)?;
        self.sync_commitments(inc);
        Ok(inc
            .offers
            .iter()
            .filter(|o| sent.contains(&o.id))
            .map(|o| (o.rescuer_id, self.offer_message(inc, o)))
            .collect())
    }
}
