//! The caller's nearest-AED and nearest-station queries over real sockets, on SQLite and
//! PostgreSQL: ranking by fetch round trip, opening hours at the query time, readiness and
//! deletions reaching the index through store events, bad input, GeoJSON, the rate limit, and
//! the real Liechtenstein extract checked by hand.

mod common;

use aednet_core::Role;
use common::{eventually, send, Db, TestServer};
use serde_json::{json, Value};

fn ids(body: &Value) -> Vec<i64> {
    body["results"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

async fn create(s: &TestServer, body: Value) -> i64 {
    let (st, created) = send(s.post("/api/v1/aeds", Some(Role::Admin), &body)).await;
    assert_eq!(st, 201, "{created}");
    created["id"].as_i64().unwrap()
}

// Patient at Quzhou railway station; times are Asia/Shanghai (UTC+8), Wednesday 2026-11-25.
const AT: &str = "lat=28.9700&lon=118.8700";
const NIGHT: &str = "2026-11-25T03:00:00%2B08:00";
const NOON: &str = "2026-11-25T12:00:00%2B08:00";

async fn ranking_hours_readiness_and_errors(db: Db) {
    let s = TestServer::start(db).await;
    // ~111 m north, indoor on the 4th floor, locked cabinet with a code.
    let upstairs = create(
        &s,
        json!({"lat": 28.9710, "lon": 118.8700, "name": "写字楼四楼",
        "access": "yes", "opening_hours": "24/7", "indoor": true, "level": "4",
        "cabinet_locked": true, "cabinet_code": "8642", "location_description": "电梯右侧"}),
    )
    .await;
    // ~146 m east, outdoor cabinet, open.
    let outdoor = create(
        &s,
        json!({"lat": 28.9700, "lon": 118.8715, "name": "广场户外柜",
        "access": "yes", "opening_hours": "24/7", "indoor": false}),
    )
    .await;
    // ~200 m south, office hours only.
    let office = create(
        &s,
        json!({"lat": 28.9682, "lon": 118.8700, "name": "银行营业厅",
        "access": "yes", "opening_hours": "Mo-Fr 08:00-18:00", "indoor": true, "level": "0"}),
    )
    .await;
    // ~60 m west but private: hidden unless asked for.
    let private = create(
        &s,
        json!({"lat": 28.9700, "lon": 118.8694, "name": "员工休息室",
        "access": "private", "opening_hours": "24/7"}),
    )
    .await;

    let q = |extra: &str| format!("/api/v1/aeds/nearest?{AT}&k=10&{extra}");
    eventually("all four AEDs indexed", || async {
        let (_, b) = send(s.get(&q("include=restricted,closed"), None)).await;
        ids(&b).len() == 4
    })
    .await;

    // At noon: the outdoor cabinet beats the nearer locked one upstairs; the bank is open.
    let (st, noon) = send(s.get(&q(&format!("open_at={NOON}")), None)).await;
    assert_eq!(st, 200, "{noon}");
    assert_eq!(ids(&noon), vec![outdoor, upstairs, office], "{noon:#}");
    let r0 = &noon["results"][0];
    assert!(
        (r0["distance_m"].as_f64().unwrap() - 146.0).abs() < 2.0,
        "{r0}"
    );
    assert!((r0["bearing_deg"].as_f64().unwrap() - 90.0).abs() < 1.0);
    // 146 m × 1.2 / 1.4 m/s each way.
    assert!(
        (r0["round_trip_s"].as_f64().unwrap() - 2.0 * 146.0 * 1.2 / 1.4).abs() < 3.0,
        "{r0}"
    );
    let up = &noon["results"][1];
    assert_eq!(up["cabinet_locked"], true);
    assert_eq!(up["level"], "4");
    assert_eq!(up["location_description"], "电梯右侧");
    assert!(
        !noon.to_string().contains("8642"),
        "the cabinet code is never public"
    );
    let bank = &noon["results"][2];
    assert_eq!(bank["hours"], "open");
    assert_eq!(
        bank["next_change"], "2026-11-25T10:00:00Z",
        "closes 18:00 local"
    );
    assert_eq!(bank["closes_before_return"], false);

    // At 03:00 the bank is closed and skipped; asking for closed ones shows when it opens.
    let (_, night) = send(s.get(&q(&format!("open_at={NIGHT}")), None)).await;
    assert_eq!(ids(&night), vec![outdoor, upstairs]);
    let (_, all) = send(s.get(&q(&format!("open_at={NIGHT}&include=closed")), None)).await;
    let bank = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == office)
        .unwrap();
    assert_eq!(bank["hours"], "closed");
    assert_eq!(
        bank["next_change"], "2026-11-25T00:00:00Z",
        "opens 08:00 local"
    );
    // Just before closing: open now, but it closes before the caller is back.
    let (_, late) = send(s.get(&q("open_at=2026-11-25T17:55:00%2B08:00"), None)).await;
    let bank = late["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == office)
        .unwrap();
    assert_eq!(bank["closes_before_return"], true, "{bank}");
    // Two minutes later it would close before the caller even got there: not offered.
    let (_, later) = send(s.get(&q("open_at=2026-11-25T17:58:00%2B08:00"), None)).await;
    assert!(!ids(&later).contains(&office), "{later}");
    // Restricted access on request, nearest by time at 60 m.
    let (_, r) = send(s.get(&q(&format!("open_at={NOON}&include=restricted")), None)).await;
    assert_eq!(ids(&r)[0], private);
    // Distance cap.
    let (_, capped) = send(s.get(&q(&format!("open_at={NOON}&max_distance_m=150")), None)).await;
    assert_eq!(ids(&capped), vec![outdoor, upstairs]);

    // A fault reported by maintenance removes it from callers' answers at once.
    let (st, _) = send(s.put(
        &format!("/api/v1/aeds/{outdoor}/readiness"),
        Some(Role::Maintenance),
        &json!({"status": "fault", "reason": "self-test E12"}),
    ))
    .await;
    assert_eq!(st, 200);
    eventually("fault excluded", || async {
        let (_, b) = send(s.get(&q(&format!("open_at={NOON}")), None)).await;
        ids(&b) == vec![upstairs, office]
    })
    .await;
    let (_, any) = send(s.get(&q(&format!("open_at={NOON}&readiness=any")), None)).await;
    assert!(ids(&any).contains(&outdoor));
    // An edit moves it; a delete removes it.
    let (st, _) = send(s.delete(&format!("/api/v1/aeds/{upstairs}"), Some(Role::Admin))).await;
    assert_eq!(st, 204);
    eventually("delete reaches the index", || async {
        let (_, b) = send(s.get(&q(&format!("open_at={NOON}")), None)).await;
        ids(&b) == vec![office]
    })
    .await;

    // GeoJSON: a FeatureCollection, ranked, coordinates lon/lat.
    let (st, gj) = send(s.get(&q(&format!("open_at={NOON}&format=geojson")), None)).await;
    assert_eq!(st, 200);
    assert_eq!(gj["type"], "FeatureCollection");
    let f0 = &gj["features"][0];
    assert_eq!(f0["geometry"]["coordinates"], json!([118.87, 28.9682]));
    assert_eq!(f0["properties"]["rank"], 1);
    assert_eq!(f0["properties"]["id"], office);

    // Bad input names the parameter.
    let cases: &[(&str, u16, &str)] = &[
        ("lon=118.87", 400, "lat"),
        ("lat=28.97", 400, "lon"),
        ("lat=north&lon=118.87", 400, "lat"),
        ("lat=91&lon=118.87", 422, "lat"),
        ("lat=28.97&lon=-181", 422, "lon"),
        ("lat=28.97&lon=118.87&k=0", 422, "k"),
        ("lat=28.97&lon=118.87&k=51", 422, "k"),
        ("lat=28.97&lon=118.87&k=two", 400, "k"),
        ("lat=28.97&lon=118.87&open_at=yesterday", 400, "open_at"),
        (
            "lat=28.97&lon=118.87&max_distance_m=-5",
            422,
            "max_distance_m",
        ),
        (
            "lat=28.97&lon=118.87&max_distance_m=1e9",
            422,
            "max_distance_m",
        ),
        ("lat=28.97&lon=118.87&include=everything", 400, "include"),
        ("lat=28.97&lon=118.87&readiness=maybe", 400, "readiness"),
        ("lat=28.97&lon=118.87&hours=sometimes", 400, "hours"),
        ("lat=28.97&lon=118.87&indoor=perhaps", 400, "indoor"),
        ("lat=28.97&lon=118.87&format=kml", 400, "format"),
    ];
    for (query, status, field) in cases {
        let (st, err) = send(s.get(&format!("/api/v1/aeds/nearest?{query}"), None)).await;
        assert_eq!(st, *status, "{query} -> {err}");
        assert_eq!(err["field"], *field, "{query} -> {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // Stations: nearest by kind, personal contact never public.
    for (kind, lat, name) in [
        ("boai_station", 28.9705, "博爱驿站·火车站"),
        ("school_station", 28.9702, "衢州二中救护站"),
    ] {
        let (st, b) = send(s.post(
            "/api/v1/stations",
            Some(Role::Admin),
            &json!({"kind": kind, "name": name,
            "lat": lat, "lon": 118.8700, "staffed_hours": "Mo-Su 08:00-20:00",
            "contact_name": "王站长", "contact_phone": "0570-1234567"}),
        ))
        .await;
        assert_eq!(st, 201, "{b}");
    }
    eventually("stations indexed", || async {
        let (_, b) = send(s.get(&format!("/api/v1/stations/nearest?{AT}"), None)).await;
        b["count"] == 2
    })
    .await;
    let (_, b) = send(s.get(
        &format!("/api/v1/stations/nearest?{AT}&kind=boai_station"),
        None,
    ))
    .await;
    assert_eq!(b["count"], 1);
    assert_eq!(b["results"][0]["station"]["name"], "博爱驿站·火车站");
    assert!(!b.to_string().contains("王站长"), "{b}");
    let (_, b) = send(s.get(
        &format!("/api/v1/stations/nearest?{AT}&staffed=true&at={NIGHT}"),
        None,
    ))
    .await;
    assert_eq!(b["count"], 0, "nobody staffs them at 03:00");
    let (_, b) = send(s.get(
        &format!("/api/v1/stations/nearest?{AT}&staffed=true&at={NOON}&format=geojson"),
        None,
    ))
    .await;
    assert_eq!(b["features"][0]["properties"]["name"], "衢州二中救护站");
    let (st, err) = send(s.get(
        &format!("/api/v1/stations/nearest?{AT}&kind=hospital"),
        None,
    ))
    .await;
    assert_eq!((st, err["field"].as_str()), (400, Some("kind")));

    // Documented in OpenAPI.
    let (_, doc) = send(s.get("/api/openapi.json", None)).await;
    assert!(doc["paths"]["/api/v1/aeds/nearest"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/stations/nearest"]["get"].is_object());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearest_on_sqlite() {
    ranking_hours_readiness_and_errors(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearest_on_postgres() {
    ranking_hours_readiness_and_errors(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_queries_are_rate_limited_per_client() {
    let s = TestServer::start_with(
        Db::Sqlite,
        aednet_mobile_api::PublicLimits {
            per_minute: 60,
            burst: 3,
            ..Default::default()
        },
    )
    .await;
    let url = format!("/api/v1/aeds/nearest?{AT}");
    for _ in 0..3 {
        assert_eq!(send(s.get(&url, None)).await.0, 200);
    }
    let resp = s.get(&url, None).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    // Staff endpoints are not behind the public limit.
    assert_eq!(send(s.get("/api/v1/aeds", None)).await.0, 200);
    s.stop().await;
}

/// The real Liechtenstein extract: at Balzers' outdoor pool the lifeguard cabin's AED
/// (node 9004556010, `Mo-Fr 08:00-22:00`) is the answer at noon on a Wednesday and is skipped at
/// 03:00, when only 24/7 or unknown-hours AEDs may be offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liechtenstein_by_hand() {
    let pbf = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/liechtenstein.osm.pbf");
    assert!(
        pbf.exists(),
        "{} is missing: the shared data must sit beside the repository",
        pbf.display()
    );
    let s = TestServer::start(Db::Sqlite).await;
    aednet_import::import_osm(
        s.store.as_ref(),
        &pbf,
        &aednet_import::ImportOptions::default(),
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .unwrap();
    aednet_api::geo_sync::reload(&s.state).await.unwrap();
    walking_network_over_http(&s).await;
    let at = "lat=47.0674838&lon=9.5027715";
    let cabin = |b: &Value| {
        b["results"]
            .as_array()
            .unwrap()
            .iter()
            .position(|r| r["location_description"] == "Bademeisterkabine")
    };

    // Wednesday 12:00 CET.
    let (st, noon) = send(s.get(
        &format!("/api/v1/aeds/nearest?{at}&k=5&open_at=2026-11-25T12:00:00%2B01:00"),
        None,
    ))
    .await;
    assert_eq!(st, 200, "{noon}");
    assert_eq!(cabin(&noon), Some(0), "{noon:#}");
    assert!(noon["results"][0]["distance_m"].as_f64().unwrap() < 1.0);
    assert_eq!(
        noon["results"][0]["next_change"], "2026-11-25T21:00:00Z",
        "closes 22:00 CET"
    );
    // The school AEDs around it (Mo-Fr 08:00-12:00, 13:30-17:00) are on their lunch break.
    for r in noon["results"].as_array().unwrap() {
        assert_ne!(r["hours"], "closed");
    }

    // Wednesday 03:00 CET: the cabin is closed and skipped; what is offered is open or unknown.
    let (_, night) = send(s.get(
        &format!("/api/v1/aeds/nearest?{at}&k=5&open_at=2026-11-25T03:00:00%2B01:00"),
        None,
    ))
    .await;
    assert_eq!(cabin(&night), None, "{night:#}");
    assert!(!ids(&night).is_empty());
    for r in night["results"].as_array().unwrap() {
        assert!(r["hours"] == "open" || r["hours"] == "unknown", "{r}");
    }
    // Only recorded hours: every answer is open at 03:00, i.e. 24/7 here.
    let (_, strict) = send(s.get(
        &format!("/api/v1/aeds/nearest?{at}&k=5&hours=open&open_at=2026-11-25T03:00:00%2B01:00"),
        None,
    ))
    .await;
    for r in strict["results"].as_array().unwrap() {
        assert_eq!(r["hours"], "open");
        assert_eq!(r["next_change"], Value::Null, "24/7 never changes: {r}");
    }
    // Asking for closed ones too shows the cabin first, opening at 08:00 CET.
    let (_, all) = send(s.get(
        &format!(
            "/api/v1/aeds/nearest?{at}&k=5&include=closed&open_at=2026-11-25T03:00:00%2B01:00"
        ),
        None,
    ))
    .await;
    assert_eq!(cabin(&all), Some(0));
    assert_eq!(all["results"][0]["hours"], "closed");
    assert_eq!(all["results"][0]["next_change"], "2026-11-25T07:00:00Z");
    s.stop().await;
}

/// Beside the Binnenkanal in Ruggell: without the walking network the answer is the straight
/// line and says so; with the imported network loaded the first AED is the one on this side
/// of the canal, the walk is measured on the ways and drawn with `include=route`.
async fn walking_network_over_http(s: &TestServer) {
    let q = "/api/v1/aeds/nearest?lat=47.212776&lon=9.502778&k=3&include=route&open_at=2026-11-25T11:00:00%2B01:00";
    let (st, plain) = send(s.get(q, None)).await;
    assert_eq!(st, 200, "{plain}");
    assert_eq!(plain["walk"], "straight_line");
    assert_eq!(plain["walk_note"], "no_network");
    let (_, ready) = send(s.get("/readyz", None)).await;
    assert!(ready["walk_network"].is_null(), "{ready}");
    assert_eq!(
        plain["results"][0]["route"]["coordinates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let a = s
        .store
        .get_artifact(aednet_store::artifacts::kind::WALK_GRAPH)
        .await
        .unwrap()
        .expect("the import stored the walking graph");
    let graph = aednet_api::state::decode_walk_graph(&a.bytes).unwrap();
    let info = a.info.clone();
    s.state.walk_graph.set(aednet_api::artifacts::Loaded {
        info: a.info,
        value: graph,
    });
    // Readiness says which network serves (a load test waits for it before measuring).
    let (st, ready) = send(s.get("/readyz", None)).await;
    assert_eq!(st, 200);
    assert_eq!(ready["walk_network"]["version"], info.version, "{ready}");
    assert!(
        ready["walk_network"]["nodes"].as_u64().unwrap() > 1000,
        "{ready}"
    );
    let (st, net) = send(s.get(q, None)).await;
    assert_eq!(st, 200, "{net}");
    assert_eq!(net["walk"], "network", "{net:#}");
    assert!(net.get("walk_note").is_none());
    let first = &net["results"][0];
    assert_eq!(first["walk"], "network");
    assert!(first["walk_m"].as_f64().unwrap() >= first["distance_m"].as_f64().unwrap());
    let route = first["route"]["coordinates"].as_array().unwrap();
    assert!(route.len() > 2, "{first}");
    assert_eq!(route[0], serde_json::json!([9.502778, 47.212776]));
    // The straight-line first is across the canal: the network's first is another AED.
    assert_ne!(
        (&plain["results"][0]["lat"], &plain["results"][0]["lon"]),
        (&first["lat"], &first["lon"]),
        "{plain:#} {net:#}"
    );
    // The rest of the test is about hours, on the straight-line model: an empty network.
    s.state.walk_graph.set(aednet_api::artifacts::Loaded {
        info,
        value: std::sync::Arc::new(aednet_routing::Graph::from_parts(vec![], vec![])),
    });
}
