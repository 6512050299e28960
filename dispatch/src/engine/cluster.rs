//! Incidents on a cluster: each is run by the node holding its lease; a change sent to another
//! node is forwarded to the owner ([`Engine::route`]), an incident whose node died is taken over
//! from the store ([`Engine::take_over`]) and what its rescuers should see is pushed again.

use std::time::Duration as StdDuration;

use aednet_core::{IncidentCall, PeerError, Signal};
use serde_json::{json, Value};
use tokio::sync::{broadcast, Mutex as AsyncMutex};

use super::{stand_down_frame, Engine, EngineError, Slot, ENOUGH_RESPONDERS};
use crate::incident::{Answer, DispatchError, OfferState, Outcome};
use std::sync::Arc;

impl EngineError {
    /// The wire form of an error answered for another node.
    pub(super) fn to_wire(&self) -> Value {
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

    pub(super) fn from_wire(v: &Value) -> Self {
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
pub(super) enum Route {
    /// This node owns it.
    Here(Arc<AsyncMutex<Slot>>),
    /// Another node owns it and answered.
    Remote(Value),
    /// Not open (closed, cancelled or unknown).
    NotOpen,
}

/// What [`Engine::take_over`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Take {
    Mine,
    Elsewhere,
    NotOpen,
}

/// How long a change to an incident owned by a dead node waits for another node to take it
/// over before the caller gets 503.
const ROUTE_PATIENCE: StdDuration = StdDuration::from_secs(6);
/// How often a node of a cluster looks for open incidents nobody holds.
const ADOPT_EVERY: StdDuration = StdDuration::from_secs(1);
/// Longest wait between two tries to take back the leases of a broken lease session.
const REGAIN_MAX: StdDuration = StdDuration::from_secs(2);

impl Engine {
    /// Takes an open incident over from the store if nobody holds its lease (its node died):
    /// its timers run here from now on, and what its rescuers should have on their screens
    /// (pending offers, stand-downs) is pushed again — sockets drop frames they already had.
    pub(super) async fn take_over(&self, id: i64) -> Result<Take, EngineError> {
        let _one = self.taking.lock().await;
        if self.slot(id).is_some() {
            return Ok(Take::Mine);
        }
        if !self.leases.try_acquire(id).await? {
            return Ok(Take::Elsewhere);
        }
        let inc = match self.state.store.get_incident(id).await? {
            Some(d) => super::read_stored(&self.state.store, &d).await.ok(),
            None => None,
        };
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

    /// On a cluster, makes sure this node still holds incident `id`'s lease before it writes
    /// a change: held (the usual case, answered from memory), taken back after the lease
    /// session broke, or — when another node holds it now — forgotten here, with 503 to
    /// whoever asked. While the lease session is down (PostgreSQL unreachable) nothing is
    /// proven either way: the change fails with 503 and changes nothing, and the incident
    /// stays here with its timer, tried again with back-off like any failed write.
    pub(super) async fn hold_lease(&self, id: i64) -> Result<(), EngineError> {
        if self.peers.is_none() {
            return Ok(());
        }
        match self.leases.try_acquire(id).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!(
                    incident = id,
                    "another node holds the incident's lease now; forgotten here"
                );
                self.forget(id).await;
                Err(EngineError::Unavailable(format!(
                    "incident {id} moved to another node; try again"
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// After the lease session broke (PostgreSQL restarting, or unreachable from this node):
    /// this node's incidents stay in memory with their timers, marked unleased, until the
    /// session is back. Then each lease is taken again (the session re-takes the ones it
    /// had first thing, see `aednet_cluster::PgLeases`), and the incident is checked against
    /// the store; one another node took meanwhile is forgotten here. Tries back off from
    /// [`super::timers::RETRY_FIRST`] to [`REGAIN_MAX`].
    async fn regain_leases(&self) {
        let mut wait = super::timers::RETRY_FIRST;
        loop {
            let ids: Vec<i64> = self.unleased.lock().iter().copied().collect();
            if ids.is_empty() {
                return;
            }
            for id in ids {
                if self.slot(id).is_none() {
                    self.unleased.lock().remove(&id);
                    continue;
                }
                match self.leases.try_acquire(id).await {
                    Ok(true) => {
                        self.unleased.lock().remove(&id);
                        if self.slot(id).is_none() {
                            // Closed here meanwhile.
                            self.leases.release(id).await;
                        } else {
                            self.revalidate(id).await;
                        }
                    }
                    Ok(false) => {
                        tracing::warn!(
                            incident = id,
                            "another node took the incident while the lease session was down"
                        );
                        self.forget(id).await;
                    }
                    // Still down: the rest would fail the same way.
                    Err(_) => break,
                }
            }
            if self.unleased.lock().is_empty() {
                tracing::info!("incident leases taken again");
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(REGAIN_MAX);
        }
    }

    /// An incident whose lease was taken again: still open as stored, and not changed by
    /// another node in between (else the store's copy replaces this one).
    async fn revalidate(&self, id: i64) {
        let Some(s) = self.slot(id) else { return };
        let mut slot = s.lock().await;
        let stored = match self.state.store.get_incident(id).await {
            Ok(Some(d)) => super::read_stored(&self.state.store, &d).await.ok(),
            Ok(None) => None,
            // The fence on the audit's sequence still stops a stale write.
            Err(e) => {
                tracing::warn!(error = %e, incident = id, "checking a re-taken incident");
                return;
            }
        };
        match stored {
            Some(inc) if inc.state.is_open() => {
                if inc.audit.len() > slot.saved {
                    tracing::warn!(
                        incident = id,
                        "incident changed elsewhere while its lease was lost; reloaded"
                    );
                    slot.saved = inc.audit.len();
                    slot.incident = inc;
                    self.sync_commitments(&slot.incident);
                    self.schedule(&slot.incident);
                }
            }
            _ => {
                drop(slot);
                tracing::warn!(
                    incident = id,
                    "incident closed elsewhere while its lease was lost"
                );
                self.forget(id).await;
            }
        }
    }

    /// Forgets an incident this node no longer owns (another node holds its lease, or a save
    /// was refused): the adopter task takes it again from the store if nobody else did.
    pub(super) async fn forget(&self, id: i64) {
        self.unleased.lock().remove(&id);
        self.open.lock().remove(&id);
        self.deadlines.lock().retain(|(_, i)| *i != id);
        self.retries.lock().remove(&id);
        self.committed.lock().retain(|_, i| *i != id);
        self.responders.lock().retain(|_, r| r.incident_id != id);
        self.leases.release(id).await;
    }

    /// The owner of an incident: this node (taking it over if nobody holds it), another node
    /// (which answered `body`), or none because it is not open. Waits up to
    /// [`ROUTE_PATIENCE`] for a dead owner's lease to lapse.
    pub(super) async fn route(&self, id: i64, body: &Value) -> Result<Route, EngineError> {
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

    pub(super) fn spawn_cluster_tasks(self: &Arc<Self>) {
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
        // Losing the lease session means every lease may be gone. Nobody else can take one
        // while PostgreSQL is unreachable, so the incidents stay here, their timers running
        // (writes fail and back off), and their leases are taken back once it answers.
        let mut lost = self.leases.lost();
        let me = self.clone();
        tokio::spawn(async move {
            while lost.changed().await.is_ok() {
                let ids: Vec<i64> = me.open.lock().keys().copied().collect();
                tracing::warn!(
                    incidents = ids.len(),
                    "incident leases lost with their session; kept here until it is back"
                );
                me.unleased.lock().extend(ids);
                me.regain.notify_one();
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.regain.notified().await;
                me.regain_leases().await;
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
