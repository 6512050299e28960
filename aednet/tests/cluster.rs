//! Several nodes, as operators run them: three `aednet serve` processes over one fresh
//! PostgreSQL database and one NATS JetStream stream (a unique prefix per test), seeded through
//! the CLI and the API. Devices and rescuers are connected to different nodes; an incident is
//! created on node A, and A is killed with SIGKILL while devices are sending and the first
//! wave's offers are pending. Then:
//!
//! - every device message that was acked (before or after the kill) is in `device_events`;
//! - another node takes the incident over: the first wave times out and the next waves go out,
//!   an accept sent to any node reaches the owner, and every rescuer — including those whose
//!   socket was on A and who reconnected elsewhere — gets the incident's offers and stand-downs,
//!   never the same offer twice on one socket; closing through node B stands everyone down;
//! - the readiness every surviving node serves from memory equals the store's;
//! - the event stream held readiness changes but no rescuer position (those travel between
//!   nodes as live messages only).
//!
//! Fails (never skips) when PostgreSQL or NATS is not reachable.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const NATS_URL_DEFAULT: &str = "nats://127.0.0.1:4222";
/// The patient: Quzhou station square.
const PATIENT: (f64, f64) = (28.9700, 118.8700);

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aednet"))
}

/// One `aednet serve` process; killed (and reaped) when dropped, so a failing test leaves
/// no node behind.
struct Node {
    name: &'static str,
    child: Option<Child>,
    base: String,
    metrics: String,
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
    fn ws(&self, path: &str) -> String {
        self.base.replace("http://", "ws://") + path
    }

    /// SIGKILL: no shutdown code runs, sockets just drop.
    fn kill_9(&mut self) {
        let mut c = self.child.take().expect("running");
        c.kill().expect("SIGKILL");
        c.wait().expect("reaped");
    }

    /// SIGTERM; the node must finish cleanly.
    fn terminate(&mut self) {
        let mut c = self.child.take().expect("running");
        let status = common::sigterm_and_wait(&mut c);
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

/// Starts `aednet serve` on port 0 and waits (with a deadline) for the line announcing its
/// addresses.
#[allow(clippy::zombie_processes)] // reaped by Node's Drop, kill_9 or terminate
fn start_node(name: &'static str, dir: &std::path::Path, env: &[(String, String)]) -> Node {
    let mut child = bin()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn aednet");
    let a = common::wait_for_announcement(&mut child, name, 60);
    Node {
        name,
        child: Some(child),
        base: a.base,
        metrics: a.metrics,
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `secs`.
async fn until<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`until`], with `show()` in the failure message (the state that was waited on).
async fn until_or<T, F, Fut, S, SFut>(what: &str, secs: u64, mut f: F, show: S) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
    S: FnOnce() -> SFut,
    SFut: std::future::Future<Output = String>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {secs} s waiting for: {what}; {}",
                show().await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// For a failure message: the incident as stored and who holds which advisory lock.
async fn diagnose(db_url: &str, inc_id: i64) -> String {
    let pool = sqlx::PgPool::connect(db_url).await.unwrap();
    let locks: Vec<(Option<String>, Option<i64>, bool)> = sqlx::query_as(
        "SELECT a.application_name, l.objid::bigint, l.granted FROM pg_locks l \
         JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    let doc: Option<(String,)> = sqlx::query_as("SELECT doc FROM incidents WHERE id = $1")
        .bind(inc_id)
        .fetch_optional(&pool)
        .await
        .unwrap_or_default();
    format!("stored incident: {doc:?}; advisory locks (holder, key, granted): {locks:?}")
}

async fn ws_connect(url: &str, token: &str) -> Result<Ws, String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().map_err(|_| "header")?,
    );
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Rescuers: each socket keeps every frame it received.

/// One rescuer socket: a reader task records every frame; frames are written through `out`.
struct RescuerSocket {
    node: &'static str,
    frames: Arc<frames::Frames>,
    out: tokio::sync::mpsc::UnboundedSender<String>,
    task: tokio::task::JoinHandle<()>,
}

/// A `Mutex<Vec<Value>>` with the two reads the test needs (no extra dependency).
mod frames {
    use serde_json::Value;
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct Frames(Mutex<Vec<Value>>, Mutex<bool>);

    impl Frames {
        pub fn push(&self, v: Value) {
            self.0.lock().unwrap().push(v);
        }
        pub fn all(&self) -> Vec<Value> {
            self.0.lock().unwrap().clone()
        }
        pub fn find(&self, f: impl Fn(&Value) -> bool) -> Option<Value> {
            self.0.lock().unwrap().iter().find(|v| f(v)).cloned()
        }
        pub fn set_closed(&self) {
            *self.1.lock().unwrap() = true;
        }
        pub fn closed(&self) -> bool {
            *self.1.lock().unwrap()
        }
    }
}

impl RescuerSocket {
    async fn open(node: &Node, token: &str) -> RescuerSocket {
        let ws = ws_connect(&node.ws("/ws/rescuer"), token)
            .await
            .unwrap_or_else(|e| panic!("rescuer socket on {}: {e}", node.name));
        let (mut wr, mut rd) = ws.split();
        let frames = Arc::new(frames::Frames::default());
        let (out, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let f = frames.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = rd.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            f.push(serde_json::from_str(&t).expect("server frames are JSON"))
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    s = rx.recv() => match s {
                        Some(s) => {
                            if wr.send(Message::Text(s.into())).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                }
            }
            f.set_closed();
        });
        RescuerSocket {
            node: node.name,
            frames,
            out,
            task,
        }
    }

    /// Sends a frame with `ref` and waits for the reply naming it.
    async fn ask(&self, mut frame: Value, r: &str) -> Value {
        frame["ref"] = json!(r);
        self.out.send(frame.to_string()).expect("socket open");
        until(&format!("reply to {r} on {}", self.node), 10, || async {
            self.frames.find(|v| v["ref"] == r)
        })
        .await
    }

    async fn wait_for(&self, what: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
        until(&format!("{what} on {}", self.node), secs, || async {
            self.frames.find(&f)
        })
        .await
    }
}

struct Rescuer {
    id: i64,
    token: String,
    /// Every socket this rescuer had, the current one last.
    sockets: Vec<RescuerSocket>,
}

impl Rescuer {
    fn current(&self) -> &RescuerSocket {
        self.sockets.last().expect("connected")
    }
}

fn is_offer(v: &Value, inc: i64, offer: i64) -> bool {
    v["type"] == "offer" && v["incident_id"] == inc && v["offer_id"] == offer
}

fn is_stand_down(v: &Value, inc: i64) -> bool {
    v["type"] == "stand_down" && v["incident_id"] == inc
}

// ---------------------------------------------------------------------------------------------
// Devices: pipelined durable messages, reconnecting to the next node when a socket drops and
// resending whatever was not acked (docs/device-protocol.md).

#[derive(Debug, Default)]
struct DeviceLog {
    aed_id: i64,
    acked: BTreeSet<u64>,
    /// Acks received on a socket after the first one (after failing over).
    acked_after_failover: usize,
    errors: Vec<Value>,
    connections: Vec<String>,
}

/// Status messages only (every one is written to `device_events` before its ack): a failing
/// self-test, a passing one, the cabinet door opening and closing, in turn.
fn device_frame(seq: u64) -> String {
    let ts = "2026-11-25T08:00:00Z";
    match seq % 4 {
        0 => json!({"v": 1, "seq": seq, "ts": ts, "type": "self_test", "ok": false, "fault_codes": ["E12"]}),
        1 => json!({"v": 1, "seq": seq, "ts": ts, "type": "self_test", "ok": true}),
        2 => json!({"v": 1, "seq": seq, "ts": ts, "type": "door", "open": true}),
        _ => json!({"v": 1, "seq": seq, "ts": ts, "type": "door", "open": false}),
    }
    .to_string()
}

async fn run_device(
    aed_id: i64,
    token: String,
    nodes: Vec<(String, String)>,
    stop: Arc<AtomicBool>,
) -> DeviceLog {
    let mut log = DeviceLog {
        aed_id,
        ..Default::default()
    };
    let mut unacked: BTreeMap<u64, String> = BTreeMap::new();
    let mut seq = 0u64;
    let mut which = 0usize;
    let deadline = Instant::now() + Duration::from_secs(45);
    'connection: loop {
        assert!(
            Instant::now() < deadline,
            "device {aed_id}: gave up; {log:?}"
        );
        let (name, url) = &nodes[which % nodes.len()];
        let Ok(mut ws) = ws_connect(url, &token).await else {
            which += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        log.connections.push(name.clone());
        let first = log.connections.len() == 1;
        // Whatever the last node did not ack is sent again, same seq.
        for frame in unacked.values() {
            if ws.send(Message::Text(frame.clone().into())).await.is_err() {
                which += 1;
                continue 'connection;
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if stopping && unacked.is_empty() {
                let _ = ws.close(None).await;
                return log;
            }
            tokio::select! {
                _ = tick.tick(), if !stopping => {
                    seq += 1;
                    let frame = device_frame(seq);
                    unacked.insert(seq, frame.clone());
                    if ws.send(Message::Text(frame.into())).await.is_err() {
                        which += 1;
                        continue 'connection;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(100)), if stopping => {
                    assert!(Instant::now() < deadline, "device {aed_id}: acks missing for {:?}", unacked.keys());
                }
                m = ws.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(&t).expect("JSON");
                        let s = v["seq"].as_u64();
                        if v["type"] == "ack" {
                            let s = s.expect("ack names its seq");
                            unacked.remove(&s);
                            log.acked.insert(s);
                            if !first {
                                log.acked_after_failover += 1;
                            }
                        } else {
                            if let Some(s) = s {
                                unacked.remove(&s);
                            }
                            log.errors.push(v);
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        which += 1;
                        continue 'connection;
                    }
                },
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// `GET` with a bearer token, JSON body; panics on a transport error.
async fn get_json(client: &reqwest::Client, url: String, token: &str) -> (u16, Value) {
    let r = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn post_json(
    client: &reqwest::Client,
    url: String,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let r = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

/// What a node serves from memory: every AED's readiness (k and radius cover the whole test
/// network; no filter).
async fn served_readiness(client: &reqwest::Client, node: &Node) -> Option<BTreeMap<i64, String>> {
    let url = format!(
        "{}/api/v1/aeds/nearest?lat={}&lon={}&k=50&max_distance_m=20000&readiness=any&hours=any&include=restricted,closed",
        node.base, PATIENT.0, PATIENT.1
    );
    let v: Value = client.get(url).send().await.ok()?.json().await.ok()?;
    Some(
        v["results"]
            .as_array()?
            .iter()
            .map(|r| {
                (
                    r["id"].as_i64().unwrap(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    )
}

async fn metric(client: &reqwest::Client, node: &Node, name: &str) -> Option<f64> {
    let text = client
        .get(&node.metrics)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_survive_a_kill_9_mid_incident() {
    let started = Instant::now();
    let nats_url =
        std::env::var("AEDNET_TEST_NATS_URL").unwrap_or_else(|_| NATS_URL_DEFAULT.to_string());
    // Fail loudly, never skip: the test needs the real NATS server.
    let nats = async_nats::connect(&nats_url)
        .await
        .expect("NATS must be reachable at AEDNET_TEST_NATS_URL (default 127.0.0.1:4222)");
    let (db_url, db_name) = common::fresh_pg_database().await;
    let prefix = format!("aednet_test_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = [
        ("AEDNET_DATABASE_URL", db_url.as_str()),
        ("AEDNET_CLUSTER__NATS_URL", nats_url.as_str()),
        ("AEDNET_CLUSTER__PREFIX", prefix.as_str()),
        ("AEDNET_LOG_LEVEL", "warn"),
        ("AEDNET_PUBLIC__PER_MINUTE", "0"),
        ("AEDNET_GATEWAY__MESSAGES_PER_S", "1000"),
        ("AEDNET_GATEWAY__BURST", "1000"),
        // Two rescuers per wave, both sent to the patient (nearest first), three-second offers:
        // which rescuer each wave reaches is known in advance.
        ("AEDNET_DISPATCH__OFFER_TIMEOUT_S", "3"),
        ("AEDNET_DISPATCH__CPR_DIRECT", "2"),
        ("AEDNET_DISPATCH__MAX_FETCHERS", "0"),
        ("AEDNET_DISPATCH__MAX_ALERTS", "2"),
        ("AEDNET_DISPATCH__MIN_RESCUERS", "1"),
        ("AEDNET_DISPATCH__MIN_AEDS", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    // The schema, and the first admin token from the CLI, as an operator would.
    let status = bin()
        .arg("migrate")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "aednet migrate");
    let out = bin()
        .args([
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "cluster-test",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "token create: {out:?}");
    let admin = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("token ").and_then(|r| r.rsplit(": ").next()))
        .expect("token line")
        .trim()
        .to_string();

    let mut nodes = vec![
        start_node("A", dir.path(), &env),
        start_node("B", dir.path(), &env),
        start_node("C", dir.path(), &env),
    ];
    let client = reqwest::Client::new();
    let url = |n: &Node, p: &str| format!("{}{p}", n.base);

    let (st, t) = post_json(
        &client,
        url(&nodes[1], "/api/v1/tokens"),
        &admin,
        json!({"name": "desk", "role": "dispatcher"}),
    )
    .await;
    assert_eq!(st, 201, "{t}");
    let dispatcher = t["token"].as_str().unwrap().to_string();

    // Twelve AEDs around the patient, created through all three nodes; six have a connected
    // cabinet with its own device token.
    let mut aeds = Vec::new();
    for i in 0..12usize {
        let n = &nodes[i % 3];
        let lat = PATIENT.0 + 0.001 * (i as f64 - 6.0);
        let lon = PATIENT.1 + 0.0007 * ((i * 7) % 5) as f64;
        let (st, a) = post_json(
            &client,
            url(n, "/api/v1/aeds"),
            &admin,
            json!({"lat": lat, "lon": lon, "name": format!("AED {i}"), "access": "yes", "opening_hours": "24/7"}),
        )
        .await;
        assert_eq!(st, 201, "{a}");
        aeds.push(a["id"].as_i64().unwrap());
    }
    let mut device_tokens = Vec::new();
    for (i, id) in aeds.iter().take(6).enumerate() {
        let (st, t) = post_json(
            &client,
            url(&nodes[i % 3], "/api/v1/tokens"),
            &admin,
            json!({"name": format!("cabinet {i}"), "role": "device", "subject_id": id}),
        )
        .await;
        assert_eq!(st, 201, "{t}");
        device_tokens.push(t["token"].as_str().unwrap().to_string());
    }
    // Every node's index learns every AED, whichever node stored it.
    for n in &nodes {
        until(&format!("node {} indexes 12 AEDs", n.name), 15, || async {
            served_readiness(&client, n)
                .await
                .filter(|m| m.len() == 12)
                .map(|_| ())
        })
        .await;
    }

    // Six rescuers, on duty with consent and a certificate valid today, 100 m apart going
    // north from the patient: waves of two reach (R0, R1), then (R2, R3), then (R4, R5).
    // Sockets: R0 and R2 on A, R1 and R4 on B, R3 and R5 on C.
    let home = [0usize, 1, 0, 2, 1, 2];
    let mut rescuers = Vec::new();
    for i in 0..6usize {
        let (st, r) = post_json(
            &client,
            url(&nodes[i % 3], "/api/v1/rescuers"),
            &admin,
            json!({"name": format!("救护员{i}"), "certificate_no": format!("ZJQZ-CL-{i}"),
                "level": "first_aider", "cert_issued": "2024-05-01", "cert_expires": "2030-04-30",
                "on_duty": true, "location_consent": true}),
        )
        .await;
        assert_eq!(st, 201, "{r}");
        let id = r["id"].as_i64().unwrap();
        let (st, t) = post_json(
            &client,
            url(&nodes[(i + 1) % 3], "/api/v1/tokens"),
            &admin,
            json!({"name": "phone", "role": "rescuer", "subject_id": id}),
        )
        .await;
        assert_eq!(st, 201, "{t}");
        let token = t["token"].as_str().unwrap().to_string();
        let sock = RescuerSocket::open(&nodes[home[i]], &token).await;
        rescuers.push(Rescuer {
            id,
            token,
            sockets: vec![sock],
        });
    }
    // Positions go to different nodes: five as socket frames on the rescuer's own node, R5's
    // over HTTP to node A (its socket is on C).
    for (i, r) in rescuers.iter().enumerate() {
        let (lat, lon) = (PATIENT.0 + 0.0009 * (i + 1) as f64, PATIENT.1 + 0.0005);
        if i == 5 {
            let st = client
                .post(url(&nodes[0], "/api/v1/me/location"))
                .bearer_auth(&r.token)
                .json(&json!({"lat": lat, "lon": lon}))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(st, 204);
        } else {
            let a = r
                .current()
                .ask(
                    json!({"type": "location", "lat": lat, "lon": lon, "accuracy_m": 5}),
                    &format!("loc-{i}"),
                )
                .await;
            assert_eq!(a["type"], "ack", "{a}");
        }
    }
    // Every node knows all six positions (shared over NATS, never stored).
    for n in &nodes {
        until(
            &format!("node {} has the six positions", n.name),
            10,
            || async {
                (metric(&client, n, "aednet_rescuers_located").await? >= 6.0).then_some(())
            },
        )
        .await;
    }

    // Devices start sending, two per node.
    let stop = Arc::new(AtomicBool::new(false));
    let mut devices = Vec::new();
    for (i, token) in device_tokens.iter().enumerate() {
        // The preferred node first, then the others in turn.
        let order: Vec<(String, String)> = (0..3)
            .map(|k| {
                let n = &nodes[(i + k) % 3];
                (n.name.to_string(), n.ws("/ws/device"))
            })
            .collect();
        devices.push(tokio::spawn(run_device(
            aeds[i],
            token.clone(),
            order,
            stop.clone(),
        )));
    }
    // Let every device get a few acks on its first node.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The incident, on node A: the first wave reaches R0 (socket on A) and R1 (socket on B).
    let (st, inc) = post_json(
        &client,
        url(&nodes[0], "/api/v1/incidents"),
        &dispatcher,
        json!({"lat": PATIENT.0, "lon": PATIENT.1, "address": "衢州站广场"}),
    )
    .await;
    assert_eq!(st, 201, "{inc}");
    let inc_id = inc["id"].as_i64().unwrap();
    let offer_of = |inc: &Value, rescuer: i64| -> Option<i64> {
        inc["offers"]
            .as_array()?
            .iter()
            .find(|o| o["rescuer_id"] == rescuer)
            .and_then(|o| o["id"].as_i64())
    };
    let first: Vec<i64> = inc["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["rescuer_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        first,
        vec![rescuers[0].id, rescuers[1].id],
        "node A planned with positions reported to B and C too: {inc}"
    );
    let w1: Vec<i64> = (0..2)
        .map(|i| offer_of(&inc, rescuers[i].id).unwrap())
        .collect();
    for (i, o) in w1.iter().enumerate() {
        rescuers[i]
            .current()
            .wait_for("first-wave offer", 10, |v| is_offer(v, inc_id, *o))
            .await;
    }
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(inc["offers"][0]["expires_at"].clone()).unwrap();

    // kill -9 the owner while devices are sending and both offers are pending.
    let a_pid = nodes[0].child.as_ref().unwrap().id();
    nodes[0].kill_9();
    let killed_at = chrono::Utc::now();
    assert!(
        killed_at < expires,
        "the kill came after the offers expired"
    );
    let a_base = nodes[0].base.clone();
    // How long until a survivor holds the incident's lease (its PostgreSQL advisory lock).
    let lease = {
        let db_url = db_url.clone();
        tokio::spawn(async move {
            let pool = sqlx::PgPool::connect(&db_url).await.unwrap();
            let t = Instant::now();
            until("a survivor takes the incident's lease", 15, || async {
                // Lease sessions are named `aednet-leases <host>-<pid>-<hex>`: not A's.
                let held: Option<(i64,)> = sqlx::query_as(
                    "SELECT l.pid::bigint FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1::oid \
                     AND a.application_name LIKE 'aednet-leases %' \
                     AND a.application_name NOT LIKE $2",
                )
                .bind(inc_id)
                .bind(format!("%-{a_pid}-%"))
                .fetch_optional(&pool)
                .await
                .unwrap();
                held.map(|_| ())
            })
            .await;
            t.elapsed().as_secs_f64()
        })
    };

    // R0 and R2 (sockets on A) reconnect: R0 to C, R2 to B.
    for (i, to) in [(0usize, 2usize), (2, 1)] {
        until(&format!("R{i}'s socket on A ends"), 5, || async {
            rescuers[i].current().frames.closed().then_some(())
        })
        .await;
        let s = RescuerSocket::open(&nodes[to], &rescuers[i].token).await;
        rescuers[i].sockets.push(s);
    }
    // R0's offer is still pending (nobody can time it out before it expires): the new socket
    // gets it on connect.
    if chrono::Utc::now() + chrono::Duration::milliseconds(500) < expires {
        rescuers[0]
            .current()
            .wait_for("the pending offer on reconnect", 5, |v| {
                is_offer(v, inc_id, w1[0])
            })
            .await;
    }

    // Takeover: the first wave times out on a survivor and the second wave goes to R2 (now on B)
    // and R3 (on C).
    let inc_after = |n: usize| {
        let (client, dispatcher) = (&client, &dispatcher);
        let u = url(&nodes[n], &format!("/api/v1/incidents/{inc_id}"));
        async move { get_json(client, u, dispatcher).await }
    };
    let second = until_or(
        "the second wave (takeover)",
        20,
        || async {
            let (st, v) = inc_after(2).await;
            (st == 200 && v["offers"].as_array()?.len() >= 4).then_some(v)
        },
        || diagnose(&db_url, inc_id),
    )
    .await;
    let takeover_s = (chrono::Utc::now() - killed_at).num_milliseconds() as f64 / 1000.0;
    let lease_s = lease.await.expect("lease watcher");
    for o in &second["offers"].as_array().unwrap()[..2] {
        assert_eq!(o["state"], "timed_out", "{second}");
    }
    let w2: Vec<i64> = (2..4)
        .map(|i| {
            offer_of(&second, rescuers[i].id)
                .unwrap_or_else(|| panic!("R{i} not in the second wave: {second}"))
        })
        .collect();
    for o in &second["offers"].as_array().unwrap()[2..] {
        let at: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(o["offered_at"].clone()).unwrap();
        assert!(at > killed_at, "second wave offered by a survivor: {o}");
    }
    for (k, i) in [2usize, 3].into_iter().enumerate() {
        rescuers[i]
            .current()
            .wait_for("second-wave offer", 10, |v| is_offer(v, inc_id, w2[k]))
            .await;
    }
    // Any node lists the open incident (from the store).
    for n in [1, 2] {
        let (st, list) = get_json(&client, url(&nodes[n], "/api/v1/incidents"), &dispatcher).await;
        assert_eq!(st, 200);
        assert!(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["id"] == inc_id),
            "node {} lists open incident {inc_id}: {list}",
            nodes[n].name
        );
    }

    // R2 accepts on its new socket (B), whichever node owns the incident.
    let a = rescuers[2]
        .current()
        .ask(
            json!({"type": "accept", "incident_id": inc_id, "offer_id": w2[0]}),
            "accept-r2",
        )
        .await;
    assert_eq!(
        (a["type"].as_str(), a["offer"]["state"].as_str()),
        (Some("ack"), Some("accepted")),
        "{a}"
    );
    // R3 does not answer: its offer times out and the third wave reaches R4 (B) and R5 (C).
    let third = until_or(
        "the third wave",
        15,
        || async {
            let (st, v) = inc_after(1).await;
            (st == 200 && v["offers"].as_array()?.len() >= 6).then_some(v)
        },
        || diagnose(&db_url, inc_id),
    )
    .await;
    let w3: Vec<i64> = (4..6)
        .map(|i| {
            offer_of(&third, rescuers[i].id)
                .unwrap_or_else(|| panic!("R{i} not in the third wave: {third}"))
        })
        .collect();
    for (k, i) in [4usize, 5].into_iter().enumerate() {
        rescuers[i]
            .current()
            .wait_for("third-wave offer", 10, |v| is_offer(v, inc_id, w3[k]))
            .await;
    }
    // R4 accepts over HTTP on node C (its socket is on B): two on the way, R5 stands down.
    let (st, a) = post_json(
        &client,
        url(
            &nodes[2],
            &format!("/api/v1/me/offers/{inc_id}/{}/accept", w3[0]),
        ),
        &rescuers[4].token,
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{a}");
    rescuers[5]
        .current()
        .wait_for("stand-down (enough responders)", 10, |v| {
            is_stand_down(v, inc_id)
        })
        .await;

    // The dispatcher closes it through node B: the two on the way stand down.
    let (st, closed) = post_json(
        &client,
        url(&nodes[1], &format!("/api/v1/incidents/{inc_id}/close")),
        &dispatcher,
        json!({"aed_applied": true, "shock_delivered": false, "handed_to_ems": true}),
    )
    .await;
    assert_eq!(
        (st, closed["state"].as_str()),
        (200, Some("closed")),
        "{closed}"
    );
    for i in [2usize, 4] {
        rescuers[i]
            .current()
            .wait_for("stand-down (closed)", 10, |v| is_stand_down(v, inc_id))
            .await;
    }

    // The stored record, read through node C, and what each rescuer's sockets saw.
    let (_, fin) = inc_after(2).await;
    assert_eq!(fin["state"], "closed", "{fin}");
    let offers = fin["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 6, "{fin}");
    let want = [
        "timed_out",
        "timed_out",
        "stood_down",
        "timed_out",
        "stood_down",
        "stood_down",
    ];
    for (i, r) in rescuers.iter().enumerate() {
        let o = offers.iter().find(|o| o["rescuer_id"] == r.id).unwrap();
        assert_eq!(o["state"], want[i], "R{i}: {o}");
        let oid = o["id"].as_i64().unwrap();
        let frames: Vec<Vec<Value>> = r.sockets.iter().map(|s| s.frames.all()).collect();
        assert!(
            frames.iter().flatten().any(|v| is_offer(v, inc_id, oid)),
            "R{i} never got offer {oid}: {frames:?}"
        );
        // One socket never gets an offer twice, nor a stand-down (docs/rescuer-protocol.md).
        for (k, f) in frames.iter().enumerate() {
            let mut seen = BTreeSet::new();
            for v in f
                .iter()
                .filter(|v| v["type"] == "offer" || v["type"] == "stand_down")
            {
                let key = (
                    v["type"].as_str().unwrap().to_string(),
                    v["incident_id"].as_i64(),
                    v["offer_id"].as_i64(),
                );
                assert!(
                    seen.insert(key.clone()),
                    "R{i} got {key:?} twice on socket {k} ({}): {f:?}",
                    r.sockets[k].node
                );
            }
        }
        if want[i] == "stood_down" {
            assert!(
                r.current()
                    .frames
                    .all()
                    .iter()
                    .any(|v| is_stand_down(v, inc_id)),
                "R{i} was not stood down on its socket"
            );
        }
    }

    // Devices finish: every message is answered, then the log is read from PostgreSQL.
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for d in devices {
        logs.push(d.await.expect("device task"));
    }
    let pool = sqlx::PgPool::connect(&db_url).await.unwrap();
    let stored: Vec<(i64, i64)> = sqlx::query_as("SELECT aed_id, seq FROM device_events")
        .fetch_all(&pool)
        .await
        .unwrap();
    let stored: BTreeSet<(i64, i64)> = stored.into_iter().collect();
    let mut acked_total = 0;
    for (i, log) in logs.iter().enumerate() {
        assert!(log.errors.is_empty(), "device {i}: {:?}", log.errors);
        assert!(!log.acked.is_empty(), "device {i} got no acks");
        acked_total += log.acked.len();
        for s in &log.acked {
            assert!(
                stored.contains(&(log.aed_id, *s as i64)),
                "device {i}: acked seq {s} is not stored"
            );
        }
    }
    for i in [0usize, 3] {
        // Devices 0 and 3 started on A: they failed over and kept being acked.
        assert!(
            logs[i].connections.len() >= 2 && logs[i].acked_after_failover > 0,
            "device {i} did not fail over: {:?}",
            logs[i].connections
        );
    }

    // A guardian's failed check through node C, on an AED without telemetry.
    let (st, body) = post_json(
        &client,
        url(&nodes[2], &format!("/api/v1/aeds/{}/checks", aeds[9])),
        &admin,
        json!({"ok": false, "note": "pads missing"}),
    )
    .await;
    assert!(st == 200 || st == 201, "{st} {body}");

    // Readiness served from memory by each survivor converges on the store's.
    let store_readiness = || async {
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, status FROM aeds")
            .fetch_all(&pool)
            .await
            .unwrap();
        rows.into_iter().collect::<BTreeMap<i64, String>>()
    };
    let truth = store_readiness().await;
    assert_eq!(truth[&aeds[9]], "fault");
    for n in [1, 2] {
        let node = &nodes[n];
        let mut last = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let served = served_readiness(&client, node).await;
            if served.as_ref() == Some(&truth) {
                break;
            }
            last = served.or(last);
            assert!(
                Instant::now() < deadline,
                "node {} serves readiness {last:?}, the store has {truth:?}",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Nothing changed meanwhile (the check above compared against one snapshot).
    assert_eq!(store_readiness().await, truth);

    eprintln!(
        "cluster: {acked_total} device messages acked and stored; kill -9 of {a_base} → lease taken {lease_s:.2} s, second wave {takeover_s:.1} s after (offers time out after 3 s); {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    let counts: HashMap<&str, usize> = truth.values().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.as_str()).or_default() += 1;
        m
    });
    eprintln!("readiness in the store: {counts:?}");

    for r in &rescuers {
        for s in &r.sockets {
            s.task.abort();
        }
    }
    nodes[1].terminate();
    nodes[2].terminate();
    pool.close().await;
    common::drop_pg_database(&db_name).await;
    // The event stream carried the stored changes (readiness among them) and never a
    // rescuer's position: positions go between nodes as live messages only.
    let js = async_nats::jetstream::new(nats);
    let stream_name = aednet_cluster::stream_name(&prefix);
    let mut stream = js.get_stream(&stream_name).await.expect("the event stream");
    let st = stream.info().await.unwrap().state.clone();
    assert!(st.messages > 0, "nothing went through the stream");
    let positions: Vec<String> = (0..6usize)
        .map(|i| format!("{}", PATIENT.0 + 0.0009 * (i + 1) as f64))
        .collect();
    let mut readiness_events = 0;
    for seq in st.first_sequence..=st.last_sequence {
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        let body = String::from_utf8_lossy(&m.payload);
        // Ids only: no coordinates of anyone, no live-message kinds.
        assert!(
            positions.iter().all(|p| !body.contains(p.as_str()))
                && !body.contains("lat")
                && !body.contains("to_rescuer")
                && !body.contains("rescuer_moved"),
            "more than a stored change in the stream: {} {body}",
            m.subject
        );
        readiness_events += usize::from(body.contains("aed_readiness_changed"));
    }
    assert!(readiness_events > 0, "no readiness change in the stream");
    let _ = js.delete_stream(&stream_name).await;
}
