//! The responder app's server side, end to end over real HTTP on SQLite and PostgreSQL:
//!
//! - enrolment by QR code: an admin issues a rescuer's token as a QR code; the test reads the
//!   served SVG back as pixels, decodes the QR code with `rqrr` and signs in with the link in it;
//! - the rescuer's own incident history (`GET /api/v1/me/incidents`): only their own offers,
//!   outcomes only to those who accepted, nobody else's data or positions, paged;
//! - retention of delivery records: kept while recent, deleted once the incident closed longer
//!   ago than `delivery_retention_days`, and with the rescuer; counted in the metrics.

mod common;

use aednet_core::Role;
use aednet_store::{Channel, DeliveryRecord, DeliveryState, MessageKey, MessageKind};
use common::{send, Db, TestServer};
use serde_json::{json, Value};

// ------------------------------------------------------------------------------------------
// Enrolment by QR code.

/// The dark modules of the SVG that `qrcode` draws (`<path d="M{x} {y}h{w}v{h}H{x}V{y}…">` on
/// a white `<rect>`), as a greyscale raster: what a camera would see, without a camera.
fn rasterize(svg: &str) -> (usize, usize, Vec<u8>) {
    let attr = |name: &str| -> usize {
        let start = svg.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
        svg[start..].split('"').next().unwrap().parse().expect(name)
    };
    let (w, h) = (attr("width"), attr("height"));
    let mut px = vec![255u8; w * h];
    let d_start = svg.find(" d=\"").expect("a path") + 4;
    let d = svg[d_start..].split('"').next().unwrap();
    for rect in d.split('M').filter(|s| !s.is_empty()) {
        // "x y h w v h H x V y"
        let nums: Vec<usize> = rect
            .split(|c: char| c == ' ' || c.is_ascii_alphabetic())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("a number"))
            .collect();
        let (x, y, rw, rh) = (nums[0], nums[1], nums[2], nums[3]);
        for yy in y..y + rh {
            for xx in x..x + rw {
                px[yy * w + xx] = 0;
            }
        }
    }
    (w, h, px)
}

fn decode_qr(svg: &str) -> String {
    let (w, h, px) = rasterize(svg);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| px[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the picture");
    grids[0].decode().expect("a readable QR code").1
}

async fn new_rescuer(s: &TestServer, n: &str) -> i64 {
    let (st, r) = send(s.post(
        "/api/v1/rescuers",
        Some(Role::Admin),
        &json!({"name": format!("救护员{n}"), "certificate_no": format!("ZJQZ-R{n}"), "level": "first_aider",
            "cert_issued": "2024-05-01", "cert_expires": "2030-04-30", "on_duty": true, "location_consent": true}),
    ))
    .await;
    assert_eq!(st, 201, "{r}");
    r["id"].as_i64().unwrap()
}

async fn me(s: &TestServer, token: &str) -> (u16, Value) {
    send(s.client.get(s.url("/api/v1/me")).bearer_auth(token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolment_qr_code_signs_the_phone_in() {
    let s = TestServer::start(Db::Sqlite).await;
    let rid = new_rescuer(&s, "Q").await;
    let path = format!("/api/v1/rescuers/{rid}/enrolment");
    let res = s
        .post(&path, Some(Role::Admin), &json!({"base_url": s.base}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(
        res.headers()["cache-control"],
        "no-store",
        "a secret is never cached"
    );
    let e: Value = res.json().await.unwrap();
    let token = e["token"].as_str().unwrap();
    let url = e["url"].as_str().unwrap();
    assert_eq!(url, format!("{}/responder#enrol={token}", s.base));
    // The picture holds the link: decoded from its pixels, not read from the JSON.
    assert_eq!(decode_qr(e["qr_svg"].as_str().unwrap()), url);
    // What the app does with the link: the token after `enrol=` signs the phone in as the
    // rescuer (GET /api/v1/me, then the rescuer's own data).
    let from_qr = decode_qr(e["qr_svg"].as_str().unwrap());
    let enrol = from_qr.split_once("#enrol=").unwrap().1;
    let (st, who) = me(&s, enrol).await;
    assert_eq!(st, 200);
    assert_eq!(
        (who["role"].as_str(), who["subject_id"].as_i64()),
        (Some("rescuer"), Some(rid))
    );
    let (st, mine) = send(s.client.get(s.url("/api/v1/me/rescuer")).bearer_auth(enrol)).await;
    assert_eq!((st, mine["id"].as_i64()), (200, Some(rid)), "{mine}");
    // The token is an ordinary one: listed (without the secret) and revocable.
    let (_, list) = send(s.get("/api/v1/tokens", Some(Role::Admin))).await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == e["token_id"])
        .expect("listed");
    assert_eq!(listed["subject_id"].as_i64(), Some(rid));
    assert!(
        !list.to_string().contains(token),
        "the secret is shown once"
    );
    // Without base_url: the origin the request came to.
    let (st, e2) = send(s.post(&path, Some(Role::Admin), &json!({}))).await;
    assert_eq!(st, 201, "{e2}");
    assert!(
        e2["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/responder#enrol=aed_", s.base)),
        "{e2}"
    );
    assert_ne!(e2["token"], e["token"]);
    // Revoking one phone's token leaves the other signed in.
    let st = send(s.delete(
        &format!("/api/v1/tokens/{}", e["token_id"]),
        Some(Role::Admin),
    ))
    .await
    .0;
    assert_eq!(st, 204);
    assert_eq!(me(&s, enrol).await.0, 401);
    assert_eq!(me(&s, e2["token"].as_str().unwrap()).await.0, 200);
    // Only admins; a rescuer that does not exist; a bad origin names the field.
    for role in [Role::Dispatcher, Role::Rescuer] {
        assert_eq!(send(s.post(&path, Some(role), &json!({}))).await.0, 403);
    }
    assert_eq!(send(s.post(&path, None, &json!({}))).await.0, 401);
    let (st, _) = send(s.post(
        &format!("/api/v1/rescuers/{}/enrolment", rid + 1000),
        Some(Role::Admin),
        &json!({"base_url": s.base}),
    ))
    .await;
    assert_eq!(st, 404);
    let (st, err) = send(s.post(
        &path,
        Some(Role::Admin),
        &json!({"base_url": "https://aed.example.org/evil?x=1"}),
    ))
    .await;
    assert_eq!(
        (st, err["field"].as_str()),
        (422, Some("base_url")),
        "{err}"
    );
    // The console page is served and the API is documented.
    let page = s.client.get(s.url("/rescuers")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let (_, doc) = send(s.get("/api/openapi.json", None)).await;
    assert!(doc["paths"]["/api/v1/rescuers/{id}/enrolment"]["post"].is_object());
    s.stop().await;
}

// ------------------------------------------------------------------------------------------
// The rescuer's own history.

struct Phone {
    id: i64,
    token: String,
}

async fn phone_at(s: &TestServer, n: &str, lat: f64, lon: f64) -> Phone {
    let id = new_rescuer(s, n).await;
    let (token, new) = aednet_api::auth::new_token("phone", Role::Rescuer, Some(id));
    s.store.create_token(&new).await.unwrap();
    let st = send(
        s.client
            .post(s.url("/api/v1/me/location"))
            .bearer_auth(&token)
            .json(&json!({"lat": lat, "lon": lon})),
    )
    .await
    .0;
    assert_eq!(st, 204);
    Phone { id, token }
}

async fn history(s: &TestServer, p: &Phone, query: &str) -> (u16, Value) {
    send(
        s.client
            .get(s.url(&format!("/api/v1/me/incidents{query}")))
            .bearer_auth(&p.token),
    )
    .await
}

async fn answer(s: &TestServer, p: &Phone, inc: &Value, what: &str) {
    let id = inc["id"].as_i64().unwrap();
    let offer = inc["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["rescuer_id"].as_i64() == Some(p.id))
        .expect("an offer for this phone")["id"]
        .as_i64()
        .unwrap();
    let st = send(
        s.client
            .post(s.url(&format!("/api/v1/me/offers/{id}/{offer}/{what}")))
            .bearer_auth(&p.token),
    )
    .await
    .0;
    assert_eq!(st, 200, "{what}");
}

fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

async fn own_history(db: Db) {
    let policy = aednet_dispatch::Policy {
        cpr_direct: 2,
        max_fetchers: 0,
        max_alerts: 2,
        min_rescuers: 1,
        min_aeds: 0,
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
    let a = phone_at(&s, "A", 28.9705, 118.8700).await;
    let b = phone_at(&s, "B", 28.9710, 118.8704).await;
    // Far away: never offered anything.
    let c = phone_at(&s, "C", 29.3000, 119.3000).await;
    let create = || async {
        let (st, inc) = send(s.post(
            "/api/v1/incidents",
            Some(Role::Dispatcher),
            &json!({"lat": 28.9708, "lon": 118.8702, "address": "衢州站广场",
                "notes": "65-year-old man, diabetic, collapsed by the ticket hall"}),
        ))
        .await;
        assert_eq!(st, 201, "{inc}");
        assert_eq!(inc["offers"].as_array().unwrap().len(), 2, "{inc}");
        inc
    };
    // 1: a accepts and arrives, b declines; closed with the outcome.
    let first = create().await;
    answer(&s, &a, &first, "accept").await;
    answer(&s, &b, &first, "decline").await;
    answer(&s, &a, &first, "arrived").await;
    let id1 = first["id"].as_i64().unwrap();
    let (st, _) = send(s.post(
        &format!("/api/v1/incidents/{id1}/close"),
        Some(Role::Dispatcher),
        &json!({"aed_applied": true, "shock_delivered": true, "handed_to_ems": true}),
    ))
    .await;
    assert_eq!(st, 200);
    // 2: cancelled before anyone answered.
    let second = create().await;
    let id2 = second["id"].as_i64().unwrap();
    assert_eq!(
        send(s.post(
            &format!("/api/v1/incidents/{id2}/cancel"),
            Some(Role::Dispatcher),
            &json!({})
        ))
        .await
        .0,
        200
    );
    // 3: still open, offered to both.
    let third = create().await;
    let id3 = third["id"].as_i64().unwrap();

    let (st, h) = history(&s, &a, "").await;
    assert_eq!(st, 200, "{h}");
    let items = h["items"].as_array().unwrap();
    let ids: Vec<i64> = items
        .iter()
        .map(|i| i["incident_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![id3, id2, id1], "newest first");
    assert!(h["next_cursor"].is_null());
    // Only a's own offer in each, with what became of it and when.
    let a_offer = |inc: &Value| {
        inc["offers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["rescuer_id"].as_i64() == Some(a.id))
            .unwrap()["id"]
            .as_i64()
    };
    for (item, inc) in items.iter().zip([&third, &second, &first]) {
        let offers = item["offers"].as_array().unwrap();
        assert_eq!(offers.len(), 1, "only my offer: {item}");
        assert_eq!(offers[0]["offer_id"].as_i64(), a_offer(inc));
        assert_eq!(offers[0]["role"], "cpr");
        assert_eq!(item["address"], "衢州站广场");
    }
    let done = &items[2];
    assert_eq!(done["state"], "closed");
    assert_eq!(done["offers"][0]["state"], "arrived");
    assert!(done["offers"][0]["accepted_at"].is_string());
    assert!(done["offers"][0]["arrived_at"].is_string());
    assert_eq!(
        done["outcome"]["shock_delivered"], true,
        "a helper learns the outcome"
    );
    assert_eq!(items[1]["state"], "cancelled");
    assert_eq!(items[1]["offers"][0]["state"], "stood_down");
    assert!(items[1]["offers"][0]["ended_at"].is_string());
    assert_eq!(items[0]["offers"][0]["state"], "offered");
    // Nothing about anyone else, no positions, no dispatcher notes about the patient.
    let mut all = Vec::new();
    keys(&h, &mut all);
    for k in [
        "rescuer_id",
        "position",
        "lat",
        "lon",
        "notes",
        "audit",
        "eta_s",
    ] {
        assert!(!all.iter().any(|x| x == k), "{k} in {h}");
    }
    assert!(!h.to_string().contains("diabetic"), "{h}");
    // b declined the closed one: sees it, but not its outcome.
    let (_, hb) = history(&s, &b, "").await;
    let b1 = hb["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["incident_id"].as_i64() == Some(id1))
        .unwrap();
    assert_eq!(b1["offers"][0]["state"], "declined");
    assert!(b1["outcome"].is_null(), "{b1}");
    assert_ne!(
        b1["offers"][0]["offer_id"],
        items[2]["offers"][0]["offer_id"]
    );
    // c was never offered anything.
    let (st, hc) = history(&s, &c, "").await;
    assert_eq!((st, hc["items"].as_array().unwrap().len()), (200, 0));
    // Paged: one at a time, following next_cursor.
    let mut seen = Vec::new();
    let mut query = "?limit=1".to_string();
    loop {
        let (st, page) = history(&s, &a, &query).await;
        assert_eq!(st, 200, "{page}");
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= 1);
        seen.extend(got.iter().map(|i| i["incident_id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, vec![id3, id2, id1]);
    // Rescuer tokens only; bad parameters name themselves.
    let (st, _) = send(s.get("/api/v1/me/incidents", Some(Role::Dispatcher))).await;
    assert_eq!(st, 403);
    assert_eq!(send(s.get("/api/v1/me/incidents", None)).await.0, 401);
    for (q, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?cursor=x", "cursor"),
    ] {
        let (st, err) = history(&s, &a, q).await;
        assert_eq!(
            (st, err["field"].as_str()),
            (400, Some(field)),
            "{q}: {err}"
        );
    }
    let (_, doc) = send(s.get("/api/openapi.json", None)).await;
    assert!(doc["paths"]["/api/v1/me/incidents"]["get"].is_object());
    // A deleted rescuer's history goes with them.
    assert_eq!(
        send(s.delete(&format!("/api/v1/rescuers/{}", b.id), Some(Role::Admin)))
            .await
            .0,
        204
    );
    assert!(s
        .store
        .rescuer_history(b.id, None, 100)
        .await
        .unwrap()
        .is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_history_on_sqlite() {
    own_history(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_history_on_postgres() {
    own_history(Db::Postgres).await;
}

// ------------------------------------------------------------------------------------------
// Retention of delivery records.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_records_expire_with_the_retention_job() {
    let policy = aednet_dispatch::Policy {
        cpr_direct: 1,
        max_fetchers: 0,
        max_alerts: 1,
        min_rescuers: 1,
        min_aeds: 0,
        delivery_retention_days: 30,
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
    let a = phone_at(&s, "RA", 28.9705, 118.8700).await;
    let (st, inc) = send(s.post(
        "/api/v1/incidents",
        Some(Role::Dispatcher),
        &json!({"lat": 28.9708, "lon": 118.8702}),
    ))
    .await;
    assert_eq!(st, 201, "{inc}");
    let id = inc["id"].as_i64().unwrap();
    // The app confirms the offer: a delivery record.
    let offer = inc["offers"][0]["id"].as_i64().unwrap();
    let st = send(
        s.client
            .post(s.url("/api/v1/me/received"))
            .bearer_auth(&a.token)
            .json(&json!({"incident_id": id, "offer_id": offer, "message": "offer", "via": "web_push"})),
    )
    .await
    .0;
    assert_eq!(st, 204);
    assert_eq!(
        send(s.post(
            &format!("/api/v1/incidents/{id}/cancel"),
            Some(Role::Dispatcher),
            &json!({})
        ))
        .await
        .0,
        200
    );
    // A record of a rescuer deleted meanwhile (a push that finished late).
    s.store
        .record_delivery(&DeliveryRecord {
            key: MessageKey {
                incident_id: id,
                rescuer_id: a.id + 1000,
                message: MessageKind::Cancel,
                offer_id: 0,
            },
            channel: Channel::Webhook,
            state: DeliveryState::Failed,
            reason: Some("HTTP 500 after 4 attempts".into()),
            attempts: 4,
            updated_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(s.store.deliveries(id).await.unwrap().len(), 2);
    // The server's job as it runs hourly: now, the closed incident is recent and keeps its
    // record; the orphan goes.
    let engine = &s.engine;
    let now = chrono::Utc::now();
    assert_eq!(engine.erase_expired_deliveries(now).await.unwrap(), 1);
    let left = s.store.deliveries(id).await.unwrap();
    assert_eq!((left.len(), left[0].key.rescuer_id), (1, a.id));
    // 31 days on: past the period.
    let later = now + chrono::Duration::days(31);
    assert_eq!(engine.erase_expired_positions(later).await.unwrap(), 0);
    assert!(s.store.deliveries(id).await.unwrap().is_empty());
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
        metrics.contains("aednet_retention_deliveries_erased_total 2"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("retention"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    s.stop().await;
}
