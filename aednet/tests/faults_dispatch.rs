//! Fault injection, dispatch: the real binary on a PRIVATE PostgreSQL server (the shared one is
//! never stopped), an incident with an accepted rescuer on `/ws/rescuer`, and PostgreSQL
//! stopped (`pg_ctl stop -m immediate`) in the middle of it and started again. While it is
//! down the dispatcher's close answers 503 (JSON) and changes nothing, and the offer time-out
//! that falls due is kept and tried again (`aednet_dispatch_persist_retries_total`); once it
//! is back the time-out goes through, the next wave goes out, the close stands down every
//! accepted rescuer, and the stored audit log has every step once.
//!
//! The same on two nodes of a cluster (NATS + the private PostgreSQL): the owner keeps the
//! incident and its timer while the database and its lease session are gone, backs off
//! instead of spinning, and takes its lease back when PostgreSQL returns.

mod common;

use std::time::{Duration, Instant};

use aednet_core::Role;
use common::private_pg::PrivatePg;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next frame of `kind` on a rescuer's socket, skipping others (acks, updates).
async fn next_of(ws: &mut Ws, kind: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no {kind} frame within {secs} s: {other:?}"),
        }
    }
}

async fn metric(client: &reqwest::Client, url: &str, name: &str) -> f64 {
    common::metric(client, url, name).await.unwrap_or(0.0)
}

/// Dispatch settings both tests use: three helpers wanted, two alerts per wave, offers time
/// out after 3 s.
const DISPATCH_ENV: [(&str, &str); 7] = [
    ("AEDNET_LOG_LEVEL", "warn"),
    ("AEDNET_DISPATCH__CPR_DIRECT", "3"),
    ("AEDNET_DISPATCH__MAX_FETCHERS", "0"),
    ("AEDNET_DISPATCH__MAX_ALERTS", "2"),
    ("AEDNET_DISPATCH__MIN_AEDS", "0"),
    ("AEDNET_DISPATCH__MIN_RESCUERS", "1"),
    ("AEDNET_DISPATCH__OFFER_TIMEOUT_S", "3"),
];

/// Admin and dispatcher tokens straight into the private database (migrated on connect).
async fn seed_tokens(url: &str) -> std::collections::HashMap<Role, String> {
    let store = aednet_store::connect(url).await.unwrap();
    let mut tokens = std::collections::HashMap::new();
    for role in [Role::Admin, Role::Dispatcher] {
        let (secret, new) = aednet_api::auth::new_token("test", role, None);
        store.create_token(&new).await.unwrap();
        tokens.insert(role, secret);
    }
    tokens
}

/// Rescuer `i`, on duty with consent, created through `base`; its id and a rescuer token.
async fn on_duty_rescuer(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    i: i64,
) -> (i64, String) {
    let r: Value = client
        .post(format!("{base}/api/v1/rescuers"))
        .bearer_auth(admin)
        .json(
            &json!({"name": format!("救护员{i}"), "certificate_no": format!("PGF-{i}"),
            "level": "first_aider", "cert_issued": "2024-05-01", "cert_expires": "2030-04-30",
            "on_duty": true, "location_consent": true}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["id"].as_i64().unwrap();
    let t: Value = client
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(admin)
        .json(&json!({"name": "phone", "role": "rescuer", "subject_id": id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (id, t["token"].as_str().unwrap().to_string())
}

/// The rescuer's `/ws/rescuer` on `base`, its position (north of the patient by `i` × 100 m)
/// reported and acked.
async fn rescuer_socket(base: &str, token: &str, i: i64) -> Ws {
    let mut req = (base.replace("http://", "ws://") + "/ws/rescuer")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let lat = 28.97 + 0.0009 * i as f64;
    ws.send(Message::Text(
        json!({"type": "location", "lat": lat, "lon": 118.87})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let ack = next_of(&mut ws, "ack", 10).await;
    assert_eq!(ack["of"], "location", "{ack}");
    ws
}

/// Every frame a socket gets within `ms` (it must not have any then).
async fn frames_within(ws: &mut Ws, ms: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(ms);
    while let Ok(Some(Ok(m))) = tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        ws.next(),
    )
    .await
    {
        if let Message::Text(t) = m {
            out.push(serde_json::from_str(&t).unwrap());
        }
    }
    out
}

/// The incident as stored: closed, and its audit log every step once, in order (two waves of
/// two offers, the first wave's unanswered offer timed out once, two accepted, three stood
/// down by the close).
fn assert_complete_audit(b: &Value) {
    assert_eq!(b["state"], "closed", "{b}");
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("position");
        v
    };
    let log: Vec<Value> = b["audit_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(strip)
        .collect();
    let doc: Vec<Value> = b["audit"].as_array().unwrap().iter().map(strip).collect();
    assert_eq!(log, doc, "the stored log is the incident's");
    let kinds: Vec<&str> = log.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let count = |k: &str| kinds.iter().filter(|x| **x == k).count();
    assert_eq!(count("offered"), 4, "{kinds:?}");
    assert_eq!(count("accepted"), 2, "{kinds:?}");
    assert_eq!(count("timed_out"), 1, "{kinds:?}");
    assert_eq!(count("stood_down"), 3, "{kinds:?}");
    assert_eq!(count("closed"), 1, "{kinds:?}");
    let timed_out = kinds.iter().position(|k| *k == "timed_out").unwrap();
    assert!(
        kinds[timed_out + 1..]
            .iter()
            .filter(|k| **k == "offered")
            .count()
            == 2,
        "the next wave came after the time-out: {kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_mid_incident_stalls_nothing() {
    let pg = PrivatePg::start_new();
    let url = pg.url();
    let tokens = seed_tokens(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![("AEDNET_DATABASE_URL", url.as_str())];
    env.extend(DISPATCH_ENV);
    let s = common::start_aednet(dir.path(), &["serve"], &env);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let admin = &tokens[&Role::Admin];
    let dispatcher = &tokens[&Role::Dispatcher];

    // Four rescuers on duty at 100..400 m from the patient, each on /ws/rescuer.
    let mut rescuers: Vec<(i64, Ws)> = Vec::new();
    for i in 1..=4i64 {
        let (id, token) = on_duty_rescuer(&client, &s.base, admin, i).await;
        rescuers.push((id, rescuer_socket(&s.base, &token, i).await));
    }

    // The incident: offers to the two nearest.
    let inc: Value = client
        .post(format!("{}/api/v1/incidents", s.base))
        .bearer_auth(dispatcher)
        .json(&json!({"lat": 28.97, "lon": 118.87}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = inc["id"].as_i64().unwrap();
    let offered: Vec<i64> = inc["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["rescuer_id"].as_i64().unwrap())
        .collect();
    assert_eq!(offered, vec![rescuers[0].0, rescuers[1].0], "{inc}");
    // Rescuer 1 accepts over the socket.
    let offer = next_of(&mut rescuers[0].1, "offer", 10).await;
    rescuers[0]
        .1
        .send(Message::Text(
            json!({"type": "accept", "incident_id": id, "offer_id": offer["offer_id"]})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let ack = next_of(&mut rescuers[0].1, "ack", 10).await;
    assert_eq!(ack["offer"]["state"], "accepted", "{ack}");

    // Rescuer 2 has its offer (and does not answer).
    let offer2 = next_of(&mut rescuers[1].1, "offer", 10).await;
    assert_eq!(offer2["incident_id"], id);
    // PostgreSQL goes down mid-incident; rescuer 2's offer falls due while it is down.
    pg.stop_immediate();
    let down_at = Instant::now();
    let resp = client
        .post(format!("{}/api/v1/incidents/{id}/close", s.base))
        .bearer_auth(dispatcher)
        .json(&json!({"aed_applied": false, "shock_delivered": false, "handed_to_ems": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(body["message"].is_string(), "{body}");
    // The failed time-out is kept and retried, not dropped.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&client, &s.metrics, "aednet_dispatch_persist_retries_total").await < 1.0 {
        assert!(Instant::now() < deadline, "no retry of the failed time-out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nobody was stood down by the close that failed, nor offered anything.
    for (_, ws) in rescuers.iter_mut().skip(1) {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(100), ws.next()).await
        {
            panic!("nothing may reach a rescuer while the store is down: {t}");
        }
    }
    let down_for = down_at.elapsed();

    // PostgreSQL is back: the time-out goes through and the next wave reaches rescuers 3 and 4.
    pg.start();
    for (_, ws) in rescuers.iter_mut().skip(2) {
        let o = next_of(ws, "offer", 30).await;
        assert_eq!(o["incident_id"], id, "{o}");
    }
    // Rescuer 3 accepts; then the dispatcher closes: every accepted rescuer is stood down.
    let offer3 = {
        let b: Value = client
            .get(format!("{}/api/v1/incidents/{id}", s.base))
            .bearer_auth(dispatcher)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        b["offers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["rescuer_id"] == rescuers[2].0)
            .unwrap()["id"]
            .clone()
    };
    rescuers[2]
        .1
        .send(Message::Text(
            json!({"type": "accept", "incident_id": id, "offer_id": offer3})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let ack = next_of(&mut rescuers[2].1, "ack", 30).await;
    assert_eq!(ack["offer"]["state"], "accepted", "{ack}");
    let resp = client
        .post(format!("{}/api/v1/incidents/{id}/close", s.base))
        .bearer_auth(dispatcher)
        .json(&json!({"aed_applied": false, "shock_delivered": false, "handed_to_ems": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    for i in [0usize, 2, 3] {
        let f = next_of(&mut rescuers[i].1, "stand_down", 10).await;
        assert_eq!(f["incident_id"], id, "rescuer {} got {f}", i + 1);
    }

    // The audit log as stored: every step, once, in order.
    let b: Value = client
        .get(format!("{}/api/v1/incidents/{id}", s.base))
        .bearer_auth(dispatcher)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_complete_audit(&b);
    eprintln!(
        "PostgreSQL down for {:.1} s; {} retries",
        down_for.as_secs_f64(),
        metric(&client, &s.metrics, "aednet_dispatch_persist_retries_total").await
    );
    drop(s);
    drop(pg);
}

async fn close(client: &reqwest::Client, base: &str, dispatcher: &str, id: i64) -> (u16, Value) {
    let resp = client
        .post(format!("{base}/api/v1/incidents/{id}/close"))
        .bearer_auth(dispatcher)
        .json(&json!({"aed_applied": false, "shock_delivered": false, "handed_to_ems": true}))
        .send()
        .await
        .unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

async fn accept(ws: &mut Ws, id: i64, offer_id: &Value) {
    ws.send(Message::Text(
        json!({"type": "accept", "incident_id": id, "offer_id": offer_id})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let ack = next_of(ws, "ack", 30).await;
    assert_eq!(ack["offer"]["state"], "accepted", "{ack}");
}

/// Two nodes on NATS over the private PostgreSQL. The incident is node A's; its rescuers'
/// sockets are on both nodes. PostgreSQL stops for about 8 s while the first wave's
/// unanswered offer falls due: A loses its lease session with the database, yet keeps the
/// incident and its timer, retries with back-off (a handful of tries, not a loop), and nothing
/// reaches a rescuer; closes on either node answer 503. Once PostgreSQL is back the offer times
/// out, the next wave reaches the rescuers on both nodes exactly once, an accept and the close
/// go through, every accepted rescuer is stood down, and the audit log is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_mid_incident_on_a_cluster_stalls_nothing() {
    let nats_url = std::env::var("AEDNET_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string());
    // Fail loudly, never skip: the test needs the real NATS server.
    let nats = async_nats::connect(&nats_url)
        .await
        .expect("NATS must be reachable at AEDNET_TEST_NATS_URL (default 127.0.0.1:4222)");
    let pg = PrivatePg::start_new();
    let url = pg.url();
    let tokens = seed_tokens(&url).await;
    let prefix = format!("aednet_test_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![
        ("AEDNET_DATABASE_URL", url.as_str()),
        ("AEDNET_CLUSTER__NATS_URL", nats_url.as_str()),
        ("AEDNET_CLUSTER__PREFIX", prefix.as_str()),
    ];
    env.extend(DISPATCH_ENV);
    let a = common::start_aednet(dir.path(), &["serve"], &env);
    let b = common::start_aednet(dir.path(), &["serve"], &env);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let admin = &tokens[&Role::Admin];
    let dispatcher = &tokens[&Role::Dispatcher];
    let retries = "aednet_dispatch_persist_retries_total";

    // Four rescuers 100..400 m from the patient: 1 and 3 on node A's sockets, 2 and 4 on B's.
    let mut rescuers: Vec<(i64, Ws)> = Vec::new();
    for i in 1..=4i64 {
        let (id, token) = on_duty_rescuer(&client, &a.base, admin, i).await;
        let node = if i % 2 == 1 { &a } else { &b };
        rescuers.push((id, rescuer_socket(&node.base, &token, i).await));
    }
    // A plans with the positions reported to B too (shared over NATS).
    let deadline = Instant::now() + Duration::from_secs(15);
    while common::metric(&client, &a.metrics, "aednet_rescuers_located")
        .await
        .unwrap_or(0.0)
        < 4.0
    {
        assert!(
            Instant::now() < deadline,
            "node A never learnt the four positions"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The incident, on A: offers to rescuers 1 (A) and 2 (B); 1 accepts, 2 does not answer.
    let inc: Value = client
        .post(format!("{}/api/v1/incidents", a.base))
        .bearer_auth(dispatcher)
        .json(&json!({"lat": 28.97, "lon": 118.87}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = inc["id"].as_i64().unwrap();
    let offered: Vec<i64> = inc["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["rescuer_id"].as_i64().unwrap())
        .collect();
    assert_eq!(offered, vec![rescuers[0].0, rescuers[1].0], "{inc}");
    let offer = next_of(&mut rescuers[0].1, "offer", 10).await;
    accept(&mut rescuers[0].1, id, &offer["offer_id"]).await;
    let offer2 = next_of(&mut rescuers[1].1, "offer", 10).await;
    assert_eq!(offer2["incident_id"], id);

    // PostgreSQL goes down; rescuer 2's offer falls due while it is.
    pg.stop_immediate();
    let down_at = Instant::now();
    let (on_b, on_a) = tokio::join!(
        close(&client, &b.base, dispatcher, id),
        close(&client, &a.base, dispatcher, id)
    );
    for (node, (st, body)) in [("B", on_b), ("A", on_a)] {
        assert_eq!(st, 503, "close on {node} while PostgreSQL is down: {body}");
        assert_eq!(body["error"], "unavailable", "{body}");
    }
    // The owner keeps the failed time-out and tries it again, backing off.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&client, &a.metrics, retries).await < 2.0 {
        assert!(
            Instant::now() < deadline,
            "node A never retried the failed time-out (the incident was dropped)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(left) = Duration::from_secs(8).checked_sub(down_at.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let down_for = down_at.elapsed();
    let tries_while_down =
        metric(&client, &a.metrics, retries).await + metric(&client, &b.metrics, retries).await;
    // 250 ms doubling up to 10 s: six tries in the first 16 s, then one per 10 s; a loop
    // would make thousands.
    assert!(
        tries_while_down <= 8.0 + down_for.as_secs_f64() / 10.0,
        "{tries_while_down} tries in {:.1} s: no back-off",
        down_for.as_secs_f64()
    );
    // Nothing reached any rescuer: no stand-down from the closes that failed, no new offer.
    for (i, (_, ws)) in rescuers.iter_mut().enumerate() {
        let got: Vec<Value> = frames_within(ws, 100)
            .await
            .into_iter()
            .filter(|f| {
                ["offer", "stand_down", "cancel"].contains(&f["type"].as_str().unwrap_or(""))
            })
            .collect();
        assert!(
            got.is_empty(),
            "rescuer {} got {got:?} while the store was down",
            i + 1
        );
    }

    // PostgreSQL is back: the time-out goes through and the next wave reaches rescuers 3 (A)
    // and 4 (B).
    pg.start();
    let mut offer3 = Value::Null;
    for (k, (_, ws)) in rescuers.iter_mut().enumerate().skip(2) {
        let o = next_of(ws, "offer", 30).await;
        assert_eq!(o["incident_id"], id, "{o}");
        if k == 2 {
            offer3 = o["offer_id"].clone();
        }
    }
    // Rescuer 3 accepts (on A); the dispatcher closes on B: every accepted rescuer and the
    // pending offer are stood down, on both nodes.
    accept(&mut rescuers[2].1, id, &offer3).await;
    let (st, body) = close(&client, &b.base, dispatcher, id).await;
    assert_eq!(st, 200, "{body}");
    for i in [0usize, 2, 3] {
        let f = next_of(&mut rescuers[i].1, "stand_down", 10).await;
        assert_eq!(f["incident_id"], id, "rescuer {} got {f}", i + 1);
    }
    // No socket had an offer twice (a take-over pushes pending offers again; sockets drop
    // what they had).
    for (i, (_, ws)) in rescuers.iter_mut().enumerate() {
        let again: Vec<Value> = frames_within(ws, 300)
            .await
            .into_iter()
            .filter(|f| f["type"] == "offer")
            .collect();
        assert!(again.is_empty(), "rescuer {} again: {again:?}", i + 1);
    }
    let stored: Value = client
        .get(format!("{}/api/v1/incidents/{id}", b.base))
        .bearer_auth(dispatcher)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_complete_audit(&stored);
    eprintln!(
        "PostgreSQL down for {:.1} s; tries while down {tries_while_down}; after: A {} B {}",
        down_for.as_secs_f64(),
        metric(&client, &a.metrics, retries).await,
        metric(&client, &b.metrics, retries).await,
    );
    drop((a, b));
    drop(pg);
    let js = async_nats::jetstream::new(nats);
    let _ = js.delete_stream(aednet_cluster::stream_name(&prefix)).await;
}
