//! The CAD link end to end over real sockets, on SQLite and PostgreSQL: refused requests (bad
//! or missing signature, stale timestamp → 401; a replayed signed request → 409; malformed
//! bodies → 422 naming the field) create nothing; a call with an address only is geocoded
//! against the address register and alerts the first wave; a retry of the same call answers
//! the same incident; an AML fix becomes the position with its radius; the incident's events
//! reach the CAD's URL signed, and a refused delivery is retried.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aednet_api::cad_config::CadConfig;
use aednet_core::{Role, Secret};
use aednet_dispatch::cad::sign;
use aednet_geocode::{Kind, Place};
use aednet_store::artifacts::kind;
use axum::http::HeaderMap;
use common::{eventually, send, Db, TestServer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// The CAD's side: receives events; the first delivery is refused (503) to make it retry.
async fn cad_receiver() -> (
    String,
    Arc<Mutex<Vec<(HeaderMap, String)>>>,
    Arc<AtomicUsize>,
) {
    let got: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let tries = Arc::new(AtomicUsize::new(0));
    let (g, t) = (got.clone(), tries.clone());
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |h: HeaderMap, body: String| {
            let (g, t) = (g.clone(), t.clone());
            async move {
                if t.fetch_add(1, Ordering::SeqCst) == 0 {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                g.lock().await.push((h, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got, tries)
}

async fn flow(db: Db) {
    let (cad_url, got, tries) = cad_receiver().await;
    let s = TestServer::start_tuned(
        db,
        aednet_mobile_api::PublicLimits {
            per_minute: 0,
            ..Default::default()
        },
        aednet_device_gateway::GatewayConfig::default(),
        aednet_dispatch::Policy {
            min_rescuers: 1,
            min_aeds: 0,
            ..Default::default()
        },
        None,
        move |st| {
            st.cad = Arc::new(CadConfig {
                secret: Some(Secret::new(SECRET)),
                outbound_url: Some(cad_url),
                ..Default::default()
            })
        },
    )
    .await;
    // The city's address register, indexed on this node.
    let register = [("衢州市柯城区荷花街道人民路12号", 28.9712, 118.8705)]
        .iter()
        .map(|(l, lat, lon)| Place {
            label: l.to_string(),
            kind: Kind::Address,
            category: None,
            lat: *lat,
            lon: *lon,
            texts: vec![],
            line: vec![],
        })
        .collect::<Vec<_>>();
    s.store
        .put_artifact(
            kind::ADDRESS_REGISTER,
            "{}",
            &aednet_geocode::encode(&register),
        )
        .await
        .unwrap();
    s.state.geocode.start(&s.state);
    eventually("the register indexed", || async {
        s.state.geocode.indexed() == 1
    })
    .await;
    // A rescuer on duty 100 m away, for the first wave.
    let (_, r) = send(s.post(
        "/api/v1/rescuers",
        Some(Role::Admin),
        &json!({"name": "救护员",
        "certificate_no": "ZJQZ-CAD", "level": "first_aider", "cert_issued": "2024-05-01",
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
            .json(&json!({"lat": 28.9721, "lon": 118.8705})),
    )
    .await
    .0;
    assert_eq!(st, 204);

    let post = |body: String, ts: i64, sig: Option<String>| {
        let mut rb = s
            .client
            .post(s.url("/api/v1/cad/incidents"))
            .header("content-type", "application/json")
            .header("x-aednet-timestamp", ts.to_string());
        if let Some(sig) = sig {
            rb = rb.header("x-aednet-signature", sig);
        }
        rb.body(body)
    };
    let signed = |body: &str, ts: i64| sign(SECRET.as_bytes(), &ts.to_string(), body.as_bytes());
    let now = || chrono::Utc::now().timestamp();
    let call =
        json!({"call_id": "120-0001", "received_at": "2026-12-02T02:40:00Z", "nature": "09E01",
        "address": "柯城区人民路12号", "notes": "男，约60岁，倒地"})
        .to_string();
    let open = || async {
        let (st, b) = send(s.get("/api/v1/incidents", Some(Role::Dispatcher))).await;
        assert_eq!(st, 200);
        b["count"].as_i64().unwrap()
    };

    // Refused, each naming the problem; nothing created.
    let t = now();
    let (st, b) = send(post(
        call.clone(),
        t,
        Some(signed(&call, t).replace('a', "b")),
    ))
    .await;
    assert_eq!(
        (st, b["field"].as_str()),
        (401, Some("X-Aednet-Signature")),
        "{b}"
    );
    let (st, b) = send(post(call.clone(), t, None)).await;
    assert_eq!(
        (st, b["field"].as_str()),
        (401, Some("X-Aednet-Signature")),
        "{b}"
    );
    let wrong_key = sign(
        b"another-secret-0123456789abcdef0123",
        &t.to_string(),
        call.as_bytes(),
    );
    let (st, _) = send(post(call.clone(), t, Some(wrong_key))).await;
    assert_eq!(st, 401);
    let old = t - 3600;
    let (st, b) = send(post(call.clone(), old, Some(signed(&call, old)))).await;
    assert_eq!(
        (st, b["field"].as_str()),
        (401, Some("X-Aednet-Timestamp")),
        "{b}"
    );
    assert!(b["message"].as_str().unwrap().contains("stale"), "{b}");
    for (body, field) in [
        ("{not json".to_string(), "body"),
        (json!({"call_id": "x", "received_at": "2026-12-02T02:40:00Z", "address": "柯城区人民路12号"}).to_string(), "nature"),
        (json!({"call_id": 7, "received_at": "2026-12-02T02:40:00Z", "nature": "x"}).to_string(), "call_id"),
        (json!({"call_id": "x", "received_at": "yesterday", "nature": "x", "address": "a"}).to_string(), "received_at"),
        (json!({"call_id": "x", "received_at": "2026-12-02T02:40:00Z", "nature": "x"}).to_string(), "position"),
        (json!({"call_id": "x", "received_at": "2026-12-02T02:40:00Z", "nature": "x", "address": "火星基地99号"}).to_string(), "address"),
        (json!({"call_id": "x", "received_at": "2026-12-02T02:40:00Z", "nature": "x", "aml": {"lt": 95, "lg": 118.8, "rd": 10}}).to_string(), "aml.lt"),
        (json!({"call_id": "x", "received_at": "2026-12-02T02:40:00Z", "nature": "x", "position": {"lat": 28.9, "lon": 218.8}}).to_string(), "position.lon"),
        (json!({"call_id": "", "received_at": "2026-12-02T02:40:00Z", "nature": "x", "position": {"lat": 28.9, "lon": 118.8}}).to_string(), "call_id"),
        (json!({"call_id": "x", "received_at": "2026-12-02T02:40:00Z", "nature": "x", "position": {"lat": 28.9, "lon": 118.8}, "extra": 1}).to_string(), "extra"),
    ] {
        let t = now();
        let (st, b) = send(post(body.clone(), t, Some(signed(&body, t)))).await;
        assert_eq!((st, b["field"].as_str()), (422, Some(field)), "{body} -> {b}");
    }
    assert_eq!(open().await, 0, "nothing was created by refused requests");

    // The call: geocoded from the register, first wave out.
    let t = now();
    let sig = signed(&call, t);
    let (st, b) = send(post(call.clone(), t, Some(sig.clone()))).await;
    assert_eq!(st, 201, "{b}");
    let id = b["incident_id"].as_i64().unwrap();
    assert_eq!(b["position_source"], "geocoded");
    assert_eq!(b["geocoded_label"], "衢州市柯城区荷花街道人民路12号");
    assert_eq!(
        (b["lat"].as_f64(), b["lon"].as_f64()),
        (Some(28.9712), Some(118.8705))
    );
    assert!(b["offers"].as_u64().unwrap() >= 1, "{b}");
    // The same signed request again is a replay; a retry signed afresh is the same incident;
    // another body under the same call id is a conflict.
    let (st, b) = send(post(call.clone(), t, Some(sig))).await;
    assert_eq!((st, b["error"].as_str()), (409, Some("replayed")), "{b}");
    let t2 = now() + 1;
    let (st, b) = send(post(call.clone(), t2, Some(signed(&call, t2)))).await;
    assert_eq!(
        (st, b["incident_id"].as_i64(), b["duplicate"].as_bool()),
        (200, Some(id), Some(true)),
        "{b}"
    );
    let changed = call.replace("倒地", "意识丧失");
    let (st, b) = send(post(changed.clone(), t2, Some(signed(&changed, t2)))).await;
    assert_eq!((st, b["field"].as_str()), (409, Some("call_id")), "{b}");
    assert_eq!(open().await, 1);

    // The caller's handset position (AML SMS text) with its radius.
    let aml =
        json!({"call_id": "120-0002", "received_at": "2026-12-02T02:41:00Z", "nature": "09E01",
        "address": "somewhere the caller is not",
        "aml": "A\"ML=1;lt=+28.97300;lg=+118.87100;rd=25;top=20261202024030;lc=68;pm=G"})
        .to_string();
    let t = now();
    let (st, b) = send(post(aml.clone(), t, Some(signed(&aml, t)))).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(
        (b["position_source"].as_str(), b["accuracy_m"].as_f64()),
        (Some("aml"), Some(25.0))
    );
    let aml_id = b["incident_id"].as_i64().unwrap();
    let (_, inc) = send(s.get(
        &format!("/api/v1/incidents/{aml_id}"),
        Some(Role::Dispatcher),
    ))
    .await;
    assert_eq!(inc["intake"]["accuracy_m"], 25.0, "{inc}");
    assert_eq!(inc["intake"]["call_id"], "120-0002");
    assert_eq!(
        (inc["lat"].as_f64(), inc["lon"].as_f64()),
        (Some(28.973), Some(118.871))
    );

    // Stand-down from the console: the CAD hears it.
    let (st, _) = send(s.post(
        &format!("/api/v1/incidents/{id}/cancel"),
        Some(Role::Dispatcher),
        &json!({}),
    ))
    .await;
    assert_eq!(st, 200);
    eventually(
        "the CAD got created, offer_out and cancelled for the first call",
        || async {
            let g = got.lock().await;
            let evs: Vec<String> = g
                .iter()
                .filter_map(|(_, b)| serde_json::from_str::<Value>(b).ok())
                .filter(|v| v["call_id"] == "120-0001")
                .map(|v| v["event"].as_str().unwrap_or("").to_string())
                .collect();
            ["created", "offer_out", "cancelled"]
                .iter()
                .all(|e| evs.iter().any(|x| x == e))
        },
    )
    .await;
    assert!(
        tries.load(Ordering::SeqCst) > got.lock().await.len(),
        "the refused delivery was retried"
    );
    for (h, body) in got.lock().await.iter() {
        let ts = h["x-aednet-timestamp"].to_str().unwrap();
        assert_eq!(
            h["x-aednet-signature"].to_str().unwrap(),
            sign(SECRET.as_bytes(), ts, body.as_bytes()),
            "signed like inbound requests"
        );
        assert!(
            !body.contains("rescuer") && !body.contains("position"),
            "no rescuer data: {body}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn cad_link_on_sqlite() {
    flow(Db::Sqlite).await;
}

#[tokio::test]
async fn cad_link_on_postgres() {
    flow(Db::Postgres).await;
}
