//! The caller's query is protected from everything else (issue 15 item 7), over real sockets:
//! the public coverage routes are rate limited per client with a budget of their own, answer
//! from a cache keyed by parameters and the map's version, refuse oversized answers naming the
//! field; location reports are rate limited per rescuer (HTTP and `/ws/rescuer`); every
//! WebSocket kind has a connection cap answered with 503 `busy` and `Retry-After`.

mod common;

use aednet_core::Role;
use common::{eventually, send, Db, TestServer};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const LAT0: f64 = 28.95;
const LON0: f64 = 118.85;
const SIDE: f64 = 0.02;

async fn start(tune: impl FnOnce(&mut aednet_api::AppState)) -> TestServer {
    TestServer::start_tuned(
        Db::Sqlite,
        aednet_mobile_api::PublicLimits {
            per_minute: 0,
            ..Default::default()
        },
        aednet_device_gateway::GatewayConfig::default(),
        aednet_dispatch::Policy::default(),
        None,
        tune,
    )
    .await
}

/// One district with one AED in the middle; waits until the map has it.
async fn city(s: &TestServer) -> (i64, i64) {
    let ring = json!([[
        [LON0, LAT0],
        [LON0 + SIDE, LAT0],
        [LON0 + SIDE, LAT0 + SIDE],
        [LON0, LAT0 + SIDE],
        [LON0, LAT0]
    ]]);
    let (st, d) = send(s.post(
        "/api/v1/districts",
        Some(Role::Planner),
        &json!({"name": "测试区", "population": 10000, "boundary": {"type": "Polygon", "coordinates": ring}}),
    ))
    .await;
    assert_eq!(st, 201, "{d}");
    let district = d["id"].as_i64().unwrap();
    let (st, a) = send(s.post(
        "/api/v1/aeds",
        Some(Role::Admin),
        &json!({"lat": LAT0 + SIDE / 2.0, "lon": LON0 + SIDE / 2.0, "name": "AED", "access": "yes",
                "opening_hours": "24/7", "district_id": district}),
    ))
    .await;
    assert_eq!(st, 201, "{a}");
    eventually("the coverage map has the AED", || async {
        let (st, c) = send(s.get("/api/v1/coverage/weekly", None)).await;
        let (st2, m) = send(s.get(&format!("/api/v1/coverage?district_id={district}"), None)).await;
        st == 200
            && c["hours"].as_array().is_some_and(|h| h.len() == 168)
            && st2 == 200
            && m["summary"]["aeds"] == 1
    })
    .await;
    (district, a["id"].as_i64().unwrap())
}

async fn cache_header(s: &TestServer, path: &str) -> (u16, String) {
    let r = s.get(path, None).send().await.unwrap();
    let h = r
        .headers()
        .get("x-aednet-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status().as_u16(), h)
}

#[tokio::test]
async fn coverage_answers_cached_by_parameters_and_map_version() {
    let s = start(|_| {}).await;
    let (district, aed) = city(&s).await;
    let q = format!("/api/v1/coverage?district_id={district}&budget_s=300");
    // The first asker computes (unless the poll above already asked this), the next are served
    // from the cache.
    let _ = cache_header(&s, &q).await;
    assert_eq!(cache_header(&s, &q).await, (200, "hit".into()));
    assert_eq!(cache_header(&s, &q).await, (200, "hit".into()));
    // Other parameters are another answer.
    let other = format!("/api/v1/coverage?district_id={district}&budget_s=301");
    assert_eq!(cache_header(&s, &other).await, (200, "miss".into()));
    assert_eq!(cache_header(&s, &other).await, (200, "hit".into()));
    let (_, before) = send(s.get(&q, None)).await;
    assert!(before["summary"]["covered_cells"].as_u64().unwrap() > 0);
    // A readiness change is a new map version: never the old answer.
    let (st, b) = send(s.put(
        &format!("/api/v1/aeds/{aed}/readiness"),
        Some(Role::Maintenance),
        &json!({"status": "fault"}),
    ))
    .await;
    assert!(st < 300, "{st} {b}");
    eventually("the fault reaches the cached answer", || async {
        let (_, now) = send(s.get(&q, None)).await;
        now["summary"]["covered_cells"] == 0
    })
    .await;
    let (_, m) = send(s.client.get(&s.metrics)).await;
    let m = m.as_str().unwrap().to_string();
    assert!(
        m.contains("aednet_coverage_answers_total{result=\"hit\"}"),
        "{m}"
    );
    s.stop().await;
}

#[tokio::test]
async fn coverage_rate_limited_per_client_on_its_own_budget() {
    let s = start(|st| {
        st.coverage.per_minute = 1;
        st.coverage.burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let r = s
            .get("/api/v1/districts/summary", None)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        last = Some(r);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let r = last.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // The same route family, the same budget: the socket's upgrade is refused too.
    let url = s.base.replace("http://", "ws://") + "/ws/coverage";
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 429)
        }
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    // The caller's query is not on that budget.
    let (st, _) = send(s.get("/api/v1/aeds/nearest?lat=28.96&lon=118.86", None)).await;
    assert_eq!(st, 200);
    s.stop().await;
}

#[tokio::test]
async fn coverage_refuses_too_many_cells_naming_the_field() {
    let s = start(|st| st.coverage.max_cells = 5).await;
    let ring = json!([[
        [LON0, LAT0],
        [LON0 + SIDE, LAT0],
        [LON0 + SIDE, LAT0 + SIDE],
        [LON0, LAT0 + SIDE],
        [LON0, LAT0]
    ]]);
    let (st, _) = send(s.post(
        "/api/v1/districts",
        Some(Role::Planner),
        &json!({"name": "测试区", "population": 10000, "boundary": {"type": "Polygon", "coordinates": ring}}),
    ))
    .await;
    assert_eq!(st, 201);
    eventually("the map has the district's cells", || async {
        let (st, b) = send(s.get("/api/v1/coverage", None)).await;
        st == 422 && b["field"] == "bbox"
    })
    .await;
    let (st, b) = send(s.get("/api/v1/coverage?res=10", None)).await;
    assert_eq!((st, b["field"].as_str()), (422, Some("bbox")), "{b}");
    assert!(
        b["message"].as_str().unwrap().contains("district_id"),
        "{b}"
    );
    // A small box is within the limit: ~0.45 × 0.5 km holds 1–4 resolution-9 cell centres
    // (centres ~0.3 km apart); a box narrower than that spacing may hold none.
    let tiny = format!(
        "/api/v1/coverage?bbox={},{},{},{}",
        LON0 + 0.009,
        LAT0 + 0.009,
        LON0 + 0.0135,
        LAT0 + 0.0135
    );
    let (st, b) = send(s.get(&tiny, None)).await;
    assert_eq!(st, 200, "{b}");
    let n = b["features"].as_array().unwrap().len();
    assert!((1..=5).contains(&n), "{n}");
    s.stop().await;
}

async fn ws_status(s: &TestServer, path: &str, token: Option<&str>) -> Result<Ws, u16> {
    let mut req = (s.base.replace("http://", "ws://") + path)
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            if resp.status() == 503 {
                assert!(resp.headers().contains_key("retry-after"), "{resp:?}");
                let body =
                    String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
                assert!(body.contains("busy"), "{body}");
            }
            Err(resp.status().as_u16())
        }
        Err(e) => panic!("{path}: {e}"),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn rescuer(s: &TestServer, n: u32) -> (i64, String) {
    let (st, r) = send(s.post("/api/v1/rescuers", Some(Role::Admin), &json!({"name": format!("救护员{n}"),
        "certificate_no": format!("ZJQZ-ISO-{n}"), "level": "first_aider", "cert_issued": "2024-05-01",
        "cert_expires": "2030-04-30", "on_duty": true, "location_consent": true}))).await;
    assert_eq!(st, 201, "{r}");
    let id = r["id"].as_i64().unwrap();
    let (token, new) = aednet_api::auth::new_token("phone", Role::Rescuer, Some(id));
    s.store.create_token(&new).await.unwrap();
    (id, token)
}

#[tokio::test]
async fn every_websocket_kind_has_a_connection_cap() {
    let s = start(|st| {
        st.limits = std::sync::Arc::new(aednet_api::limits::Limits::new(
            aednet_api::limits::LimitsConfig {
                location_per_s: 0,
                ws_coverage: 1,
                ws_rescuer: 1,
                ws_dispatch: 1,
                ws_maintenance: 1,
                ..Default::default()
            },
        ))
    })
    .await;
    let (_, r1) = rescuer(&s, 1).await;
    let (_, r2) = rescuer(&s, 2).await;
    let staff = |r: Role| s.tokens[&r].clone();
    let kinds: [(&str, String, String); 4] = [
        ("/ws/coverage", String::new(), String::new()),
        ("/ws/rescuer", r1, r2),
        ("/ws/dispatch", staff(Role::Dispatcher), staff(Role::Admin)),
        (
            "/ws/maintenance",
            staff(Role::Maintenance),
            staff(Role::Admin),
        ),
    ];
    for (path, first, second) in &kinds {
        let tok = |t: &String| (!t.is_empty()).then(|| t.clone());
        let mut open = ws_status(&s, path, tok(first).as_deref())
            .await
            .unwrap_or_else(|st| panic!("{path}: first socket refused with {st}"));
        assert_eq!(
            ws_status(&s, path, tok(second).as_deref()).await.err(),
            Some(503),
            "{path}: a second socket over the cap"
        );
        // Closing the first frees its slot.
        open.close(None).await.unwrap();
        while let Some(Ok(_)) = open.next().await {}
        eventually(&format!("{path}: a slot again after close"), || async {
            match ws_status(&s, path, tok(second).as_deref()).await {
                Ok(mut ws) => {
                    let _ = ws.close(None).await;
                    while let Some(Ok(_)) = ws.next().await {}
                    true
                }
                Err(_) => false,
            }
        })
        .await;
    }
    s.stop().await;
}

#[tokio::test]
async fn location_reports_rate_limited_per_rescuer_over_http_and_socket() {
    let s = start(|st| {
        st.limits = std::sync::Arc::new(aednet_api::limits::Limits::new(
            aednet_api::limits::LimitsConfig {
                location_per_s: 1,
                location_burst: 3,
                ..Default::default()
            },
        ))
    })
    .await;
    let (_, t1) = rescuer(&s, 1).await;
    let (_, t2) = rescuer(&s, 2).await;
    let body = json!({"lat": 28.96, "lon": 118.86, "accuracy_m": 5});
    let post = |t: &str| {
        s.client
            .post(s.url("/api/v1/me/location"))
            .bearer_auth(t)
            .json(&body)
    };
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let r = post(&t1).send().await.unwrap();
        statuses.push(r.status().as_u16());
        last = Some(r);
    }
    assert_eq!(statuses, [204, 204, 204, 429]);
    let r = last.unwrap();
    assert!(r.headers().contains_key("retry-after"));
    // Another rescuer is not affected.
    assert_eq!(post(&t2).send().await.unwrap().status(), 204);
    // The socket shares the rescuer's budget: an error frame, the socket stays open.
    let mut ws = ws_status(&s, "/ws/rescuer", Some(&t1)).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "location", "lat": 28.96, "lon": 118.86, "ref": "l1"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a reply")
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["ref"] == "l1" {
                    break v;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    };
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["status"], 429, "{reply}");
    assert_eq!(reply["error"], "rate_limited", "{reply}");
    s.stop().await;
}
