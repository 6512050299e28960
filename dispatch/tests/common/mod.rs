//! Set-ups shared by the engine's tests: a real store (in-memory SQLite) and the real geoindex
//! on a manual clock.

use std::sync::Arc;

use aednet_api::AppState;
use aednet_core::event::LocalBus;
use aednet_core::{LatLon, ManualClock};
use aednet_dispatch::Policy;
use chrono::{DateTime, Utc};

/// The patient of every set-up.
pub const PATIENT: LatLon = LatLon {
    lat: 28.97,
    lon: 118.87,
};

/// The state on a manual clock at `t0`, with rescuers 1..=`n` north of [`PATIENT`] at 100 m,
/// 200 m, … .
pub async fn world(t0: DateTime<Utc>, n: i64) -> (AppState, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(t0));
    let store = aednet_store::connect("sqlite::memory:").await.unwrap();
    let state = AppState::new(store, Arc::new(LocalBus::default()), clock.clone());
    for i in 1..=n {
        let pos = LatLon {
            lat: PATIENT.lat + 0.0009 * i as f64,
            lon: PATIENT.lon,
        };
        state.geo.rescuer_moved(i, pos, t0);
    }
    (state, clock)
}

/// One wave within 1 km, two offers at a time straight to the patient, none to fetch an AED,
/// 90 s to answer.
pub fn two_at_a_time() -> Policy {
    Policy {
        waves_m: vec![1000.0],
        min_rescuers: 1,
        min_aeds: 0,
        cpr_direct: 2,
        max_fetchers: 0,
        max_alerts: 2,
        offer_timeout_s: 90.0,
        ..Policy::default()
    }
}
