//! The dispatch engine: incidents persisted after every change (document + append-only audit),
//! offers pushed to rescuers' channels, answers, time-out timers, further waves, stand-down,
//! live distance/ETA of responders on their way, and resumption of open incidents after a
//! restart.
//!
//! Time comes only from the state's [`aednet_core::Clock`]: offer time-outs are deadlines on
//! that clock, fired by [`Engine::fire_due`]. Live, [`Engine::start`] runs a task that sleeps
//! until [`Engine::next_deadline`] and calls it; the outcome simulator calls the same two on a
//! virtual clock and never sleeps.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use aednet_api::AppState;
use aednet_core::LatLon;
use aednet_geoindex::Filters;
use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{broadcast, Mutex as AsyncMutex, Notify};

use crate::incident::{Answer, DispatchError, Effects, Incident, OfferRecord, OfferState, Outcome};
use crate::policy::{plan, AedOption, Candidate, Policy};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    #[error("no such incident")]
    NotFound,
    #[error(transparent)]
    Store(#[from] aednet_store::StoreError),
}

/// What a rescuer gets back for an answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Answered {
    pub incident_id: i64,
    pub offer: OfferRecord,
    /// Only for an accepted fetch of a locked cabinet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cabinet_code: Option<String>,
}

/// An accepted responder on the way, for live distance/ETA (kept in sync with the incidents).
#[derive(Debug, Clone, Copy)]
struct Responder {
    incident_id: i64,
    offer_id: u32,
    patient: LatLon,
    /// The AED to fetch, until the responder has been near it.
    aed: Option<LatLon>,
}

/// Within this distance of the AED a fetcher counts as having picked it up.
const AT_AED_M: f64 = 30.0;

struct Slot {
    incident: Incident,
    /// Audit entries already in the store.
    saved: usize,
}

pub struct Engine {
    state: AppState,
    policy: Policy,
    open: Mutex<HashMap<i64, Arc<AsyncMutex<Slot>>>>,
    /// Rescuer → incident they are offered to or on the way for: nobody is double-booked.
    committed: Mutex<HashMap<i64, i64>>,
    /// Planning is serialised so two incidents close together cannot pick the same rescuer.
    planning: AsyncMutex<()>,
    deadlines: Mutex<BTreeSet<(i64, i64)>>,
    responders: Mutex<HashMap<i64, Responder>>,
    wake: Notify,
    channels: Mutex<HashMap<i64, broadcast::Sender<String>>>,
    /// Every incident change, for dispatcher consoles.
    board: broadcast::Sender<String>,
    /// `aednet_dispatch_offer_seconds`: from an incident's intake to its first wave of offers
    /// stored and on the rescuers' sockets (the alert rule on its p99 watches this).
    offer_seconds: prometheus::Histogram,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("open", &self.open.lock().len())
            .finish()
    }
}

impl Engine {
    pub fn new(state: AppState, policy: Policy) -> Arc<Self> {
        let offer_seconds = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "aednet_dispatch_offer_seconds",
                "From incident intake to the first wave of offers on rescuers' sockets",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )
        .expect("static metric");
        // A second engine on the same registry (the simulator's) keeps the first's metric.
        let _ = state
            .metrics
            .registry
            .register(Box::new(offer_seconds.clone()));
        Arc::new(Self {
            offer_seconds,
            state,
            policy,
            open: Mutex::new(HashMap::new()),
            committed: Mutex::new(HashMap::new()),
            planning: AsyncMutex::new(()),
            deadlines: Mutex::new(BTreeSet::new()),
            responders: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            channels: Mutex::new(HashMap::new()),
            board: broadcast::channel(256).0,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Loads open incidents (their timers resume) and starts the timer task.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        self.resume().await?;
        let engine = self.clone();
        tokio::spawn(async move { engine.timers().await });
        Ok(())
    }

    /// Loads open incidents and their deadlines without starting the timer task: whoever
    /// calls this drives time with [`Engine::fire_due`] (the simulator).
    pub async fn resume(&self) -> anyhow::Result<()> {
        for doc in self.state.store.open_incidents().await? {
            let incident: Incident = serde_json::from_str(&doc)?;
            let saved = incident.audit.len();
            self.sync_commitments(&incident);
            self.schedule(&incident);
            self.open.lock().insert(
                incident.id,
                Arc::new(AsyncMutex::new(Slot { incident, saved })),
            );
        }
        Ok(())
    }

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
                // The position goes to dispatchers only (this view is never public), and only
                // for responders who accepted: the console draws them moving.
                json!({"rescuer_id": o.rescuer_id, "offer_id": o.id, "state": o.state, "fetch_aed": o.fetch_aed,
                    "distance_m": d, "eta_s": d.map(|d| d * self.policy.detour_factor / self.policy.rescuer_speed_mps),
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

    fn push(&self, rescuer_id: i64, msg: &Value) {
        if let Some(tx) = self.channels.lock().get(&rescuer_id) {
            let _ = tx.send(msg.to_string());
        }
    }

    fn sync_commitments(&self, inc: &Incident) {
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
        let p = &self.policy;
        let to_patient = pos.distance_m(&r.patient);
        let (to_aed, eta) = match r.aed {
            Some(a) => (
                Some(pos.distance_m(&a)),
                p.travel_s(pos, a) + p.travel_s(a, r.patient),
            ),
            None => (None, p.travel_s(pos, r.patient)),
        };
        let to_patient = to_patient.round();
        let to_aed = to_aed.map(f64::round);
        let eta = eta.round();
        self.push(
            rescuer_id,
            &json!({"type": "update", "incident_id": r.incident_id, "offer_id": r.offer_id,
                "distance_m": to_patient, "aed_distance_m": to_aed, "eta_s": eta}),
        );
        let _ = self.board.send(
            json!({"type": "responder", "incident_id": r.incident_id, "offer_id": r.offer_id,
                "rescuer_id": rescuer_id, "distance_m": to_patient, "aed_distance_m": to_aed,
                "eta_s": eta, "lat": pos.lat, "lon": pos.lon})
            .to_string(),
        );
    }

    fn schedule(&self, inc: &Incident) {
        let mut d = self.deadlines.lock();
        d.retain(|(_, id)| *id != inc.id);
        if let Some(t) = inc.next_deadline() {
            d.insert((t.timestamp_millis(), inc.id));
        }
        drop(d);
        self.wake.notify_one();
    }

    async fn persist(&self, slot: &mut Slot) -> Result<(), EngineError> {
        let inc = &slot.incident;
        let state = serde_json::to_value(inc.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let audit: Vec<(i64, DateTime<Utc>, String)> = inc.audit[slot.saved..]
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    (slot.saved + i + 1) as i64,
                    e.at,
                    serde_json::to_string(e).unwrap_or_default(),
                )
            })
            .collect();
        let doc = serde_json::to_string(inc).unwrap_or_default();
        self.state
            .store
            .save_incident(inc.id, &state, &doc, &audit)
            .await?;
        // Positions stay in the stored audit record (dispatchers read it per incident); the
        // live board carries distances and times only.
        let new: Vec<Value> = inc.audit[slot.saved..]
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.remove("position");
                }
                v
            })
            .collect();
        let _ = self.board.send(
            json!({"type": "incident", "incident_id": inc.id, "state": inc.state, "events": new})
                .to_string(),
        );
        slot.saved = inc.audit.len();
        Ok(())
    }

    fn offer_message(
        &self,
        inc: &Incident,
        o: &OfferRecord,
        aeds: &HashMap<i64, aednet_geoindex::Nearest>,
    ) -> Value {
        let aed = o.fetch_aed.and_then(|id| aeds.get(&id)).map(|n| {
            json!({"id": n.id, "name": n.detail.name, "lat": n.lat, "lon": n.lon, "indoor": n.indoor,
                "level": n.detail.level, "location_description": n.detail.location_description,
                "cabinet_locked": n.cabinet_locked})
        });
        json!({"type": "offer", "incident_id": inc.id, "offer_id": o.id,
            "role": if o.fetch_aed.is_some() { "fetch_aed" } else { "cpr" },
            "lat": inc.lat, "lon": inc.lon, "address": inc.address, "eta_s": o.eta_s,
            "expires_at": o.expires_at, "aed": aed})
    }

    /// Offers the next wave; returns the messages to push (after persisting).
    async fn next_wave(
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
        let busy: HashSet<i64> = self.committed.lock().keys().copied().collect();
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
        let offers = plan(pos, &candidates, &options, &p);
        let timeout = Duration::milliseconds((self.policy.offer_timeout_s * 1000.0) as i64);
        let sent = inc.offer(&offers, timeout, now)?;
        self.sync_commitments(inc);
        let by_id: HashMap<i64, aednet_geoindex::Nearest> =
            nearby.into_iter().map(|n| (n.id, n)).collect();
        Ok(inc
            .offers
            .iter()
            .filter(|o| sent.contains(&o.id))
            .map(|o| (o.rescuer_id, self.offer_message(inc, o, &by_id)))
            .collect())
    }

    fn slot(&self, id: i64) -> Option<Arc<AsyncMutex<Slot>>> {
        self.open.lock().get(&id).cloned()
    }

    /// A new incident: stored, first wave offered, offers pushed.
    pub async fn create(
        &self,
        at: LatLon,
        address: Option<String>,
        notes: Option<String>,
    ) -> Result<Incident, EngineError> {
        let started = std::time::Instant::now();
        let now = self.state.clock.now();
        let id = self.state.store.create_incident("created", now).await?;
        let wanted = self.policy.cpr_direct + self.policy.max_fetchers;
        let mut inc = Incident::new(id, at, wanted, now);
        inc.address = address;
        inc.notes = notes;
        let msgs = self.next_wave(&mut inc, now).await?;
        let mut slot = Slot {
            incident: inc,
            saved: 0,
        };
        self.persist(&mut slot).await?;
        self.schedule(&slot.incident);
        for (r, m) in &msgs {
            self.push(*r, m);
        }
        if !msgs.is_empty() {
            self.offer_seconds.observe(started.elapsed().as_secs_f64());
        }
        let out = slot.incident.clone();
        self.open.lock().insert(id, Arc::new(AsyncMutex::new(slot)));
        Ok(out)
    }

    pub async fn get(&self, id: i64) -> Result<Incident, EngineError> {
        if let Some(s) = self.slot(id) {
            return Ok(s.lock().await.incident.clone());
        }
        let doc = self
            .state
            .store
            .get_incident(id)
            .await?
            .ok_or(EngineError::NotFound)?;
        serde_json::from_str(&doc)
            .map_err(|e| EngineError::Store(aednet_store::StoreError::Corrupt(e.to_string())))
    }

    pub fn open_ids(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.open.lock().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Offers waiting for this rescuer's answer, and accepted ones still running.
    pub async fn offers_for(&self, rescuer_id: i64) -> Vec<Value> {
        let slots: Vec<_> = self.open.lock().values().cloned().collect();
        let mut out = Vec::new();
        for s in slots {
            let s = s.lock().await;
            for o in &s.incident.offers {
                if o.rescuer_id == rescuer_id
                    && matches!(
                        o.state,
                        OfferState::Offered | OfferState::Accepted | OfferState::Arrived
                    )
                {
                    let mut m = self.offer_message(&s.incident, o, &HashMap::new());
                    m["state"] = json!(o.state);
                    m["aed_id"] = json!(o.fetch_aed);
                    out.push(m);
                }
            }
        }
        out
    }

    async fn apply_effects(
        &self,
        slot: &mut Slot,
        fx: &Effects,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        // A cancelled incident tells everyone `cancel`; otherwise it is a `stand_down`.
        let kind = if slot.incident.state == crate::incident::IncidentState::Cancelled {
            "cancel"
        } else {
            "stand_down"
        };
        let mut msgs = Vec::new();
        if fx.need_more && slot.incident.state.is_open() {
            msgs = self.next_wave(&mut slot.incident, now).await?;
        }
        self.persist(slot).await?;
        self.sync_commitments(&slot.incident);
        self.schedule(&slot.incident);
        for r in &fx.stood_down {
            self.push(
                *r,
                &json!({"type": kind, "incident_id": slot.incident.id, "reason": reason}),
            );
        }
        for (r, m) in &msgs {
            self.push(*r, m);
        }
        Ok(())
    }

    pub async fn answer(
        &self,
        incident_id: i64,
        offer_id: u32,
        rescuer_id: i64,
        answer: Answer,
    ) -> Result<Answered, EngineError> {
        let Some(s) = self.slot(incident_id) else {
            // Closed (or unknown) incidents are not in memory.
            let inc = self.get(incident_id).await?;
            let o = inc
                .offers
                .iter()
                .find(|o| o.id == offer_id)
                .ok_or(DispatchError::UnknownOffer)?;
            if o.rescuer_id != rescuer_id {
                return Err(DispatchError::NotYourOffer.into());
            }
            return Err(DispatchError::IncidentClosed.into());
        };
        let mut slot = s.lock().await;
        let now = self.state.clock.now();
        // Where they are when they accept or arrive goes into the incident's audit record (and
        // nowhere else); the in-memory fix is the only source.
        let at = match answer {
            Answer::Accept | Answer::Arrived => self.state.geo.rescuer(rescuer_id).map(|f| f.pos),
            Answer::Decline => None,
        };
        let fx = slot
            .incident
            .answer(offer_id, rescuer_id, answer, at, now)?;
        if !fx.unchanged {
            if let Some(aed_id) = fx.reveal_code {
                let has_code = self
                    .state
                    .store
                    .get_aed(aed_id)
                    .await?
                    .is_some_and(|a| a.data.cabinet_code.is_some());
                if has_code {
                    slot.incident.code_revealed(offer_id, now);
                }
            }
            self.apply_effects(&mut slot, &fx, "enough responders are on the way", now)
                .await?;
        }
        let offer = slot
            .incident
            .offers
            .iter()
            .find(|o| o.id == offer_id)
            .cloned()
            .ok_or(DispatchError::UnknownOffer)?;
        // The code goes only to the accepted fetcher (again on a repeated accept: idempotent).
        let cabinet_code = match (offer.state, offer.fetch_aed) {
            (OfferState::Accepted | OfferState::Arrived, Some(aed_id)) => self
                .state
                .store
                .get_aed(aed_id)
                .await?
                .and_then(|a| a.data.cabinet_code.map(|c| c.expose().to_string())),
            _ => None,
        };
        Ok(Answered {
            incident_id,
            offer,
            cabinet_code,
        })
    }

    pub async fn close(&self, id: i64, outcome: Option<Outcome>) -> Result<Incident, EngineError> {
        let Some(s) = self.slot(id) else {
            self.get(id).await?;
            return Err(DispatchError::IncidentClosed.into());
        };
        let mut slot = s.lock().await;
        let now = self.state.clock.now();
        let stood = match outcome {
            Some(o) => slot.incident.close(o, now)?,
            None => slot.incident.cancel(now)?,
        };
        let reason = if outcome.is_some() {
            "the incident is closed"
        } else {
            "the incident was cancelled"
        };
        self.apply_effects(
            &mut slot,
            &Effects {
                stood_down: stood,
                ..Effects::default()
            },
            reason,
            now,
        )
        .await?;
        let out = slot.incident.clone();
        drop(slot);
        self.open.lock().remove(&id);
        Ok(out)
    }

    /// The earliest offer time-out among open incidents, on the engine's clock.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.deadlines
            .lock()
            .first()
            .and_then(|(t, _)| DateTime::from_timestamp_millis(*t))
    }

    /// Times out every offer due by `now` and sends the next waves; returns how many incidents
    /// were handled. The live timer task and the simulator both call this.
    pub async fn fire_due(&self, now: DateTime<Utc>) -> usize {
        let now_ms = now.timestamp_millis();
        let mut handled = 0;
        loop {
            let due = {
                let mut d = self.deadlines.lock();
                match d.first().copied() {
                    Some((t, id)) if t <= now_ms => {
                        d.remove(&(t, id));
                        Some(id)
                    }
                    _ => None,
                }
            };
            let Some(id) = due else { break };
            if let Some(s) = self.slot(id) {
                let mut slot = s.lock().await;
                let fx = slot.incident.expire(now);
                if let Err(e) = self.apply_effects(&mut slot, &fx, "", now).await {
                    tracing::error!(error = %e, incident = id, "handling offer time-outs");
                }
                handled += 1;
            }
        }
        handled
    }

    async fn timers(self: Arc<Self>) {
        loop {
            self.fire_due(self.state.clock.now()).await;
            match self.next_deadline() {
                Some(t) => {
                    let wait = (t - self.state.clock.now())
                        .to_std()
                        .unwrap_or(StdDuration::ZERO);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.wake.notified() => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

impl aednet_mobile_api::rescuer::LocationObserver for Engine {
    fn moved(&self, rescuer_id: i64, pos: LatLon, _at: DateTime<Utc>) {
        self.responder_moved(rescuer_id, pos);
    }
}
