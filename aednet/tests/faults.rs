//! The fault-injection suite: the real binary under the faults an emergency service meets in
//! the field, each time with nothing acked lost and the service answering afterwards.
//!
//! - kill -9 in the middle of a telemetry flood: every acked message is in the store, resending
//!   after the restart stores the rest exactly once;
//! - kill -9 in the middle of an incident: it resumes with its offers, audit log and timers;
//! - a malformed, oversized and flooding device and rescuer next to well-behaved ones: the
//!   misbehaving ones are refused or closed, the well-behaved ones never see an error.
//!
//!
//! The store failing under the service (a full disk, PostgreSQL restarting mid-flood) is in
//! `faults_store.rs`; PostgreSQL restarting in the middle of an incident in
//! `faults_dispatch.rs`.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::wire::*;
use common::{start_aednet as start_env, terminate};

/// A device and a rescuer that send garbage, oversized frames and floods, next to a device and
/// a rescuer that behave: the bad ones are refused and closed, the good ones see no error and
/// every one of their messages is acked.
#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_device_and_rescuer_beside_well_behaved_ones() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AEDNET_GATEWAY__MESSAGES_PER_S", "20"),
        ("AEDNET_GATEWAY__BURST", "20"),
        ("AEDNET_LIMITS__LOCATION_PER_S", "5"),
        ("AEDNET_LIMITS__LOCATION_BURST", "10"),
    ];
    let r = start_env(dir.path(), &["demo"], &env);
    let admin = demo_token(dir.path(), "admin");
    let (good_aed, good_dev) = device_for_unknown_aed(&r.base, &admin, 0).await;
    let (_, flood_dev) = device_for_unknown_aed(&r.base, &admin, 1).await;
    let (_, junk_dev) = device_for_unknown_aed(&r.base, &admin, 2).await;
    let (_, big_dev) = device_for_unknown_aed(&r.base, &admin, 3).await;
    let (_, good_resc) = rescuer_token(&r.base, &admin, 1).await;
    let (_, bad_resc) = rescuer_token(&r.base, &admin, 2).await;

    // The well-behaved pair: one message every 250 ms (within every limit), each must be acked.
    let base = r.base.clone();
    let good = tokio::spawn(async move {
        let mut dev = device_socket(&base, &good_dev).await;
        let mut resc = rescuer_socket(&base, &good_resc).await;
        let mut errors = Vec::new();
        for seq in 1..=30u64 {
            dev.send(door(seq, seq % 2 == 1)).await.unwrap();
            let a = next_json(&mut dev).await.expect("device socket open");
            if a["type"] != "ack" || a["seq"] != seq {
                errors.push(a);
            }
            let loc = json!({"type": "location", "lat": 28.97, "lon": 118.87, "ref": seq});
            resc.send(Message::Text(loc.to_string().into()))
                .await
                .unwrap();
            let a = loop {
                let f = next_json(&mut resc).await.expect("rescuer socket open");
                if f["ref"] == seq {
                    break f;
                }
            };
            if a["type"] != "ack" {
                errors.push(a);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        errors
    });

    // A flooding device: refused with rate_limited, then closed as a bad client.
    let mut flood = device_socket(&r.base, &flood_dev).await;
    for seq in 1..=500u64 {
        if flood.send(door(seq, true)).await.is_err() {
            break;
        }
    }
    let mut codes = Vec::new();
    let closed = loop {
        match next_json(&mut flood).await {
            Ok(f) => codes.push(f["code"].as_str().unwrap_or("ack").to_string()),
            Err(close) => break close,
        }
    };
    assert!(codes.contains(&"rate_limited".to_string()), "{codes:?}");
    assert!(
        closed.is_some_and(|(c, _)| c == 1008),
        "flooder closed for policy"
    );

    // A device sending garbage: each answered `malformed`, then closed.
    let mut junk = device_socket(&r.base, &junk_dev).await;
    for raw in [
        "{",
        "[]",
        "null",
        "{\"v\":1}",
        "\u{0}\u{1}",
        "{\"v\":1,\"seq\":1,\"type\":\"nope\",\"ts\":\"x\"}",
    ] {
        if junk.send(Message::Text(raw.into())).await.is_err() {
            break;
        }
    }
    let mut junk_codes = Vec::new();
    let junk_closed = loop {
        match next_json(&mut junk).await {
            Ok(f) => junk_codes.push(f["code"].as_str().unwrap_or_default().to_string()),
            Err(close) => break close,
        }
    };
    assert!(
        junk_codes
            .iter()
            .all(|c| c == "malformed" || c == "unknown_type"),
        "{junk_codes:?}"
    );
    assert!(junk_closed.is_some(), "closed with a code");

    // An oversized frame (1 MiB, the limit is 8 KiB): closed at once.
    let mut big = device_socket(&r.base, &big_dev).await;
    let _ = big.send(Message::Text("x".repeat(1 << 20).into())).await;
    let big_closed = loop {
        match next_json(&mut big).await {
            Ok(_) => continue,
            Err(close) => break close,
        }
    };
    assert!(
        big_closed.as_ref().is_none_or(|(c, _)| *c == 1009),
        "{big_closed:?}"
    );

    // A rescuer flooding positions: rate limited per rescuer (error frames), garbage answered
    // with errors naming the problem, an oversized frame closes the socket.
    let mut bad = rescuer_socket(&r.base, &bad_resc).await;
    for i in 0..100 {
        let loc = json!({"type": "location", "lat": 28.97, "lon": 118.87, "ref": i});
        bad.send(Message::Text(loc.to_string().into()))
            .await
            .unwrap();
    }
    let mut limited = 0;
    let mut acked = 0;
    for _ in 0..100 {
        let f = next_json(&mut bad).await.unwrap();
        match (f["type"].as_str(), f["error"].as_str()) {
            (Some("ack"), _) => acked += 1,
            (Some("error"), Some("rate_limited")) => limited += 1,
            _ => {}
        }
    }
    assert!(
        acked <= 15 && limited >= 85,
        "acked {acked}, limited {limited}"
    );
    bad.send(Message::Text("not json".into())).await.unwrap();
    let e = next_json(&mut bad).await.unwrap();
    assert_eq!(e["type"], "error", "{e}");
    let _ = bad.send(Message::Text("y".repeat(64 * 1024).into())).await;
    let bad_closed = loop {
        match next_json(&mut bad).await {
            Ok(_) => continue,
            Err(close) => break close,
        }
    };
    assert!(
        bad_closed.as_ref().is_none_or(|(c, _)| *c == 1009),
        "{bad_closed:?}"
    );

    let errors = good.await.unwrap();
    assert!(
        errors.is_empty(),
        "the well-behaved clients saw errors: {errors:?}"
    );
    let client = reqwest::Client::new();
    let aed: Value = client
        .get(format!("{}/api/v1/aeds/{good_aed}", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        aed["readiness"]["status"], "unknown",
        "last message closed the door: {aed}"
    );
    let near = client
        .get(format!(
            "{}/api/v1/aeds/nearest?lat=28.97&lon=118.87",
            r.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(near.status().as_u16(), 200);
    assert!(terminate(r).success());
}

/// kill -9 during a telemetry flood: every message the server acked is in the store after the
/// crash, the stored readiness is the one the newest stored message gives, and after a restart
/// resending everything stores the rest without duplicating anything.
#[tokio::test(flavor = "multi_thread")]
async fn acked_telemetry_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    // A flood, not a well-behaved device: lift the per-connection rate limit.
    let env = [
        ("AEDNET_GATEWAY__MESSAGES_PER_S", "1000000"),
        ("AEDNET_GATEWAY__BURST", "1000000"),
    ];
    let mut r = start_env(dir.path(), &["demo"], &env);
    let tokens = std::fs::read_to_string(dir.path().join("aednet-data/demo-tokens.txt")).unwrap();
    let admin = tokens
        .lines()
        .find_map(|l| l.strip_prefix("admin\t"))
        .unwrap()
        .to_string();
    let client = reqwest::Client::new();
    // An AED without telemetry so far: a closed door takes it back to `unknown`.
    let unknown: Value = client
        .get(format!("{}/api/v1/aeds?status=unknown&limit=1", r.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let aed_id = unknown["items"][0]["id"].as_i64().unwrap();
    let created: Value = client
        .post(format!("{}/api/v1/tokens", r.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "cabinet-1", "role": "device", "subject_id": aed_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device = created["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let connect = |base: String| {
        let device = device.clone();
        async move {
            let mut req = (base.replace("http://", "ws://") + "/ws/device")
                .into_client_request()
                .unwrap();
            req.headers_mut()
                .insert("authorization", format!("Bearer {device}").parse().unwrap());
            tokio_tungstenite::connect_async(req).await.unwrap().0
        }
    };
    // Door open on odd seq, closed on even: every message changes readiness, so every one must
    // be stored before its ack.
    let frame = |seq: u64| {
        serde_json::json!({"v": 1, "seq": seq, "ts": "2026-11-24T08:00:00Z", "type": "door", "open": seq % 2 == 1}).to_string()
    };
    let total = 2000u64;
    let ws = connect(r.base.clone()).await;
    let (mut tx, mut rx) = ws.split();
    let sender = tokio::spawn(async move {
        for seq in 1..=total {
            if tx.send(Message::Text(frame(seq).into())).await.is_err() {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    let child = &mut r.child;
    while let Some(Ok(m)) = rx.next().await {
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "ack" {
                acked.push(v["seq"].as_i64().unwrap());
            }
            if acked.len() == 150 {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break;
            }
        }
    }
    sender.abort();
    assert_eq!(acked.len(), 150, "the flood was acked before the kill");

    let db = format!(
        "sqlite://{}",
        dir.path().join("aednet-data/demo.db").display()
    );
    let store = aednet_store::connect(&db).await.unwrap();
    let stored = store.device_event_seqs(aed_id).await.unwrap();
    for s in &acked {
        assert!(
            stored.contains(s),
            "acked seq {s} lost; stored {} messages",
            stored.len()
        );
    }
    let newest = *stored.last().unwrap();
    let aed = store.get_aed(aed_id).await.unwrap().unwrap();
    let want = if newest % 2 == 1 {
        "cabinet_open"
    } else {
        "unknown"
    };
    assert_eq!(
        aed.data.readiness.status.as_str(),
        want,
        "readiness matches seq {newest}"
    );
    drop(store);

    // Restart and resend everything: duplicates are acked without effect, the rest is stored.
    let r2 = start_env(dir.path(), &["demo"], &env);
    let mut ws = connect(r2.base.clone()).await;
    for seq in 1..=200u64 {
        ws.send(Message::Text(frame(seq).into())).await.unwrap();
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_eq!(v["seq"], seq, "{v}");
                    assert_eq!(v["type"], "ack", "{v}");
                    break;
                }
                _ => continue,
            }
        }
    }
    let store = aednet_store::connect(&db).await.unwrap();
    let stored = store.device_event_seqs(aed_id).await.unwrap();
    assert_eq!(
        stored.iter().filter(|s| **s <= 200).count(),
        200,
        "each seq exactly once"
    );
    assert!(terminate(r2).success());
}

/// kill -9 in the middle of an incident: after the restart the incident, its offers and its
/// audit log are there, and its offer timer resumes (the unanswered offer times out).
#[tokio::test(flavor = "multi_thread")]
async fn an_incident_survives_kill_9_and_its_timers_resume() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AEDNET_DISPATCH__OFFER_TIMEOUT_S", "3"),
        ("AEDNET_DISPATCH__MIN_AEDS", "0"),
        ("AEDNET_DISPATCH__MIN_RESCUERS", "1"),
    ];
    let mut r = start_env(dir.path(), &["demo"], &env);
    let tokens = std::fs::read_to_string(dir.path().join("aednet-data/demo-tokens.txt")).unwrap();
    let token = |role: &str| {
        tokens
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{role}\t")))
            .unwrap()
            .to_string()
    };
    let (admin, dispatcher) = (token("admin"), token("dispatcher"));
    let client = reqwest::Client::new();
    let post = |base: &str, path: &str, tok: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(tok)
            .json(&body)
            .send()
    };
    let rescuer: Value = post(
        &r.base,
        "/api/v1/rescuers",
        &admin,
        serde_json::json!({"name": "值班救护员",
        "certificate_no": "ZJQZ-CRASH-1", "level": "first_aider", "cert_issued": "2024-05-01",
        "cert_expires": "2030-04-30", "on_duty": true, "location_consent": true}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let rid = rescuer["id"].as_i64().unwrap();
    let tok: Value = post(
        &r.base,
        "/api/v1/tokens",
        &admin,
        serde_json::json!({"name": "phone", "role": "rescuer", "subject_id": rid}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let rtok = tok["token"].as_str().unwrap().to_string();
    let st = post(
        &r.base,
        "/api/v1/me/location",
        &rtok,
        serde_json::json!({"lat": 28.9705, "lon": 118.8702}),
    )
    .await
    .unwrap()
    .status();
    assert_eq!(st.as_u16(), 204);
    let inc: Value = post(
        &r.base,
        "/api/v1/incidents",
        &dispatcher,
        serde_json::json!({"lat": 28.9700, "lon": 118.8700}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = inc["id"].as_i64().unwrap();
    let offers = inc["offers"].as_array().unwrap();
    assert!(
        offers
            .iter()
            .any(|o| o["rescuer_id"] == rid && o["state"] == "offered"),
        "{inc}"
    );

    let child = &mut r.child;
    child.kill().unwrap(); // SIGKILL, mid-incident
    child.wait().unwrap();

    let r2 = start_env(dir.path(), &["demo"], &env);
    let get = || async {
        client
            .get(format!("{}/api/v1/incidents/{id}", r2.base))
            .bearer_auth(&dispatcher)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let after = get().await;
    assert_eq!(after["offers"], inc["offers"], "offers survive the crash");
    assert!(after["audit_log"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "offered"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = get().await;
        let o = now["offers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["rescuer_id"] == rid)
            .unwrap()
            .clone();
        if o["state"] == "timed_out" {
            assert!(now["audit_log"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "timed_out"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the offer timer did not resume: {o}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(terminate(r2).success());
}
