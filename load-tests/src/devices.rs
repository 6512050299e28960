//! Device simulator: real WebSocket clients speaking the telemetry protocol to the real server,
//! many at once, with configurable rate and fault injection; reports ack throughput, ack
//! latency, server memory per socket, and how long a fault takes to leave nearest answers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_core::Role;
use anyhow::Context;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::workload;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub devices: usize,
    pub seconds: u64,
    /// Messages per second per device.
    pub rate: f64,
    /// One message in this many is a status change (self-test fail/pass alternating).
    pub fault_every: u64,
}

#[derive(Debug)]
pub struct SimReport {
    pub devices: usize,
    pub connected: usize,
    pub connect_seconds: f64,
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ack_latency: Histogram<u64>,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub fault_to_nearest_ms: Option<f64>,
    /// Server CPU time (user + system) during the send phase, in seconds.
    pub server_cpu_s: f64,
}

/// CPU time used so far by a process (user + system), in seconds (Linux, 100 ticks/s).
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14th and 15th.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// Resident memory of a process in KiB (Linux).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Prepares a SQLite database with `n` AEDs and one device token each; returns the tokens.
pub async fn prepare(url: &str, n: usize) -> anyhow::Result<Vec<(i64, String)>> {
    let store = aednet_store::connect(url).await?;
    let now = chrono::Utc::now();
    let mut aeds = workload::aeds(n, 99);
    for a in &mut aeds {
        a.status = aednet_core::aed::ReadinessStatus::Unknown;
        a.access = aednet_core::aed::Access::Yes;
        a.hours = 0;
    }
    let data: Vec<_> = aeds.iter().map(|a| workload::aed_data(a, now)).collect();
    store.insert_aeds_bulk(&data).await?;
    let ids: Vec<i64> = store
        .load_aed_index()
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut tokens = Vec::with_capacity(ids.len());
    for id in ids {
        let (secret, new) =
            aednet_api::auth::new_token(&format!("sim-{id}"), Role::Device, Some(id));
        store.create_token(&new).await?;
        tokens.push((id, secret));
    }
    Ok(tokens)
}

fn frame(seq: u64, fault_every: u64) -> String {
    if fault_every > 0 && seq.is_multiple_of(fault_every) {
        let ok = (seq / fault_every).is_multiple_of(2);
        format!(
            r#"{{"v":1,"seq":{seq},"ts":"2026-11-24T08:00:00Z","type":"self_test","ok":{ok},"fault_codes":["E1"]}}"#
        )
    } else {
        format!(
            r#"{{"v":1,"seq":{seq},"ts":"2026-11-24T08:00:00Z","type":"heartbeat","battery_pct":87,"signal_dbm":-71}}"#
        )
    }
}

/// Runs the simulation against `base` (http://host:port); `server_pid` for memory readings.
pub async fn simulate(
    base: &str,
    server_pid: u32,
    tokens: &[(i64, String)],
    o: &SimOptions,
) -> anyhow::Result<SimReport> {
    let ws_url = base.replace("http://", "ws://") + "/ws/device";
    let rss_before_kib = rss_kib(server_pid);
    let sent = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    // Connect everyone first (256 at a time), then start sending together.
    let mut sockets = Vec::with_capacity(tokens.len());
    for chunk in tokens.chunks(256) {
        let mut pending = Vec::new();
        for (_, token) in chunk {
            let mut req = ws_url.as_str().into_client_request()?;
            req.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
            pending.push(tokio_tungstenite::connect_async(req));
        }
        for r in futures::future::join_all(pending).await {
            match r {
                Ok((ws, _)) => sockets.push(ws),
                Err(e) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    tracing_fallback(&e.to_string());
                }
            }
        }
    }
    let connect_seconds = t0.elapsed().as_secs_f64();
    let connected = sockets.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after_kib = rss_kib(server_pid);

    let interval = Duration::from_secs_f64(1.0 / o.rate.max(0.001));
    let mut tasks = Vec::with_capacity(connected);
    for (i, ws) in sockets.into_iter().enumerate() {
        let (sent, acked, errors, go, stop) = (
            sent.clone(),
            acked.clone(),
            errors.clone(),
            go.clone(),
            stop.clone(),
        );
        let fault_every = o.fault_every;
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let inflight: Arc<parking_lot::Mutex<VecDeque<Instant>>> = Default::default();
            while !go.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Spread the devices' phases over one interval.
            tokio::time::sleep(interval.mul_f64((i % 1000) as f64 / 1000.0)).await;
            let writer = {
                let (inflight, sent, stop) = (inflight.clone(), sent.clone(), stop.clone());
                async move {
                    let mut tick = tokio::time::interval(interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        tick.tick().await;
                        seq += 1;
                        inflight.lock().push_back(Instant::now());
                        if tx
                            .send(Message::Text(frame(seq, fault_every).into()))
                            .await
                            .is_err()
                        {
                            break;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = tx.close().await;
                }
            };
            let reader = async {
                while let Some(Ok(m)) = rx.next().await {
                    if let Message::Text(t) = m {
                        let start = inflight.lock().pop_front();
                        if t.contains(r#""type":"ack""#) {
                            acked.fetch_add(1, Ordering::Relaxed);
                            if let Some(s) = start {
                                let _ = hist.record(s.elapsed().as_micros() as u64);
                            }
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if stop.load(Ordering::Relaxed) && inflight.lock().is_empty() {
                        break;
                    }
                }
            };
            tokio::select! {
                () = async { tokio::join!(writer, reader); } => {}
                () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
            hist
        }));
    }
    let started = Instant::now();
    let cpu0 = cpu_seconds(server_pid);
    go.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    let acked_at_end = acked.load(Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu_s = cpu_seconds(server_pid) - cpu0;
    stop.store(true, Ordering::Relaxed);
    let mut ack_latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for t in tasks {
        if let Ok(Ok(h)) = tokio::time::timeout(Duration::from_secs(30), t).await {
            let _ = ack_latency.add(&h);
        }
    }
    Ok(SimReport {
        devices: tokens.len(),
        connected,
        connect_seconds,
        sent: sent.load(Ordering::Relaxed),
        acked: acked_at_end,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        ack_latency,
        rss_before_kib,
        rss_after_kib,
        fault_to_nearest_ms: None,
        server_cpu_s,
    })
}

fn tracing_fallback(e: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| eprintln!("a device could not connect: {e}"));
}

/// One device reports a self-test fault; returns how long until its AED leaves the nearest
/// answer at its own position.
pub async fn fault_to_nearest(base: &str, aed_id: i64, token: &str) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let aed: serde_json::Value = client
        .get(format!("{base}/api/v1/aeds/{aed_id}"))
        .send()
        .await?
        .json()
        .await?;
    let (lat, lon) = (
        aed["location"]["lat"].as_f64().context("lat")?,
        aed["location"]["lon"].as_f64().context("lon")?,
    );
    let near =
        format!("{base}/api/v1/aeds/nearest?lat={lat}&lon={lon}&k=1&readiness=not_known_bad");
    let listed = |v: &serde_json::Value| {
        v["results"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["id"] == aed_id))
    };
    let v: serde_json::Value = client.get(&near).send().await?.json().await?;
    anyhow::ensure!(
        listed(&v),
        "the probe AED should be listed before its fault"
    );
    let mut req = (base.replace("http://", "ws://") + "/ws/device").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let t = Instant::now();
    ws.send(Message::Text(
        r#"{"v":1,"seq":9000000000,"ts":"2026-11-24T08:00:00Z","type":"self_test","ok":false,"fault_codes":["E9"]}"#.into(),
    ))
    .await?;
    loop {
        let v: serde_json::Value = client.get(&near).send().await?.json().await?;
        if !listed(&v) {
            return Ok(t.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(10),
            "fault never reached the index"
        );
    }
}
