//! The coverage API on SQLite and PostgreSQL over real sockets: GeoJSON hexagons with their
//! summary, the weekly profile, the district dashboard as JSON and CSV, the planner endpoint
//! with its auth and validation, and a readiness change reaching `/ws/coverage` within a second.

mod common;

use std::time::{Duration, Instant};

use aednet_core::Role;
use common::{eventually, send, Db, TestServer};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const LAT0: f64 = 28.95;
const LON0: f64 = 118.85;
const SIDE: f64 = 0.02;

async fn setup(s: &TestServer, aeds: &[(f64, f64, &str)]) -> (i64, Vec<i64>) {
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
        &json!({"name": "测试区", "population": 10000, "target_aeds_per_10k": 1.5, "target_rescuers": 10,
                "boundary": {"type": "Polygon", "coordinates": ring}}),
    ))
    .await;
    assert_eq!(st, 201, "{d}");
    let district = d["id"].as_i64().unwrap();
    let mut ids = Vec::new();
    for (lat, lon, hours) in aeds {
        let (st, a) = send(s.post(
            "/api/v1/aeds",
            Some(Role::Admin),
            &json!({"lat": lat, "lon": lon, "name": "AED", "access": "yes", "opening_hours": hours,
                    "district_id": district}),
        ))
        .await;
        assert_eq!(st, 201, "{a}");
        ids.push(a["id"].as_i64().unwrap());
    }
    let n = aeds.len() as u64;
    eventually("the coverage map has the district and its AEDs", || async {
        let (st, c) = send(s.get(&format!("/api/v1/coverage?district_id={district}"), None)).await;
        st == 200 && c["summary"]["aeds"] == n && c["summary"]["cells"].as_u64() > Some(10)
    })
    .await;
    (district, ids)
}

fn field(body: &Value) -> &str {
    body["field"].as_str().unwrap_or_default()
}

async fn coverage_api(db: Db) {
    let s = TestServer::start(db).await;
    let mid = (LAT0 + SIDE / 2.0, LON0 + SIDE / 2.0);
    let (district, _) = setup(
        &s,
        &[
            (mid.0, mid.1, "24/7"),
            (mid.0 + 0.005, mid.1 - 0.004, "Mo-Fr 08:00-18:00"),
        ],
    )
    .await;

    // GeoJSON hexagons.
    let resp = s
        .get(&format!("/api/v1/coverage?district_id={district}"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("geo+json"));
    let fc: Value = resp.json().await.unwrap();
    assert_eq!(fc["type"], "FeatureCollection");
    let features = fc["features"].as_array().unwrap();
    let summary = &fc["summary"];
    assert_eq!(features.len() as u64, summary["cells"].as_u64().unwrap());
    let mut pop = 0.0;
    let mut covered = 0;
    for f in features {
        let ring = f["geometry"]["coordinates"][0].as_array().unwrap();
        assert_eq!(f["geometry"]["type"], "Polygon");
        assert_eq!(ring.len(), 7, "a hexagon, closed");
        let p = &f["properties"];
        assert!(p["cell"].as_str().unwrap().len() == 15);
        pop += p["population"].as_f64().unwrap();
        if p["covered"] == true {
            covered += 1;
            assert!(p["time_s"].as_f64().unwrap() <= 240.0);
            assert!(p["aed_id"].is_i64());
        } else if let Some(t) = p["time_s"].as_f64() {
            assert!(t > 240.0);
        }
    }
    assert!(
        (pop - 10000.0).abs() < 5.0,
        "district population spread over cells: {pop}"
    );
    assert!(covered > 0 && covered < features.len(), "{covered}");
    let share = summary["share"].as_f64().unwrap();
    assert!(
        (share - covered as f64 / features.len() as f64).abs() < 1e-9,
        "{summary}"
    );
    assert_eq!(summary["mode"], "round_trip");
    assert_eq!(summary["budget_s"], 240.0);

    // A wider definition covers at least as much; res 10 has ~7× the cells.
    let (st, wide) = send(s.get(
        &format!("/api/v1/coverage?district={district}&mode=radius&radius_m=600"),
        None,
    ))
    .await;
    assert_eq!(st, 200);
    assert!(wide["summary"]["share"].as_f64().unwrap() > share);
    let (st, fine) = send(s.get(
        &format!("/api/v1/coverage?district_id={district}&res=10"),
        None,
    ))
    .await;
    assert_eq!(st, 200);
    let ratio = fine["summary"]["cells"].as_f64().unwrap() / summary["cells"].as_f64().unwrap();
    assert!((5.0..9.0).contains(&ratio), "{ratio}");
    // Sunday 03:00 local: the office-hours AED is closed.
    let (st, night) = send(s.get(
        &format!("/api/v1/coverage?district_id={district}&at=2026-11-29T19:00:00Z"),
        None,
    ))
    .await;
    assert_eq!(st, 200);
    let (_, day) = send(s.get(
        &format!("/api/v1/coverage?district_id={district}&at=2026-11-25T03:00:00Z"),
        None,
    ))
    .await;
    assert!(
        night["summary"]["share"].as_f64() < day["summary"]["share"].as_f64(),
        "{} {}",
        night["summary"],
        day["summary"]
    );

    // Only AEDs confirmed ready: none is (no telemetry yet), so nothing is covered.
    let (st, strict) = send(s.get(
        &format!("/api/v1/coverage?district_id={district}&readiness=ready"),
        None,
    ))
    .await;
    assert_eq!(st, 200);
    assert_eq!(strict["summary"]["covered_cells"], 0);
    // Ignoring hours at night covers what the day does.
    let (_, any) = send(s.get(
        &format!("/api/v1/coverage?district_id={district}&hours=any&at=2026-11-29T19:00:00Z"),
        None,
    ))
    .await;
    assert_eq!(any["summary"]["share"], day["summary"]["share"]);

    // A bounding box keeps the cells whose centre is inside it.
    let half = format!("{},{},{},{}", LON0, LAT0, LON0 + SIDE / 2.0, LAT0 + SIDE);
    let (st, part) = send(s.get(
        &format!("/api/v1/coverage?district_id={district}&bbox={half}"),
        None,
    ))
    .await;
    assert_eq!(st, 200);
    let n = part["features"].as_array().unwrap().len();
    assert!(n > 0 && n < features.len(), "{n}");

    // Bad parameters name themselves.
    for (q, status, name) in [
        ("res=8", 422, "res"),
        ("res=x", 400, "res"),
        ("mode=fly", 422, "mode"),
        ("budget_s=-1", 422, "budget_s"),
        ("budget_s=abc", 400, "budget_s"),
        ("at=yesterday", 400, "at"),
        ("district_id=99999", 422, "district_id"),
        ("bbox=1,2,3", 422, "bbox"),
        ("readiness=good", 422, "readiness"),
        ("hours=sometimes", 422, "hours"),
    ] {
        let (st, b) = send(s.get(&format!("/api/v1/coverage?{q}"), None)).await;
        assert_eq!((st, field(&b)), (status, name), "{q}: {b}");
    }

    // Weekly profile.
    let (st, w) = send(s.get(
        &format!("/api/v1/coverage/weekly?district_id={district}"),
        None,
    ))
    .await;
    assert_eq!(st, 200, "{w}");
    assert_eq!(w["timezone"], "Asia/Shanghai");
    let hours = w["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 168);
    assert_eq!(hours[0]["hour"], 0);
    for h in hours {
        assert!(h["share"].as_f64() <= h["share_all_24_7"].as_f64());
    }
    assert!(
        hours[10]["share"].as_f64() > hours[3]["share"].as_f64(),
        "Monday 10:00 vs 03:00"
    );

    // Dashboard.
    send(s.post("/api/v1/rescuers", Some(Role::Admin), &json!({"name": "张三", "certificate_no": "C-1",
        "level": "first_aider", "cert_issued": "2024-05-01", "cert_expires": "2099-04-30", "district_id": district}))).await;
    send(s.post("/api/v1/rescuers", Some(Role::Admin), &json!({"name": "李四", "certificate_no": "C-2",
        "level": "first_aider", "cert_issued": "2020-05-01", "cert_expires": "2021-04-30", "district_id": district}))).await;
    let (st, _) = send(s.post(
        "/api/v1/stations",
        Some(Role::Admin),
        &json!({"kind": "boai_station", "name": "博爱驿站",
        "lat": mid.0, "lon": mid.1, "district_id": district}),
    ))
    .await;
    assert_eq!(st, 201);
    let (st, sum) = send(s.get("/api/v1/districts/summary", None)).await;
    assert_eq!(st, 200, "{sum}");
    let row = sum["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == district)
        .unwrap()
        .clone();
    assert_eq!(row["population"], 10000);
    assert_eq!(row["aeds_total"], 2);
    assert_eq!(row["aeds_24_7"], 1);
    assert_eq!(row["aeds_per_10k"], 2.0);
    assert_eq!(row["target_aeds"], 2);
    assert_eq!(row["shortfall"], 0);
    assert_eq!(
        row["rescuers_certified"], 1,
        "the expired certificate does not count"
    );
    assert_eq!(row["rescuers_target"], 10);
    assert_eq!(row["stations_by_kind"]["boai_station"], 1);
    let now = row["coverage_share_now"].as_f64().unwrap();
    assert!((now - share).abs() < 1e-9, "{row}");
    // At night only the 24/7 unit counts.
    let night = row["coverage_share_night"].as_f64().unwrap();
    let day_share = day["summary"]["share"].as_f64().unwrap();
    assert!(night > 0.0 && night < day_share, "{row}");
    let resp = s
        .get("/api/v1/districts/summary?format=csv", None)
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = resp.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("id,name,population,aeds_total"));
    assert!(
        lines.any(|l| l.starts_with(&format!("{district},测试区,10000,2,"))),
        "{csv}"
    );
    let resp = s
        .get("/api/v1/districts/summary", None)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().starts_with("id,name"));
    let (st, b) = send(s.get("/api/v1/districts/summary?format=xml", None)).await;
    assert_eq!((st, field(&b)), (400, "format"));

    // Planning: planner or admin only.
    let body = json!({"add": 3, "district_id": district, "relocate": 1, "suggest_24_7": true});
    assert_eq!(send(s.post("/api/v1/plan", None, &body)).await.0, 401);
    assert_eq!(
        send(s.post("/api/v1/plan", Some(Role::Rescuer), &body))
            .await
            .0,
        403
    );
    let (st, p) = send(s.post("/api/v1/plan", Some(Role::Planner), &body)).await;
    assert_eq!(st, 200, "{p}");
    let sites = p["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 3);
    assert!(p["after"]["share"].as_f64() > p["before"]["share"].as_f64());
    assert!((p["before"]["share"].as_f64().unwrap() - share).abs() < 1e-9);
    let gained: f64 = sites
        .iter()
        .map(|x| x["gain_population"].as_f64().unwrap())
        .sum::<f64>()
        + p["relocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["gain_population"].as_f64().unwrap())
            .sum::<f64>();
    let delta = p["after"]["covered_population"].as_f64().unwrap()
        - p["before"]["covered_population"].as_f64().unwrap();
    assert!((gained - delta).abs() < 1e-6, "{p}");
    let conv = p["conversions_24_7"].as_array().unwrap();
    assert!(conv.iter().all(|c| c["gain"].as_f64() > Some(0.0)), "{p}");
    // The inverse question: the fewest sites for a share, and the rescuers on duty for it.
    let target = (p["before"]["share"].as_f64().unwrap() + 0.05).min(1.0);
    let (st, t) = send(s.post(
        "/api/v1/plan",
        Some(Role::Planner),
        &json!({"target_share": target, "district_id": district}),
    ))
    .await;
    assert_eq!(st, 200, "{t}");
    let n = t["aeds_to_add"].as_u64().unwrap() as usize;
    assert_eq!(t["sites"].as_array().unwrap().len(), n);
    if t["reached"] == true {
        assert!(
            t["after"]["share"].as_f64().unwrap() >= target - 1e-9,
            "{t}"
        );
    }
    assert!(t["rescuers"]["on_duty"].as_f64().unwrap() > 0.0, "{t}");
    assert!(t["rescuers"]["registered"].as_f64() > t["rescuers"]["on_duty"].as_f64());
    let (st, e) = send(s.post(
        "/api/v1/plan",
        Some(Role::Planner),
        &json!({"target_share": 1.5}),
    ))
    .await;
    assert_eq!((st, field(&e)), (422, "target_share"), "{e}");
    let (st, p) = send(s.post("/api/v1/plan", Some(Role::Admin), &json!({"add": 2, "candidates": [
        {"lat": mid.0 - 0.008, "lon": mid.1 + 0.008, "name": "学校"}, {"lat": mid.0, "lon": mid.1}]}))).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(
        p["sites"][0]["name"], "学校",
        "the uncovered candidate first: {p}"
    );
    for (b, status, name) in [
        (json!({"add": 1_000_000}), 422, "add"),
        (json!({"add": -1}), 422, "add"),
        (
            json!({"add": 1, "candidates": [{"lat": 91.0, "lon": 0.0}]}),
            422,
            "candidates[0].lat",
        ),
        (json!({"add": 1, "district_id": 99999}), 422, "district_id"),
        (json!({"add": 1, "relocate": 1000}), 422, "relocate"),
        (json!({"add": 1, "colour": "red"}), 422, "body"),
        (json!({}), 422, "body"),
    ] {
        let (st, e) = send(s.post("/api/v1/plan", Some(Role::Planner), &b)).await;
        assert_eq!(st, status, "{b}: {e}");
        if name != "body" {
            assert_eq!(field(&e), name, "{b}: {e}");
        }
    }
    let resp = s
        .client
        .post(s.url("/api/v1/plan"))
        .bearer_auth(&s.tokens[&Role::Planner])
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let many: Vec<Value> = (0..20_001)
        .map(|_| json!({"lat": 1.0, "lon": 1.0}))
        .collect();
    let (st, e) = send(s.post(
        "/api/v1/plan",
        Some(Role::Planner),
        &json!({"add": 1, "candidates": many}),
    ))
    .await;
    assert_eq!((st, field(&e)), (422, "candidates"), "{e}");

    // The OpenAPI document lists the routes.
    let (_, doc) = send(s.get("/api/openapi.json", None)).await;
    for p in [
        "/api/v1/coverage",
        "/api/v1/coverage/weekly",
        "/api/v1/districts/summary",
        "/api/v1/plan",
    ] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
    s.stop().await;
}

#[tokio::test]
async fn coverage_api_sqlite() {
    coverage_api(Db::Sqlite).await;
}

#[tokio::test]
async fn coverage_api_postgres() {
    coverage_api(Db::Postgres).await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws, deadline: Instant) -> Value {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next())
            .await
            .expect("a frame before the deadline")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

async fn readiness_reaches_the_socket(db: Db) {
    let s = TestServer::start(db).await;
    let mid = (LAT0 + SIDE / 2.0, LON0 + SIDE / 2.0);
    let (district, ids) = setup(&s, &[(mid.0, mid.1, "24/7")]).await;
    let url = s.base.replace("http://", "ws://") + "/ws/coverage";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = next_json(&mut ws, Instant::now() + Duration::from_secs(10)).await;
    assert_eq!(hello["type"], "cells");
    assert_eq!(hello["cells"], json!([]));
    let before = hello["summary"]["covered_cells"].as_u64().unwrap();
    assert!(before > 0);

    // The device reports a fault: its cells go uncovered on the socket within a second.
    let started = Instant::now();
    let (st, _) = send(s.put(
        &format!("/api/v1/aeds/{}/readiness", ids[0]),
        Some(Role::Maintenance),
        &json!({"status": "fault", "reason": "self-test failed"}),
    ))
    .await;
    assert_eq!(st, 200);
    let deadline = started + Duration::from_secs(1);
    let frame = loop {
        let f = next_json(&mut ws, deadline).await;
        if f["type"] == "cells" && !f["cells"].as_array().unwrap().is_empty() {
            break f;
        }
    };
    let elapsed = started.elapsed();
    println!(
        "readiness change → /ws/coverage frame in {:.1} ms",
        elapsed.as_secs_f64() * 1000.0
    );
    let cells = frame["cells"].as_array().unwrap();
    // Every cell it covered changed, and the cells it reached beyond the budget (now no AED
    // within the horizon).
    assert!(cells.len() as u64 >= before, "{frame}");
    assert!(cells
        .iter()
        .all(|c| c["covered"] == false && c["time_s"].is_null()));
    assert_eq!(frame["summary"]["covered_cells"], 0);
    // The map agrees.
    let (_, c) = send(s.get(&format!("/api/v1/coverage?district_id={district}"), None)).await;
    assert_eq!(c["summary"]["covered_cells"], 0);

    // Repaired: covered again.
    let started = Instant::now();
    send(s.put(
        &format!("/api/v1/aeds/{}/readiness", ids[0]),
        Some(Role::Maintenance),
        &json!({"status": "ready"}),
    ))
    .await;
    let frame = loop {
        let f = next_json(&mut ws, started + Duration::from_secs(1)).await;
        if f["type"] == "cells" && !f["cells"].as_array().unwrap().is_empty() {
            break f;
        }
    };
    assert_eq!(frame["summary"]["covered_cells"].as_u64(), Some(before));
    s.stop().await;
}

#[tokio::test]
async fn readiness_change_reaches_ws_coverage_sqlite() {
    readiness_reaches_the_socket(Db::Sqlite).await;
}

#[tokio::test]
async fn readiness_change_reaches_ws_coverage_postgres() {
    readiness_reaches_the_socket(Db::Postgres).await;
}

/// An AED that closes at the next minute boundary: the timer set to the earliest next change
/// fires and the socket hears the uncovered cells within a second of it (no polling).
#[tokio::test]
async fn opening_hours_boundary_reaches_ws_coverage() {
    use chrono::{Duration as CDuration, Timelike, Utc};
    let s = TestServer::start(Db::Sqlite).await;
    let tz: chrono_tz::Tz = "Asia/Shanghai".parse().unwrap();
    let now = Utc::now().with_timezone(&tz);
    // Open from this minute to the next (or the one after, if this one is nearly over), so
    // the AED is open when the map is built and closes a few seconds to two minutes later.
    let start = now.with_second(0).unwrap().with_nanosecond(0).unwrap();
    let end = start + CDuration::minutes(if now.second() >= 45 { 2 } else { 1 });
    let hhmm = |t: chrono::DateTime<chrono_tz::Tz>| {
        if t.date_naive() != start.date_naive() {
            "24:00".to_string()
        } else {
            t.format("%H:%M").to_string()
        }
    };
    let hours = format!("{}-{}", start.format("%H:%M"), hhmm(end));
    let mid = (LAT0 + SIDE / 2.0, LON0 + SIDE / 2.0);
    let (_, _) = setup(&s, &[(mid.0, mid.1, hours.as_str())]).await;
    let url = s.base.replace("http://", "ws://") + "/ws/coverage";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = next_json(&mut ws, Instant::now() + Duration::from_secs(10)).await;
    assert!(
        hello["summary"]["covered_cells"].as_u64() > Some(0),
        "open at first ({hours}): {hello}"
    );
    let boundary = end.with_timezone(&Utc);
    let wait = (boundary - Utc::now()).to_std().unwrap_or_default();
    let frame = loop {
        let f = next_json(&mut ws, Instant::now() + wait + Duration::from_secs(5)).await;
        if f["type"] == "cells" && f["summary"]["covered_cells"] == 0 {
            break f;
        }
    };
    let late = Utc::now() - boundary;
    println!(
        "opening-hours boundary ({hours}) → /ws/coverage frame {} ms after it",
        late.num_milliseconds()
    );
    assert!(late >= CDuration::zero(), "not before the AED closed");
    assert!(late < CDuration::seconds(1), "{late}");
    assert!(frame["cells"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["covered"] == false));
    s.stop().await;
}
