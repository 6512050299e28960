//! What the browser consoles rely on, over real sockets on SQLite and PostgreSQL: the embedded
//! pages and assets (content types, cache validators, no third-party origins), `GET /api/v1/me`
//! for the sign-in check, and WebSockets authenticated by the `bearer.<token>` subprotocol that
//! browsers can send (they cannot set an Authorization header on a WebSocket).

mod common;

use std::time::Duration;

use aednet_core::Role;
use common::{send, Db, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects the way a browser does: `new WebSocket(url, ["aednet.v1", "bearer.<token>"])`.
/// Returns the socket and the subprotocol the server selected, or the refusal's status.
async fn browser_ws(
    s: &TestServer,
    path: &str,
    protocols: &str,
) -> Result<(Ws, Option<String>), u16> {
    let url = s.base.replace("http://", "ws://") + path;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", protocols.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, resp)) => {
            let p = resp
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_string());
            Ok((ws, p))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn consoles(db: Db) {
    let s = TestServer::start(db).await;

    // Pages and assets, embedded.
    for (path, ct) in [
        ("/", "text/html"),
        ("/dispatch", "text/html"),
        ("/maintenance", "text/html"),
        ("/planner", "text/html"),
        ("/assets/common.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/vendor/leaflet/leaflet.js", "text/javascript"),
        ("/assets/vendor/leaflet/LICENSE", "text/plain"),
    ] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ct),
            "{path}"
        );
        let etag = r.headers()["etag"].clone();
        if ct == "text/html" {
            let csp = r.headers()["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        }
        let again = s
            .client
            .get(s.url(path))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path} revalidates");
    }
    let leaflet = s
        .client
        .get(s.url("/assets/vendor/leaflet/LICENSE"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(leaflet.contains("BSD 2-Clause"), "Leaflet's licence");
    let (st, body) = send(s.get("/assets/../Cargo.toml", None)).await;
    assert_eq!(st, 404, "{body}");
    assert_eq!(send(s.get("/assets/nope.js", None)).await.0, 404);

    // Who am I: the sign-in check.
    let (st, me) = send(s.get("/api/v1/me", Some(Role::Dispatcher))).await;
    assert_eq!(st, 200);
    assert_eq!(me["role"], "dispatcher");
    assert_eq!(me["name"], "test");
    assert_eq!(send(s.get("/api/v1/me", None)).await.1["role"], "public");
    let (st, body) = send(s.client.get(s.url("/api/v1/me")).bearer_auth("aed_nope")).await;
    assert_eq!((st, body["error"].as_str()), (401, Some("unauthorized")));

    // The maintenance feed with the token as a subprotocol; the server picks aednet.v1 and
    // never echoes the token.
    let tm = &s.tokens[&Role::Maintenance];
    let (mut feed, proto) = browser_ws(&s, "/ws/maintenance", &format!("aednet.v1, bearer.{tm}"))
        .await
        .expect("the maintenance token opens the feed");
    assert_eq!(proto.as_deref(), Some("aednet.v1"));
    let (st, aed) = send(s.post(
        "/api/v1/aeds",
        Some(Role::Admin),
        &common::aed_body(28.97, 118.87, "web test"),
    ))
    .await;
    assert_eq!(st, 201, "{aed}");
    let id = aed["id"].as_i64().unwrap();
    let (st, _) = send(s.post(
        &format!("/api/v1/aeds/{id}/checks"),
        Some(Role::Maintenance),
        &json!({"ok": false, "note": "pads missing"}),
    ))
    .await;
    assert_eq!(st, 201);
    assert_eq!(
        next_json(&mut feed).await,
        json!({"type": "readiness", "aed_id": id, "status": "fault"})
    );

    // Wrong role, unknown token, no token: refused before the upgrade.
    let td = &s.tokens[&Role::Dispatcher];
    assert_eq!(
        browser_ws(&s, "/ws/maintenance", &format!("aednet.v1, bearer.{td}"))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        browser_ws(&s, "/ws/maintenance", "aednet.v1, bearer.aed_unknown")
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        browser_ws(&s, "/ws/maintenance", "aednet.v1").await.err(),
        Some(401)
    );
    // The dispatcher's board the same way.
    let (_board, proto) = browser_ws(&s, "/ws/dispatch", &format!("aednet.v1, bearer.{td}"))
        .await
        .expect("the dispatcher token opens the board");
    assert_eq!(proto.as_deref(), Some("aednet.v1"));
    // A public live view (the planner's coverage feed) without a token: the subprotocol alone.
    let (mut cov, proto) = browser_ws(&s, "/ws/coverage", "aednet.v1")
        .await
        .expect("the coverage feed is public");
    assert_eq!(proto.as_deref(), Some("aednet.v1"));
    assert_eq!(next_json(&mut cov).await["type"], "cells");
    s.stop().await;
}

#[tokio::test]
async fn consoles_sqlite() {
    consoles(Db::Sqlite).await;
}

#[tokio::test]
async fn consoles_postgres() {
    consoles(Db::Postgres).await;
}
