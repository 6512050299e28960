//! `load-tests push`: incident → every first-wave Web Push request at the push service.
//!
//! The real server (a child process, release build) with Web Push on (a fresh VAPID key,
//! `allow_http_endpoints` for the loopback push service) over `rescuers` on-duty rescuers in
//! the index (each reported its position over HTTP) and `subscriptions` push subscriptions, one
//! each for the rescuers nearest the middle of the region: incidents are placed well inside
//! that disc, so every first-wave offer is a push. No rescuer has a socket open (phones in
//! pockets): each offer goes to the push service at once.
//!
//! The push service runs in this process: a real HTTP server that notes when each request
//! arrives (by its `Topic: incident-<id>` header, which is in clear: the body is encrypted for
//! the phone) and answers `201` only after `delay_ms` (200 ms: a slow push service). Incidents
//! are created one after another; for each, the time from just before `POST /api/v1/incidents`
//! to the arrival of the last of its first wave's push requests; then it is cancelled, and
//! the cancel pushes (also 200 ms each) run beside the next incident's offers.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_core::LatLon;
use anyhow::Context;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;

use crate::dispatch;

#[derive(Debug, Clone)]
pub struct Options {
    pub rescuers: usize,
    pub subscriptions: usize,
    pub incidents: usize,
    pub aeds: usize,
    /// The push service's answer time, ms.
    pub delay_ms: u64,
    /// `[notify.web_push] concurrency` for the server; `None`: its default.
    pub concurrency: Option<usize>,
    /// Pause between one incident's cancel and the next incident, ms.
    pub gap_ms: u64,
}

pub struct Report {
    pub incidents: usize,
    /// POST → the last first-wave push request at the push service, µs.
    pub to_last_push: Histogram<u64>,
    /// POST → each first-wave push request, µs.
    pub to_each_push: Histogram<u64>,
    /// POST → its 201, µs.
    pub to_answer: Histogram<u64>,
    /// First-wave pushes expected (offers to subscribed rescuers), in all.
    pub pushes: u64,
    /// Incidents whose first wave did not all arrive within 10 s.
    pub missed: usize,
    /// Push requests the service received in all (offers and cancels).
    pub received: u64,
    pub max_in_flight: u64,
}

/// One request at the test push service.
struct Arrival {
    topic: String,
    at: Instant,
}

#[derive(Clone)]
struct PushService {
    tx: mpsc::UnboundedSender<Arrival>,
    delay: Duration,
    in_flight: Arc<std::sync::atomic::AtomicU64>,
    max_in_flight: Arc<std::sync::atomic::AtomicU64>,
}

async fn receive(
    State(s): State<PushService>,
    UrlPath(_rescuer): UrlPath<i64>,
    headers: HeaderMap,
) -> StatusCode {
    use std::sync::atomic::Ordering;
    let at = Instant::now();
    let topic = headers
        .get("topic")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let _ = s.tx.send(Arrival { topic, at });
    let n = s.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    s.max_in_flight.fetch_max(n, Ordering::Relaxed);
    tokio::time::sleep(s.delay).await;
    s.in_flight.fetch_sub(1, Ordering::Relaxed);
    StatusCode::CREATED
}

/// Starts the push service on a loopback port; arrivals come out of the receiver.
async fn push_service(
    delay: Duration,
) -> anyhow::Result<(String, mpsc::UnboundedReceiver<Arrival>, PushService)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let svc = PushService {
        tx,
        delay,
        in_flight: Arc::default(),
        max_in_flight: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/push/{rescuer}", post(receive))
        .with_state(svc.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((base, rx, svc))
}

/// A browser's subscription keys: a real P-256 public key and auth secret (the server
/// encrypts every push for them; this service never needs to decrypt).
fn browser_keys() -> (String, String) {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let mut auth = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut auth);
    (
        B64.encode(secret.public_key().to_encoded_point(false).as_bytes()),
        B64.encode(auth),
    )
}

pub async fn run(o: &Options, dir: &Path) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir)?;
    let db = dir.join(format!("push-{}.db", o.rescuers));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let url = format!("sqlite://{}", db.display());
    let t = Instant::now();
    let p = dispatch::prepare(&url, o.rescuers, o.aeds).await?;
    eprintln!(
        "{} rescuers with tokens and {} AEDs stored in {:.1} s",
        o.rescuers,
        o.aeds,
        t.elapsed().as_secs_f64()
    );
    let (push_base, mut arrivals, svc) = push_service(Duration::from_millis(o.delay_ms)).await?;
    // The subscribed: the rescuers nearest the middle of the region.
    let (lat0, lon0, dlat, dlon) = crate::workload::region(o.aeds);
    let centre = LatLon {
        lat: lat0 + dlat / 2.0,
        lon: lon0 + dlon / 2.0,
    };
    let mut by_distance: Vec<(f64, i64, LatLon)> = p
        .rescuers
        .iter()
        .map(|(id, _, pos)| (pos.distance_m(&centre), *id, *pos))
        .collect();
    by_distance.sort_by(|a, b| a.0.total_cmp(&b.0));
    let subscribed: Vec<(f64, i64, LatLon)> = by_distance
        .into_iter()
        .take(o.subscriptions.min(o.rescuers))
        .collect();
    let disc_m = subscribed.last().map(|s| s.0).unwrap_or(0.0);
    {
        let pool = sqlx::SqlitePool::connect(&url).await?;
        let mut tx = pool.begin().await?;
        let now = chrono::Utc::now();
        for (_, id, _) in &subscribed {
            let (p256dh, auth) = browser_keys();
            sqlx::query("INSERT INTO push_subscriptions (rescuer_id, endpoint, p256dh, auth, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(format!("{push_base}/push/{id}"))
                .bind(p256dh)
                .bind(auth)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        pool.close().await;
    }
    eprintln!(
        "{} push subscriptions: the rescuers within {:.0} m of the middle",
        subscribed.len(),
        disc_m
    );
    let subscribed_ids: HashSet<i64> = subscribed.iter().map(|s| s.1).collect();
    let (vapid_private, _) = aednet_notify::Vapid::generate();
    let mut env = vec![
        (
            "AEDNET_NOTIFY__WEB_PUSH__VAPID_PRIVATE_KEY".to_string(),
            vapid_private,
        ),
        (
            "AEDNET_NOTIFY__WEB_PUSH__ALLOW_HTTP_ENDPOINTS".to_string(),
            "true".to_string(),
        ),
    ];
    if let Some(c) = o.concurrency {
        env.push((
            "AEDNET_NOTIFY__WEB_PUSH__CONCURRENCY".to_string(),
            c.to_string(),
        ));
    }
    let (base, child) = crate::targets::spawn_aednet_env(&url, &env).await?;
    let t = Instant::now();
    dispatch::report_positions(&base, &p.rescuers, 64).await?;
    eprintln!(
        "{} positions reported over HTTP in {:.1} s",
        o.rescuers,
        t.elapsed().as_secs_f64()
    );
    // Incidents well inside the subscribed disc: the first wave (1 000 m) is all subscribed.
    let inner: Vec<LatLon> = subscribed
        .iter()
        .filter(|s| s.0 < (disc_m - 1_300.0).max(disc_m / 3.0))
        .map(|s| s.2)
        .collect();
    anyhow::ensure!(
        !inner.is_empty(),
        "no room for incidents inside the subscribed disc"
    );
    let client = reqwest::Client::new();
    let mut report = Report {
        incidents: 0,
        to_last_push: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        to_each_push: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        to_answer: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        pushes: 0,
        missed: 0,
        received: 0,
        max_in_flight: 0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let warm_up = 10.min(o.incidents / 10);
    for n in 0..o.incidents + warm_up {
        let pos = inner[rng.gen_range(0..inner.len())];
        // A few metres off the rescuer's own position.
        let at = LatLon {
            lat: pos.lat + rng.gen_range(-0.0005..0.0005),
            lon: pos.lon + rng.gen_range(-0.0005..0.0005),
        };
        let t0 = Instant::now();
        let resp = client
            .post(format!("{base}/api/v1/incidents"))
            .bearer_auth(&p.dispatcher)
            .json(&serde_json::json!({"lat": at.lat, "lon": at.lon}))
            .send()
            .await?;
        let answered = t0.elapsed();
        anyhow::ensure!(resp.status().as_u16() == 201, "create: {}", resp.status());
        let inc: serde_json::Value = resp.json().await?;
        let id = inc["id"].as_i64().context("incident id")?;
        let expected = inc["offers"]
            .as_array()
            .context("offers")?
            .iter()
            .filter(|o| {
                o["rescuer_id"]
                    .as_i64()
                    .is_some_and(|r| subscribed_ids.contains(&r))
            })
            .count();
        let topic = format!("incident-{id}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got: Vec<Instant> = Vec::with_capacity(expected);
        while got.len() < expected {
            match tokio::time::timeout_at(deadline.into(), arrivals.recv()).await {
                Ok(Some(a)) => {
                    report.received += 1;
                    // Anything else is an earlier incident's cancel (incidents go one at a
                    // time: no later one exists yet).
                    if a.topic == topic {
                        got.push(a.at);
                    }
                }
                _ => break,
            }
        }
        let measured = n >= warm_up;
        if measured {
            report.incidents += 1;
            report.pushes += expected as u64;
            let _ = report.to_answer.record(answered.as_micros().max(1) as u64);
            if got.len() < expected {
                report.missed += 1;
            } else if let Some(last) = got.iter().max() {
                let _ = report
                    .to_last_push
                    .record(last.duration_since(t0).as_micros().max(1) as u64);
                for g in &got {
                    let _ = report
                        .to_each_push
                        .record(g.duration_since(t0).as_micros().max(1) as u64);
                }
            }
        }
        let r = client
            .post(format!("{base}/api/v1/incidents/{id}/cancel"))
            .bearer_auth(&p.dispatcher)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "cancel: {}", r.status());
        if o.gap_ms > 0 {
            tokio::time::sleep(Duration::from_millis(o.gap_ms)).await;
        }
    }
    while let Ok(_a) = arrivals.try_recv() {
        report.received += 1;
    }
    report.max_in_flight = svc.max_in_flight.load(std::sync::atomic::Ordering::Relaxed);
    drop(child);
    Ok(report)
}

pub fn table(o: &Options, r: &Report) -> String {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let mut s = String::new();
    s.push_str("| rescuers | subscriptions | push service answers in | incidents | first-wave pushes / incident | incident → last first-wave push p50 ms | p99 ms | max ms | → each push p99 ms | POST → 201 p99 ms | missed | push requests in flight at most |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    s.push_str(&format!(
        "| {} | {} | {} ms | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |\n",
        o.rescuers,
        o.subscriptions,
        o.delay_ms,
        r.incidents,
        r.pushes as f64 / r.incidents.max(1) as f64,
        ms(&r.to_last_push, 0.5),
        ms(&r.to_last_push, 0.99),
        r.to_last_push.max() as f64 / 1000.0,
        ms(&r.to_each_push, 0.99),
        ms(&r.to_answer, 0.99),
        r.missed,
        r.max_in_flight,
    ));
    s
}
