//! Incidents: documents owned by the dispatch engine (opaque JSON here) and their append-only
//! audit log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;

#[async_trait]
pub trait IncidentStore: Send + Sync {
    /// Reserves an id for a new incident, stored with `state` and an empty document.
    async fn create_incident(&self, state: &str, at: DateTime<Utc>) -> Result<i64>;
    /// Replaces the document and appends audit entries `(seq, at, entry JSON)`, in one
    /// transaction. Audit rows are only ever inserted; a seq stored before is a conflict. An
    /// entry naming a `rescuer_id` links the incident to that rescuer's own history
    /// ([`IncidentStore::rescuer_history`]) in the same transaction.
    async fn save_incident(
        &self,
        id: i64,
        state: &str,
        doc: &str,
        audit: &[(i64, DateTime<Utc>, String)],
    ) -> Result<()>;
    async fn get_incident(&self, id: i64) -> Result<Option<String>>;
    /// Documents of incidents whose state is not `closed` or `cancelled`.
    async fn open_incidents(&self) -> Result<Vec<String>>;
    async fn incident_audit(&self, id: i64) -> Result<Vec<String>>;
    /// The documents of the incidents that offered this rescuer something, newest first:
    /// at most `limit` (1..=100) with an id below `before` (keyset pagination). What of each
    /// the rescuer may see is the caller's business: a document holds everyone's offers.
    async fn rescuer_history(
        &self,
        rescuer_id: i64,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<String>>;
    /// Retention of personal data: erases the rescuer positions recorded at accept and arrival
    /// (the `position` of audit entries, in the document and the audit log) of incidents
    /// closed or cancelled — last changed — before `closed_before`, and marks them done.
    /// Returns how many audit entries lost a position.
    async fn erase_incident_positions(&self, closed_before: DateTime<Utc>) -> Result<u64>;
    /// Erases the recorded positions of one rescuer (`Some`: deleted now) or of every rescuer
    /// who no longer exists (`None`), in every incident, open or not, and their history links
    /// ([`IncidentStore::rescuer_history`]). Returns how many audit entries lost a position.
    async fn erase_rescuer_positions(&self, rescuer_id: Option<i64>) -> Result<u64>;
    /// Claims a CAD call id before its incident is made (`cad_calls`): [`CadClaim::Claimed`]
    /// for the first request with this id, else what the first one stored.
    async fn claim_cad_call(
        &self,
        call_id: &str,
        body_sha256: &str,
        at: DateTime<Utc>,
    ) -> Result<CadClaim>;
    /// Records the incident made for a claimed call.
    async fn bind_cad_call(&self, call_id: &str, incident_id: i64) -> Result<()>;
    /// Drops a claim whose incident could not be made, so the CAD's retry can succeed.
    async fn release_cad_call(&self, call_id: &str) -> Result<()>;
}

/// What [`IncidentStore::claim_cad_call`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CadClaim {
    /// This request is the first with the call id: make the incident.
    Claimed,
    /// An earlier request had it; `incident_id` is `None` while that one is still being made.
    Existing {
        incident_id: Option<i64>,
        body_sha256: String,
    },
}

/// The rescuers named by audit entries (`"rescuer_id"`), each once: whose history an incident
/// save extends.
pub(crate) fn rescuers_in_audit(audit: &[(i64, DateTime<Utc>, String)]) -> Vec<i64> {
    let mut ids: Vec<i64> = audit
        .iter()
        .filter(|(_, _, e)| e.contains("\"rescuer_id\""))
        .filter_map(|(_, _, e)| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|v| v.get("rescuer_id").and_then(serde_json::Value::as_i64))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Whose positions an erasure takes.
#[derive(Debug)]
pub(crate) enum Whose {
    Anyone,
    Rescuer(i64),
    /// Rescuers not in this set (the ones that exist).
    NotIn(std::collections::HashSet<i64>),
}

impl Whose {
    fn takes(&self, rescuer_id: Option<i64>) -> bool {
        match (self, rescuer_id) {
            (Whose::Anyone, _) => true,
            (Whose::Rescuer(r), Some(id)) => *r == id,
            (Whose::NotIn(set), Some(id)) => !set.contains(&id),
            (_, None) => false,
        }
    }
}

/// Removes the `position` of one audit entry (JSON object) if `whose` takes it.
fn strip_entry(entry: &mut serde_json::Value, whose: &Whose) -> bool {
    let Some(obj) = entry.as_object_mut() else {
        return false;
    };
    if !obj.contains_key("position") || !whose.takes(obj.get("rescuer_id").and_then(|v| v.as_i64()))
    {
        return false;
    }
    obj.remove("position");
    true
}

/// The audit entry without its position, if it had one `whose` takes.
pub(crate) fn erase_in_entry(entry: &str, whose: &Whose) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(entry).ok()?;
    strip_entry(&mut v, whose).then(|| v.to_string())
}

/// The incident document without the positions `whose` takes, if it had any.
pub(crate) fn erase_in_doc(doc: &str, whose: &Whose) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(doc).ok()?;
    let mut changed = false;
    if let Some(audit) = v.get_mut("audit").and_then(|a| a.as_array_mut()) {
        for e in audit {
            changed |= strip_entry(e, whose);
        }
    }
    changed.then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_chosen_positions_go() {
        let doc = r#"{"id":1,"notes":"a\"position\": here","audit":[
            {"at":"t","kind":"accepted","offer":1,"rescuer_id":5,"position":{"lat":1.0,"lon":2.0}},
            {"at":"t","kind":"arrived","offer":2,"rescuer_id":6,"position":{"lat":1.0,"lon":2.0}},
            {"at":"t","kind":"declined","offer":3,"rescuer_id":7}]}"#;
        let one = erase_in_doc(doc, &Whose::Rescuer(5)).unwrap();
        assert_eq!(one.matches("\"position\":").count(), 1);
        // (Keys come out sorted.)
        assert!(one.contains("\"position\":{\"lat\":1.0,\"lon\":2.0},\"rescuer_id\":6"));
        let all = erase_in_doc(doc, &Whose::Anyone).unwrap();
        assert!(!all.contains("\"position\":{"));
        assert!(
            all.contains("a\\\"position\\\": here"),
            "notes untouched: {all}"
        );
        assert_eq!(
            erase_in_doc(&all, &Whose::Anyone),
            None,
            "nothing left to erase"
        );
        let kept: std::collections::HashSet<i64> = [5].into_iter().collect();
        let gone = erase_in_doc(doc, &Whose::NotIn(kept)).unwrap();
        assert!(gone.contains("\"position\":{\"lat\":1.0,\"lon\":2.0},\"rescuer_id\":5"));
        assert!(!gone.contains("\"position\":{\"lat\":1.0,\"lon\":2.0},\"rescuer_id\":6"));
        assert_eq!(
            erase_in_entry(r#"{"kind":"declined","rescuer_id":7}"#, &Whose::Anyone),
            None
        );
    }
}
