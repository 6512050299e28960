//! Fault injection, dispatch: the real binary on a PRIVATE PostgreSQL server (the shared one is
//! never stopped), an incident with an accepted rescuer on `/ws/rescuer`, and PostgreSQL
//! stopped (`pg_ctl stop -m immediate`) in the middle of it and started again. While it is
//! down the dispatcher's close answers 503 (JSON) and changes nothing, and the offer time-out
//! that falls due is kept and tried again (`aednet_dispatch_persist_retries_total`); once it
//! is back the time-out goes through, the next wave goes out, the close stands down every
//! accepted rescuer, and the stored audit log has every step once.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aednet_core::Role;
use common::private_pg::PrivatePg;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Server {
    child: Child,
    base: String,
    metrics: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_mid_incident_stalls_nothing() {
    let pg = PrivatePg::start_new();
    let url = pg.url();
    // Tokens straight into the database (the binary migrates the same schema first here).
    let store = aednet_store::connect(&url).await.unwrap();
    let mut tokens = std::collections::HashMap::new();
    for role in [Role::Admin, Role::Dispatcher] {
        let (secret, new) = aednet_api::auth::new_token("test", role, None);
        store.create_token(&new).await.unwrap();
        tokens.insert(role, secret);
    }
    drop(store);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aednet"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .env("AEDNET_DATABASE_URL", &url)
        .env("AEDNET_LOG_LEVEL", "warn")
        // Three helpers wanted, two alerts per wave, offers time out after 3 s.
        .env("AEDNET_DISPATCH__CPR_DIRECT", "3")
        .env("AEDNET_DISPATCH__MAX_FETCHERS", "0")
        .env("AEDNET_DISPATCH__MAX_ALERTS", "2")
        .env("AEDNET_DISPATCH__MIN_AEDS", "0")
        .env("AEDNET_DISPATCH__MIN_RESCUERS", "1")
        .env("AEDNET_DISPATCH__OFFER_TIMEOUT_S", "3")
        .env_remove("AEDNET_CLUSTER__NATS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn aednet");
    let a = common::wait_for_announcement(&mut child, "aednet serve", 120);
    let s = Server {
        child,
        base: a.base,
        metrics: a.metrics,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let admin = &tokens[&Role::Admin];
    let dispatcher = &tokens[&Role::Dispatcher];

    // Four rescuers on duty at 100..400 m from the patient, each on /ws/rescuer.
    let mut rescuers: Vec<(i64, Ws)> = Vec::new();
    for i in 1..=4i64 {
        let r: Value = client
            .post(format!("{}/api/v1/rescuers", s.base))
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
            .post(format!("{}/api/v1/tokens", s.base))
            .bearer_auth(admin)
            .json(&json!({"name": "phone", "role": "rescuer", "subject_id": id}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = t["token"].as_str().unwrap().to_string();
        let mut req = (s.base.replace("http://", "ws://") + "/ws/rescuer")
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
        rescuers.push((id, ws));
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
    assert_eq!(b["state"], "closed");
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
    eprintln!(
        "PostgreSQL down for {:.1} s; {} retries",
        down_for.as_secs_f64(),
        metric(&client, &s.metrics, "aednet_dispatch_persist_retries_total").await
    );
    drop(s);
    drop(pg);
}
