//! An incident's stored form: the document without the audit trail, the trail as rows written
//! once each. Read back — closed, after a restart, or as written before the trail left the
//! document — the incident is whole. Real store (in-memory SQLite), real geoindex.

use aednet_dispatch::{Answer, Engine, Incident};
use chrono::{Duration, TimeZone, Utc};

mod common;
use common::two_at_a_time as policy;

#[tokio::test]
async fn the_trail_is_rows_and_comes_back_whole() {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 2, 3, 0, 0).unwrap();
    let (state, clock) = common::world(t0, 3).await;
    let store = state.store.clone();
    let patient = common::PATIENT;
    let engine = Engine::new(state.clone(), policy());
    let inc = engine.create(patient, None, None).await.unwrap();
    clock.set(t0 + Duration::seconds(20));
    let first = inc.offers[0].clone();
    engine
        .answer(inc.id, first.id, first.rescuer_id, Answer::Accept)
        .await
        .unwrap();
    let open = engine.get(inc.id).await.unwrap();
    assert!(open.audit.len() >= 4, "{:?}", open.audit);

    // The document is rewritten on every change; the trail is not in it.
    let doc = store.get_incident(inc.id).await.unwrap().unwrap();
    assert!(!doc.contains("\"audit\""), "{doc}");
    assert_eq!(
        store.incident_audit(inc.id).await.unwrap().len(),
        open.audit.len()
    );

    // A restarted node resumes the open incident with its whole trail.
    let again = Engine::new(state.clone(), policy());
    again.resume().await.unwrap();
    assert_eq!(again.get(inc.id).await.unwrap(), open);

    // Closed, it is read from the store only, trail included.
    let closed = again.close(inc.id, None).await.unwrap();
    let third = Engine::new(state.clone(), policy());
    assert_eq!(third.get(inc.id).await.unwrap(), closed);
    assert!(closed.audit.len() > open.audit.len());

    // A document from before the split carries its trail: read as it is, not doubled.
    let old_id = store.create_incident("closed", t0).await.unwrap();
    let mut old: Incident = closed.clone();
    old.id = old_id;
    let rows: Vec<_> = old
        .audit
        .iter()
        .enumerate()
        .map(|(i, e)| (i as i64 + 1, e.at, serde_json::to_string(e).unwrap()))
        .collect();
    let doc = serde_json::to_string(&old).unwrap();
    assert!(doc.contains("\"audit\""));
    store
        .save_incident(old_id, "closed", &doc, &rows)
        .await
        .unwrap();
    assert_eq!(third.get(old_id).await.unwrap(), old);
}
