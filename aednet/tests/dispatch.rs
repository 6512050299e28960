//! Dispatch end to end over real sockets, on SQLite and PostgreSQL: a dispatcher creates an
//! incident; rescuers get offers with roles on their WebSockets; one declines, one times out and
//! the next wave reaches another; the others accept; the fetcher of the locked cabinet gets its
//! code; closing stands everyone down; the audit log holds all of it; answers to someone else's
//! offer are 403 and to a closed incident 409.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aednet_core::Role;
use common::{eventually, send, Db, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Rescuer {
    id: i64,
    token: String,
    ws: Ws,
}

async fn next_msg(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

async fn flow(db: Db) {
    let policy = aednet_dispatch::Policy {
        cpr_direct: 1,
        max_fetchers: 2,
        fetchers_per_aed: 1,
        fetch_confidence: 0.0,
        // The role layout of the one-CPR rule (the CPR-in-time rule has its own tests).
        cpr_confidence: 0.0,
        max_alerts: 4,
        min_rescuers: 1,
        min_aeds: 1,
        offer_timeout_s: 1.0,
        ..Default::default()
    };
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
    // Two AEDs by the patient (Quzhou station square), one locked with a code.
    for (lat, code) in [(28.9712, Some("8642")), (28.9690, None)] {
        let mut b = json!({"lat": lat, "lon": 118.8700, "access": "yes", "opening_hours": "24/7", "name": format!("AED {lat}")});
        if let Some(c) = code {
            b["cabinet_code"] = json!(c);
        }
        assert_eq!(
            send(s.post("/api/v1/aeds", Some(Role::Admin), &b)).await.0,
            201
        );
    }
    eventually("AEDs indexed", || async { s.state.geo.aed_count() == 2 }).await;
    // Five rescuers at 100..500 m, on duty with consent, connected.
    let mut rescuers = Vec::new();
    for i in 0..5i64 {
        let (_, r) = send(s.post("/api/v1/rescuers", Some(Role::Admin), &json!({"name": format!("救护员{i}"),
            "certificate_no": format!("ZJQZ-{i}"), "level": "first_aider", "cert_issued": "2024-05-01",
            "cert_expires": "2030-04-30", "on_duty": true, "location_consent": true}))).await;
        let id = r["id"].as_i64().unwrap();
        let (token, new) = aednet_api::auth::new_token("phone", Role::Rescuer, Some(id));
        s.store.create_token(&new).await.unwrap();
        let lat = 28.9700 + 0.0009 * (i + 1) as f64;
        let st = send(
            s.client
                .post(s.url("/api/v1/me/location"))
                .bearer_auth(&token)
                .json(&json!({"lat": lat, "lon": 118.8705})),
        )
        .await
        .0;
        assert_eq!(st, 204);
        let mut req = (s.base.replace("http://", "ws://") + "/ws/rescuer")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        rescuers.push(Rescuer { id, token, ws });
    }
    let answer = |r: &Rescuer, inc: i64, offer: i64, what: &str| {
        s.client
            .post(s.url(&format!("/api/v1/me/offers/{inc}/{offer}/{what}")))
            .bearer_auth(&r.token)
            .send()
    };

    // The dispatcher's live board.
    let mut req = (s.base.replace("http://", "ws://") + "/ws/dispatch")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", s.tokens[&Role::Dispatcher])
            .parse()
            .unwrap(),
    );
    let (mut board, _) = tokio_tungstenite::connect_async(req).await.unwrap();

    // The dispatcher creates the incident: four offers, roles by the policy.
    let (st, inc) = send(s.post("/api/v1/incidents", Some(Role::Dispatcher), &json!({"lat": 28.9700, "lon": 118.8700, "address": "衢州站广场", "notes": "男性，约60岁，倒地无呼吸"}))).await;
    assert_eq!(st, 201, "{inc}");
    let inc_id = inc["id"].as_i64().unwrap();
    assert_eq!(inc["state"], "alerting");
    assert_eq!(inc["offers"].as_array().unwrap().len(), 4);
    let mut offers: HashMap<i64, Value> = HashMap::new(); // rescuer index → offer message
    for (i, r) in rescuers.iter_mut().enumerate().take(4) {
        let m = next_msg(&mut r.ws).await;
        assert_eq!(m["type"], "offer", "{m}");
        assert_eq!(m["incident_id"], inc_id);
        offers.insert(i as i64, m);
    }
    assert_eq!(
        offers[&0]["role"], "cpr",
        "the nearest goes straight to the patient"
    );
    let fetchers: Vec<i64> = offers
        .iter()
        .filter(|(_, m)| m["role"] == "fetch_aed")
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(fetchers.len(), 2, "{offers:?}");
    let extra = *offers
        .keys()
        .find(|i| **i != 0 && !fetchers.contains(i))
        .unwrap();
    let fetch_aeds: Vec<&Value> = fetchers.iter().map(|i| &offers[i]["aed"]).collect();
    assert_ne!(
        fetch_aeds[0]["id"], fetch_aeds[1]["id"],
        "one fetcher per AED"
    );
    assert!(
        !offers.values().any(|m| m.to_string().contains("8642")),
        "no code before accepting"
    );

    let b = next_msg(&mut board).await;
    assert_eq!(
        (b["type"].as_str(), b["incident_id"].as_i64()),
        (Some("incident"), Some(inc_id)),
        "{b}"
    );
    assert_eq!(
        b["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "offered")
            .count(),
        4
    );

    // Someone else's offer: 403. The extra CPR helper declines.
    let o = |i: i64| offers[&i]["offer_id"].as_i64().unwrap();
    assert_eq!(
        answer(&rescuers[1], inc_id, o(0), "accept")
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        answer(&rescuers[extra as usize], inc_id, o(extra), "decline")
            .await
            .unwrap()
            .status(),
        200
    );
    // The nearest accepts CPR; one fetcher accepts and gets the code only if its AED is locked.
    let (st, a0) = send(
        s.client
            .post(s.url(&format!("/api/v1/me/offers/{inc_id}/{}/accept", o(0))))
            .bearer_auth(&rescuers[0].token),
    )
    .await;
    assert_eq!(st, 200, "{a0}");
    assert!(a0.get("cabinet_code").is_none());
    let f = fetchers[0];
    let (_, af) = send(
        s.client
            .post(s.url(&format!("/api/v1/me/offers/{inc_id}/{}/accept", o(f))))
            .bearer_auth(&rescuers[f as usize].token),
    )
    .await;
    let locked = offers[&f]["aed"]["cabinet_locked"] == true;
    assert_eq!(
        af["cabinet_code"].as_str(),
        if locked { Some("8642") } else { None },
        "{af}"
    );
    // Accepting again is idempotent.
    let (st, again) = send(
        s.client
            .post(s.url(&format!("/api/v1/me/offers/{inc_id}/{}/accept", o(f))))
            .bearer_auth(&rescuers[f as usize].token),
    )
    .await;
    assert_eq!((st, &again["offer"]["state"]), (200, &json!("accepted")));

    // The other fetcher does not answer: after the time-out the next wave reaches rescuer 4.
    let m = next_msg(&mut rescuers[4].ws).await;
    assert_eq!(m["type"], "offer", "{m}");
    let (st, _) = send(
        s.client
            .post(s.url(&format!(
                "/api/v1/me/offers/{inc_id}/{}/accept",
                m["offer_id"]
            )))
            .bearer_auth(&rescuers[4].token),
    )
    .await;
    assert_eq!(st, 200);
    let timed_out = fetchers[1];
    let late = answer(
        &rescuers[timed_out as usize],
        inc_id,
        o(timed_out),
        "accept",
    )
    .await
    .unwrap();
    assert_eq!(late.status(), 409, "an expired offer cannot be accepted");
    let (_, mine) = send(
        s.client
            .get(s.url("/api/v1/me/offers"))
            .bearer_auth(&rescuers[0].token),
    )
    .await;
    assert_eq!(mine["count"], 1);
    // The dispatcher sees responders with live distance and ETA, and the AEDs nearby.
    let (_, live) = send(s.get(
        &format!("/api/v1/incidents/{inc_id}"),
        Some(Role::Dispatcher),
    ))
    .await;
    let resp = live["responders"].as_array().unwrap();
    assert_eq!(resp.len(), 3, "{live}");
    assert!(resp.iter().all(|r| r["distance_m"]
        .as_f64()
        .is_some_and(|d| d > 50.0 && d < 600.0)
        && r["eta_s"].is_number()
        && r["lat"].is_number()
        && r["lon"].is_number()));
    assert_eq!(live["aeds_nearby"].as_array().unwrap().len(), 2);
    assert!(
        !live.to_string().contains("8642"),
        "no code on the dispatcher's board"
    );

    // Close: those still on the way are stood down over their sockets.
    let (st, closed) = send(s.post(
        &format!("/api/v1/incidents/{inc_id}/close"),
        Some(Role::Dispatcher),
        &json!({"aed_applied": true, "shock_delivered": true, "handed_to_ems": true}),
    ))
    .await;
    assert_eq!(
        (st, closed["state"].as_str()),
        (200, Some("closed")),
        "{closed}"
    );
    for i in [0usize, f as usize, 4] {
        let m = next_msg(&mut rescuers[i].ws).await;
        assert_eq!(
            (m["type"].as_str(), m["incident_id"].as_i64()),
            (Some("stand_down"), Some(inc_id)),
            "{m}"
        );
    }
    assert_eq!(
        answer(&rescuers[0], inc_id, o(0), "arrived")
            .await
            .unwrap()
            .status(),
        409
    );
    assert_eq!(
        send(s.post(
            &format!("/api/v1/incidents/{inc_id}/cancel"),
            Some(Role::Dispatcher),
            &json!({})
        ))
        .await
        .0,
        409
    );

    let mut closed_seen = false;
    for _ in 0..20 {
        if next_msg(&mut board).await["state"] == "closed" {
            closed_seen = true;
            break;
        }
    }
    assert!(closed_seen, "the board saw the close");

    // The audit log holds it all, in order.
    let (_, full) = send(s.get(
        &format!("/api/v1/incidents/{inc_id}"),
        Some(Role::Dispatcher),
    ))
    .await;
    let kinds: Vec<&str> = full["audit_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "created",
        "offered",
        "declined",
        "accepted",
        "timed_out",
        "stood_down",
        "closed",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert_eq!(kinds.contains(&"code_revealed"), locked);
    assert_eq!(kinds.iter().filter(|k| **k == "offered").count(), 5);
    // Rescuers and the public cannot read incidents.
    assert_eq!(
        send(s.get(&format!("/api/v1/incidents/{inc_id}"), None))
            .await
            .0,
        401
    );
    assert_eq!(
        send(s.get(&format!("/api/v1/incidents/{inc_id}"), Some(Role::Rescuer)))
            .await
            .0,
        403
    );
    let (_, doc) = send(s.get("/api/openapi.json", None)).await;
    assert!(doc["paths"]["/api/v1/incidents"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/me/location"]["post"].is_object());
    let (st, e) = send(s.post(
        "/api/v1/incidents",
        Some(Role::Dispatcher),
        &json!({"lat": 91, "lon": 118.87}),
    ))
    .await;
    assert_eq!((st, e["field"].as_str()), (422, Some("lat")));
    // The first wave went to the four nearest; the fifth only in the second wave.
    let first: Vec<i64> = inc["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["rescuer_id"].as_i64().unwrap())
        .collect();
    let mut want: Vec<i64> = rescuers[..4].iter().map(|r| r.id).collect();
    let mut got = first.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(!first.contains(&rescuers[4].id));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_on_sqlite() {
    flow(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_on_postgres() {
    flow(Db::Postgres).await;
}

/// Personal data: the position a rescuer accepted from is in the incident's record for the
/// dispatcher, and leaves it (document and audit log, open incident or not) when the rescuer
/// is deleted; the erasure is counted in `aednet_retention_erased_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_rescuers_recorded_positions_are_erased() {
    let policy = aednet_dispatch::Policy {
        cpr_direct: 1,
        max_fetchers: 0,
        max_alerts: 1,
        min_rescuers: 1,
        min_aeds: 0,
        ..Default::default()
    };
    let s = TestServer::start_all(
        Db::Sqlite,
        aednet_mobile_api::PublicLimits {
            per_minute: 0,
            ..Default::default()
        },
        aednet_device_gateway::GatewayConfig::default(),
        policy,
        None,
    )
    .await;
    let (_, r) = send(s.post(
        "/api/v1/rescuers",
        Some(Role::Admin),
        &json!({"name": "救护员",
        "certificate_no": "ZJQZ-RET", "level": "first_aider", "cert_issued": "2024-05-01",
        "cert_expires": "2030-04-30", "on_duty": true, "location_consent": true}),
    ))
    .await;
    let rid = r["id"].as_i64().unwrap();
    let (token, new) = aednet_api::auth::new_token("phone", Role::Rescuer, Some(rid));
    s.store.create_token(&new).await.unwrap();
    let st = send(
        s.client
            .post(s.url("/api/v1/me/location"))
            .bearer_auth(&token)
            .json(&json!({"lat": 28.9709, "lon": 118.8705})),
    )
    .await
    .0;
    assert_eq!(st, 204);
    let (st, inc) = send(s.post(
        "/api/v1/incidents",
        Some(Role::Dispatcher),
        &json!({"lat": 28.97, "lon": 118.87}),
    ))
    .await;
    assert_eq!(st, 201, "{inc}");
    let id = inc["id"].as_i64().unwrap();
    let offer = inc["offers"][0]["id"].as_i64().unwrap();
    let st = send(
        s.client
            .post(s.url(&format!("/api/v1/me/offers/{id}/{offer}/accept")))
            .bearer_auth(&token),
    )
    .await
    .0;
    assert_eq!(st, 200);
    let positions = || async {
        let (_, b) = send(s.get(&format!("/api/v1/incidents/{id}"), Some(Role::Dispatcher))).await;
        let log = b["audit_log"].as_array().unwrap().clone();
        let audit = b["audit"].as_array().unwrap().clone();
        log.iter()
            .chain(audit.iter())
            .filter(|e| e.get("position").is_some())
            .count()
    };
    assert_eq!(positions().await, 2, "the accept's position is recorded");
    assert_eq!(
        send(s.delete(&format!("/api/v1/rescuers/{rid}"), Some(Role::Admin)))
            .await
            .0,
        204
    );
    eventually("the deleted rescuer's positions are erased", || async {
        positions().await == 0
    })
    .await;
    let doc = s.store.get_incident(id).await.unwrap().unwrap();
    assert!(!doc.contains("\"position\""), "{doc}");
    let metrics = s
        .client
        .get(&s.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("aednet_retention_erased_total 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("retention"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    s.stop().await;
}
