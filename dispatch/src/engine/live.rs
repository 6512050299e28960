//! Live channels: each rescuer's (offers, stand-downs, live distance/ETA while on the way), the
//! dispatchers' board, and the accepted responders whose moves become those updates.

use std::collections::HashMap;

use aednet_core::{LatLon, Signal};
use aednet_geoindex::Filters;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::Engine;
use crate::incident::{Incident, OfferState};

/// An accepted responder on the way, for live distance/ETA (kept in sync with the incidents).
#[derive(Debug, Clone, Copy)]
pub(super) struct Responder {
    pub(super) incident_id: i64,
    pub(super) offer_id: u32,
    pub(super) patient: LatLon,
    /// The AED to fetch, until the responder has been near it.
    pub(super) aed: Option<LatLon>,
}

/// Within this distance of the AED a fetcher counts as having picked it up.
const AT_AED_M: f64 = 30.0;

impl Engine {
    /// Incident changes for dispatcher consoles: `{"type": "incident", "incident_id", "state",
    /// "events": [new audit entries]}`, and each accepted responder's live position, distance
    /// and ETA as they move (`{"type": "responder", …}`, see [`Engine::responder_moved`]).
    pub fn board(&self) -> broadcast::Receiver<String> {
        self.board.subscribe()
    }

    /// Responders of an incident with their live distance and ETA to the patient (from the
    /// in-memory rescuer index; `null` when a position has expired), and AEDs nearby with their
    /// readiness and hours.
    pub async fn live_view(&self, inc: &Incident) -> Value {
        let now = self.state.clock.now();
        let pos = LatLon {
            lat: inc.lat,
            lon: inc.lon,
        };
        let responders: Vec<Value> = inc
            .offers
            .iter()
            .filter(|o| matches!(o.state, OfferState::Accepted | OfferState::Arrived))
            .map(|o| {
                let fix = self.state.geo.rescuer(o.rescuer_id);
                let d = fix.map(|f| f.pos.distance_m(&pos));
                let aed = o
                    .fetch_aed
                    .filter(|_| o.state == OfferState::Accepted)
                    .and_then(|id| self.state.geo.aeds().get(id).map(|e| e.pos));
                let way = fix.map(|f| self.responder_way(f.pos, aed, pos));
                // The position goes to dispatchers only (this view is never public), and only
                // for responders who accepted: the console draws them moving.
                json!({"rescuer_id": o.rescuer_id, "offer_id": o.id, "state": o.state, "fetch_aed": o.fetch_aed,
                    "distance_m": d, "eta_s": way.as_ref().map(|w| w.0.round()), "route": way.and_then(|w| w.1),
                    "lat": fix.map(|f| f.pos.lat), "lon": fix.map(|f| f.pos.lon),
                    "seen_at": fix.map(|f| f.seen_at)})
            })
            .collect();
        let mut f = Filters::caller_defaults(now);
        f.max_distance_m = Some(1000.0);
        f.readiness = aednet_geoindex::ReadinessFilter::Any;
        f.hours = aednet_geoindex::HoursPolicy::Any;
        let aeds = self.state.geo.nearest_aeds(pos, 10, &f, &self.state.walk);
        json!({"responders": responders, "aeds_nearby": aeds})
    }

    /// A rescuer's live channel (offers, stand-downs); pending offers are resent on connect.
    pub fn subscribe(&self, rescuer_id: i64) -> broadcast::Receiver<String> {
        self.channels
            .lock()
            .entry(rescuer_id)
            .or_insert_with(|| broadcast::channel(64).0)
            .subscribe()
    }

    /// To the rescuer's live channel on this node, and on a cluster to whichever node holds
    /// their socket.
    pub(super) fn push(&self, rescuer_id: i64, msg: &Value) {
        let frame = msg.to_string();
        let mut on_socket = false;
        if let Some(tx) = self.channels.lock().get(&rescuer_id) {
            on_socket = tx.send(frame.clone()).is_ok();
        }
        self.deliver(rescuer_id, msg, on_socket);
        if let Some(p) = &self.peers {
            p.signal(Signal::ToRescuer { rescuer_id, frame });
        }
    }

    /// To dispatcher consoles on every node.
    pub(super) fn post_board(&self, frame: String) {
        if let Some(p) = &self.peers {
            p.signal(Signal::Board {
                frame: frame.clone(),
            });
        }
        let _ = self.board.send(frame);
    }

    pub(super) fn sync_commitments(&self, inc: &Incident) {
        let mut c = self.committed.lock();
        c.retain(|_, i| *i != inc.id);
        let mut r = self.responders.lock();
        let before: HashMap<i64, Responder> = r
            .iter()
            .filter(|(_, x)| x.incident_id == inc.id)
            .map(|(k, v)| (*k, *v))
            .collect();
        r.retain(|_, x| x.incident_id != inc.id);
        if inc.state.is_open() {
            for o in &inc.offers {
                if matches!(
                    o.state,
                    OfferState::Offered | OfferState::Accepted | OfferState::Arrived
                ) {
                    c.insert(o.rescuer_id, inc.id);
                }
                if o.state == OfferState::Accepted {
                    // Keep what was learnt (the AED already reached) across re-syncs.
                    let aed = match before.get(&o.rescuer_id) {
                        Some(b) if b.offer_id == o.id => b.aed,
                        _ => o
                            .fetch_aed
                            .and_then(|id| self.state.geo.aeds().get(id).map(|e| e.pos)),
                    };
                    r.insert(
                        o.rescuer_id,
                        Responder {
                            incident_id: inc.id,
                            offer_id: o.id,
                            patient: LatLon {
                                lat: inc.lat,
                                lon: inc.lon,
                            },
                            aed,
                        },
                    );
                }
            }
        }
    }

    /// A responder's ETA at `pos` (via the AED for a fetch) and, on the walking network, the
    /// way as a GeoJSON LineString (`None`: no network loaded, the straight-line model).
    fn responder_way(
        &self,
        pos: LatLon,
        aed: Option<LatLon>,
        patient: LatLon,
    ) -> (f64, Option<Value>) {
        let p = &self.policy;
        let graph = self.state.walk_graph.get();
        match graph.as_deref() {
            Some(g) => {
                let opts = aednet_geoindex::network::snap_options(&self.state.walk);
                let (s, pts) =
                    crate::travel::responder_route(&g.value, &opts, p, pos, aed, patient);
                let line: Vec<[f64; 2]> = pts.iter().map(|q| [q.lon, q.lat]).collect();
                (s, Some(json!({"type": "LineString", "coordinates": line})))
            }
            None => (
                match aed {
                    Some(a) => p.travel_s(pos, a) + p.travel_s(a, patient),
                    None => p.travel_s(pos, patient),
                },
                None,
            ),
        }
    }

    /// Live distance and ETA of an accepted responder who moved: to the rescuer (`update`)
    /// and to dispatcher consoles (`responder`, with the position so the console can draw them
    /// moving: the board is for dispatchers only and keeps nothing). Never to other rescuers.
    pub fn responder_moved(&self, rescuer_id: i64, pos: LatLon) {
        let r = {
            let mut map = self.responders.lock();
            let Some(r) = map.get_mut(&rescuer_id) else {
                return;
            };
            if r.aed.is_some_and(|a| a.distance_m(&pos) <= AT_AED_M) {
                r.aed = None;
            }
            *r
        };
        let to_patient = pos.distance_m(&r.patient);
        let (eta, route) = self.responder_way(pos, r.aed, r.patient);
        let to_aed = r.aed.map(|a| pos.distance_m(&a));
        let to_patient = to_patient.round();
        let to_aed = to_aed.map(f64::round);
        let eta = eta.round();
        // Their own way (via the AED while fetching) when the server has a walking network.
        self.push(
            rescuer_id,
            &json!({"type": "update", "incident_id": r.incident_id, "offer_id": r.offer_id,
                "distance_m": to_patient, "aed_distance_m": to_aed, "eta_s": eta, "route": route.clone()}),
        );
        self.post_board(
            json!({"type": "responder", "incident_id": r.incident_id, "offer_id": r.offer_id,
                "rescuer_id": rescuer_id, "distance_m": to_patient, "aed_distance_m": to_aed,
                "eta_s": eta, "lat": pos.lat, "lon": pos.lon,
                "route": route})
            .to_string(),
        );
    }
}

impl aednet_mobile_api::rescuer::LocationObserver for Engine {
    fn moved(&self, rescuer_id: i64, pos: LatLon, _at: DateTime<Utc>) {
        self.responder_moved(rescuer_id, pos);
    }
}
