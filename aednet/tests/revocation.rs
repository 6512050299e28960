//! Taking rights away reaches open sockets, and tokens are checked before bodies are read:
//!
//! - revoking a token closes its open `/ws/rescuer`, `/ws/dispatch`, `/ws/device` and
//!   `/ws/maintenance` sockets with 4401 within 2 s (others' sockets stay open), and the token
//!   cannot reconnect;
//! - deleting a rescuer or an AED closes the sockets of their tokens and revokes the tokens;
//! - a role change closes the token's sockets; it reconnects with the new role's rights only;
//! - an unauthenticated (or wrong-role) 50 MB upload is refused at once, without the server
//!   waiting for the body.

mod common;

use std::time::{Duration, Instant};

use aednet_core::Role;
use common::{aed_body, send, Db, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const REVOKED: u16 = 4401;

async fn connect(s: &TestServer, path: &str, token: &str) -> Result<Ws, String> {
    let mut req = (s.base.replace("http://", "ws://") + path)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// Reads until the server closes the socket; returns the close code and reason, and how long
/// it took. Panics if the socket stays open `secs`.
/// `started`: when the revocation was asked for (the time includes the API call).
async fn closed_within(ws: &mut Ws, secs: u64, started: Instant) -> (u16, String, Duration) {
    let deadline = started + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => panic!("socket still open after {secs} s"),
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return (u16::from(f.code), f.reason.to_string(), started.elapsed())
            }
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) => {
                panic!("socket ended without a close code")
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Still open: no close within `ms` (frames that arrive are fine).
async fn still_open(ws: &mut Ws, ms: u64) -> bool {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => return true,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return false,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Issues a token through the API; returns (id, secret).
async fn token(s: &TestServer, role: &str, subject: Option<i64>) -> (i64, String) {
    let (st, t) = send(s.post(
        "/api/v1/tokens",
        Some(Role::Admin),
        &json!({"name": format!("{role}-socket"), "role": role, "subject_id": subject}),
    ))
    .await;
    assert_eq!(st, 201, "{t}");
    (
        t["id"].as_i64().unwrap(),
        t["token"].as_str().unwrap().to_string(),
    )
}

async fn rescuer(s: &TestServer, n: u32) -> i64 {
    let (st, r) = send(s.post("/api/v1/rescuers", Some(Role::Admin), &json!({"name": format!("救护员{n}"),
        "certificate_no": format!("ZJQZ-RV-{n}"), "level": "first_aider", "cert_issued": "2024-05-01",
        "cert_expires": "2030-04-30", "on_duty": true, "location_consent": true})))
    .await;
    assert_eq!(st, 201, "{r}");
    r["id"].as_i64().unwrap()
}

async fn aed(s: &TestServer, name: &str) -> i64 {
    let (st, a) = send(s.post(
        "/api/v1/aeds",
        Some(Role::Admin),
        &aed_body(28.97, 118.87, name),
    ))
    .await;
    assert_eq!(st, 201, "{a}");
    a["id"].as_i64().unwrap()
}

fn code(c: u16) -> u16 {
    u16::from(CloseCode::from(c))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_token_closes_its_sockets_of_every_kind() {
    let s = TestServer::start(Db::Sqlite).await;
    let r = rescuer(&s, 1).await;
    let a = aed(&s, "Revoked cabinet").await;
    let (rescuer_id, rescuer_token) = token(&s, "rescuer", Some(r)).await;
    let (dispatcher_id, dispatcher_token) = token(&s, "dispatcher", None).await;
    let (device_id, device_token) = token(&s, "device", Some(a)).await;
    let (maint_id, maint_token) = token(&s, "maintenance", None).await;
    // Another dispatcher's socket, which must stay open throughout.
    let mut other = connect(&s, "/ws/dispatch", &s.tokens[&Role::Dispatcher])
        .await
        .unwrap();

    for (id, secret, path) in [
        (rescuer_id, &rescuer_token, "/ws/rescuer"),
        (dispatcher_id, &dispatcher_token, "/ws/dispatch"),
        (device_id, &device_token, "/ws/device"),
        (maint_id, &maint_token, "/ws/maintenance"),
    ] {
        let mut ws = connect(&s, path, secret).await.unwrap();
        // Checked (and cached) by the upgrade; now revoked.
        let asked = Instant::now();
        let (st, _) = send(s.delete(&format!("/api/v1/tokens/{id}"), Some(Role::Admin))).await;
        assert_eq!(st, 204);
        let (c, reason, took) = closed_within(&mut ws, 2, asked).await;
        assert_eq!((code(c), reason.as_str()), (REVOKED, "revoked"), "{path}");
        assert!(took < Duration::from_secs(2), "{path}: {took:?}");
        let again = connect(&s, path, secret).await.unwrap_err();
        assert!(again.contains("401"), "{path}: reconnect gave {again}");
    }
    assert!(
        still_open(&mut other, 300).await,
        "another token's socket is untouched"
    );
    assert_eq!(s.state.sessions.len(), 1, "closed sockets unregistered");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_rescuer_or_an_aed_closes_their_sockets_and_revokes_their_tokens() {
    let s = TestServer::start(Db::Sqlite).await;
    let r = rescuer(&s, 2).await;
    let keep = rescuer(&s, 3).await;
    let a = aed(&s, "Removed cabinet").await;
    let (_, rescuer_token) = token(&s, "rescuer", Some(r)).await;
    let (_, keep_token) = token(&s, "rescuer", Some(keep)).await;
    let (_, device_token) = token(&s, "device", Some(a)).await;
    let mut rs = connect(&s, "/ws/rescuer", &rescuer_token).await.unwrap();
    let mut ks = connect(&s, "/ws/rescuer", &keep_token).await.unwrap();
    let mut ds = connect(&s, "/ws/device", &device_token).await.unwrap();

    let asked = Instant::now();
    let (st, _) = send(s.delete(&format!("/api/v1/rescuers/{r}"), Some(Role::Admin))).await;
    assert_eq!(st, 204);
    let (c, _, took) = closed_within(&mut rs, 2, asked).await;
    assert_eq!(code(c), REVOKED);
    assert!(took < Duration::from_secs(2));
    assert!(still_open(&mut ks, 300).await, "another rescuer stays");

    let asked = Instant::now();
    let (st, _) = send(s.delete(&format!("/api/v1/aeds/{a}"), Some(Role::Admin))).await;
    assert_eq!(st, 204);
    let (c, _, took) = closed_within(&mut ds, 2, asked).await;
    assert_eq!(code(c), REVOKED);
    assert!(took < Duration::from_secs(2));

    // Their tokens are revoked, not just their sockets closed.
    for (path, t) in [
        ("/ws/rescuer", &rescuer_token),
        ("/ws/device", &device_token),
    ] {
        let e = connect(&s, path, t).await.unwrap_err();
        assert!(e.contains("401"), "{path}: {e}");
    }
    let (_, list) = send(s.get("/api/v1/tokens", Some(Role::Admin))).await;
    let revoked: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["revoked_at"].is_null())
        .collect();
    assert_eq!(revoked.len(), 2, "{list}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_closes_the_tokens_sockets() {
    let s = TestServer::start(Db::Postgres).await;
    let (id, secret) = token(&s, "dispatcher", None).await;
    let mut ws = connect(&s, "/ws/dispatch", &secret).await.unwrap();
    let asked = Instant::now();
    let (st, body) = send(
        s.client
            .patch(s.url(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(&s.tokens[&Role::Admin])
            .json(&json!({"role": "maintenance"})),
    )
    .await;
    assert_eq!((st, body["role"].as_str()), (200, Some("maintenance")));
    let (c, reason, _) = closed_within(&mut ws, 2, asked).await;
    assert_eq!((code(c), reason.as_str()), (REVOKED, "role changed"));
    // The new role's rights, and only those.
    let e = connect(&s, "/ws/dispatch", &secret).await.unwrap_err();
    assert!(e.contains("403"), "{e}");
    let mut m = connect(&s, "/ws/maintenance", &secret).await.unwrap();
    assert!(still_open(&mut m, 200).await);
    // Only admins change roles; unknown tokens are 404; public is not a token's role.
    let patch = |role: Role, id: i64, body: Value| {
        s.client
            .patch(s.url(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(&s.tokens[&role])
            .json(&body)
    };
    assert_eq!(
        send(patch(Role::Dispatcher, id, json!({"role": "admin"})))
            .await
            .0,
        403
    );
    assert_eq!(
        send(patch(Role::Admin, 99_999, json!({"role": "admin"})))
            .await
            .0,
        404
    );
    let (st, e) = send(patch(Role::Admin, id, json!({"role": "public"}))).await;
    assert_eq!((st, e["field"].as_str()), (422, Some("role")));
    s.stop().await;
}

/// Sends the head of a `len`-byte upload and `first` bytes of its body, then waits for the
/// answer without sending the rest: (status line, how long the answer took).
async fn upload_head(
    s: &TestServer,
    path: &str,
    auth: Option<&str>,
    len: usize,
) -> (String, Duration) {
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\n{auth}\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&vec![b'x'; 64 * 1024]).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("an answer before the body was sent (the server waited for the body)")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    (
        text.lines().next().unwrap_or_default().to_string(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_refused_before_the_body_is_read() {
    let s = TestServer::start(Db::Sqlite).await;
    const MB50: usize = 50 * 1024 * 1024;
    // No token: 401 at once, although 50 MB were announced and 64 KiB sent.
    let (status, took) = upload_head(&s, "/api/v1/import/osm", None, MB50).await;
    assert!(status.contains(" 401 "), "{status}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // An unknown token: 401; a token of a role that may not import: 403 — both at once.
    let (status, _) = upload_head(&s, "/api/v1/import/csv", Some("aed_nope"), MB50).await;
    assert!(status.contains(" 401 "), "{status}");
    let rescuer = s.tokens[&Role::Rescuer].clone();
    let (status, _) = upload_head(&s, "/api/v1/import/geojson", Some(&rescuer), MB50).await;
    assert!(status.contains(" 403 "), "{status}");
    // Every route that takes a body: no token, no reading.
    for path in [
        "/api/v1/aeds",
        "/api/v1/plan",
        "/api/v1/incidents",
        "/api/v1/tokens",
    ] {
        let (status, _) = upload_head(&s, path, None, 900 * 1024).await;
        assert!(status.contains(" 401 "), "{path}: {status}");
    }
    // An admin's import still works, and public reads need no token.
    let csv = "lat,lon,name\n28.97,118.87,Gate\n";
    let (st, report) = send(
        s.client
            .post(s.url("/api/v1/import/csv?name=t.csv"))
            .bearer_auth(&s.tokens[&Role::Admin])
            .body(csv),
    )
    .await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(send(s.get("/api/v1/aeds", None)).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_no_event_announced_reaches_sockets_within_the_recheck_period() {
    let s = TestServer::start(Db::Sqlite).await;
    let (id, secret) = token(&s, "dispatcher", None).await;
    let mut ws = connect(&s, "/ws/dispatch", &secret).await.unwrap();
    // As `aednet token revoke` does from another process: the store only, no event.
    let asked = Instant::now();
    assert!(s.store.revoke_token(id).await.unwrap());
    let limit = aednet_api::sessions::RECHECK_EVERY.as_secs() + 2;
    let (c, _, took) = closed_within(&mut ws, limit, asked).await;
    assert_eq!(code(c), REVOKED);
    eprintln!("closed {took:?} after a revocation without an event");
    s.stop().await;
}
