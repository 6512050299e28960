//! One writer of readiness, on both backends: every readiness write bumps the AED's revision
//! and a write conditional on an older revision changes nothing; updating an AED's record never
//! writes readiness (a copy read before would undo telemetry that arrived in between); device
//! messages are unique per (AED, boot, seq), so a device that reboots starts a new window.
//! PostgreSQL comes from `AEDNET_TEST_PG_URL` (default 127.0.0.1:5432); never skipped.

use aednet_core::aed::{Access, AedData, AedInput, Readiness, ReadinessStatus};
use aednet_store::{
    ConsumableDates, DeviceEventRecord, DynStore, OverrideChange, ReadinessOverride, Recorded,
    Written,
};
use chrono::{TimeZone, Utc};

#[macro_use]
mod common;
use common::Fresh;

both!(
    readiness_writes_are_conditional_on_the_revision,
    updating_a_record_never_writes_readiness,
    device_messages_are_unique_per_boot,
);

fn aed() -> AedData {
    AedInput {
        lat: 28.97,
        lon: 118.87,
        name: Some("衢州站".into()),
        access: Some(Access::Yes),
        opening_hours: Some("24/7".into()),
        ..Default::default()
    }
    .validate(Utc::now())
    .unwrap()
}

fn readiness(status: ReadinessStatus, why: &str) -> Readiness {
    Readiness {
        status,
        reason: Some(why.into()),
        since: Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap(),
    }
}

fn event(aed_id: i64, boot: &str, seq: i64) -> DeviceEventRecord {
    let t = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    DeviceEventRecord {
        aed_id,
        boot: boot.into(),
        seq,
        kind: "self_test".into(),
        body: "{}".into(),
        device_ts: t,
        received_at: t,
    }
}

async fn status(s: &DynStore, id: i64) -> ReadinessStatus {
    s.get_aed(id).await.unwrap().unwrap().data.readiness.status
}

async fn readiness_writes_are_conditional_on_the_revision(s: &DynStore) {
    let a = s.create_aed(&aed()).await.unwrap();
    let snap = s.device_snapshot(a.id).await.unwrap().unwrap();
    assert_eq!((snap.rev, snap.boot.as_str(), snap.last_seq), (0, "", None));
    let fault = readiness(ReadinessStatus::Fault, "self-test fault E12");
    let rec = s
        .record_device_event(
            &event(a.id, "", 1),
            Some(&fault),
            &ConsumableDates::default(),
            Some(0),
        )
        .await
        .unwrap();
    assert_eq!(rec, Recorded::New { rev: 1 });
    // A maintainer's unconditional write bumps the revision …
    s.set_aed_readiness(a.id, &readiness(ReadinessStatus::Ready, "repaired"), "api")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.device_snapshot(a.id).await.unwrap().unwrap().rev, 2);
    // … so a write by someone holding revision 1 is refused, with or without a readiness, and
    // leaves nothing behind (the event is not stored either).
    for r in [Some(&fault), None] {
        assert_eq!(
            s.record_device_event(&event(a.id, "", 2), r, &ConsumableDates::default(), Some(1))
                .await
                .unwrap(),
            Recorded::Stale
        );
    }
    assert_eq!(s.device_event_seqs(a.id).await.unwrap(), vec![1]);
    assert_eq!(status(s, a.id).await, ReadinessStatus::Ready);
    assert_eq!(
        s.write_readiness(
            a.id,
            &readiness(ReadinessStatus::Offline, "silent"),
            OverrideChange::Keep,
            "watchdog",
            Some(1)
        )
        .await
        .unwrap(),
        Written::Stale
    );
    // With the current revision it goes through, override and history included.
    let over = ReadinessOverride {
        aed_id: a.id,
        status: ReadinessStatus::Fault,
        reason: Some("pads missing".into()),
        since: Utc::now(),
        until: None,
        set_by: "guardian".into(),
    };
    let w = s
        .write_readiness(
            a.id,
            &fault,
            OverrideChange::Set(&over),
            "guardian",
            Some(2),
        )
        .await
        .unwrap();
    assert!(matches!(w, Written::Done { rev: 3, .. }), "{w:?}");
    assert_eq!(
        s.get_readiness_override(a.id)
            .await
            .unwrap()
            .map(|o| o.set_by),
        Some("guardian".into())
    );
    let h = s.readiness_history(a.id, 10).await.unwrap();
    assert_eq!(
        h.iter().map(|c| c.source.as_str()).collect::<Vec<_>>(),
        vec!["guardian", "api", "device"]
    );
    assert_eq!(
        s.write_readiness(a.id + 999, &fault, OverrideChange::Clear, "x", Some(0))
            .await
            .unwrap(),
        Written::Missing
    );
}

async fn updating_a_record_never_writes_readiness(s: &DynStore) {
    let a = s.create_aed(&aed()).await.unwrap();
    // The API read the record (readiness unknown) …
    let mut copy = s.get_aed(a.id).await.unwrap().unwrap().data;
    // … telemetry set a fault meanwhile …
    s.record_device_event(
        &event(a.id, "", 1),
        Some(&readiness(ReadinessStatus::Fault, "self-test fault E12")),
        &ConsumableDates::default(),
        None,
    )
    .await
    .unwrap();
    // … and the update of the record does not bring the old readiness back.
    copy.name = Some("衢州站东广场".into());
    let r = s.replace_aed(a.id, &copy).await.unwrap().unwrap();
    assert_eq!(r.data.name.as_deref(), Some("衢州站东广场"));
    assert_eq!(r.data.readiness.status, ReadinessStatus::Fault);
    assert_eq!(status(s, a.id).await, ReadinessStatus::Fault);
    // The same for an import that updates the record.
    let mut src = aed();
    src.source = "city".into();
    src.external_ref = Some("QZ-1".into());
    let b = s.create_aed(&src).await.unwrap();
    s.set_aed_readiness(
        b.id,
        &readiness(ReadinessStatus::InUse, "removed"),
        "device",
    )
    .await
    .unwrap();
    src.name = Some("新名字".into());
    let out = s.upsert_aeds(std::slice::from_ref(&src)).await.unwrap();
    assert_eq!(out, vec![aednet_store::UpsertOutcome::Updated(b.id)]);
    assert_eq!(status(s, b.id).await, ReadinessStatus::InUse);
}

async fn device_messages_are_unique_per_boot(s: &DynStore) {
    let a = s.create_aed(&aed()).await.unwrap();
    let none = ConsumableDates::default();
    for seq in [1, 2, 3] {
        let r = s
            .record_device_event(&event(a.id, "boot-a", seq), None, &none, None)
            .await
            .unwrap();
        assert!(matches!(r, Recorded::New { .. }));
    }
    assert_eq!(
        s.record_device_event(&event(a.id, "boot-a", 2), None, &none, None)
            .await
            .unwrap(),
        Recorded::Duplicate
    );
    // After a reboot, seq 1 again is a new message of the new boot.
    assert!(matches!(
        s.record_device_event(&event(a.id, "boot-b", 1), None, &none, None)
            .await
            .unwrap(),
        Recorded::New { .. }
    ));
    let snap = s.device_snapshot(a.id).await.unwrap().unwrap();
    assert_eq!((snap.boot.as_str(), snap.last_seq), ("boot-b", Some(1)));
    assert!(s.device_boot_seen(a.id, "boot-a").await.unwrap());
    assert!(!s.device_boot_seen(a.id, "boot-c").await.unwrap());
    assert_eq!(s.device_event_seqs(a.id).await.unwrap(), vec![1, 1, 2, 3]);
    assert!(s.device_snapshot(a.id + 999).await.unwrap().is_none());
}
