//! The dispatch engine: incidents persisted after every change (document + append-only audit),
//! offers pushed to rescuers' channels, answers, time-out timers, further waves, stand-down,
//! live distance/ETA of responders on their way, and resumption of open incidents after a
//! restart.
//!
//! Time comes only from the state's [`aednet_core::Clock`]: offer time-outs are deadlines on
//! that clock, fired by [`Engine::fire_due`]. Live, [`Engine::start`] runs a task that sleeps
//! until [`Engine::next_deadline`] and calls it; the outcome simulator calls the same two on a
//! virtual clock and never sleeps.
//!
//! This module owns the engine's state, intake ([`Engine::create`]) and reads; the rest is
//! split by concern: [`changes`] (persisting a change, answers, close and cancel), [`waves`]
//! (who is offered next), [`timers`] (offer deadlines), [`cluster`] (routing changes to an
//! incident's owner, adoption of orphans), [`live`] (rescuer and dispatcher channels, live
//! responders) and [`deliver`] (falling back to push when the socket did not confirm).

mod changes;
mod cluster;
mod deliver;
mod live;
mod retention;
mod timers;
mod waves;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use aednet_api::AppState;
use aednet_core::{LatLon, Leases, LocalLeases, Peers};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{broadcast, Mutex as AsyncMutex, Notify};

use crate::incident::{DispatchError, Incident, OfferRecord};
use crate::policy::Policy;
use live::Responder;

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

/// What a rescuer gets back for an answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Answered {
    pub incident_id: i64,
    pub offer: OfferRecord,
    /// Only for an accepted fetch of a locked cabinet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cabinet_code: Option<String>,
}

/// How much the policy's `expected_accept` weighs against a rescuer's own record, in offers.
pub const PRIOR_OFFERS: f64 = 4.0;

/// Why pending offers are stood down while the incident stays open.
const ENOUGH_RESPONDERS: &str = "enough responders are on the way";

/// An incident as stored. The document carries everything but the audit trail: its entries are
/// rows of their own, each written once in the save that made it ([`Engine::persist`]), so a
/// save rewrites a document that does not grow with the trail. They are put back here. A
/// document written before the split still carries its trail and is used as it is.
pub(crate) async fn read_stored(
    store: &aednet_store::DynStore,
    doc: &str,
) -> Result<Incident, EngineError> {
    let corrupt = |e: serde_json::Error| aednet_store::StoreError::Corrupt(e.to_string());
    let mut inc: Incident = serde_json::from_str(doc).map_err(corrupt)?;
    if inc.audit.is_empty() {
        inc.audit = store
            .incident_audit(inc.id)
            .await?
            .iter()
            .map(|e| serde_json::from_str(e))
            .collect::<Result<_, _>>()
            .map_err(corrupt)?;
    }
    Ok(inc)
}

/// A `stand_down` or `cancel` frame for a rescuer's socket.
fn stand_down_frame(kind: &str, incident_id: i64, reason: &str) -> Value {
    json!({"type": kind, "incident_id": incident_id, "reason": reason})
}

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
    /// `aednet_dispatch_persist_retries_total`: offer time-outs (and the waves after them)
    /// whose write failed and that were scheduled again.
    persist_retries: prometheus::IntCounter,
    /// Incident → failed tries of its time-outs in a row, for the back-off.
    retries: Mutex<HashMap<i64, u32>>,
    /// Rescuer → (offers answered or expired, offers accepted) in incidents this node stored
    /// since it started: the plan counts on each rescuer's own acceptance ([`Engine::acceptance`]).
    record: Mutex<HashMap<i64, (u32, u32)>>,
    /// `aednet_retention_erased_total`: recorded rescuer positions erased (retention period
    /// over, or the rescuer deleted).
    retention_erased: prometheus::IntCounter,
    /// `aednet_retention_deliveries_erased_total`: delivery records deleted (retention period
    /// over, or the rescuer deleted).
    deliveries_erased: prometheus::IntCounter,
    /// Who owns which incident; every lease is granted on a single node.
    leases: Arc<dyn Leases>,
    /// The other nodes (from the state): pushes and board frames reach them too, open
    /// incidents are read from the store, and changes to incidents owned elsewhere are
    /// forwarded to their owner.
    peers: Option<Arc<dyn Peers>>,
    /// One take-over at a time on this node.
    taking: AsyncMutex<()>,
    /// Incidents kept here whose lease went with a broken lease session, to be taken back.
    unleased: Mutex<HashSet<i64>>,
    /// Wakes the task that takes them back.
    regain: Notify,
    /// The channels beyond the socket (Web Push, webhook), when the binary set them up.
    notifier: parking_lot::RwLock<Option<Arc<aednet_notify::Notifier>>>,
    /// This engine, for the delayed fall-back checks its pushes spawn.
    me: std::sync::Weak<Engine>,
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
        let persist_retries = prometheus::IntCounter::new(
            "aednet_dispatch_persist_retries_total",
            "Offer time-outs whose write failed and that were scheduled to be tried again",
        )
        .expect("static metric");
        let retention_erased = prometheus::IntCounter::new(
            "aednet_retention_erased_total",
            "Rescuer positions recorded in incidents erased (retention period over, or the rescuer deleted)",
        )
        .expect("static metric");
        let deliveries_erased = prometheus::IntCounter::new(
            "aednet_retention_deliveries_erased_total",
            "Delivery records deleted (retention period over, or the rescuer deleted)",
        )
        .expect("static metric");
        // A second engine on the same registry (the simulator's) keeps the first's metric.
        let _ = state
            .metrics
            .registry
            .register(Box::new(retention_erased.clone()));
        let _ = state
            .metrics
            .registry
            .register(Box::new(deliveries_erased.clone()));
        let _ = state
            .metrics
            .registry
            .register(Box::new(offer_seconds.clone()));
        let _ = state
            .metrics
            .registry
            .register(Box::new(persist_retries.clone()));
        Arc::new_cyclic(|me| Self {
            notifier: parking_lot::RwLock::new(None),
            me: me.clone(),
            offer_seconds,
            persist_retries,
            retention_erased,
            deliveries_erased,
            retries: Mutex::new(HashMap::new()),
            record: Mutex::new(HashMap::new()),
            leases,
            peers: state.peers.clone(),
            taking: AsyncMutex::new(()),
            unleased: Mutex::new(HashSet::new()),
            regain: Notify::new(),
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

    /// A rescuer's own chance of accepting from their record: accepts over offers answered or
    /// expired, shrunk towards the policy's `expected_accept` as if it were [`PRIOR_OFFERS`]
    /// offers more (a rescuer with no record gets `None`: the policy's figure).
    pub fn acceptance(&self, rescuer_id: i64) -> Option<f64> {
        let (n, yes) = self.record.lock().get(&rescuer_id).copied()?;
        let prior = self.policy.expected_accept.clamp(0.0, 1.0);
        Some((f64::from(yes) + PRIOR_OFFERS * prior) / (f64::from(n) + PRIOR_OFFERS))
    }

    /// Counts the answers and time-outs among newly stored audit entries.
    fn note_answers(&self, entries: &[crate::incident::AuditEntry]) {
        use crate::incident::AuditEvent;
        let mut record = self.record.lock();
        for e in entries {
            let (rescuer, accepted) = match &e.event {
                AuditEvent::Accepted { rescuer_id, .. } => (*rescuer_id, true),
                AuditEvent::Declined { rescuer_id, .. }
                | AuditEvent::TimedOut { rescuer_id, .. } => (*rescuer_id, false),
                _ => continue,
            };
            let r = record.entry(rescuer).or_insert((0, 0));
            r.0 = r.0.saturating_add(1);
            r.1 = r.1.saturating_add(u32::from(accepted));
        }
    }

    /// Loads open incidents (their timers resume) and starts the timer task and the retention
    /// job; on a node of a cluster also the tasks that follow the other nodes and adopt orphaned incidents.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        if self.peers.is_some() {
            self.spawn_cluster_tasks();
        }
        self.resume().await?;
        let engine = self.clone();
        tokio::spawn(async move { engine.timers().await });
        self.spawn_retention();
        crate::cad::start_outbound(self, &self.state.cad);
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
        let mut out = Vec::with_capacity(docs.len());
        for doc in docs.iter().filter(|d| d.trim() != "{}") {
            match read_stored(&self.state.store, doc).await {
                Ok(i) => out.push(i),
                Err(EngineError::Store(aednet_store::StoreError::Corrupt(e))) => {
                    tracing::error!(error = %e, "unreadable incident document skipped");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
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
        self.create_from(at, address, notes, None).await
    }

    /// [`Engine::create`] for a call handed over by a CAD system ([`crate::cad`]).
    pub async fn create_from(
        &self,
        at: LatLon,
        address: Option<String>,
        notes: Option<String>,
        intake: Option<crate::incident::Intake>,
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
        inc.intake = intake;
        // In the open set (locked) before its first save, so this node's adopter never mistakes
        // it for an orphan.
        let cell = Arc::new(AsyncMutex::new(Slot {
            incident: inc,
            saved: 0,
        }));
        let mut slot = cell.clone().lock_owned().await;
        self.open.lock().insert(id, cell);
        let mut first = slot.incident.clone();
        let planned = match self.next_wave(&mut first, now).await {
            Ok(msgs) => self.persist(&mut slot, first).await.map(|()| msgs),
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
        read_stored(&self.state.store, &doc).await
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
}
