//! The device gateway over real sockets on SQLite and PostgreSQL: authentication before the
//! upgrade, durable idempotent acks, readiness derived from telemetry reaching the store, the
//! nearest-AED answers and the maintenance API, bad frames (error frames, 1008, 1009) that do
//! not disturb other devices, and the watchdog marking a silent device offline.

mod common;

use std::time::{Duration, Instant};

use aednet_core::Role;
use common::{eventually, send, Db, TestServer};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(s: &TestServer, token: Option<&str>) -> Result<Ws, u16> {
    let url = s.base.replace("http://", "ws://") + "/ws/device";
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

async fn device_token(s: &TestServer, aed_id: i64) -> String {
    let (secret, new) = aednet_api::auth::new_token("cabinet", Role::Device, Some(aed_id));
    s.store.create_token(&new).await.unwrap();
    secret
}

/// Sends a text frame and returns the server's next text frame as JSON.
async fn call(ws: &mut Ws, text: String) -> Value {
    ws.send(Message::Text(text.into())).await.unwrap();
    next_json(ws).await
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

fn msg(seq: u64, body: Value) -> String {
    let mut m = json!({"v": 1, "seq": seq, "ts": "2026-11-24T08:00:00Z"});
    m.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    m.to_string()
}

async fn status(s: &TestServer, id: i64) -> String {
    let (_, a) = send(s.get(&format!("/api/v1/aeds/{id}"), Some(Role::Maintenance))).await;
    a["readiness_status"]
        .as_str()
        .or(a["readiness"]["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn nearest_ids(s: &TestServer) -> Vec<i64> {
    let (_, b) = send(s.get("/api/v1/aeds/nearest?lat=28.97&lon=118.87&k=10", None)).await;
    b["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

async fn telemetry(db: Db) {
    let s = TestServer::start_full(
        db,
        aednet_mobile_api::PublicLimits {
            per_minute: 0,
            ..Default::default()
        },
        aednet_device_gateway::GatewayConfig {
            heartbeat_interval_s: 0.5,
            offline_after_intervals: 3.0,
            max_message_bytes: 2048,
            ..Default::default()
        },
    )
    .await;
    let mk = |lat: f64, name: &str| json!({"lat": lat, "lon": 118.87, "name": name, "access": "yes", "opening_hours": "24/7", "pads_expiry": "2026-12-10"});
    let (_, a) = send(s.post("/api/v1/aeds", Some(Role::Admin), &mk(28.9701, "站台柜"))).await;
    let (_, b) = send(s.post("/api/v1/aeds", Some(Role::Admin), &mk(28.9705, "候车室柜"))).await;
    let (a, b) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    let (ta, tb) = (device_token(&s, a).await, device_token(&s, b).await);

    // Refused before the upgrade.
    assert_eq!(connect(&s, None).await.err(), Some(401));
    assert_eq!(connect(&s, Some("aed_not-a-token")).await.err(), Some(401));
    assert_eq!(
        connect(&s, Some(&s.tokens[&Role::Admin])).await.err(),
        Some(403)
    );
    let (revoked, new) = aednet_api::auth::new_token("old", Role::Device, Some(a));
    let rec = s.store.create_token(&new).await.unwrap();
    s.store.revoke_token(rec.id).await.unwrap();
    assert_eq!(connect(&s, Some(&revoked)).await.err(), Some(401));

    let mut wa = connect(&s, Some(&ta)).await.unwrap();
    let mut wb = connect(&s, Some(&tb)).await.unwrap();
    // The maintenance board's live feed.
    let feed_url = s.base.replace("http://", "ws://") + "/ws/maintenance";
    let mut req = feed_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", s.tokens[&Role::Maintenance])
            .parse()
            .unwrap(),
    );
    let (mut feed, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut anon = feed_url.as_str().into_client_request().unwrap();
    anon.headers_mut().insert(
        "authorization",
        format!("Bearer {}", s.tokens[&Role::Dispatcher])
            .parse()
            .unwrap(),
    );
    assert!(
        tokio_tungstenite::connect_async(anon).await.is_err(),
        "the feed is for maintenance"
    );
    // Ready after a passing self-test; acked by sequence number.
    assert_eq!(
        call(&mut wa, msg(1, json!({"type": "self_test", "ok": true}))).await,
        json!({"type": "ack", "seq": 1})
    );
    assert_eq!(
        call(&mut wb, msg(1, json!({"type": "self_test", "ok": true}))).await["type"],
        "ack"
    );
    assert_eq!(status(&s, a).await, "ready");
    // A fault: stored before the ack, gone from callers' answers.
    assert_eq!(
        call(
            &mut wa,
            msg(
                2,
                json!({"type": "self_test", "ok": false, "fault_codes": ["E12"]})
            )
        )
        .await["seq"],
        2
    );
    assert_eq!(status(&s, a).await, "fault");
    let mut seen = Vec::new();
    while !seen.contains(&json!({"type": "readiness", "aed_id": a, "status": "fault"})) {
        seen.push(next_json(&mut feed).await);
    }
    assert!(
        seen.contains(&json!({"type": "readiness", "aed_id": a, "status": "ready"})),
        "{seen:?}"
    );
    eventually("the faulty AED leaves nearest answers", || async {
        nearest_ids(&s).await == vec![b]
    })
    .await;
    // A resend of an acked message is acked again and changes nothing.
    assert_eq!(
        call(
            &mut wa,
            msg(
                2,
                json!({"type": "self_test", "ok": false, "fault_codes": ["E12"]})
            )
        )
        .await["seq"],
        2
    );
    let (_, h) = send(s.get(
        &format!("/api/v1/aeds/{a}/readiness/history"),
        Some(Role::Maintenance),
    ))
    .await;
    let hist: Vec<&str> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(hist, vec!["fault", "ready"], "{h}");
    assert_eq!(h["items"][0]["reason"], "self-test fault E12");
    assert_eq!(s.store.device_event_seqs(a).await.unwrap(), vec![1, 2]);

    // Maintenance: the fault, and pads expiring within 30 days for both.
    let (st, m) = send(s.get(
        "/api/v1/maintenance/devices?expiring_days=30",
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!(st, 200, "{m}");
    let fa = m["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == a)
        .unwrap();
    assert_eq!(fa["attention"], json!(["fault", "pads_expiring"]));
    let (st, m) = send(s.get(
        "/api/v1/maintenance/devices?status=fault&expiring_days=0",
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!((st, m["count"].as_u64()), (200, Some(1)));
    assert_eq!(
        send(s.get("/api/v1/maintenance/devices", None)).await.0,
        401
    );
    assert_eq!(
        send(s.get("/api/v1/maintenance/devices", Some(Role::Dispatcher)))
            .await
            .0,
        403
    );
    let (st, e) = send(s.get(
        "/api/v1/maintenance/devices?status=broken",
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("status")));

    // Bad frames: error frames naming the problem, no ack; device b is not disturbed.
    let e = call(&mut wa, "{not json".into()).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("malformed"))
    );
    let e = call(&mut wa, msg(3, json!({"type": "teleport"}))).await;
    assert_eq!(
        (e["code"].as_str(), e["seq"].as_u64()),
        (Some("unknown_type"), Some(3))
    );
    let e = call(
        &mut wa,
        r#"{"v":9,"seq":4,"ts":"2026-11-24T08:00:00Z","type":"heartbeat"}"#.into(),
    )
    .await;
    assert_eq!(e["code"], "unsupported_version");
    assert_eq!(
        call(
            &mut wb,
            msg(2, json!({"type": "heartbeat", "battery_pct": 90}))
        )
        .await["type"],
        "ack"
    );
    let _ = call(&mut wa, "[]".into()).await;
    // The fifth bad message in a row: its error frame, then close 1008 with a reason.
    assert_eq!(
        call(&mut wa, "still not json".into()).await["code"],
        "malformed"
    );
    let closed = next_json(&mut wa).await;
    assert_eq!(
        closed["closed"],
        json!([1008, "too many bad messages"]),
        "{closed}"
    );
    assert_eq!(status(&s, a).await, "fault", "bad frames changed nothing");
    // Oversized: close 1009.
    let mut wa = connect(&s, Some(&ta)).await.unwrap();
    let big = msg(5, json!({"type": "firmware", "version": "x".repeat(4000)}));
    wa.send(Message::Text(big.into())).await.unwrap();
    let closed = next_json(&mut wa).await;
    assert_eq!(closed["closed"][0], u16::from(CloseCode::Size), "{closed}");
    assert_eq!(
        call(&mut wb, msg(3, json!({"type": "heartbeat"}))).await["type"],
        "ack"
    );

    // The watchdog: device a is silent (its socket is gone) and goes offline; b keeps beating.
    let started = Instant::now();
    let beat = async {
        for seq in 4..60u64 {
            if status(&s, a).await == "offline" {
                break;
            }
            assert_eq!(
                call(&mut wb, msg(seq, json!({"type": "heartbeat"}))).await["type"],
                "ack"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    beat.await;
    assert_eq!(status(&s, a).await, "offline");
    println!(
        "offline after {:?} of silence (deadline 1.5 s)",
        started.elapsed()
    );
    assert_eq!(status(&s, b).await, "ready");
    // Back: a heartbeat clears offline; the fault is still there until a passing self-test.
    let mut wa = connect(&s, Some(&ta)).await.unwrap();
    assert_eq!(
        call(&mut wa, msg(6, json!({"type": "heartbeat"}))).await["type"],
        "ack"
    );
    assert_eq!(status(&s, a).await, "fault");
    // The door opens and the AED is taken out: in use, "may have been used".
    call(&mut wb, msg(100, json!({"type": "door", "open": true}))).await;
    assert_eq!(status(&s, b).await, "cabinet_open");
    call(
        &mut wb,
        msg(101, json!({"type": "aed_presence", "present": false})),
    )
    .await;
    assert_eq!(status(&s, b).await, "in_use");
    let (_, hb) = send(s.get(
        &format!("/api/v1/aeds/{b}/readiness/history?limit=1"),
        Some(Role::Admin),
    ))
    .await;
    assert_eq!(
        hb["items"][0]["reason"],
        "may have been used: AED removed from cabinet"
    );
    eventually("nobody is sent to a used AED", || async {
        nearest_ids(&s).await.is_empty()
    })
    .await;

    // A guardian's check of a cabinet without telemetry; then a work order to its end.
    let (_, c) = send(s.post("/api/v1/aeds", Some(Role::Admin), &mk(28.9710, "无联网柜"))).await;
    let c = c["id"].as_i64().unwrap();
    let (st, r) = send(s.post(
        &format!("/api/v1/aeds/{c}/checks"),
        Some(Role::Maintenance),
        &json!({"ok": false, "note": "电池指示灯红色"}),
    ))
    .await;
    assert_eq!((st, r["status"].as_str()), (201, Some("fault")), "{r}");
    assert_eq!(status(&s, c).await, "fault");
    let (_, h) = send(s.get(
        &format!("/api/v1/aeds/{c}/readiness/history"),
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!(h["items"][0]["source"], "guardian");
    assert!(h["items"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("电池指示灯红色"));
    assert_eq!(
        send(s.post(
            &format!("/api/v1/aeds/{c}/checks"),
            None,
            &json!({"ok": true})
        ))
        .await
        .0,
        401
    );
    let (st, e) = send(s.post(
        &format!("/api/v1/aeds/{c}/checks"),
        Some(Role::Maintenance),
        &json!({"ok": "yes"}),
    ))
    .await;
    assert_eq!((st, e["error"].as_str()), (422, Some("invalid")), "{e}");
    let (st, w) = send(s.post(
        "/api/v1/work-orders",
        Some(Role::Maintenance),
        &json!({"aed_id": c, "title": "更换电池"}),
    ))
    .await;
    assert_eq!((st, w["status"].as_str()), (201, Some("open")), "{w}");
    let wid = w["id"].as_i64().unwrap();
    let (st, e) = send(s.post(
        "/api/v1/work-orders",
        Some(Role::Maintenance),
        &json!({"aed_id": c}),
    ))
    .await;
    assert_eq!((st, e["field"].as_str()), (422, Some("title")));
    let (st, e) = send(s.post(
        "/api/v1/work-orders",
        Some(Role::Maintenance),
        &json!({"aed_id": 999_999, "title": "x"}),
    ))
    .await;
    assert_eq!((st, e["field"].as_str()), (422, Some("aed_id")));
    let (_, w) = send(s.post(
        &format!("/api/v1/work-orders/{wid}/assign"),
        Some(Role::Maintenance),
        &json!({"assignee": "李师傅"}),
    ))
    .await;
    assert_eq!(w["status"], "assigned");
    let (_, w) = send(s.post(
        &format!("/api/v1/work-orders/{wid}/notes"),
        Some(Role::Maintenance),
        &json!({"note": "已到现场"}),
    ))
    .await;
    assert_eq!(w["notes"][0]["note"], "已到现场");
    let (_, list) = send(s.get(
        &format!("/api/v1/work-orders?aed_id={c}"),
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!(list["count"], 1);
    let (_, w) = send(s.post(
        &format!("/api/v1/work-orders/{wid}/close"),
        Some(Role::Maintenance),
        &json!({"resolution": "已更换电池"}),
    ))
    .await;
    assert_eq!(w["status"], "closed");
    let (st, _) = send(s.post(
        &format!("/api/v1/work-orders/{wid}/assign"),
        Some(Role::Maintenance),
        &json!({"assignee": "王"}),
    ))
    .await;
    assert_eq!(st, 409, "a closed order stays closed");
    let (st, _) = send(s.post(
        &format!("/api/v1/aeds/{c}/checks"),
        Some(Role::Maintenance),
        &json!({"ok": true}),
    ))
    .await;
    assert_eq!(st, 201);
    assert_eq!(status(&s, c).await, "ready");
    let (_, list) = send(s.get("/api/v1/work-orders", Some(Role::Maintenance))).await;
    assert_eq!(list["count"], 0);
    assert_eq!(
        send(s.get("/api/v1/work-orders", Some(Role::Dispatcher)))
            .await
            .0,
        403
    );

    let (_, doc) = send(s.get("/api/openapi.json", None)).await;
    assert!(doc["paths"]["/api/v1/work-orders/{id}/{action}"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/maintenance/devices"]["get"].is_object());

    // Metrics.
    let text = s
        .client
        .get(&s.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "aednet_device_connections",
        "aednet_device_messages_total",
        "aednet_device_ack_seconds",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_on_sqlite() {
    telemetry(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_on_postgres() {
    telemetry(Db::Postgres).await;
}

/// The same pipeline from Mosquitto (127.0.0.1:1883 on every machine): a fault published to the
/// device's topic is stored, acked on the ack topic, and changes readiness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_over_mqtt() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let prefix = format!("aednet-test-{}", uuid::Uuid::new_v4().simple());
    let s = TestServer::start_full(
        Db::Sqlite,
        aednet_mobile_api::PublicLimits::default(),
        aednet_device_gateway::GatewayConfig {
            mqtt_url: Some("mqtt://127.0.0.1:1883".into()),
            mqtt_prefix: prefix.clone(),
            mqtt_client_id: format!("{prefix}-server"),
            ..Default::default()
        },
    )
    .await;
    let (_, a) = send(s.post(
        "/api/v1/aeds",
        Some(Role::Admin),
        &json!({"lat": 28.97, "lon": 118.87, "access": "yes"}),
    ))
    .await;
    let id = a["id"].as_i64().unwrap();
    let (client, mut events) = AsyncClient::new(
        MqttOptions::new(format!("{prefix}-device"), "127.0.0.1", 1883),
        64,
    );
    client
        .subscribe(format!("{prefix}/devices/{id}/ack"), QoS::AtLeastOnce)
        .await
        .unwrap();
    let topic = format!("{prefix}/devices/{id}/telemetry");
    let mut replies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut published = false;
    while replies.len() < 2 {
        assert!(Instant::now() < deadline, "no MQTT acks; got {replies:?}");
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) if !published => {
                published = true;
                client
                    .publish(
                        &topic,
                        QoS::AtLeastOnce,
                        false,
                        msg(
                            1,
                            json!({"type": "self_test", "ok": false, "fault_codes": ["E7"]}),
                        ),
                    )
                    .await
                    .unwrap();
                client
                    .publish(&topic, QoS::AtLeastOnce, false, "{oops")
                    .await
                    .unwrap();
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                replies.push(serde_json::from_slice::<Value>(&p.payload).unwrap());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("MQTT client: {e} — is Mosquitto running on 127.0.0.1:1883?"),
            Err(_) => {}
        }
    }
    assert_eq!(replies[0], json!({"type": "ack", "seq": 1}));
    assert_eq!(replies[1]["code"], "malformed");
    assert_eq!(status(&s, id).await, "fault");
    assert_eq!(s.store.device_event_seqs(id).await.unwrap(), vec![1]);
    s.stop().await;
}

/// One gauge value from the Prometheus text.
async fn gauge(s: &TestServer, name_and_labels: &str) -> i64 {
    let text = s
        .client
        .get(&s.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

/// A fault found on inspection holds against telemetry (until cleared or its `until`), a newer
/// connection of a device closes the older one, reported pads and battery dates reach the AED
/// and the expiring list, and the status gauge moves with each change.
async fn overrides_replacement_and_dates(db: Db) {
    let s = TestServer::start_full(
        db,
        aednet_mobile_api::PublicLimits {
            per_minute: 0,
            ..Default::default()
        },
        aednet_device_gateway::GatewayConfig {
            heartbeat_interval_s: 30.0,
            ..Default::default()
        },
    )
    .await;
    let (_, a) = send(s.post(
        "/api/v1/aeds",
        Some(Role::Admin),
        &json!({"lat": 28.9701, "lon": 118.87, "name": "体育馆柜", "access": "yes", "opening_hours": "24/7"}),
    ))
    .await;
    let a = a["id"].as_i64().unwrap();
    let ta = device_token(&s, a).await;
    let mut wa = connect(&s, Some(&ta)).await.unwrap();
    assert_eq!(
        call(&mut wa, msg(1, json!({"type": "self_test", "ok": true}))).await["type"],
        "ack"
    );
    assert_eq!(status(&s, a).await, "ready");
    // Moved at the change, not at the next 10-second recount.
    assert_eq!(
        gauge(&s, r#"aednet_aeds_by_status{status="ready"} "#).await,
        1
    );
    assert_eq!(
        gauge(&s, r#"aednet_aeds_by_status{status="fault"} "#).await,
        0
    );

    // A second connection of the same device closes the first with 4409 and a reason.
    let mut wa2 = connect(&s, Some(&ta)).await.unwrap();
    assert_eq!(
        next_json(&mut wa).await["closed"],
        json!([4409, "replaced by a newer connection"])
    );
    assert_eq!(
        call(&mut wa2, msg(2, json!({"type": "heartbeat"}))).await["type"],
        "ack"
    );

    // Inspection finds the pads missing: fault, held against the device's "all well".
    let (st, r) = send(s.post(
        &format!("/api/v1/aeds/{a}/checks"),
        Some(Role::Maintenance),
        &json!({"ok": false, "note": "电极片缺失 pads missing"}),
    ))
    .await;
    assert_eq!((st, r["status"].as_str()), (201, Some("fault")), "{r}");
    assert_eq!(r["override"]["until"], Value::Null);
    assert_eq!(
        gauge(&s, r#"aednet_aeds_by_status{status="fault"} "#).await,
        1
    );
    assert_eq!(
        gauge(&s, r#"aednet_aeds_by_status{status="ready"} "#).await,
        0
    );
    for (seq, body) in [
        (3, json!({"type": "heartbeat", "battery_pct": 95})),
        (4, json!({"type": "self_test", "ok": true})),
    ] {
        assert_eq!(call(&mut wa2, msg(seq, body)).await["type"], "ack");
    }
    assert_eq!(
        status(&s, a).await,
        "fault",
        "telemetry did not undo the check"
    );
    let (_, m) = send(s.get(
        "/api/v1/maintenance/devices?status=fault",
        Some(Role::Maintenance),
    ))
    .await;
    let it = &m["items"][0];
    assert_eq!(it["id"], a, "{m}");
    assert!(
        it["reason"].as_str().unwrap().contains("pads missing"),
        "{it}"
    );
    assert_eq!(it["override"]["status"], "fault");
    assert!(it["override"]["since"].is_string());
    // Telemetry may still make it worse: the AED taken out is in use.
    call(
        &mut wa2,
        msg(5, json!({"type": "aed_presence", "present": false})),
    )
    .await;
    assert_eq!(status(&s, a).await, "in_use");
    call(
        &mut wa2,
        msg(6, json!({"type": "aed_presence", "present": true})),
    )
    .await;
    assert_eq!(status(&s, a).await, "fault", "back to the held fault");
    // Cleared: telemetry's word again; a second clear finds nothing.
    let (st, r) = send(s.delete(
        &format!("/api/v1/aeds/{a}/readiness/override"),
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!((st, r["status"].as_str()), (200, Some("ready")), "{r}");
    assert_eq!(status(&s, a).await, "ready");
    let (st, _) = send(s.delete(
        &format!("/api/v1/aeds/{a}/readiness/override"),
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!(st, 404);
    assert_eq!(
        send(s.delete(
            &format!("/api/v1/aeds/{a}/readiness/override"),
            Some(Role::Dispatcher),
        ))
        .await
        .0,
        403
    );
    // An override with an expiry ends by itself (the watchdog's timer, no message needed).
    let until = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let (st, r) = send(s.post(
        &format!("/api/v1/aeds/{a}/checks"),
        Some(Role::Maintenance),
        &json!({"ok": false, "note": "cabinet glass broken", "until": until}),
    ))
    .await;
    assert_eq!((st, r["status"].as_str()), (201, Some("fault")), "{r}");
    call(&mut wa2, msg(7, json!({"type": "heartbeat"}))).await;
    assert_eq!(status(&s, a).await, "fault");
    eventually("the override expires", || async {
        status(&s, a).await == "ready"
    })
    .await;
    let (_, h) = send(s.get(
        &format!("/api/v1/aeds/{a}/readiness/history?limit=1"),
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!(h["items"][0]["source"], "override_expired", "{h}");
    let (st, e) = send(s.post(
        &format!("/api/v1/aeds/{a}/checks"),
        Some(Role::Maintenance),
        &json!({"ok": false, "until": "2001-01-01T00:00:00Z"}),
    ))
    .await;
    assert_eq!((st, e["field"].as_str()), (422, Some("until")), "{e}");

    // Dates reported by the device reach the AED and the expiring list.
    let soon = (chrono::Utc::now() + chrono::Duration::days(10)).date_naive();
    let later = (chrono::Utc::now() + chrono::Duration::days(400)).date_naive();
    call(
        &mut wa2,
        msg(8, json!({"type": "pads", "state": "ok", "expiry": soon})),
    )
    .await;
    call(
        &mut wa2,
        msg(
            9,
            json!({"type": "battery", "battery_pct": 80, "expiry": later}),
        ),
    )
    .await;
    let (_, aed) = send(s.get(&format!("/api/v1/aeds/{a}"), Some(Role::Maintenance))).await;
    assert_eq!(aed["pads_expiry"], json!(soon), "{aed}");
    assert_eq!(aed["battery_expiry"], json!(later), "{aed}");
    let (_, m) = send(s.get(
        "/api/v1/maintenance/devices?status=fault&expiring_days=30",
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!(m["items"][0]["attention"], json!(["pads_expiring"]), "{m}");
    let (_, m) = send(s.get(
        "/api/v1/maintenance/devices?status=fault&expiring_days=5",
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!(m["count"], 0, "{m}");
    let (_, m) = send(s.get(
        "/api/v1/maintenance/devices?expiring_days=500&limit=1",
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!(
        m["items"][0]["attention"],
        json!(["pads_expiring", "battery_expiring"]),
        "{m}"
    );
    let (st, e) = send(s.get(
        "/api/v1/maintenance/devices?limit=0",
        Some(Role::Maintenance),
    ))
    .await;
    assert_eq!((st, e["field"].as_str()), (422, Some("limit")));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_replacement_and_dates_on_sqlite() {
    overrides_replacement_and_dates(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_replacement_and_dates_on_postgres() {
    overrides_replacement_and_dates(Db::Postgres).await;
}
