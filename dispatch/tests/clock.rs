//! The engine's offer deadlines live on the state's clock: with a `ManualClock` and no timer
//! task, nothing times out until `fire_due` is called at or after `next_deadline`, which then
//! times the offers out and sends the next wave — what the simulator relies on, and the same
//! code the live timer task runs. Real store (in-memory SQLite), real geoindex.

use std::sync::Arc;

use aednet_api::AppState;
use aednet_core::event::LocalBus;
use aednet_core::{LatLon, ManualClock};
use aednet_dispatch::{Engine, OfferState, Policy};
use chrono::{Duration, TimeZone, Utc};

mod common;

#[tokio::test]
async fn deadlines_fire_only_when_the_clock_says_so() {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap();
    // Three rescuers north of the patient at 100, 200, 300 m.
    let (state, clock) = common::world(t0, 3).await;
    let patient = common::PATIENT;
    let policy = common::two_at_a_time();
    let engine = Engine::new(state.clone(), policy);
    let inc = engine.create(patient, None, None).await.unwrap();
    let first: Vec<i64> = inc.offers.iter().map(|o| o.rescuer_id).collect();
    assert_eq!(first, vec![1, 2]);
    assert_eq!(engine.next_deadline(), Some(t0 + Duration::seconds(90)));

    // Before the deadline: nothing happens, whatever the wall clock does.
    clock.set(t0 + Duration::seconds(89));
    assert_eq!(
        engine
            .fire_due(aednet_core::Clock::now(clock.as_ref()))
            .await,
        0
    );
    let inc = engine.get(inc.id).await.unwrap();
    assert!(inc.offers.iter().all(|o| o.state == OfferState::Offered));

    // At the deadline: both time out and the next wave reaches rescuer 3, with a new deadline.
    let t1 = t0 + Duration::seconds(90);
    clock.set(t1);
    assert_eq!(engine.fire_due(t1).await, 1);
    let inc = engine.get(inc.id).await.unwrap();
    let states: Vec<(i64, OfferState)> =
        inc.offers.iter().map(|o| (o.rescuer_id, o.state)).collect();
    assert_eq!(
        states,
        vec![
            (1, OfferState::TimedOut),
            (2, OfferState::TimedOut),
            (3, OfferState::Offered)
        ]
    );
    assert_eq!(inc.offers[2].offered_at, t1, "offered on the virtual clock");
    assert_eq!(engine.next_deadline(), Some(t1 + Duration::seconds(90)));
    // Persisted as it went: the store's audit has every step.
    let audit = state.store.incident_audit(inc.id).await.unwrap();
    assert_eq!(audit.len(), inc.audit.len());
    assert_eq!(
        audit.iter().filter(|e| e.contains("\"timed_out\"")).count(),
        2
    );
}

/// An offer expiring part-way through a millisecond: a timer waking in that millisecond but
/// before the exact expiry must neither fire nor spin (deadlines were once rounded down, and
/// `fire_due` rescheduled the same deadline forever, hanging the timer task).
#[tokio::test]
async fn a_deadline_inside_a_millisecond_neither_fires_early_nor_spins() {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap() + Duration::microseconds(400);
    let clock = Arc::new(ManualClock::new(t0));
    let store = aednet_store::connect("sqlite::memory:").await.unwrap();
    let state = AppState::new(store, Arc::new(LocalBus::default()), clock.clone());
    let patient = LatLon {
        lat: 28.97,
        lon: 118.87,
    };
    state.geo.rescuer_moved(
        1,
        LatLon {
            lat: 28.971,
            lon: 118.87,
        },
        t0,
    );
    let policy = Policy {
        waves_m: vec![1000.0],
        min_rescuers: 1,
        min_aeds: 0,
        cpr_direct: 1,
        max_fetchers: 0,
        max_alerts: 1,
        offer_timeout_s: 1.0,
        ..Policy::default()
    };
    let engine = Engine::new(state.clone(), policy);
    let inc = engine.create(patient, None, None).await.unwrap();
    let expiry = inc.offers[0].expires_at;
    // The deadline is never before the exact expiry.
    let due = engine.next_deadline().unwrap();
    assert!(due >= expiry, "{due} before {expiry}");
    // In the same millisecond, before the expiry: nothing fires, and the call returns.
    let early = expiry - Duration::microseconds(300);
    let fired = tokio::time::timeout(std::time::Duration::from_secs(5), engine.fire_due(early))
        .await
        .expect("fire_due returns");
    assert_eq!(fired, 0);
    assert_eq!(
        tokio::time::timeout(std::time::Duration::from_secs(5), engine.fire_due(due))
            .await
            .expect("fire_due returns"),
        1
    );
    let inc = engine.get(inc.id).await.unwrap();
    assert_eq!(inc.offers[0].state, OfferState::TimedOut);
}

/// The plan counts on each rescuer's own record: accepts over offers answered or expired,
/// shrunk towards `expected_accept` as if it were `PRIOR_OFFERS` offers more.
#[tokio::test]
async fn each_rescuers_acceptance_is_learned_from_their_answers() {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let store = aednet_store::connect("sqlite::memory:").await.unwrap();
    let state = AppState::new(store, Arc::new(LocalBus::default()), clock.clone());
    let patient = LatLon {
        lat: 28.97,
        lon: 118.87,
    };
    for i in 1..=3i64 {
        let pos = LatLon {
            lat: 28.97 + 0.0009 * i as f64,
            lon: 118.87,
        };
        state.geo.rescuer_moved(i, pos, t0);
    }
    let policy = Policy {
        waves_m: vec![1000.0],
        min_rescuers: 1,
        min_aeds: 0,
        cpr_direct: 3,
        max_fetchers: 0,
        max_alerts: 3,
        expected_accept: 0.3,
        offer_timeout_s: 90.0,
        ..Policy::default()
    };
    let engine = Engine::new(state.clone(), policy);
    assert_eq!(engine.acceptance(1), None, "no record yet");
    let inc = engine.create(patient, None, None).await.unwrap();
    let offer = |r: i64| inc.offers.iter().find(|o| o.rescuer_id == r).unwrap().id;
    clock.set(t0 + Duration::seconds(30));
    engine
        .answer(inc.id, offer(1), 1, aednet_dispatch::Answer::Accept)
        .await
        .unwrap();
    engine
        .answer(inc.id, offer(2), 2, aednet_dispatch::Answer::Decline)
        .await
        .unwrap();
    let t1 = t0 + Duration::seconds(90);
    clock.set(t1);
    engine.fire_due(t1).await;
    let k = aednet_dispatch::PRIOR_OFFERS;
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
    assert!(close(engine.acceptance(1), (1.0 + k * 0.3) / (1.0 + k)));
    assert!(close(engine.acceptance(2), (k * 0.3) / (1.0 + k)));
    assert!(
        close(engine.acceptance(3), (k * 0.3) / (1.0 + k)),
        "a time-out counts as no"
    );
    assert!(engine.acceptance(1) > engine.acceptance(2));
}
