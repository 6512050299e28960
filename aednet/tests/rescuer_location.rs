//! The rescuer's duty and location endpoints on SQLite and PostgreSQL: positions are kept in
//! memory only with consent, on duty and with a valid certificate, and forgotten at once when
//! any of those ends; nothing of them is public.

mod common;

use aednet_core::{LatLon, Role};
use common::{eventually, send, Db, TestServer};
use serde_json::json;

async fn duty_and_location(db: Db) {
    let s = TestServer::start(db).await;
    let body = |cert: &str, expires: &str, consent: bool| {
        json!({"name": "王芳", "certificate_no": cert,
        "level": "first_aider", "cert_issued": "2024-05-01", "cert_expires": expires,
        "on_duty": false, "location_consent": consent})
    };
    let (_, r) = send(s.post(
        "/api/v1/rescuers",
        Some(Role::Admin),
        &body("ZJQZ-1", "2030-04-30", true),
    ))
    .await;
    let id = r["id"].as_i64().unwrap();
    let (secret, new) = aednet_api::auth::new_token("phone", Role::Rescuer, Some(id));
    s.store.create_token(&new).await.unwrap();
    let me = |path: &str, b: serde_json::Value| {
        s.client
            .request(
                if path.ends_with("duty") {
                    reqwest::Method::PUT
                } else {
                    reqwest::Method::POST
                },
                s.url(path),
            )
            .bearer_auth(&secret)
            .json(&b)
    };
    let here = json!({"lat": 28.9701, "lon": 118.8702, "accuracy_m": 8.0});

    // Off duty: nothing is kept.
    let (st, e) = send(me("/api/v1/me/location", here.clone())).await;
    assert_eq!((st, e["field"].as_str()), (409, Some("on_duty")), "{e}");
    assert!(s.state.geo.rescuer(id).is_none());
    // On duty: kept in memory, findable by dispatch, never stored or public.
    let (st, d) = send(me("/api/v1/me/duty", json!({"on_duty": true}))).await;
    assert_eq!((st, d["on_duty"].as_bool()), (200, Some(true)), "{d}");
    assert_eq!(send(me("/api/v1/me/location", here.clone())).await.0, 204);
    let fix = s
        .state
        .geo
        .rescuer(id)
        .expect("position kept while on duty");
    assert_eq!(
        fix.pos,
        LatLon {
            lat: 28.9701,
            lon: 118.8702
        }
    );
    let near = s.state.geo.rescuers_within(
        LatLon {
            lat: 28.97,
            lon: 118.87,
        },
        500.0,
        10,
        chrono::Utc::now(),
        |_| true,
    );
    assert_eq!(near.iter().map(|n| n.id).collect::<Vec<_>>(), vec![id]);
    let (_, page) = send(s.get("/api/v1/rescuers", Some(Role::Admin))).await;
    assert!(
        !page.to_string().contains("28.9701"),
        "stored records hold no live position"
    );
    // Bad input names the field; other roles are refused.
    let (st, e) = send(me(
        "/api/v1/me/location",
        json!({"lat": 95.0, "lon": 118.87}),
    ))
    .await;
    assert_eq!((st, e["field"].as_str()), (422, Some("lat")));
    let (st, e) = send(me(
        "/api/v1/me/location",
        json!({"lat": 28.97, "lon": 118.87, "accuracy_m": -1}),
    ))
    .await;
    assert_eq!((st, e["field"].as_str()), (422, Some("accuracy_m")));
    let (st, _) = send(s.post("/api/v1/me/location", Some(Role::Admin), &here)).await;
    assert_eq!(st, 403);
    let (st, _) = send(s.post("/api/v1/me/location", None, &here)).await;
    assert_eq!(st, 401);
    // Withdrawing consent forgets the position at once; off duty likewise.
    let (st, _) = send(me(
        "/api/v1/me/duty",
        json!({"on_duty": true, "location_consent": false}),
    ))
    .await;
    assert_eq!(st, 200);
    assert!(s.state.geo.rescuer(id).is_none());
    let (st, e) = send(me("/api/v1/me/location", here.clone())).await;
    assert_eq!((st, e["field"].as_str()), (409, Some("location_consent")));
    send(me(
        "/api/v1/me/duty",
        json!({"on_duty": true, "location_consent": true}),
    ))
    .await;
    assert_eq!(send(me("/api/v1/me/location", here.clone())).await.0, 204);
    send(me("/api/v1/me/duty", json!({"on_duty": false}))).await;
    assert!(s.state.geo.rescuer(id).is_none());
    // An admin taking someone off duty reaches the index through the event bus.
    send(me("/api/v1/me/duty", json!({"on_duty": true}))).await;
    assert_eq!(send(me("/api/v1/me/location", here.clone())).await.0, 204);
    let (st, _) = send(s.delete(&format!("/api/v1/rescuers/{id}"), Some(Role::Admin))).await;
    assert_eq!(st, 204);
    eventually("a deleted rescuer's position is forgotten", || async {
        s.state.geo.rescuer(id).is_none()
    })
    .await;

    // An expired certificate cannot go on duty.
    let (_, old) = send(s.post(
        "/api/v1/rescuers",
        Some(Role::Admin),
        &body("ZJQZ-2", "2026-01-31", true),
    ))
    .await;
    let (old_secret, new) =
        aednet_api::auth::new_token("phone2", Role::Rescuer, Some(old["id"].as_i64().unwrap()));
    s.store.create_token(&new).await.unwrap();
    let (st, e) = send(
        s.client
            .put(s.url("/api/v1/me/duty"))
            .bearer_auth(&old_secret)
            .json(&json!({"on_duty": true})),
    )
    .await;
    assert_eq!((st, e["field"].as_str()), (409, Some("on_duty")), "{e}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescuer_location_on_sqlite() {
    duty_and_location(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescuer_location_on_postgres() {
    duty_and_location(Db::Postgres).await;
}
