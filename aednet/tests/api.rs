//! The registry API over real sockets, on SQLite and on PostgreSQL: status codes for every kind
//! of bad input, roles, privacy of cabinet codes and rescuers, pagination, GeoJSON, metrics.

mod common;

use aednet_core::Role;
use common::{aed_body, send, Db, TestServer};
use serde_json::{json, Value};

async fn crud_and_errors(db: Db) {
    let s = TestServer::start(db).await;

    // Create: 201 with Location; the admin sees the cabinet code.
    let mut body = aed_body(28.9700, 118.8700, "衢州站候车大厅");
    body["cabinet_code"] = json!("4711");
    body["external_ref"] = json!("qz-1");
    body["pads_expiry"] = json!("2027-05-01");
    let resp = s
        .post("/api/v1/aeds", Some(Role::Admin), &body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["cabinet_code"], "4711");
    assert_eq!(created["cabinet_locked"], true);
    assert_eq!(created["time_zone"], "Asia/Shanghai");
    assert_eq!(created["opening_hours_valid"], true);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/v1/aeds/{id}"));

    // Public read: no code, not even the key.
    let (st, public) = send(s.get(&location, None)).await;
    assert_eq!(st, 200);
    assert_eq!(public["name"], "衢州站候车大厅");
    assert!(public.get("cabinet_code").is_none(), "{public}");
    let (_, list) = send(s.get("/api/v1/aeds", None)).await;
    assert!(!list.to_string().contains("4711"));
    let (_, maint) = send(s.get(&location, Some(Role::Maintenance))).await;
    assert_eq!(maint["cabinet_code"], "4711");
    let (_, disp) = send(s.get(&location, Some(Role::Dispatcher))).await;
    assert!(disp.get("cabinet_code").is_none());

    // Bad input, each with its status and the field named.
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"lat": 91.0, "lon": 118.0}), 422, "lat"),
        (json!({"lat": 28.0, "lon": 181.0}), 422, "lon"),
        (
            json!({"lat": 28.0, "lon": 118.0, "access": "maybe"}),
            422,
            "access",
        ),
        (
            json!({"lat": 28.0, "lon": 118.0, "pads_expiry": "2027-13-45"}),
            422,
            "pads_expiry",
        ),
        (json!({"lat": "north", "lon": 118.0}), 422, "lat"),
        (
            json!({"lat": 28.0, "lon": 118.0, "colour": "green"}),
            422,
            "body",
        ),
        (json!({"lon": 118.0}), 422, "body"),
        (
            json!({"lat": 28.0, "lon": 118.0, "time_zone": "Mars/Olympus"}),
            422,
            "time_zone",
        ),
    ];
    for (body, status, field) in cases {
        let (st, err) = send(s.post("/api/v1/aeds", Some(Role::Admin), &body)).await;
        assert_eq!(st, status, "{body} -> {err}");
        assert_eq!(err["error"], "invalid");
        if field != "body" {
            assert_eq!(err["field"], field, "{body} -> {err}");
        }
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let resp = s
        .client
        .post(s.url("/api/v1/aeds"))
        .bearer_auth(&s.tokens[&Role::Admin])
        .header("content-type", "application/json")
        .body("{\"lat\": 1,")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "bad_request");

    // Auth: none → 401 with WWW-Authenticate, unknown token → 401, wrong role → 403.
    let resp = s
        .post("/api/v1/aeds", None, &aed_body(1.0, 1.0, "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let (st, _) = send(s.client.get(s.url("/api/v1/aeds")).bearer_auth("aed_nope")).await;
    assert_eq!(st, 401);
    let (st, err) = send(s.post(
        "/api/v1/aeds",
        Some(Role::Planner),
        &aed_body(1.0, 1.0, "x"),
    ))
    .await;
    assert_eq!((st, err["error"].as_str()), (403, Some("forbidden")));

    // Conflicts: the same (source, external_ref) twice; nothing partial written.
    let before = s.store.count_aeds().await.unwrap();
    let mut dup = aed_body(28.9, 118.8, "dup");
    dup["external_ref"] = json!("qz-1");
    let (st, err) = send(s.post("/api/v1/aeds", Some(Role::Admin), &dup)).await;
    assert_eq!(st, 409, "{err}");
    assert_eq!(err["field"], "external_ref");
    assert_eq!(s.store.count_aeds().await.unwrap(), before);

    // A station linking an AED that does not exist: 409, and no station row.
    let station = json!({"kind": "boai_station", "name": "博爱驿站（府山）", "lat": 28.96, "lon": 118.87,
        "aed_ids": [id, 999_999]});
    let (st, err) = send(s.post("/api/v1/stations", Some(Role::Admin), &station)).await;
    assert_eq!(st, 409, "{err}");
    let (_, stations) = send(s.get("/api/v1/stations", None)).await;
    assert_eq!(stations["items"].as_array().unwrap().len(), 0);
    let ok_station = json!({"kind": "scenic_aid_station", "name": "江郎山景区救护站", "scenic_rating": "5A",
        "lat": 28.53, "lon": 118.57, "aed_ids": [id], "staffed_hours": "Mo-Su 08:00-17:30",
        "contact_name": "李站长", "contact_phone": "0570-1234567"});
    let (st, created_station) =
        send(s.post("/api/v1/stations", Some(Role::Maintenance), &ok_station)).await;
    assert_eq!(st, 201, "{created_station}");
    assert_eq!(created_station["aed_ids"], json!([id]));
    let (_, public_station) = send(s.get("/api/v1/stations?kind=scenic_aid_station", None)).await;
    assert_eq!(public_station["items"][0]["scenic_rating"], "5A");
    assert!(
        public_station["items"][0]["contact_name"].is_null(),
        "contact person is personal data"
    );
    let bad_rating = json!({"kind": "school_station", "name": "x", "scenic_rating": "5A", "lat": 1.0, "lon": 1.0});
    let (st, err) = send(s.post("/api/v1/stations", Some(Role::Admin), &bad_rating)).await;
    assert_eq!((st, err["field"].as_str()), (422, Some("scenic_rating")));

    // Replace keeps readiness unless given; readiness endpoint sets it.
    let (st, r) = send(s.put(
        &format!("/api/v1/aeds/{id}/readiness"),
        Some(Role::Maintenance),
        &json!({"status": "fault", "reason": "自检失败 E12"}),
    ))
    .await;
    assert_eq!(
        (st, r["readiness"]["status"].as_str()),
        (200, Some("fault"))
    );
    let mut replacement = aed_body(28.9701, 118.8701, "衢州站候车大厅（东）");
    replacement["external_ref"] = json!("qz-1");
    let (st, r) = send(s.put(&location, Some(Role::Admin), &replacement)).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["readiness"]["status"], "fault");
    assert_eq!(r["name"], "衢州站候车大厅（东）");
    let (st, _) = send(s.put("/api/v1/aeds/424242", Some(Role::Admin), &replacement)).await;
    assert_eq!(st, 404);

    // Path and query parameters.
    let (st, err) = send(s.get("/api/v1/aeds/abc", None)).await;
    assert_eq!((st, err["field"].as_str()), (400, Some("id")));
    let (st, err) = send(s.get("/api/v1/aeds?limit=0", None)).await;
    assert_eq!((st, err["field"].as_str()), (400, Some("limit")));
    let (st, err) = send(s.get("/api/v1/aeds?bbox=1,2,3", None)).await;
    assert_eq!((st, err["field"].as_str()), (422, Some("bbox")));
    let (st, err) = send(s.get("/api/v1/aeds?status=sleepy", None)).await;
    assert_eq!((st, err["field"].as_str()), (400, Some("status")));
    let (st, err) = send(s.get("/api/v1/aeds?format=xml", None)).await;
    assert_eq!((st, err["field"].as_str()), (400, Some("format")));
    let (st, err) = send(s.get("/api/v1/nothing-here", None)).await;
    assert_eq!((st, err["error"].as_str()), (404, Some("not_found")));

    // Delete: admin only; then 404.
    let (st, _) = send(s.delete(&location, Some(Role::Maintenance))).await;
    assert_eq!(st, 403);
    let (st, _) = send(s.delete(&location, Some(Role::Admin))).await;
    assert_eq!(st, 204);
    let (st, _) = send(s.get(&location, None)).await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn sqlite_crud_and_errors() {
    crud_and_errors(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_crud_and_errors() {
    crud_and_errors(Db::Postgres).await;
}

#[tokio::test]
async fn pagination_bbox_and_geojson() {
    let s = TestServer::start(Db::Sqlite).await;
    let mut expected = Vec::new();
    for i in 0..25 {
        let (st, a) = send(s.post(
            "/api/v1/aeds",
            Some(Role::Admin),
            &aed_body(28.9 + f64::from(i) * 0.01, 118.8, &format!("AED {i}")),
        ))
        .await;
        assert_eq!(st, 201);
        expected.push(a["id"].as_i64().unwrap());
    }
    // Walk the cursor: every AED exactly once, in id order.
    let mut seen = Vec::new();
    let mut path = "/api/v1/aeds?limit=10".to_string();
    loop {
        let (st, page) = send(s.get(&path, None)).await;
        assert_eq!(st, 200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/aeds?limit=10&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    // bbox: latitudes 28.9 + 0.01 i for i in 0..25; [29.0, 29.05] holds i = 10..=15 (with
    // a little slack on each edge to stay clear of rounding).
    let (_, page) = send(s.get("/api/v1/aeds?bbox=118.7,28.9955,118.9,29.0545", None)).await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        (10..=15).map(|i| format!("AED {i}")).collect::<Vec<_>>()
    );

    // GeoJSON by Accept and by ?format.
    let resp = s
        .get("/api/v1/aeds?limit=2", None)
        .header("accept", "application/geo+json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/geo+json");
    let fc: Value = resp.json().await.unwrap();
    assert_eq!(fc["type"], "FeatureCollection");
    assert_eq!(
        fc["features"][0]["geometry"],
        json!({"type": "Point", "coordinates": [118.8, 28.9]})
    );
    assert!(fc["features"][0]["properties"].get("location").is_none());
    assert!(fc["next_cursor"].is_string());
    let (_, f) = send(s.get(
        &format!("/api/v1/aeds/{}?format=geojson", expected[0]),
        None,
    ))
    .await;
    assert_eq!(f["type"], "Feature");
    assert_eq!(f["properties"]["name"], "AED 0");
    s.stop().await;
}

#[tokio::test]
async fn rescuers_are_never_public() {
    let s = TestServer::start(Db::Sqlite).await;
    let r = json!({"name": "王芳", "phone": "13800000000", "certificate_no": "ZJQZ-2024-000001",
        "level": "first_aider", "cert_issued": "2024-05-01", "cert_expires": "2028-04-30",
        "team": "蓝天救援队", "skills": ["CPR", "AED"], "on_duty": true, "location_consent": true});
    let (st, created) = send(s.post("/api/v1/rescuers", Some(Role::Admin), &r)).await;
    assert_eq!(st, 201, "{created}");
    let (st, _) = send(s.get("/api/v1/rescuers", None)).await;
    assert_eq!(st, 401);
    let (st, _) = send(s.get("/api/v1/rescuers", Some(Role::Planner))).await;
    assert_eq!(st, 403);
    let (st, _) = send(s.post("/api/v1/rescuers", Some(Role::Dispatcher), &r)).await;
    assert_eq!(st, 403);
    let (st, page) = send(s.get("/api/v1/rescuers", Some(Role::Dispatcher))).await;
    assert_eq!(st, 200);
    assert_eq!(page["items"][0]["team"], "蓝天救援队");
    // The same certificate twice is a conflict naming the field.
    let (st, err) = send(s.post("/api/v1/rescuers", Some(Role::Admin), &r)).await;
    assert_eq!((st, err["field"].as_str()), (409, Some("certificate_no")));
    let mut bad = r.clone();
    bad["cert_expires"] = json!("2020-01-01");
    bad["certificate_no"] = json!("other");
    let (st, err) = send(s.post("/api/v1/rescuers", Some(Role::Admin), &bad)).await;
    assert_eq!((st, err["field"].as_str()), (422, Some("cert_expires")));
    s.stop().await;
}

#[tokio::test]
async fn districts_tokens_ops_and_metrics() {
    let s = TestServer::start(Db::Sqlite).await;
    let d = json!({"name": "柯城区", "code": "330802", "population": 440000, "target_aeds_per_10k": 1.5,
        "boundary": {"type": "Polygon", "coordinates": [[[118.8, 28.9], [118.9, 28.9], [118.9, 29.0], [118.8, 29.0], [118.8, 28.9]]]}});
    let (st, created) = send(s.post("/api/v1/districts", Some(Role::Planner), &d)).await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["target_aeds"], 66);
    let (_, fc) = send(s.get("/api/v1/districts?format=geojson", None)).await;
    assert_eq!(fc["features"][0]["geometry"]["type"], "Polygon");
    // Where maps write the name: inside the outline (the largest part's interior point).
    let label = &fc["features"][0]["properties"]["label"];
    let (lon, lat) = (label[0].as_f64().unwrap(), label[1].as_f64().unwrap());
    assert!(
        (118.8..=118.9).contains(&lon) && (28.9..=29.0).contains(&lat),
        "{label}"
    );
    let (st, err) = send(s.post("/api/v1/districts", Some(Role::Maintenance), &d)).await;
    assert_eq!((st, err["error"].as_str()), (403, Some("forbidden")));
    let mut bad = d.clone();
    bad["boundary"] = json!({"type": "Point", "coordinates": [1.0, 2.0]});
    let (st, err) = send(s.post("/api/v1/districts", Some(Role::Planner), &bad)).await;
    assert_eq!((st, err["field"].as_str()), (422, Some("boundary")));

    // Tokens: issued once by an admin, usable, then revoked.
    let (st, t) = send(s.post(
        "/api/v1/tokens",
        Some(Role::Admin),
        &json!({"name": "crew 3", "role": "maintenance"}),
    ))
    .await;
    assert_eq!(st, 201);
    let secret = t["token"].as_str().unwrap().to_string();
    let (st, list) = send(s.get("/api/v1/tokens", Some(Role::Admin))).await;
    assert_eq!(st, 200);
    assert!(
        !list.to_string().contains(&secret),
        "secrets are never listed"
    );
    let (st, _) = send(
        s.client
            .put(s.url("/api/v1/aeds/1/readiness"))
            .bearer_auth(&secret)
            .json(&json!({"status": "ready"})),
    )
    .await;
    assert_eq!(st, 404, "authorised (no such AED), not 401/403");
    let (st, _) = send(s.delete(&format!("/api/v1/tokens/{}", t["id"]), Some(Role::Admin))).await;
    assert_eq!(st, 204);
    let (st, _) = send(
        s.client
            .put(s.url("/api/v1/aeds/1/readiness"))
            .bearer_auth(&secret)
            .json(&json!({"status": "ready"})),
    )
    .await;
    assert_eq!(st, 401);

    // Ops.
    let (st, h) = send(s.get("/healthz", None)).await;
    assert_eq!((st, h["status"].as_str()), (200, Some("ok")));
    let (st, r) = send(s.get("/readyz", None)).await;
    assert_eq!((st, r["status"].as_str()), (200, Some("ready")));
    let (st, doc) = send(s.get("/api/openapi.json", None)).await;
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/api/v1/aeds",
        "/api/v1/aeds/{id}",
        "/api/v1/stations",
        "/api/v1/rescuers",
        "/api/v1/districts",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from OpenAPI");
    }
    // Metrics on their own listener, labelled by route template, not raw path.
    let _ = send(s.get("/api/v1/aeds/12345", None)).await;
    let text = s
        .client
        .get(&s.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#"route="/api/v1/aeds/{id}""#), "{text}");
    assert!(!text.contains("/api/v1/aeds/12345"));
    assert!(text.contains("aednet_http_request_duration_seconds_bucket"));
    // The standard process metrics, with real values from /proc/self.
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let value: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing in {text}"))
            .trim()
            .parse()
            .unwrap();
        assert!(
            value > 0.0 || name == "process_cpu_seconds_total",
            "{name} = {value}"
        );
    }
    let (st, _) = send(s.get("/metrics", None)).await;
    assert_eq!(st, 404, "metrics are not on the public port");
    s.stop().await;
}
