//! Changes to an incident: persisting one (document and new audit entries, then the board),
//! rescuers' answers, close and cancel. Every change is made on a copy of the incident, stored,
//! and only then becomes the engine's: a failed write changes nothing (see [`Engine::apply_effects`]).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::cluster::Route;
use super::{stand_down_frame, Answered, Engine, EngineError, Slot, ENOUGH_RESPONDERS};
use crate::incident::{Answer, DispatchError, Effects, Incident, OfferState, Outcome};

impl Engine {
    /// Stores `next` (the document and the audit entries the store does not have yet) and only
    /// then makes it the engine's copy: a failed write leaves the slot as it was.
    pub(super) async fn persist(
        &self,
        slot: &mut Slot,
        mut next: Incident,
    ) -> Result<(), EngineError> {
        // The document leaves the trail out: its entries are rows (see [`super::read_stored`]).
        let trail = std::mem::take(&mut next.audit);
        let doc = serde_json::to_string(&next).unwrap_or_default();
        next.audit = trail;
        let inc = &next;
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
        self.note_answers(&inc.audit[slot.saved..]);
        slot.saved = inc.audit.len();
        slot.incident = next;
        Ok(())
    }

    /// Makes `next` (the slot's incident with a change applied) the incident's state: the next
    /// wave if one is needed, stored, and only then commitments, timers and pushes. On a failed
    /// write nothing changes: the slot keeps the incident as it was, its timer stays, and
    /// nobody is told anything.
    pub(super) async fn apply_effects(
        &self,
        slot: &mut Slot,
        mut next: Incident,
        fx: &Effects,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        // A cancelled incident tells everyone `cancel`; otherwise it is a `stand_down`.
        let kind = if next.state == crate::incident::IncidentState::Cancelled {
            "cancel"
        } else {
            "stand_down"
        };
        let id = next.id;
        // On a cluster only the lease holder may write (see [`Engine::hold_lease`]).
        self.hold_lease(id).await?;
        let mut msgs = Vec::new();
        if fx.need_more && next.state.is_open() {
            msgs = match self.next_wave(&mut next, now).await {
                Ok(m) => m,
                Err(e) => {
                    // Planning booked the new wave's rescuers: give them back.
                    self.sync_commitments(&slot.incident);
                    return Err(e);
                }
            };
        }
        if let Err(e) = self.persist(slot, next).await {
            self.sync_commitments(&slot.incident);
            if matches!(
                e,
                EngineError::Store(aednet_store::StoreError::Conflict { .. })
            ) {
                // The store already has entries this copy thinks are new: an earlier save
                // committed but its answer was lost, or (on a cluster) another node wrote
                // them. The store's copy is the truth: one node reloads it; a node of a
                // cluster drops its copy, and the store's is adopted again if nobody holds it.
                if self.peers.is_some() {
                    self.forget(id).await;
                } else {
                    self.reload(slot).await;
                }
            }
            // Any other failure (the database unreachable, restarting, busy, full) proves
            // nothing about ownership: the incident stays as it was with its timer, the
            // time-out is tried again with back-off and the API answers 503.
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

    /// Replaces the slot's incident with the store's copy (after a save that may have
    /// committed without our knowing).
    async fn reload(&self, slot: &mut Slot) {
        let id = slot.incident.id;
        let stored = match self.state.store.get_incident(id).await {
            Ok(Some(doc)) => super::read_stored(&self.state.store, &doc).await.ok(),
            _ => None,
        };
        if let Some(inc) = stored.filter(|i| i.audit.len() >= slot.saved) {
            tracing::warn!(
                incident = id,
                "incident reloaded from the store after a save conflict"
            );
            slot.saved = inc.audit.len();
            slot.incident = inc;
            self.sync_commitments(&slot.incident);
            self.schedule(&slot.incident);
        }
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
        // Applied to a copy: the engine's incident changes only once the store has it.
        let mut next = slot.incident.clone();
        let fx = next.answer(offer_id, rescuer_id, answer, at, now)?;
        if !fx.unchanged {
            if let Some(aed_id) = fx.reveal_code {
                let has_code = self
                    .state
                    .store
                    .get_aed(aed_id)
                    .await?
                    .is_some_and(|a| a.data.cabinet_code.is_some());
                if has_code {
                    next.code_revealed(offer_id, now);
                }
            }
            self.apply_effects(&mut slot, next, &fx, ENOUGH_RESPONDERS, now)
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
        // Closed in memory only once the store has it: until then rescuers keep running and
        // the dispatcher gets 503 to try again.
        let mut next = slot.incident.clone();
        let stood = match outcome {
            Some(o) => next.close(o, now)?,
            None => next.cancel(now)?,
        };
        let reason = if outcome.is_some() {
            "the incident is closed"
        } else {
            "the incident was cancelled"
        };
        self.apply_effects(
            &mut slot,
            next,
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
}
