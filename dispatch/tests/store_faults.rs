//! Dispatch never silently stalls: each step of an incident — an offer time-out, the next wave,
//! an accept, close, cancel — whose write fails leaves the incident exactly as it was (the API
//! answers 503, the timer stays), and the step completes once the store is back, with an audit
//! log that has every entry once. Real SQLite under a [`FaultyStore`], real geoindex, the
//! engine's deadlines driven by hand on a `ManualClock`.

use std::sync::Arc;

use aednet_api::{ApiError, AppState};
use aednet_core::event::LocalBus;
use aednet_core::{LatLon, ManualClock};
use aednet_dispatch::{Answer, Engine, Incident, IncidentState, OfferState, Outcome, Policy};
use aednet_store::testing::FaultyStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use tokio::sync::broadcast;

const PATIENT: LatLon = LatLon {
    lat: 28.97,
    lon: 118.87,
};

struct World {
    t0: DateTime<Utc>,
    clock: Arc<ManualClock>,
    store: Arc<FaultyStore>,
    state: AppState,
    engine: Arc<Engine>,
}

/// `n` rescuers north of the patient at 100 m steps; offers go to the nearest `alerts` first,
/// and `wanted` accepted helpers are enough.
async fn world(n: i64, alerts: usize, wanted: usize) -> World {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let store = FaultyStore::wrap(aednet_store::connect("sqlite::memory:").await.unwrap());
    let state = AppState::new(store.clone(), Arc::new(LocalBus::default()), clock.clone());
    for i in 1..=n {
        let pos = LatLon {
            lat: 28.97 + 0.0009 * i as f64,
            lon: 118.87,
        };
        state.geo.rescuer_moved(i, pos, t0);
    }
    let policy = Policy {
        waves_m: vec![2000.0],
        min_rescuers: 1,
        min_aeds: 0,
        cpr_direct: wanted,
        max_fetchers: 0,
        max_alerts: alerts,
        offer_timeout_s: 90.0,
        ..Policy::default()
    };
    let engine = Engine::new(state.clone(), policy);
    World {
        t0,
        clock,
        store,
        state,
        engine,
    }
}

impl World {
    fn at(&self, s: i64) -> DateTime<Utc> {
        let t = self.t0 + Duration::seconds(s);
        self.clock.set(t);
        t
    }

    /// The stored audit log is the engine's, entry for entry: nothing lost, nothing twice.
    async fn assert_audit_complete(&self, id: i64) -> Vec<String> {
        let inc = self.engine.get(id).await.unwrap();
        let stored: Vec<Value> = self
            .store
            .inner()
            .incident_audit(id)
            .await
            .unwrap()
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let mem: Vec<Value> = inc
            .audit
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        assert_eq!(stored, mem, "the stored audit log is the incident's");
        // The document as stored is the incident as the engine has it, but for the trail,
        // which is the rows above.
        let doc = self.store.inner().get_incident(id).await.unwrap().unwrap();
        let doc: Incident = serde_json::from_str(&doc).unwrap();
        assert!(
            doc.audit.is_empty(),
            "the trail is not rewritten with the document"
        );
        assert_eq!(
            Incident {
                audit: inc.audit.clone(),
                ..doc
            },
            inc,
            "the stored document is the incident's"
        );
        mem.iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect()
    }

    fn retries(&self) -> f64 {
        self.state
            .metrics
            .registry
            .gather()
            .iter()
            .find(|m| m.name() == "aednet_dispatch_persist_retries_total")
            .map(|m| m.get_metric()[0].get_counter().get_value())
            .unwrap_or(0.0)
    }
}

fn status(e: aednet_dispatch::engine::EngineError) -> u16 {
    let (status, body) = ApiError::from(e).status_and_body();
    assert_eq!(body.error, "unavailable");
    status.as_u16()
}

/// Frames on a rescuer's channel so far.
fn frames(rx: &mut broadcast::Receiver<String>) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(f) = rx.try_recv() {
        out.push(serde_json::from_str(&f).unwrap());
    }
    out
}

fn states(inc: &Incident) -> Vec<(i64, OfferState)> {
    inc.offers.iter().map(|o| (o.rescuer_id, o.state)).collect()
}

#[tokio::test]
async fn a_failed_time_out_keeps_its_timer_backs_off_and_then_sends_the_next_wave() {
    let w = world(3, 2, 2).await;
    let inc = w.engine.create(PATIENT, None, None).await.unwrap();
    let mut third = w.engine.subscribe(3);
    assert_eq!(
        states(&inc),
        vec![(1, OfferState::Offered), (2, OfferState::Offered)]
    );
    let due = w.engine.next_deadline().unwrap();
    assert_eq!(due, w.t0 + Duration::seconds(90));

    // The time-out's write fails twice (the database is restarting).
    w.store.fail_next_writes(2);
    let t1 = w.at(90);
    assert_eq!(w.engine.fire_due(t1).await, 1);
    let now = w.engine.get(inc.id).await.unwrap();
    assert_eq!(now, inc, "nothing changed in memory");
    assert!(frames(&mut third).is_empty(), "nobody was offered anything");
    // The timer is kept, a back-off later, and counted.
    let retry1 = w.engine.next_deadline().expect("the timer is kept");
    assert_eq!(retry1, t1 + Duration::milliseconds(250));
    assert_eq!(w.retries(), 1.0);
    // Not before the back-off.
    assert_eq!(w.engine.fire_due(t1 + Duration::milliseconds(100)).await, 0);
    // Second failure: the wait doubles.
    assert_eq!(w.engine.fire_due(retry1).await, 1);
    let retry2 = w.engine.next_deadline().unwrap();
    assert_eq!(retry2, retry1 + Duration::milliseconds(500));
    assert_eq!(w.retries(), 2.0);
    assert_eq!(w.engine.get(inc.id).await.unwrap(), inc);
    w.assert_audit_complete(inc.id).await;

    // The store is back: the offers time out and the next wave reaches rescuer 3.
    w.clock.set(retry2);
    assert_eq!(w.engine.fire_due(retry2).await, 1);
    let now = w.engine.get(inc.id).await.unwrap();
    assert_eq!(
        states(&now),
        vec![
            (1, OfferState::TimedOut),
            (2, OfferState::TimedOut),
            (3, OfferState::Offered)
        ]
    );
    let got = frames(&mut third);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "offer");
    assert_eq!(
        w.engine.next_deadline(),
        Some(retry2 + Duration::seconds(90))
    );
    let kinds = w.assert_audit_complete(inc.id).await;
    assert_eq!(
        kinds,
        [
            "created",
            "offered",
            "offered",
            "state",
            "timed_out",
            "timed_out",
            "offered"
        ]
    );
    assert_eq!(w.retries(), 2.0, "no retry once it went through");
}

#[tokio::test]
async fn a_failed_next_wave_after_a_decline_changes_nothing_then_goes_out() {
    let w = world(3, 2, 2).await;
    let inc = w.engine.create(PATIENT, None, None).await.unwrap();
    let mut third = w.engine.subscribe(3);
    w.at(10);
    w.store.fail_nth_write(1);
    let err = w
        .engine
        .answer(inc.id, 1, 1, Answer::Decline)
        .await
        .unwrap_err();
    assert_eq!(status(err), 503);
    assert_eq!(w.engine.get(inc.id).await.unwrap(), inc, "nothing changed");
    assert!(frames(&mut third).is_empty());
    // Rescuer 3 is not booked by the wave that never went out: another incident can have them.
    let other = w
        .engine
        .create(
            LatLon {
                lat: 28.9727,
                lon: 118.87,
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert!(other.offers.iter().any(|o| o.rescuer_id == 3), "{other:?}");
    w.engine.close(other.id, None).await.unwrap();
    frames(&mut third);

    // Tried again: the decline is stored and the next wave reaches rescuer 3.
    let a = w
        .engine
        .answer(inc.id, 1, 1, Answer::Decline)
        .await
        .unwrap();
    assert_eq!(a.offer.state, OfferState::Declined);
    let now = w.engine.get(inc.id).await.unwrap();
    assert_eq!(
        states(&now),
        vec![
            (1, OfferState::Declined),
            (2, OfferState::Offered),
            (3, OfferState::Offered)
        ]
    );
    let got = frames(&mut third);
    assert!(
        got.iter()
            .any(|f| f["type"] == "offer" && f["incident_id"] == inc.id),
        "{got:?}"
    );
    let kinds = w.assert_audit_complete(inc.id).await;
    assert_eq!(
        kinds,
        ["created", "offered", "offered", "state", "declined", "offered"]
    );
}

#[tokio::test]
async fn a_failed_accept_answers_503_and_the_retry_is_recorded_once() {
    let w = world(3, 3, 2).await;
    let inc = w.engine.create(PATIENT, None, None).await.unwrap();
    let mut third = w.engine.subscribe(3);
    w.at(5);
    w.engine.answer(inc.id, 2, 2, Answer::Accept).await.unwrap();
    let before = w.engine.get(inc.id).await.unwrap();
    // The second accept would be enough: rescuer 3 would be stood down — but its write fails.
    w.at(10);
    w.store.fail_nth_write(1);
    let err = w
        .engine
        .answer(inc.id, 1, 1, Answer::Accept)
        .await
        .unwrap_err();
    assert_eq!(status(err), 503);
    assert_eq!(
        w.engine.get(inc.id).await.unwrap(),
        before,
        "nothing changed"
    );
    assert!(frames(&mut third).is_empty(), "nobody stood down");
    assert!(
        w.engine.next_deadline().is_some(),
        "rescuer 3's offer still times out"
    );

    let a = w.engine.answer(inc.id, 1, 1, Answer::Accept).await.unwrap();
    assert_eq!(a.offer.state, OfferState::Accepted);
    let now = w.engine.get(inc.id).await.unwrap();
    assert_eq!(
        states(&now),
        vec![
            (1, OfferState::Accepted),
            (2, OfferState::Accepted),
            (3, OfferState::StoodDown)
        ]
    );
    let got = frames(&mut third);
    assert!(got.iter().any(|f| f["type"] == "stand_down"), "{got:?}");
    let kinds = w.assert_audit_complete(inc.id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "accepted").count(),
        2,
        "{kinds:?}"
    );
    // The accept's position is recorded (rescuer 1 was 100 m north).
    let stored = w.store.inner().incident_audit(inc.id).await.unwrap();
    assert!(stored.iter().any(|e| e.contains("\"accepted\"")
        && e.contains("\"rescuer_id\":1")
        && e.contains("\"position\"")));
}

/// Close (`outcome`) or cancel (`None`) whose write fails: still open in memory and in the
/// store, nobody stood down, 503; the retry closes it and stands everyone down.
async fn closing_fails_then_succeeds(outcome: Option<Outcome>) {
    let w = world(3, 3, 3).await;
    let inc = w.engine.create(PATIENT, None, None).await.unwrap();
    let mut rx: Vec<_> = (1..=3).map(|r| w.engine.subscribe(r)).collect();
    w.at(5);
    w.engine.answer(inc.id, 1, 1, Answer::Accept).await.unwrap();
    w.engine.answer(inc.id, 2, 2, Answer::Accept).await.unwrap();
    for r in &mut rx {
        frames(r);
    }
    let before = w.engine.get(inc.id).await.unwrap();
    w.at(60);
    w.store.fail_nth_write(1);
    let err = w.engine.close(inc.id, outcome).await.unwrap_err();
    assert_eq!(status(err), 503);
    let now = w.engine.get(inc.id).await.unwrap();
    assert_eq!(now, before, "still open, as it was");
    assert!(now.state.is_open());
    assert_eq!(w.engine.open_ids(), vec![inc.id]);
    for r in &mut rx {
        assert!(
            frames(r).is_empty(),
            "nobody is stood down by a close that failed"
        );
    }
    // Its timer still runs: rescuer 3's offer times out on time.
    assert_eq!(w.engine.next_deadline(), Some(w.t0 + Duration::seconds(90)));

    let closed = w.engine.close(inc.id, outcome).await.unwrap();
    let want = if outcome.is_some() {
        IncidentState::Closed
    } else {
        IncidentState::Cancelled
    };
    assert_eq!(closed.state, want);
    assert!(w.engine.open_ids().is_empty());
    assert_eq!(w.engine.next_deadline(), None);
    let kind = if outcome.is_some() {
        "stand_down"
    } else {
        "cancel"
    };
    for (i, r) in rx.iter_mut().enumerate() {
        let got = frames(r);
        assert!(
            got.iter()
                .any(|f| f["type"] == kind && f["incident_id"] == inc.id),
            "rescuer {} got {got:?}",
            i + 1
        );
    }
    let kinds = w.assert_audit_complete(inc.id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "stood_down").count(), 3);
    assert_eq!(
        kinds.iter().filter(|k| *k == "closed").count(),
        usize::from(outcome.is_some())
    );
    assert!(w.store.inner().open_incidents().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_close_changes_nothing_then_stands_everyone_down() {
    closing_fails_then_succeeds(Some(Outcome {
        aed_applied: true,
        shock_delivered: false,
        handed_to_ems: true,
    }))
    .await;
}

#[tokio::test]
async fn a_failed_cancel_changes_nothing_then_cancels_everyone() {
    closing_fails_then_succeeds(None).await;
}

/// A new incident whose first save fails: 503, nothing open, nobody booked or offered.
#[tokio::test]
async fn a_failed_intake_answers_503_and_books_nobody() {
    let w = world(2, 2, 2).await;
    let mut first = w.engine.subscribe(1);
    w.store.fail_nth_write(2); // the id is reserved, the first wave's save fails
    let err = w.engine.create(PATIENT, None, None).await.unwrap_err();
    assert_eq!(status(err), 503);
    assert!(w.engine.open_ids().is_empty());
    assert_eq!(w.engine.next_deadline(), None);
    assert!(frames(&mut first).is_empty());
    let inc = w.engine.create(PATIENT, None, None).await.unwrap();
    assert_eq!(inc.offers.len(), 2, "the rescuers are free again");
    w.assert_audit_complete(inc.id).await;
}
