//! One truth for readiness, over real sockets:
//!
//! - a device reports a self-test fault, a maintainer sets the AED `ready` by hand, the device
//!   reports the same fault again: the AED ends `fault` — in the store, the caller's index and
//!   the gateway — on SQLite and PostgreSQL, on one node and across two nodes (PostgreSQL and
//!   NATS, the fault reported on node B after the maintainer's write on node A);
//! - `PUT /aeds/{id}` without `readiness_status` never overwrites what telemetry said;
//! - protocol version 2: a device that reboots starts a new sequence window (its low `seq`s are
//!   applied, its returning heartbeat is not a duplicate), an older boot resending changes
//!   nothing; version 1 devices keep working;
//! - a graceful shutdown of `aednet serve` writes the devices' pending last-seen state.
//!
//! Fails (never skips) when PostgreSQL or NATS is not reachable.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aednet_core::aed::AedInput;
use aednet_core::Role;
use common::{eventually, send, Db, TestServer};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, token: &str) -> Ws {
    let url = base.replace("http://", "ws://") + "/ws/device";
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a reply")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(f))) => {
                return json!({"closed": f.map(|f| (u16::from(f.code), f.reason.to_string()))})
            }
            Some(Ok(_)) => continue,
            other => return json!({"ended": format!("{other:?}")}),
        }
    }
}

/// A version 1 frame (`boot: None`) or a version 2 frame of that boot.
fn frame(boot: Option<&str>, seq: u64, body: Value) -> String {
    let mut m = match boot {
        None => json!({"v": 1, "seq": seq, "ts": "2026-11-24T08:00:00Z"}),
        Some(b) => json!({"v": 2, "boot": b, "seq": seq, "ts": "2026-11-24T08:00:00Z"}),
    };
    m.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    m.to_string()
}

/// Sends a frame and expects its ack.
async fn acked(ws: &mut Ws, text: String) {
    ws.send(Message::Text(text.clone().into())).await.unwrap();
    let reply = next_json(ws).await;
    assert_eq!(reply["type"], "ack", "{text} → {reply}");
}

fn e12() -> Value {
    json!({"type": "self_test", "ok": false, "fault_codes": ["E12"]})
}

async fn device_token(store: &aednet_store::DynStore, aed_id: i64) -> String {
    let (secret, new) = aednet_api::auth::new_token("cabinet", Role::Device, Some(aed_id));
    store.create_token(&new).await.unwrap();
    secret
}

async fn stored_status(store: &aednet_store::DynStore, id: i64) -> String {
    store
        .get_aed(id)
        .await
        .unwrap()
        .unwrap()
        .data
        .readiness
        .status
        .as_str()
        .to_string()
}

/// The status a node serves callers from memory (its geoindex), `None` if not listed.
async fn served(client: &reqwest::Client, base: &str, id: i64) -> Option<String> {
    let url = format!(
        "{base}/api/v1/aeds/nearest?lat=28.97&lon=118.87&k=50&max_distance_m=20000&readiness=any&hours=any&include=restricted,closed"
    );
    let v: Value = client.get(url).send().await.ok()?.json().await.ok()?;
    v["results"]
        .as_array()?
        .iter()
        .find(|r| r["id"].as_i64() == Some(id))
        .and_then(|r| r["status"].as_str())
        .map(str::to_string)
}

fn aed_body() -> Value {
    json!({"lat": 28.9701, "lon": 118.87, "name": "站台柜", "access": "yes", "opening_hours": "24/7"})
}

// ---------------------------------------------------------------------------------------------
// One node.

async fn manual_ready_does_not_hide_a_repeated_fault(db: Db) {
    let s = TestServer::start(db).await;
    let (st, a) = send(s.post("/api/v1/aeds", Some(Role::Admin), &aed_body())).await;
    assert_eq!(st, 201, "{a}");
    let id = a["id"].as_i64().unwrap();
    let token = device_token(&s.store, id).await;
    let mut ws = connect(&s.base, &token).await;

    acked(&mut ws, frame(None, 1, e12())).await;
    assert_eq!(stored_status(&s.store, id).await, "fault");
    let (st, b) = send(s.put(
        &format!("/api/v1/aeds/{id}/readiness"),
        Some(Role::Maintenance),
        &json!({"status": "ready", "reason": "pads replaced"}),
    ))
    .await;
    assert_eq!(
        (st, b["readiness"]["status"].as_str()),
        (200, Some("ready")),
        "{b}"
    );
    // The device reports the same fault again: the maintainer was wrong, callers must not be
    // sent to this cabinet.
    acked(&mut ws, frame(None, 2, e12())).await;
    assert_eq!(stored_status(&s.store, id).await, "fault");
    eventually("the caller's index shows the fault", || async {
        served(&s.client, &s.base, id).await.as_deref() == Some("fault")
    })
    .await;
    let (_, h) = send(s.get(
        &format!("/api/v1/aeds/{id}/readiness/history"),
        Some(Role::Maintenance),
    ))
    .await;
    let steps: Vec<(String, String)> = h["items"]
        .as_array()
        .or(h.as_array())
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_string(),
                c["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        steps[..3],
        [
            ("fault".to_string(), "device".to_string()),
            ("ready".to_string(), "api".to_string()),
            ("fault".to_string(), "device".to_string()),
        ],
        "newest first: {h}"
    );

    // Editing the record (no readiness_status) keeps what telemetry said …
    let mut edit = aed_body();
    edit["name"] = json!("站台柜（东）");
    let (st, b) = send(s.put(&format!("/api/v1/aeds/{id}"), Some(Role::Admin), &edit)).await;
    assert_eq!(
        (st, b["readiness"]["status"].as_str()),
        (200, Some("fault")),
        "{b}"
    );
    // … and one that sets readiness is a maintainer's word like PUT …/readiness: the device's
    // next report is compared with it.
    edit["readiness_status"] = json!("ready");
    let (st, b) = send(s.put(&format!("/api/v1/aeds/{id}"), Some(Role::Admin), &edit)).await;
    assert_eq!(
        (st, b["readiness"]["status"].as_str()),
        (200, Some("ready")),
        "{b}"
    );
    acked(&mut ws, frame(None, 3, e12())).await;
    assert_eq!(stored_status(&s.store, id).await, "fault");
    eventually("the caller's index shows the fault again", || async {
        served(&s.client, &s.base, id).await.as_deref() == Some("fault")
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_ready_does_not_hide_a_repeated_fault_on_sqlite() {
    manual_ready_does_not_hide_a_repeated_fault(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_ready_does_not_hide_a_repeated_fault_on_postgres() {
    manual_ready_does_not_hide_a_repeated_fault(Db::Postgres).await;
}

async fn reboots_start_a_new_window(db: Db) {
    let s = TestServer::start(db).await;
    let (_, a) = send(s.post("/api/v1/aeds", Some(Role::Admin), &aed_body())).await;
    let id = a["id"].as_i64().unwrap();
    let token = device_token(&s.store, id).await;
    let status = || stored_status(&s.store, id);

    // Version 2, first boot.
    let mut ws = connect(&s.base, &token).await;
    acked(
        &mut ws,
        frame(Some("b1"), 1, json!({"type": "self_test", "ok": true})),
    )
    .await;
    acked(
        &mut ws,
        frame(Some("b1"), 2, json!({"type": "battery_low"})),
    )
    .await;
    acked(
        &mut ws,
        frame(Some("b1"), 3, json!({"type": "door", "open": true})),
    )
    .await;
    acked(
        &mut ws,
        frame(Some("b1"), 4, json!({"type": "door", "open": false})),
    )
    .await;
    assert_eq!(status().await, "degraded");
    drop(ws);

    // The controller reboots and counts from 1 again.
    let mut ws = connect(&s.base, &token).await;
    // A returning heartbeat with a good battery is applied, not taken for the old seq 1.
    acked(
        &mut ws,
        frame(
            Some("b2"),
            1,
            json!({"type": "heartbeat", "battery_pct": 90}),
        ),
    )
    .await;
    assert_eq!(status().await, "ready");
    // Low sequence numbers of the new boot are applied, not "older than the newest".
    acked(
        &mut ws,
        frame(Some("b2"), 2, json!({"type": "door", "open": true})),
    )
    .await;
    assert_eq!(status().await, "cabinet_open");
    acked(
        &mut ws,
        frame(Some("b2"), 3, json!({"type": "door", "open": false})),
    )
    .await;
    assert_eq!(status().await, "ready");
    // A resend of this boot is acked and changes nothing; a late message of the old boot is
    // stored for the record but does not roll readiness back.
    acked(
        &mut ws,
        frame(Some("b2"), 2, json!({"type": "door", "open": true})),
    )
    .await;
    acked(
        &mut ws,
        frame(Some("b1"), 5, json!({"type": "door", "open": true})),
    )
    .await;
    assert_eq!(status().await, "ready");
    let mut seqs = s.store.device_event_seqs(id).await.unwrap();
    seqs.sort_unstable();
    // b1: 1, 2, 3, 4, 5; b2: 1 (a heartbeat that changed readiness), 2, 3.
    assert_eq!(seqs, vec![1, 1, 2, 2, 3, 3, 4, 5]);
    drop(ws);

    // Version 1 devices keep working: one window, resends are duplicates.
    let (_, b) = send(s.post("/api/v1/aeds", Some(Role::Admin), &aed_body())).await;
    let v1 = b["id"].as_i64().unwrap();
    let t1 = device_token(&s.store, v1).await;
    let mut ws = connect(&s.base, &t1).await;
    acked(&mut ws, frame(None, 1, e12())).await;
    assert_eq!(stored_status(&s.store, v1).await, "fault");
    acked(
        &mut ws,
        frame(None, 2, json!({"type": "self_test", "ok": true})),
    )
    .await;
    assert_eq!(stored_status(&s.store, v1).await, "ready");
    acked(&mut ws, frame(None, 1, e12())).await;
    assert_eq!(
        stored_status(&s.store, v1).await,
        "ready",
        "a resend changes nothing"
    );
    // Version 2 frames without a boot, and unknown versions, are refused.
    for (bad, code) in [
        (
            r#"{"v":2,"seq":3,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#,
            "malformed",
        ),
        (
            r#"{"v":3,"seq":3,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#,
            "unsupported_version",
        ),
    ] {
        ws.send(Message::Text(bad.into())).await.unwrap();
        let r = next_json(&mut ws).await;
        assert_eq!(
            (r["type"].as_str(), r["code"].as_str()),
            (Some("error"), Some(code)),
            "{r}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboots_start_a_new_window_on_sqlite() {
    reboots_start_a_new_window(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboots_start_a_new_window_on_postgres() {
    reboots_start_a_new_window(Db::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// The binary: graceful shutdown, and two nodes.

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aednet"))
}

/// `aednet serve` on port 0; killed when dropped unless it was terminated.
struct Node {
    child: Option<Child>,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Node {
    #[allow(clippy::zombie_processes)] // reaped by Drop or terminate
    fn start(name: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> Node {
        let mut child = bin()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .envs(env.iter().copied())
            .env("AEDNET_LOG_LEVEL", "warn")
            .env("AEDNET_PUBLIC__PER_MINUTE", "0")
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn aednet");
        let a = common::wait_for_announcement(&mut child, name, 60);
        Node {
            child: Some(child),
            base: a.base,
        }
    }

    /// SIGTERM; the node must exit cleanly within 30 s.
    fn terminate(&mut self) {
        let mut c = self.child.take().expect("running");
        let status = common::sigterm_and_wait(&mut c);
        assert!(status.success(), "exited with {status}");
    }
}

/// An AED and its device token, created in the store before the server starts.
async fn seed(url: &str) -> (i64, String, String) {
    let store = aednet_store::connect(url).await.unwrap();
    let data = serde_json::from_value::<AedInput>(aed_body())
        .unwrap()
        .validate(chrono::Utc::now())
        .unwrap();
    let aed = store.create_aed(&data).await.unwrap();
    let device = device_token(&store, aed.id).await;
    let (maint, new) = aednet_api::auth::new_token("test", Role::Maintenance, None);
    store.create_token(&new).await.unwrap();
    (aed.id, device, maint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_writes_the_pending_last_seen_state() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let (id, token, _) = seed(&url).await;
    // The flusher would write in an hour: only the shutdown can have written it.
    let mut node = Node::start(
        "aednet",
        dir.path(),
        &[
            ("AEDNET_DATABASE_URL", &url),
            ("AEDNET_GATEWAY__FLUSH_INTERVAL_MS", "3600000"),
        ],
    );
    let mut ws = connect(&node.base, &token).await;
    for seq in 1..=5 {
        acked(
            &mut ws,
            frame(
                None,
                seq,
                json!({"type": "heartbeat", "battery_pct": 80 + seq}),
            ),
        )
        .await;
    }
    node.terminate();
    // The device was told why its socket closed.
    assert_eq!(
        next_json(&mut ws).await["closed"][0],
        1001,
        "close code at shutdown"
    );
    let store = aednet_store::connect(&url).await.unwrap();
    let st: Vec<_> = store
        .device_states()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.aed_id == id)
        .collect();
    assert_eq!(st.len(), 1, "last-seen state written at shutdown");
    assert_eq!((st[0].last_seq, st[0].battery_pct), (5, Some(85)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manual_ready_on_one_node_does_not_hide_a_fault_reported_on_another() {
    let nats_url =
        std::env::var("AEDNET_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    async_nats::connect(&nats_url)
        .await
        .expect("NATS must be reachable at AEDNET_TEST_NATS_URL (default 127.0.0.1:4222)");
    let (db_url, db_name) = common::fresh_pg_database().await;
    let (id, token, maint) = seed(&db_url).await;
    let prefix = format!("aednet_test_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AEDNET_DATABASE_URL", db_url.as_str()),
        ("AEDNET_CLUSTER__NATS_URL", nats_url.as_str()),
        ("AEDNET_CLUSTER__PREFIX", prefix.as_str()),
    ];
    let a = Node::start("A", dir.path(), &env);
    let b = Node::start("B", dir.path(), &env);
    let client = reqwest::Client::new();
    let store = aednet_store::connect(&db_url).await.unwrap();

    // The device is connected to node B.
    let mut ws = connect(&b.base, &token).await;
    acked(&mut ws, frame(None, 1, e12())).await;
    assert_eq!(stored_status(&store, id).await, "fault");
    for n in [&a, &b] {
        eventually("both nodes serve the fault", || async {
            served(&client, &n.base, id).await.as_deref() == Some("fault")
        })
        .await;
    }
    // The maintainer's word goes to node A …
    let r = client
        .put(format!("{}/api/v1/aeds/{id}/readiness", a.base))
        .bearer_auth(&maint)
        .json(&json!({"status": "ready"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // … and at once the device reports the fault again on node B, whether or not B has heard
    // of the change yet.
    acked(&mut ws, frame(None, 2, e12())).await;
    assert_eq!(stored_status(&store, id).await, "fault");
    for n in [&a, &b] {
        eventually("both nodes serve the fault again", || async {
            served(&client, &n.base, id).await.as_deref() == Some("fault")
        })
        .await;
    }
    drop((a, b));
    common::drop_pg_database(&db_name).await;
}
