//! The watchdog never forgets a device: when writing "offline" fails (the database is down,
//! busy, full), the write is scheduled again with back-off until it succeeds. The store is a
//! real SQLite database behind a wrapper that fails the next readiness writes on demand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_api::AppState;
use aednet_core::aed::{AedInput, ReadinessStatus};
use aednet_core::event::LocalBus;
use aednet_core::telemetry::DeviceMessage;
use aednet_core::SystemClock;
use aednet_device_gateway::{Gateway, GatewayConfig};
use aednet_store::testing::FaultyStore;
use aednet_store::DynStore;

async fn status(store: &DynStore, id: i64) -> ReadinessStatus {
    store
        .get_aed(id)
        .await
        .unwrap()
        .unwrap()
        .data
        .readiness
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_offline_write_is_retried_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let real = aednet_store::connect(&url).await.unwrap();
    let failing = FaultyStore::wrap(real.clone());
    // Only the readiness writes (the watchdog's "offline") fail; telemetry records succeed.
    failing.only_method("write_readiness");
    let store: DynStore = failing.clone();
    let state = AppState::new(
        store.clone(),
        Arc::new(LocalBus::default()),
        Arc::new(SystemClock),
    );
    let gw = Gateway::new(
        state,
        GatewayConfig {
            heartbeat_interval_s: 0.1,
            offline_after_intervals: 2.0,
            ..Default::default()
        },
    );
    gw.start().await.unwrap();
    let aed = store
        .create_aed(
            &AedInput {
                lat: 28.97,
                lon: 118.87,
                name: Some("衢州站".into()),
                ..Default::default()
            }
            .validate(chrono::Utc::now())
            .unwrap(),
        )
        .await
        .unwrap();
    let hb = DeviceMessage::parse(
        br#"{"v":1,"seq":1,"ts":"2026-11-24T08:00:00Z","type":"self_test","ok":true}"#,
    )
    .unwrap();
    // Three failures in a row: 250 ms, 500 ms, 1 s of back-off before the fourth attempt.
    failing.fail_next_writes(3);
    gw.process(aed.id, &hb).await.unwrap();
    assert_eq!(status(&store, aed.id).await, ReadinessStatus::Ready);

    let deadline = Instant::now() + Duration::from_secs(15);
    while status(&store, aed.id).await != ReadinessStatus::Offline {
        assert!(
            Instant::now() < deadline,
            "the device was never marked offline after {} failed writes",
            failing.failures()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failing.failures(), 3);
    let h = store.readiness_history(aed.id, 10).await.unwrap();
    assert_eq!(
        (h[0].status, h[0].source.as_str()),
        (ReadinessStatus::Offline, "watchdog")
    );
    // Back from offline with its next message, and offline again when silent (no failures).
    let hb2 =
        DeviceMessage::parse(br#"{"v":1,"seq":2,"ts":"2026-11-24T08:00:01Z","type":"heartbeat"}"#)
            .unwrap();
    gw.process(aed.id, &hb2).await.unwrap();
    assert_eq!(status(&store, aed.id).await, ReadinessStatus::Ready);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&store, aed.id).await != ReadinessStatus::Offline {
        assert!(Instant::now() < deadline, "not offline the second time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
