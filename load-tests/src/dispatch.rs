//! Dispatch against the real server: `n` live rescuers in the index (bulk-created, each having
//! reported a position over HTTP), WebSockets for some of them, incidents created one after
//! another at a connected rescuer's position; the time from `POST /api/v1/incidents` to the
//! offer frame on that rescuer's socket. And rescuer location updates over `/ws/rescuer`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_core::{LatLon, Role};
use anyhow::Context;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::workload;

pub struct Prepared {
    /// (rescuer id, token, home position), in id order.
    pub rescuers: Vec<(i64, String, LatLon)>,
    pub dispatcher: String,
}

/// `n` on-duty rescuers with consent over the region of `aeds` synthetic AEDs (which are
/// stored too, for fetch roles), a token each (inserted in one transaction: 10^5 single inserts
/// would dominate the run), and a dispatcher token.
pub async fn prepare(url: &str, n: usize, aeds: usize) -> anyhow::Result<Prepared> {
    let store = aednet_store::connect(url).await?;
    let now = chrono::Utc::now();
    let mut network = workload::aeds(aeds, 7);
    for a in &mut network {
        a.status = aednet_core::aed::ReadinessStatus::Unknown;
        a.access = aednet_core::aed::Access::Yes;
        a.hours = 0;
    }
    let data: Vec<_> = network.iter().map(|a| workload::aed_data(a, now)).collect();
    store.insert_aeds_bulk(&data).await?;
    let ids = crate::locations::insert_rescuers(store.as_ref(), n, "DISP").await?;
    let (lat0, lon0, dlat, dlon) = workload::region(aeds);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let pool = sqlx::SqlitePool::connect(url).await?;
    let mut tx = pool.begin().await?;
    let mut rescuers = Vec::with_capacity(n);
    for id in ids {
        let (secret, new) = aednet_api::auth::new_token("load", Role::Rescuer, Some(id));
        sqlx::query("INSERT INTO api_tokens (name, role, subject_id, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&new.name)
            .bind(new.role.as_str())
            .bind(new.subject_id)
            .bind(&new.token_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let pos = LatLon {
            lat: lat0 + rng.gen_range(0.0..dlat),
            lon: lon0 + rng.gen_range(0.0..dlon),
        };
        rescuers.push((id, secret, pos));
    }
    tx.commit().await?;
    pool.close().await;
    let (dispatcher, new) = aednet_api::auth::new_token("load", Role::Dispatcher, None);
    store.create_token(&new).await?;
    Ok(Prepared {
        rescuers,
        dispatcher,
    })
}

/// Every rescuer reports its position once over HTTP, `concurrency` at a time.
pub async fn report_positions(
    base: &str,
    rescuers: &[(i64, String, LatLon)],
    concurrency: usize,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/me/location");
    let failures = futures::stream::iter(rescuers.iter())
        .map(|(_, token, pos)| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&serde_json::json!({"lat": pos.lat, "lon": pos.lon}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 204)
                    .unwrap_or(false)
            }
        })
        .buffer_unordered(concurrency)
        .filter(|ok| futures::future::ready(!ok))
        .count()
        .await;
    anyhow::ensure!(failures == 0, "{failures} position reports failed");
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(base: &str, token: &str) -> anyhow::Result<Ws> {
    let mut req = (base.replace("http://", "ws://") + "/ws/rescuer").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

pub struct DispatchReport {
    pub incidents: usize,
    /// POST → the offer frame on the nearest (connected) rescuer's socket, µs.
    pub to_offer: Histogram<u64>,
    /// POST → its 201 answer, µs.
    pub to_answer: Histogram<u64>,
    /// Offer frames that reached any connected socket, per incident.
    pub offers_on_sockets: u64,
    pub missed: usize,
}

/// Incidents one after another, each at a connected rescuer's position (so the nearest, who
/// is offered CPR, has a socket); each cancelled afterwards so nobody stays booked.
pub async fn incidents(
    base: &str,
    p: &Prepared,
    sockets: usize,
    count: usize,
) -> anyhow::Result<DispatchReport> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, i64, Instant)>();
    let mut readers = Vec::new();
    for (k, (_, token, _)) in p.rescuers.iter().take(sockets).enumerate() {
        let mut ws = connect(base, token)
            .await
            .with_context(|| format!("socket {k}"))?;
        let tx = tx.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    let at = Instant::now();
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                    if v["type"] == "offer" {
                        let _ = tx.send((k, v["incident_id"].as_i64().unwrap_or(-1), at));
                    }
                }
            }
        }));
    }
    let client = reqwest::Client::new();
    let mut to_offer = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut to_answer = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut offers_on_sockets = 0;
    let mut missed = 0;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..count {
        let k = rng.gen_range(0..sockets);
        let pos = p.rescuers[k].2;
        let t0 = Instant::now();
        let resp = client
            .post(format!("{base}/api/v1/incidents"))
            .bearer_auth(&p.dispatcher)
            .json(&serde_json::json!({"lat": pos.lat, "lon": pos.lon}))
            .send()
            .await?;
        let answered = t0.elapsed();
        anyhow::ensure!(resp.status().as_u16() == 201, "create: {}", resp.status());
        let inc: serde_json::Value = resp.json().await?;
        let id = inc["id"].as_i64().context("incident id")?;
        let _ = to_answer.record(answered.as_micros() as u64);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = false;
        while !got {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some((who, inc_id, at))) if inc_id == id => {
                    offers_on_sockets += 1;
                    if who == k {
                        let _ = to_offer.record(at.duration_since(t0).as_micros() as u64);
                        got = true;
                    }
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        if !got {
            missed += 1;
        }
        let r = client
            .post(format!("{base}/api/v1/incidents/{id}/cancel"))
            .bearer_auth(&p.dispatcher)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "cancel: {}", r.status());
        // Offers to other connected rescuers of this incident may still be on their way.
        while let Ok((_, inc_id, _)) = rx.try_recv() {
            if inc_id == id {
                offers_on_sockets += 1;
            }
        }
    }
    for r in readers {
        r.abort();
    }
    Ok(DispatchReport {
        incidents: count,
        to_offer,
        to_answer,
        offers_on_sockets,
        missed,
    })
}

pub struct WsReport {
    pub acked: u64,
    pub errors: u64,
    pub seconds: f64,
    pub hist: Histogram<u64>,
}

/// Location frames over `/ws/rescuer`: `sockets` rescuers, each keeping `window` frames in
/// flight (matched to their acks by `ref`), for `seconds`.
pub async fn ws_locations(
    base: &str,
    tokens: &[String],
    sockets: usize,
    window: usize,
    seconds: u64,
) -> anyhow::Result<WsReport> {
    let acked = Arc::new(AtomicU64::new(0));
    let mut conns = Vec::new();
    for token in tokens.iter().take(sockets) {
        conns.push(connect(base, token).await?);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (k, ws) in conns.into_iter().enumerate() {
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut errors = 0u64;
            let mut sent: HashMap<u64, Instant> = HashMap::new();
            let mut seq = 0u64;
            let frame = |seq: u64| {
                format!(
                    r#"{{"type":"location","lat":{},"lon":{},"accuracy_m":8,"ref":{seq}}}"#,
                    28.9 + (k % 1000) as f64 * 0.0001 + (seq % 500) as f64 * 0.00001,
                    118.8 + (k % 997) as f64 * 0.0001
                )
            };
            loop {
                while sent.len() < window && Instant::now() < deadline {
                    seq += 1;
                    sent.insert(seq, Instant::now());
                    if sink.send(Message::Text(frame(seq).into())).await.is_err() {
                        return (h, errors + 1);
                    }
                }
                if sent.is_empty() {
                    break;
                }
                match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                        if let Some(r) = v["ref"].as_u64() {
                            if let Some(t0) = sent.remove(&r) {
                                let _ = h.record(t0.elapsed().as_micros() as u64);
                                if v["type"] == "ack" {
                                    acked.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    errors += 1;
                                }
                            }
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => return (h, errors + sent.len() as u64),
                }
            }
            let _ = sink.close().await;
            (h, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await?;
        hist.add(&h)?;
        errors += e;
    }
    Ok(WsReport {
        acked: acked.load(Ordering::Relaxed),
        errors,
        seconds: start.elapsed().as_secs_f64(),
        hist,
    })
}
