//! The rescuer WebSocket protocol (docs/rescuer-protocol.md) over real sockets on SQLite and
//! PostgreSQL: positions, accept, decline and arrived as frames with acks and errors naming the
//! field (the HTTP rules: 403, 409, idempotent), the cabinet code only to the accepted fetcher,
//! live `update` frames to a responder on the way (and `responder` frames on /ws/dispatch),
//! stand-down and cancel, a reconnect resuming the offer — and privacy: a rescuer's position is
//! kept only in the incident's audit record (at accept and at arrival), nowhere else in the
//! database and in no other answer.

mod common;

use std::time::Duration;

use aednet_core::Role;
use common::{eventually, send, Db, TestServer};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connected socket with every frame it has received, for the privacy checks at the end.
struct Client {
    ws: Ws,
    seen: Vec<Value>,
}

impl Client {
    async fn connect(s: &TestServer, path: &str, token: &str) -> Client {
        let mut req = (s.base.replace("http://", "ws://") + path)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Client {
            ws,
            seen: Vec::new(),
        }
    }

    async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    /// The next frame of `kind` (others are kept in `seen`).
    async fn next(&mut self, kind: &str) -> Value {
        loop {
            let m = match tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {kind} frame; seen {:?}", self.seen))
            {
                Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(&t).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("socket ended waiting for {kind}: {other:?}"),
            };
            self.seen.push(m.clone());
            if m["type"] == kind {
                return m;
            }
        }
    }

    /// Sends a frame with a `ref` and returns the reply naming it.
    async fn ask(&mut self, mut frame: Value, r: &str) -> Value {
        frame["ref"] = json!(r);
        self.send(frame).await;
        loop {
            let m = self.next_any().await;
            if m["ref"] == r {
                return m;
            }
        }
    }

    async fn next_any(&mut self) -> Value {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a frame")
            {
                Some(Ok(Message::Text(t))) => {
                    let m: Value = serde_json::from_str(&t).unwrap();
                    self.seen.push(m.clone());
                    return m;
                }
                Some(Ok(_)) => continue,
                other => panic!("socket ended: {other:?}"),
            }
        }
    }
}

/// Positions with digits nothing else has, so finding them anywhere is a leak.
fn at(lat_micro: u32, lon_micro: u32) -> (f64, f64) {
    (
        28.970_000 + f64::from(lat_micro) * 1e-7,
        118.870_000 + f64::from(lon_micro) * 1e-7,
    )
}

async fn protocol(db: Db) {
    let policy = aednet_dispatch::Policy {
        cpr_direct: 1,
        max_fetchers: 1,
        max_alerts: 3,
        // The role layout of the one-CPR rule (the CPR-in-time rule has its own tests).
        cpr_confidence: 0.0,
        min_rescuers: 1,
        min_aeds: 1,
        offer_timeout_s: 120.0,
        ..Default::default()
    };
    let is_pg = matches!(db, Db::Postgres);
    let s = TestServer::start_all(
        db,
        aednet_mobile_api::PublicLimits {
            per_minute: 0,
            ..Default::default()
        },
        aednet_device_gateway::GatewayConfig::default(),
        policy,
        None,
    )
    .await;
    // A locked cabinet 330 m north of the patient, on the second floor.
    let (st, aed) = send(s.post("/api/v1/aeds", Some(Role::Admin), &json!({"lat": 28.9730, "lon": 118.8700,
        "access": "yes", "opening_hours": "24/7", "name": "衢州站 AED", "indoor": true, "level": "2",
        "location_description": "二楼候车室服务台旁", "cabinet_locked": true, "cabinet_code": "5173"}))).await;
    assert_eq!(st, 201, "{aed}");
    let aed_id = aed["id"].as_i64().unwrap();
    eventually("AED indexed", || async { s.state.geo.aed_count() == 1 }).await;

    // R0 100 m from the patient, R1 next to the AED, R2 600 m away, R3 without consent.
    let places = [
        at(9_123, 1_357),
        at(29_871, 4_321),
        at(54_321, 2_468),
        at(1_111, 2_222),
    ];
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..4 {
        let (_, r) = send(s.post("/api/v1/rescuers", Some(Role::Admin), &json!({"name": format!("救护员{i}"),
            "certificate_no": format!("ZJQZ-WS-{i}"), "level": "first_aider", "cert_issued": "2024-05-01",
            "cert_expires": "2030-04-30", "on_duty": true, "location_consent": i != 3}))).await;
        ids.push(r["id"].as_i64().unwrap());
        let (token, new) = aednet_api::auth::new_token("phone", Role::Rescuer, Some(ids[i]));
        s.store.create_token(&new).await.unwrap();
        tokens.push(token);
    }
    let mut c = Vec::new();
    for t in &tokens {
        c.push(Client::connect(&s, "/ws/rescuer", t).await);
    }
    let loc = |p: (f64, f64)| json!({"type": "location", "lat": p.0, "lon": p.1, "accuracy_m": 5});

    // Positions over the socket: acked by `ref`, with HTTP's rules.
    for i in 0..3 {
        let a = c[i].ask(loc(places[i]), &format!("loc-{i}")).await;
        assert_eq!(
            (a["type"].as_str(), a["of"].as_str()),
            (Some("ack"), Some("location")),
            "{a}"
        );
        assert_eq!(s.state.geo.rescuer(ids[i]).unwrap().pos.lat, places[i].0);
    }
    let e = c[3].ask(loc(places[3]), "no-consent").await;
    assert_eq!(
        (
            e["type"].as_str(),
            e["status"].as_u64(),
            e["field"].as_str()
        ),
        (Some("error"), Some(409), Some("location_consent")),
        "{e}"
    );
    assert!(
        s.state.geo.rescuer(ids[3]).is_none(),
        "nothing kept without consent"
    );
    for (frame, status, field) in [
        (
            json!({"type": "location", "lat": 91.0, "lon": 118.87}),
            422,
            Some("lat"),
        ),
        (json!({"type": "location", "lat": 28.97}), 422, Some("lon")),
        (
            json!({"type": "location", "lat": 28.97, "lon": 118.87, "accuracy_m": -1}),
            422,
            Some("accuracy_m"),
        ),
        (
            json!({"type": "location", "lat": 28.97, "lon": 118.87, "speed": 3}),
            422,
            Some("speed"),
        ),
        (json!({"type": "teleport"}), 422, Some("type")),
        (
            json!({"type": "accept", "incident_id": "one", "offer_id": 1}),
            422,
            Some("incident_id"),
        ),
        (
            json!({"type": "accept", "incident_id": 999, "offer_id": 1}),
            404,
            None,
        ),
    ] {
        let e = c[0].ask(frame.clone(), "bad").await;
        assert_eq!(
            (
                e["type"].as_str(),
                e["status"].as_u64(),
                e["field"].as_str()
            ),
            (Some("error"), Some(status), field),
            "{frame} -> {e}"
        );
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    c[0].send(json!("not an object")).await;
    let e = c[0].next("error").await;
    assert_eq!(
        (e["status"].as_u64(), e["error"].as_str()),
        (Some(400), Some("bad_request")),
        "{e}"
    );
    c[0].ws
        .send(Message::Text("{\"type\": ".into()))
        .await
        .unwrap();
    assert_eq!(c[0].next("error").await["error"], "bad_request");

    let mut board = Client::connect(&s, "/ws/dispatch", &s.tokens[&Role::Dispatcher]).await;
    let (st, inc) = send(s.post(
        "/api/v1/incidents",
        Some(Role::Dispatcher),
        &json!({"lat": 28.9700, "lon": 118.8700}),
    ))
    .await;
    assert_eq!(st, 201, "{inc}");
    let inc_id = inc["id"].as_i64().unwrap();
    let o0 = c[0].next("offer").await;
    let o1 = c[1].next("offer").await;
    let o2 = c[2].next("offer").await;
    assert_eq!(
        (
            o0["role"].as_str(),
            o1["role"].as_str(),
            o2["role"].as_str()
        ),
        (Some("cpr"), Some("fetch_aed"), Some("cpr"))
    );
    assert_eq!(o1["aed"]["id"], aed_id);
    assert_eq!(
        (
            o1["aed"]["level"].as_str(),
            o1["aed"]["location_description"].as_str(),
            o1["aed"]["indoor"].as_bool()
        ),
        (Some("2"), Some("二楼候车室服务台旁"), Some(true)),
        "{o1}"
    );
    assert!(o1["eta_s"].as_f64().is_some_and(|t| t > 0.0));
    let answer = |o: &Value, kind: &str| json!({"type": kind, "incident_id": o["incident_id"], "offer_id": o["offer_id"]});

    // Someone else's offer: 403; the fetcher accepts and alone gets the code, again on repeat.
    let e = c[2].ask(answer(&o0, "accept"), "steal").await;
    assert_eq!(
        (e["type"].as_str(), e["status"].as_u64(), e["of"].as_str()),
        (Some("error"), Some(403), Some("accept")),
        "{e}"
    );
    let a1 = c[1].ask(answer(&o1, "accept"), "a1").await;
    assert_eq!(
        (
            a1["type"].as_str(),
            a1["offer"]["state"].as_str(),
            a1["cabinet_code"].as_str()
        ),
        (Some("ack"), Some("accepted"), Some("5173")),
        "{a1}"
    );
    let again = c[1].ask(answer(&o1, "accept"), "a1-again").await;
    assert_eq!(
        (
            again["offer"]["state"].as_str(),
            again["cabinet_code"].as_str()
        ),
        (Some("accepted"), Some("5173"))
    );
    // CPR accepted: two wanted, two accepted, so R2 is stood down.
    let a0 = c[0].ask(answer(&o0, "accept"), "a0").await;
    assert_eq!(
        (a0["type"].as_str(), a0.get("cabinet_code")),
        (Some("ack"), None),
        "{a0}"
    );
    let sd = c[2].next("stand_down").await;
    assert_eq!(sd["incident_id"], inc_id);
    let late = c[2].ask(answer(&o2, "accept"), "late").await;
    assert_eq!(
        (late["type"].as_str(), late["status"].as_u64()),
        (Some("error"), Some(409)),
        "{late}"
    );
    let e = c[0].ask(answer(&o0, "arrived"), "not-yet").await;
    assert_eq!(e["type"], "ack", "arrived after accepting is fine: {e}");

    // The fetcher moves: live distance/ETA to them; the dispatcher's board also gets where
    // they are, so the console can draw them moving (dispatchers only; nothing is kept).
    let halfway = at(19_999, 3_333);
    assert_eq!(c[1].ask(loc(halfway), "m1").await["type"], "ack");
    let u = c[1].next("update").await;
    assert_eq!(
        (u["incident_id"].as_i64(), u["offer_id"].clone()),
        (Some(inc_id), o1["offer_id"].clone())
    );
    let (d, da) = (
        u["distance_m"].as_f64().unwrap(),
        u["aed_distance_m"].as_f64().unwrap(),
    );
    assert!(
        (200.0..250.0).contains(&d) && (100.0..130.0).contains(&da),
        "{u}"
    );
    assert!(
        u["eta_s"].as_f64().unwrap() > (da + 330.0) / 2.3,
        "ETA via the AED: {u}"
    );
    let r = board.next("responder").await;
    assert_eq!(
        (r["rescuer_id"].as_i64(), r["distance_m"].as_f64()),
        (Some(ids[1]), Some(d)),
        "{r}"
    );
    assert_eq!(
        (r["lat"].as_f64(), r["lon"].as_f64()),
        (Some(halfway.0), Some(halfway.1))
    );
    // At the cabinet: the AED is in hand, the ETA is straight to the patient.
    let cabinet = at(30_001, 1);
    assert_eq!(c[1].ask(loc(cabinet), "m2").await["type"], "ack");
    let u = c[1].next("update").await;
    assert!(u["aed_distance_m"].is_null(), "{u}");
    let back = at(20, 20);
    assert_eq!(c[1].ask(loc(back), "m3").await["type"], "ack");
    let u = c[1].next("update").await;
    assert!(
        u["aed_distance_m"].is_null() && u["distance_m"].as_f64().unwrap() < 5.0,
        "{u}"
    );
    let arr = c[1].ask(answer(&o1, "arrived"), "arr").await;
    assert_eq!(arr["offer"]["state"], "arrived", "{arr}");
    let twice = c[1].ask(answer(&o1, "arrived"), "arr2").await;
    assert_eq!(twice["type"], "ack", "idempotent: {twice}");
    // Someone not on the incident moving gets no update.
    assert_eq!(c[2].ask(loc(at(54_000, 2_000)), "m4").await["type"], "ack");

    // A reconnect resumes: the offer comes again with its state.
    let _ = c[0].ws.close(None).await;
    c[0] = Client::connect(&s, "/ws/rescuer", &tokens[0]).await;
    let again = c[0].next("offer").await;
    assert_eq!(
        (again["offer_id"].clone(), again["state"].as_str()),
        (o0["offer_id"].clone(), Some("arrived"))
    );

    // Cancelled: the fetcher (arrived, nothing to stand down) is left alone; nobody else was on
    // the way. A second incident shows `cancel` to a responder still en route.
    let (st, _) = send(s.post(
        &format!("/api/v1/incidents/{inc_id}/close"),
        Some(Role::Dispatcher),
        &json!({"aed_applied": true, "shock_delivered": false, "handed_to_ems": true}),
    ))
    .await;
    assert_eq!(st, 200);
    let (_, inc2) = send(s.post(
        "/api/v1/incidents",
        Some(Role::Dispatcher),
        &json!({"lat": 28.9700, "lon": 118.8700}),
    ))
    .await;
    let inc2_id = inc2["id"].as_i64().unwrap();
    let o = c[2].next("offer").await;
    assert_eq!(o["incident_id"], inc2_id);
    assert_eq!(c[2].ask(answer(&o, "accept"), "a2").await["type"], "ack");
    // A position over HTTP moves the responder just the same: an `update` on the socket.
    let st = send(
        s.client
            .post(s.url("/api/v1/me/location"))
            .bearer_auth(&tokens[2])
            .json(&json!({"lat": 28.9720, "lon": 118.8700})),
    )
    .await
    .0;
    assert_eq!(st, 204);
    let u = c[2].next("update").await;
    assert_eq!(u["incident_id"], inc2_id);
    assert!(
        u["distance_m"]
            .as_f64()
            .is_some_and(|d| (200.0..245.0).contains(&d)),
        "{u}"
    );
    let (st, _) = send(s.post(
        &format!("/api/v1/incidents/{inc2_id}/cancel"),
        Some(Role::Dispatcher),
        &json!({}),
    ))
    .await;
    assert_eq!(st, 200);
    let cancel = c[2].next("cancel").await;
    assert_eq!(cancel["incident_id"], inc2_id);

    // Binary frames are refused with a close code.
    c[3].ws
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), c[3].ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(u16::from(closed.unwrap().code), 1003);

    // Privacy. The audit record holds the positions at accept and at arrival…
    let (_, full) = send(s.get(
        &format!("/api/v1/incidents/{inc_id}"),
        Some(Role::Dispatcher),
    ))
    .await;
    let audit = full["audit_log"].as_array().unwrap();
    let pos_of = |kind: &str, rescuer: i64| {
        audit
            .iter()
            .find(|e| e["kind"] == kind && e["rescuer_id"] == rescuer)
            .and_then(|e| {
                Some((
                    e["position"]["lat"].as_f64()?,
                    e["position"]["lon"].as_f64()?,
                ))
            })
    };
    assert_eq!(pos_of("accepted", ids[1]), Some(places[1]), "{audit:?}");
    assert_eq!(pos_of("accepted", ids[0]), Some(places[0]));
    assert_eq!(pos_of("arrived", ids[1]), Some(back));
    assert_eq!(pos_of("arrived", ids[0]), Some(places[0]));
    // …the dispatcher's live view shows accepted responders where they are now (and the board
    // where they move), never anyone who did not accept; and nowhere else: not in the
    // incident's other fields, any rescuer's frames, the registry's rescuer records, the
    // public answers, nor any other table.
    let digits = |p: (f64, f64)| vec![format!("{}", p.0), format!("{}", p.1)];
    let all: Vec<String> = [
        places[0], places[1], places[2], places[3], halfway, cabinet, back,
    ]
    .into_iter()
    .flat_map(digits)
    .collect();
    let leaks = |what: &str, text: &str| {
        for d in &all {
            assert!(!text.contains(d.as_str()), "{d} leaked in {what}: {text}");
        }
    };
    let not_accepted: Vec<String> = [places[2], places[3]]
        .into_iter()
        .flat_map(digits)
        .collect();
    for (what, text) in [
        ("the board", serde_json::to_string(&board.seen).unwrap()),
        ("the live responders", full["responders"].to_string()),
    ] {
        for d in &not_accepted {
            assert!(
                !text.contains(d.as_str()),
                "{d} (did not accept) in {what}: {text}"
            );
        }
    }
    let mut rest = full.clone();
    for k in ["audit_log", "audit", "responders"] {
        rest.as_object_mut().unwrap().remove(k);
    }
    leaks(
        "the incident outside its audit and live view",
        &rest.to_string(),
    );
    for (i, cl) in c.iter().enumerate() {
        leaks(
            &format!("rescuer {i}'s frames"),
            &serde_json::to_string(&cl.seen).unwrap(),
        );
    }
    let (_, list) = send(s.get("/api/v1/rescuers", Some(Role::Admin))).await;
    leaks("the rescuer list", &list.to_string());
    let (_, one) = send(s.get(&format!("/api/v1/rescuers/{}", ids[1]), Some(Role::Admin))).await;
    leaks("a rescuer record", &one.to_string());
    let (_, near) = send(s.get("/api/v1/aeds/nearest?lat=28.97&lon=118.87", None)).await;
    leaks("the public nearest answer", &near.to_string());
    let (_, mine) = send(
        s.client
            .get(s.url("/api/v1/me/offers"))
            .bearer_auth(&tokens[1]),
    )
    .await;
    leaks("the rescuer's offers", &mine.to_string());
    stored_only_in_incidents(&s.url, is_pg, &digits(places[1])[0]).await;
    s.stop().await;
}

/// Every table of the database, every row as text: the position appears only in the incident
/// document and its audit rows.
async fn stored_only_in_incidents(url: &str, pg: bool, needle: &str) {
    use sqlx::Row;
    let pattern = format!("%{needle}%");
    let mut found = Vec::new();
    if pg {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")
            .fetch_all(&pool).await.unwrap();
        assert!(tables.len() > 5, "{tables:?}");
        for t in tables {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM \"{t}\" x WHERE row_to_json(x)::text LIKE $1"
            ))
            .bind(&pattern)
            .fetch_one(&pool)
            .await
            .unwrap();
            if n > 0 {
                found.push(t);
            }
        }
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(tables.len() > 5, "{tables:?}");
        for t in tables {
            let cols: Vec<String> = sqlx::query(&format!("PRAGMA table_info(\"{t}\")"))
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("name"))
                .collect();
            let cond = cols
                .iter()
                .map(|c| format!("CAST(\"{c}\" AS TEXT) LIKE ?1"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{t}\" WHERE {cond}"))
                .bind(&pattern)
                .fetch_one(&pool)
                .await
                .unwrap();
            if n > 0 {
                found.push(t);
            }
        }
        pool.close().await;
    }
    found.sort();
    assert!(!found.is_empty(), "the audit must hold the position");
    assert!(
        found.iter().all(|t| t.starts_with("incident")),
        "position stored outside the incident record: {found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescuer_socket_on_sqlite() {
    protocol(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescuer_socket_on_postgres() {
    protocol(Db::Postgres).await;
}
