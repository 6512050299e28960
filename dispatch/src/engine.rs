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
use aednet_core::{IncidentCall, LatLon, Leases, LocalLeases, PeerError, Peers, Signal};
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
    /// The incident's owner died and no node has taken it over yet, or the cluster transport
    /// failed: retry shortly.
    #[error("{0}")]
    Unavailable(String),
}

impl EngineError {
    /// The wire form of an error answered for another node.
    fn to_wire(&self) -> Value {
        let kind = match self {
            EngineError::NotFound => "not_found",
            EngineError::Dispatch(DispatchError::UnknownOffer) => "unknown_offer",
            EngineError::Dispatch(DispatchError::NotYourOffer) => "not_your_offer",
            EngineError::Dispatch(DispatchError::IncidentClosed) => "closed",
            EngineError::Dispatch(DispatchError::Conflict(_)) => "conflict",
            EngineError::Store(_) | EngineError::Unavailable(_) => "unavailable",
        };
        let message = match self {
            // Store detail stays in this node's log.
            EngineError::Store(e) => {
                tracing::error!(error = %e, "store error answering another node");
                "the incident's node could not reach the store".to_string()
            }
            other => other.to_string(),
        };
        json!({"error": {"kind": kind, "message": message}})
    }

    fn from_wire(v: &Value) -> Self {
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match v["error"]["kind"].as_str().unwrap_or_default() {
            "not_found" => EngineError::NotFound,
            "unknown_offer" => DispatchError::UnknownOffer.into(),
            "not_your_offer" => DispatchError::NotYourOffer.into(),
            "closed" => DispatchError::IncidentClosed.into(),
            "conflict" => DispatchError::Conflict(message).into(),
            _ => EngineError::Unavailable(message),
        }
    }
}

impl From<PeerError> for EngineError {
    fn from(e: PeerError) -> Self {
        EngineError::Unavailable(e.to_string())
    }
}

/// Where an incident's changes are applied.
enum Route {
    /// This node owns it.
    Here(Arc<AsyncMutex<Slot>>),
    /// Another node owns it and answered.
    Remote(Value),
    /// Not open (closed, cancelled or unknown).
    NotOpen,
}

/// What [`Engine::take_over`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    Mine,
    Elsewhere,
    NotOpen,
}

/// How long a change to an incident owned by a dead node waits for another node to take it
/// over before the caller gets 503.
const ROUTE_PATIENCE: StdDuration = StdDuration::from_secs(6);
/// How often a node of a cluster looks for open incidents nobody holds.
const ADOPT_EVERY: StdDuration = StdDuration::from_secs(1);

/// What a rescuer gets back for an answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Answered {
    pub incident_id: i64,
    pub offer: OfferRecord,
    /// Only for an accepted fetch of a locked cabinet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// Why pending offers are stood down while the incident stays open.
const ENOUGH_RESPONDERS: &str = "enough responders are on the way";

/// A `stand_down` or `cancel` frame for a rescuer's socket.
fn stand_down_frame(kind: &str, incident_id: i64, reason: &str) -> Value {
    json!({"type": kind, "incident_id": incident_id, "reason": reason})
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
    /// Who owns which incident; every lease is granted on a single node.
    leases: Arc<dyn Leases>,
    /// The other nodes (from the state): pushes and board frames reach them too, open
    /// incidents are read from the store, and changes to incidents owned elsewhere are
    /// forwarded to their owner.
    peers: Option<Arc<dyn Peers>>,
    /// One take-over at a time on this node.
    taking: AsyncMutex<()>,
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
        Self::with_leases(state, policy, Arc::new(LocalLeases::default()))
    }

    /// An engine on a node of a cluster: incidents are owned through `leases`, and the state's
    /// peers carry pushes, board frames and forwarded changes.
    pub fn with_leases(state: AppState, policy: Policy, leases: Arc<dyn Leases>) -> Arc<Self> {
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
            leases,
            peers: state.peers.clone(),
            taking: AsyncMutex::new(()),
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

    /// Loads open incidents (their timers resume) and starts the timer task; on a node of a
    /// cluster also the tasks that follow the other nodes and adopt orphaned incidents.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        if self.peers.is_some() {
            self.spawn_cluster_tasks();
        }
        self.resume().await?;
        let engine = self.clone();
        tokio::spawn(async move { engine.timers().await });
        Ok(())
    }

    /// Loads open incidents and their deadlines without starting the timer task: whoever
    /// calls this drives time with [`Engine::fire_due`] (the simulator). On a node of a
    /// cluster, only those no other node holds.
    pub async fn resume(&self) -> anyhow::Result<()> {
        for inc in self.stored_open().await? {
            if self.peers.is_some() {
                self.take_over(inc.id).await?;
            } else {
                self.adopt(inc);
            }
        }
        Ok(())
    }

    /// Open incidents as stored, skipping ids reserved by a node that died before the first
    /// save (their document is still empty).
    async fn stored_open(&self) -> Result<Vec<Incident>, EngineError> {
        let docs = self.state.store.open_incidents().await?;
        Ok(docs
            .iter()
            .filter_map(|doc| match serde_json::from_str::<Incident>(doc) {
                Ok(i) => Some(i),
                Err(_) if doc.trim() == "{}" => None,
                Err(e) => {
                    tracing::error!(error = %e, "unreadable incident document skipped");
                    None
                }
            })
            .collect())
    }

    fn adopt(&self, incident: Incident) {
        let saved = incident.audit.len();
        self.sync_commitments(&incident);
        self.schedule(&incident);
        self.open.lock().insert(
            incident.id,
            Arc::new(AsyncMutex::new(Slot { incident, saved })),
        );
    }

    /// Takes an open incident over from the store if nobody holds its lease (its node died):
    /// its timers run here from now on, and what its rescuers should have on their screens
    /// (pending offers, stand-downs) is pushed again — sockets drop frames they already had.
    async fn take_over(&self, id: i64) -> Result<Take, EngineError> {
        let _one = self.taking.lock().await;
        if self.slot(id).is_some() {
            return Ok(Take::Mine);
        }
        if !self.leases.try_acquire(id).await? {
            return Ok(Take::Elsewhere);
        }
        let doc = self.state.store.get_incident(id).await?;
        let inc = doc.and_then(|d| serde_json::from_str::<Incident>(&d).ok());
        let Some(inc) = inc.filter(|i| i.state.is_open()) else {
            self.leases.release(id).await;
            return Ok(Take::NotOpen);
        };
        tracing::info!(incident = id, "incident taken over");
        for o in &inc.offers {
            match o.state {
                OfferState::Offered => self.push(o.rescuer_id, &self.offer_message(&inc, o)),
                // An open incident stands people down only because enough are on the way.
                OfferState::StoodDown => self.push(
                    o.rescuer_id,
                    &stand_down_frame("stand_down", inc.id, ENOUGH_RESPONDERS),
                ),
                _ => {}
            }
        }
        self.adopt(inc);
        Ok(Take::Mine)
    }

    /// Forgets an incident this node may no longer own (its lease session broke, or a save
    /// was refused): the adopter task takes it again from the store if nobody else did.
    async fn forget(&self, id: i64) {
        self.open.lock().remove(&id);
        self.deadlines.lock().retain(|(_, i)| *i != id);
        self.committed.lock().retain(|_, i| *i != id);
        self.responders.lock().retain(|_, r| r.incident_id != id);
        self.leases.release(id).await;
    }

    /// The owner of an incident: this node (taking it over if nobody holds it), another node
    /// (which answered `body`), or none because it is not open. Waits up to
    /// [`ROUTE_PATIENCE`] for a dead owner's lease to lapse.
    async fn route(&self, id: i64, body: &Value) -> Result<Route, EngineError> {
        let give_up = std::time::Instant::now() + ROUTE_PATIENCE;
        loop {
            if let Some(s) = self.slot(id) {
                return Ok(Route::Here(s));
            }
            let Some(peers) = &self.peers else {
                return Ok(Route::NotOpen);
            };
            match self.take_over(id).await? {
                Take::Mine => continue,
                Take::NotOpen => return Ok(Route::NotOpen),
                Take::Elsewhere => {}
            }
            let call = IncidentCall {
                incident_id: id,
                body: body.clone(),
            };
            match peers.call(&call, StdDuration::from_secs(1)).await {
                Ok(v) => return Ok(Route::Remote(v)),
                Err(PeerError::NoAnswer(_)) if std::time::Instant::now() < give_up => {
                    tokio::time::sleep(StdDuration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn spawn_cluster_tasks(self: &Arc<Self>) {
        let Some(peers) = self.peers.clone() else {
            return;
        };
        // Frames the owner of an incident sends for sockets and consoles on this node
        // (positions reported to other nodes reach `responder_moved` through the location
        // gate's observer).
        let mut signals = peers.signals();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match signals.recv().await {
                    Ok(Signal::ToRescuer { rescuer_id, frame }) => {
                        if let Some(tx) = me.channels.lock().get(&rescuer_id) {
                            let _ = tx.send(frame);
                        }
                    }
                    Ok(Signal::Board { frame }) => {
                        let _ = me.board.send(frame);
                    }
                    Ok(Signal::RescuerMoved { .. }) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "dispatch fell behind the cluster signals");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        // Changes other nodes forward to the incidents this node owns.
        if let Some(mut calls) = peers.take_calls() {
            let me = self.clone();
            tokio::spawn(async move {
                while let Some(req) = calls.recv().await {
                    if me.slot(req.call.incident_id).is_none() {
                        continue; // not ours: its owner answers
                    }
                    let me = me.clone();
                    tokio::spawn(async move {
                        let reply = me.serve_call(req.call).await;
                        let _ = req.reply.send(reply);
                    });
                }
            });
        }
        // Losing the lease session means losing every lease: forget them all and adopt
        // again whatever nobody else took meanwhile.
        let mut lost = self.leases.lost();
        let me = self.clone();
        tokio::spawn(async move {
            while lost.changed().await.is_ok() {
                let ids: Vec<i64> = me.open.lock().keys().copied().collect();
                tracing::warn!(
                    incidents = ids.len(),
                    "incident leases lost; re-acquiring from the store"
                );
                for id in ids {
                    me.forget(id).await;
                }
            }
        });
        // Incidents whose node died: adopted within about a second of their lease lapsing.
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ADOPT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let open = match me.stored_open().await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "looking for orphaned incidents");
                        continue;
                    }
                };
                for inc in open {
                    if me.slot(inc.id).is_none() {
                        if let Err(e) = me.take_over(inc.id).await {
                            tracing::warn!(error = %e, incident = inc.id, "taking over");
                        }
                    }
                }
            }
        });
    }

    /// Applies a change another node forwarded; the reply is `{"ok": …}` or `{"error": …}`.
    async fn serve_call(&self, call: IncidentCall) -> Value {
        let id = call.incident_id;
        let b = &call.body;
        let result = match b["op"].as_str() {
            Some("answer") => {
                let parsed = (
                    b["offer_id"].as_u64().and_then(|o| u32::try_from(o).ok()),
                    b["rescuer_id"].as_i64(),
                    serde_json::from_value::<Answer>(b["answer"].clone()).ok(),
                );
                match parsed {
                    (Some(offer), Some(rescuer), Some(answer)) => self
                        .answer(id, offer, rescuer, answer)
                        .await
                        .map(|a| serde_json::to_value(a).unwrap_or_default()),
                    _ => Err(DispatchError::Conflict("malformed forwarded answer".into()).into()),
                }
            }
            Some("close") => {
                match serde_json::from_value::<Option<Outcome>>(b["outcome"].clone()) {
                    Ok(outcome) => self
                        .close(id, outcome)
                        .await
                        .map(|i| serde_json::to_value(i).unwrap_or_default()),
                    Err(_) => {
                        Err(DispatchError::Conflict("malformed forwarded close".into()).into())
                    }
                }
            }
            _ => Err(DispatchError::Conflict("unknown forwarded operation".into()).into()),
        };
        match result {
            Ok(v) => json!({ "ok": v }),
            Err(e) => e.to_wire(),
        }
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

    /// To the rescuer's live channel on this node, and on a cluster to whichever node holds
    /// their socket.
    fn push(&self, rescuer_id: i64, msg: &Value) {
        let frame = msg.to_string();
        if let Some(tx) = self.channels.lock().get(&rescuer_id) {
            let _ = tx.send(frame.clone());
        }
        if let Some(p) = &self.peers {
            p.signal(Signal::ToRescuer { rescuer_id, frame });
        }
    }

    /// To dispatcher consoles on every node.
    fn post_board(&self, frame: String) {
        if let Some(p) = &self.peers {
            p.signal(Signal::Board {
                frame: frame.clone(),
            });
        }
        let _ = self.board.send(frame);
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
        self.post_board(
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
            // Rounded up to the millisecond: rounded down, a timer firing in the same
            // millisecond but before the offer's exact expiry would find nothing expired and
            // reschedule the same deadline forever.
            let ms = t.timestamp_millis() + i64::from(t.timestamp_subsec_nanos() % 1_000_000 != 0);
            d.insert((ms, inc.id));
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
        self.post_board(
            json!({"type": "incident", "incident_id": inc.id, "state": inc.state, "events": new})
                .to_string(),
        );
        slot.saved = inc.audit.len();
        Ok(())
    }

    /// An `offer` frame; the AED to fetch is described from the index.
    fn offer_message(&self, inc: &Incident, o: &OfferRecord) -> Value {
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
        Ok(inc
            .offers
            .iter()
            .filter(|o| sent.contains(&o.id))
            .map(|o| (o.rescuer_id, self.offer_message(inc, o)))
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
        // The new id is free: nobody else can hold it (an adopter skips the empty document).
        if !self.leases.try_acquire(id).await? {
            return Err(EngineError::Unavailable(format!(
                "incident {id} is held by another node"
            )));
        }
        let wanted = self.policy.cpr_direct + self.policy.max_fetchers;
        let mut inc = Incident::new(id, at, wanted, now);
        inc.address = address;
        inc.notes = notes;
        // In the open set (locked) before its first save, so this node's adopter never mistakes
        // it for an orphan.
        let cell = Arc::new(AsyncMutex::new(Slot {
            incident: inc,
            saved: 0,
        }));
        let mut slot = cell.clone().lock_owned().await;
        self.open.lock().insert(id, cell);
        let planned = match self.next_wave(&mut slot.incident, now).await {
            Ok(msgs) => self.persist(&mut slot).await.map(|()| msgs),
            Err(e) => Err(e),
        };
        let msgs = match planned {
            Ok(m) => m,
            Err(e) => {
                self.forget(id).await;
                return Err(e);
            }
        };
        self.schedule(&slot.incident);
        for (r, m) in &msgs {
            self.push(*r, m);
        }
        if !msgs.is_empty() {
            self.offer_seconds.observe(started.elapsed().as_secs_f64());
        }
        let out = slot.incident.clone();
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

    /// Incidents this node owns.
    pub fn open_ids(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.open.lock().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Every open incident, by id: this node's from memory; on a cluster also those other
    /// nodes own, as last stored.
    pub async fn open_incidents(&self) -> Result<Vec<Incident>, EngineError> {
        let slots: Vec<_> = self.open.lock().values().cloned().collect();
        let mut out = Vec::with_capacity(slots.len());
        for s in slots {
            out.push(s.lock().await.incident.clone());
        }
        if self.peers.is_some() {
            let mine: HashSet<i64> = out.iter().map(|i| i.id).collect();
            out.extend(
                self.stored_open()
                    .await?
                    .into_iter()
                    .filter(|i| !mine.contains(&i.id)),
            );
        }
        out.sort_by_key(|i| i.id);
        Ok(out)
    }

    /// Offers waiting for this rescuer's answer, and accepted ones still running (on a
    /// cluster, whichever node owns their incident).
    pub async fn offers_for(&self, rescuer_id: i64) -> Vec<Value> {
        let open = match self.open_incidents().await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "reading open incidents for a rescuer");
                Vec::new()
            }
        };
        let mut out = Vec::new();
        for inc in &open {
            for o in &inc.offers {
                if o.rescuer_id == rescuer_id && o.state.holds() {
                    let mut m = self.offer_message(inc, o);
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
        if let Err(e) = self.persist(slot).await {
            if self.peers.is_some() {
                // Another node may own it now (a save with audit entries it already stored is
                // refused): drop this copy; the store's is adopted again if nobody holds it.
                self.forget(slot.incident.id).await;
            }
            return Err(e);
        }
        self.sync_commitments(&slot.incident);
        self.schedule(&slot.incident);
        for r in &fx.stood_down {
            self.push(*r, &stand_down_frame(kind, slot.incident.id, reason));
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
        let body = json!({"op": "answer", "offer_id": offer_id, "rescuer_id": rescuer_id,
            "answer": answer});
        let s = match self.route(incident_id, &body).await? {
            Route::Here(s) => Some(s),
            Route::Remote(v) if v.get("ok").is_some() => {
                return serde_json::from_value(v["ok"].clone())
                    .map_err(|e| EngineError::Unavailable(format!("malformed reply: {e}")));
            }
            Route::Remote(v) => return Err(EngineError::from_wire(&v)),
            Route::NotOpen => None,
        };
        let Some(s) = s else {
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
            self.apply_effects(&mut slot, &fx, ENOUGH_RESPONDERS, now)
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
        let body = json!({"op": "close", "outcome": outcome});
        let s = match self.route(id, &body).await? {
            Route::Here(s) => s,
            Route::Remote(v) if v.get("ok").is_some() => {
                return serde_json::from_value(v["ok"].clone())
                    .map_err(|e| EngineError::Unavailable(format!("malformed reply: {e}")));
            }
            Route::Remote(v) => return Err(EngineError::from_wire(&v)),
            Route::NotOpen => {
                self.get(id).await?;
                return Err(DispatchError::IncidentClosed.into());
            }
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
        self.leases.release(id).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_cross_nodes_unchanged() {
        let cases: Vec<EngineError> = vec![
            EngineError::NotFound,
            DispatchError::UnknownOffer.into(),
            DispatchError::NotYourOffer.into(),
            DispatchError::IncidentClosed.into(),
            DispatchError::Conflict("already accepted".into()).into(),
            EngineError::Unavailable("no owner".into()),
        ];
        for e in cases {
            let back = EngineError::from_wire(&e.to_wire());
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
        // A store failure on the owner is a 503 here, without its detail.
        let store = EngineError::Store(aednet_store::StoreError::Corrupt("secret detail".into()));
        let wire = store.to_wire();
        assert!(!wire.to_string().contains("secret detail"));
        assert!(matches!(
            EngineError::from_wire(&wire),
            EngineError::Unavailable(_)
        ));
    }
}
