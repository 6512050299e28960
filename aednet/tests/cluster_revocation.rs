//! Revocation across nodes: two `aednet serve` processes over one PostgreSQL database and NATS
//! JetStream. A dispatcher's socket and a device's socket are open on node B; the dispatcher's
//! token is revoked and the device's AED deleted through node A; both sockets on B close with
//! 4401 within 2 s, and neither token opens a socket on B afterwards.
//!
//! Fails (never skips) when PostgreSQL or NATS is not reachable.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aednet"))
}

/// One `aednet serve`; killed and reaped when dropped.
struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(clippy::zombie_processes)] // reaped by Node's Drop
fn start_node(name: &str, dir: &std::path::Path, env: &[(String, String)]) -> Node {
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
        child,
        base: a.base,
    }
}

async fn connect(node: &Node, path: &str, token: &str) -> Result<Ws, String> {
    let mut req = (node.base.replace("http://", "ws://") + path)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// The close code once the server closes `ws`, and how long that took; panics after `secs`.
/// `started`: when the revocation was asked for (the time includes the API call).
async fn closed_within(ws: &mut Ws, secs: u64, started: Instant) -> (u16, Duration) {
    let deadline = started + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => panic!("socket on node B still open after {secs} s"),
            Ok(Some(Ok(Message::Close(Some(f))))) => return (u16::from(f.code), started.elapsed()),
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) => {
                panic!("socket ended without a close code")
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("request");
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_node_a_closes_sockets_on_node_b() {
    let nats_url = std::env::var("AEDNET_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string());
    let (db_url, db_name) = common::fresh_pg_database().await;
    let prefix = format!("aednet_test_{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = [
        ("AEDNET_DATABASE_URL", db_url.as_str()),
        ("AEDNET_CLUSTER__NATS_URL", nats_url.as_str()),
        ("AEDNET_CLUSTER__PREFIX", prefix.as_str()),
        ("AEDNET_LOG_LEVEL", "warn"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let envs = || env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    assert!(bin()
        .arg("migrate")
        .envs(envs())
        .current_dir(dir.path())
        .status()
        .unwrap()
        .success());
    let out = bin()
        .args(["token", "create", "--role", "admin", "--name", "revocation"])
        .envs(envs())
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
    let a = start_node("A", dir.path(), &env);
    let b = start_node("B", dir.path(), &env);
    let client = reqwest::Client::new();
    let on = |n: &Node, p: &str| format!("{}{p}", n.base);
    use reqwest::Method;

    let (st, aed) = call(
        &client,
        Method::POST,
        on(&a, "/api/v1/aeds"),
        &admin,
        Some(json!({"lat": 28.97, "lon": 118.87, "name": "Cluster cabinet", "access": "yes"})),
    )
    .await;
    assert_eq!(st, 201, "{aed}");
    let aed_id = aed["id"].as_i64().unwrap();
    let token = |role: &str, subject: Option<i64>| {
        call(
            &client,
            Method::POST,
            on(&a, "/api/v1/tokens"),
            &admin,
            Some(json!({"name": role, "role": role, "subject_id": subject})),
        )
    };
    let (_, disp) = token("dispatcher", None).await;
    let (_, dev) = token("device", Some(aed_id)).await;
    let (disp_id, disp_secret) = (
        disp["id"].as_i64().unwrap(),
        disp["token"].as_str().unwrap(),
    );
    let dev_secret = dev["token"].as_str().unwrap();

    let mut ds = connect(&b, "/ws/dispatch", disp_secret).await.unwrap();
    let mut vs = connect(&b, "/ws/device", dev_secret).await.unwrap();

    let asked = Instant::now();
    let (st, _) = call(
        &client,
        Method::DELETE,
        on(&a, &format!("/api/v1/tokens/{disp_id}")),
        &admin,
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (code, took) = closed_within(&mut ds, 2, asked).await;
    assert_eq!(code, 4401);
    eprintln!("dispatcher socket on B closed {took:?} after the revocation on A was asked for");

    let asked = Instant::now();
    let (st, _) = call(
        &client,
        Method::DELETE,
        on(&a, &format!("/api/v1/aeds/{aed_id}")),
        &admin,
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (code, took) = closed_within(&mut vs, 2, asked).await;
    assert_eq!(code, 4401);
    eprintln!("device socket on B closed {took:?} after the deletion on A was asked for");

    for (path, t) in [("/ws/dispatch", disp_secret), ("/ws/device", dev_secret)] {
        let e = connect(&b, path, t).await.unwrap_err();
        assert!(e.contains("401"), "{path} on B: {e}");
    }
    drop((a, b));
    common::drop_pg_database(&db_name).await;
}
