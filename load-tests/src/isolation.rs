//! `load-tests isolation`: is the caller's nearest query protected from everything else?
//!
//! The demo city in the real server (a child process). First the caller's query alone (open
//! loop, latency from the intended start), then the same query while, at once: 20 clients
//! hammer `GET /api/v1/coverage?res=10` (each its own client address through
//! `X-Forwarded-For`; half ask the whole map, the same question, and half each a district with
//! a budget of its own, maps that really are built, so the cache, the stale answers and the
//! concurrency bound are all exercised; after a 429/503/422 they wait 50 ms, not the
//! `Retry-After`), an OSM import runs over HTTP again and again, rescuers report 1 000
//! positions per second, and devices send telemetry whose acks must keep flowing.
//!
//! The server runs with a caller lane (`caller_listen`) and the query is measured there unless
//! `--port main`. The measuring client has a thread, a runtime and connections of its own; the
//! load generators run on another runtime whose threads are niced (19) unless `--generators
//! normal`. In the field the hammering clients, phones and devices are other machines, and what
//! they cost is the server's work, not their own: here they share the server's cores, and the
//! niced generators are what keeps their own CPU from being counted as the server's latency.
//! The table says which was measured and how many location reports were really sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aednet_core::{LatLon, Role};
use anyhow::Context as _;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};

use crate::devices::{rss_kib, SimOptions, SimReport};
use crate::drive::{open_loop, Outcome};
use crate::targets::{self, Target};

/// Where the caller's query is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Port {
    /// The caller lane (`caller_listen`): the nearest queries alone, on their own thread.
    Lane,
    /// The main listener, shared with everything else.
    Main,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seconds: u64,
    pub nearest_rate: f64,
    pub coverage_clients: usize,
    pub location_rate: f64,
    pub rescuers: usize,
    pub devices: usize,
    pub device_rate: f64,
    /// An OSM extract to import again and again (idempotent); a generated CSV without it.
    pub pbf: Option<std::path::PathBuf>,
    pub port: Port,
    /// Whether the load generators' threads are niced (19).
    pub niced: bool,
    /// The layout before the caller lane (for comparisons): the measuring client and every
    /// generator on this process's one runtime, at normal priority.
    pub shared_runtime: bool,
}

#[derive(Debug)]
pub struct Report {
    pub alone: Outcome,
    pub loaded: Outcome,
    /// Coverage answers: 200 (current), 200 stale (an earlier answer while busy), 429, 503,
    /// other (422: too many cells).
    pub coverage: [u64; 5],
    pub imports: u64,
    pub import_ms: Vec<u64>,
    pub locations_ok: u64,
    pub locations_err: u64,
    /// How long the location generator ran (reports sent per second = (ok + err) / this).
    pub location_seconds: f64,
    /// The first refused location report: its status and body.
    pub location_first_error: Option<String>,
    pub location_hist: Histogram<u64>,
    pub devices: SimReport,
    pub rss_alone_kib: u64,
    pub rss_max_kib: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")
}

pub async fn run(o: &Options, dir: &std::path::Path) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir)?;
    let db = dir.join("isolation.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let url = format!("sqlite://{}", db.display());
    let store = aednet_store::connect(&url).await?;
    let city = aednet::demo::generate(20261124, chrono::Utc::now());
    aednet::demo::load(store.as_ref(), &city).await?;
    let (admin, new) = aednet_api::auth::new_token("iso-admin", Role::Admin, None);
    store.create_token(&new).await?;
    let mut rescuers = Vec::with_capacity(o.rescuers);
    for id in crate::locations::insert_rescuers(store.as_ref(), o.rescuers, "ISO").await? {
        let (secret, new) = aednet_api::auth::new_token("iso", Role::Rescuer, Some(id));
        store.create_token(&new).await?;
        rescuers.push(secret);
    }
    let index = store.load_aed_index().await?;
    let districts: Vec<i64> = store
        .list_districts(&aednet_store::ListQuery::default())
        .await?
        .items
        .iter()
        .map(|d| d.id)
        .collect();
    let places: Vec<LatLon> = index.iter().map(|r| r.location).collect();
    let mut devices = Vec::new();
    for r in index.iter().take(o.devices) {
        let (secret, new) =
            aednet_api::auth::new_token(&format!("iso-{}", r.id), Role::Device, Some(r.id));
        store.create_token(&new).await?;
        devices.push((r.id, secret));
    }
    drop(store);
    let import_body = match &o.pbf {
        Some(p) => (std::fs::read(p)?, "osm"),
        None => (synthetic_csv(&places, 5000).into_bytes(), "csv"),
    };
    eprintln!(
        "demo city: {} AEDs, {} rescuers, {} device tokens; import: {} ({} KiB)",
        places.len(),
        rescuers.len(),
        devices.len(),
        import_body.1,
        import_body.0.len() / 1024
    );

    let lane_env = [(
        "AEDNET_CALLER_LISTEN".to_string(),
        "127.0.0.1:0".to_string(),
    )];
    let targets::Spawned {
        base, lane, child, ..
    } = targets::spawn_aednet_full(&url, &lane_env).await?;
    let pid = child.id().unwrap_or_default();
    let measured = match o.port {
        Port::Lane => lane.context("the server announced no caller lane")?,
        Port::Main => base.clone(),
    };
    eprintln!("measuring the caller's query on {measured} ({:?})", o.port);
    let open_at = chrono::Utc::now().to_rfc3339().replace('+', "%2B");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let queries: Arc<Vec<LatLon>> = Arc::new(
        (0..10_000)
            .map(|_| {
                let p = places[rng.gen_range(0..places.len())];
                LatLon {
                    lat: p.lat + rng.gen_range(-0.004..0.004),
                    lon: p.lon + rng.gen_range(-0.004..0.004),
                }
            })
            .collect(),
    );
    let phase = Duration::from_secs(o.seconds);
    // Warm-up, then the caller's query alone.
    let alone = measure(
        o.shared_runtime,
        &measured,
        &open_at,
        &queries,
        o.nearest_rate,
        Duration::from_secs(2),
        phase,
    )
    .await?;
    let rss_alone_kib = rss_kib(pid);

    // Everything else at once, on the generators' runtime.
    let niced = o.niced && !o.shared_runtime;
    let generators = Generators(if o.shared_runtime {
        None
    } else {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .thread_name("load-generator")
                .on_thread_start(move || {
                    if niced && !aednet_api::background::lower_priority() {
                        eprintln!("a load generator thread could not be niced");
                    }
                })
                .build()?,
        )
    });
    let gen = generators.handle();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let coverage: Arc<[AtomicU64; 5]> = Arc::new(Default::default());
    let mut background = Vec::new();
    for i in 0..o.coverage_clients {
        let (client, base, stop, coverage) =
            (client.clone(), base.clone(), stop.clone(), coverage.clone());
        let district = districts[i % districts.len().max(1)];
        background.push(gen.spawn(async move {
            let url = if i % 2 == 0 {
                format!("{base}/api/v1/coverage?res=10")
            } else {
                format!(
                    "{base}/api/v1/coverage?res=10&district_id={district}&budget_s={}",
                    200 + i
                )
            };
            let forwarded = format!("10.0.{i}.1");
            while !stop.load(Ordering::Relaxed) {
                let slot = match client
                    .get(&url)
                    .header("x-forwarded-for", &forwarded)
                    .send()
                    .await
                {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let stale = r
                            .headers()
                            .get("x-aednet-cache")
                            .is_some_and(|v| v == "stale");
                        let _ = r.bytes().await;
                        match s {
                            200 if stale => 1,
                            200 => 0,
                            429 => 2,
                            503 => 3,
                            _ => 4,
                        }
                    }
                    Err(_) => 4,
                };
                coverage[slot].fetch_add(1, Ordering::Relaxed);
                if slot > 1 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    let import_ms = Arc::new(Mutex::new(Vec::new()));
    {
        let (client, base, stop, import_ms, admin) = (
            client.clone(),
            base.clone(),
            stop.clone(),
            import_ms.clone(),
            admin.clone(),
        );
        let (body, format) = import_body;
        background.push(gen.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/api/v1/import/{format}?name=isolation"))
                    .bearer_auth(&admin)
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        import_ms.lock().push(t.elapsed().as_millis() as u64);
                    }
                    Ok(r) => {
                        eprintln!("import: HTTP {}", r.status());
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => {
                        eprintln!("import: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }));
    }
    let location_hist = Arc::new(Mutex::new(histogram()));
    let (loc_ok, loc_err) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let location_first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let location_ran = Arc::new(Mutex::new(0.0f64));
    {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        let (hist, ok, err) = (location_hist.clone(), loc_ok.clone(), loc_err.clone());
        let first_err = location_first_error.clone();
        let ran = location_ran.clone();
        let tokens = Arc::new(rescuers);
        let rate = o.location_rate;
        background.push(gen.spawn(async move {
            let start = Instant::now();
            let mut i = 0u64;
            let url = Arc::new(format!("{base}/api/v1/me/location"));
            while !stop.load(Ordering::Relaxed) {
                let intended = start + Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                let (client, url, tokens, hist, ok, err, first_err) = (
                    client.clone(),
                    url.clone(),
                    tokens.clone(),
                    hist.clone(),
                    ok.clone(),
                    err.clone(),
                    first_err.clone(),
                );
                tokio::spawn(async move {
                    let tok = &tokens[i as usize % tokens.len()];
                    let body = format!(
                        r#"{{"lat":{},"lon":{},"accuracy_m":8}}"#,
                        28.95 + (i % 1000) as f64 * 0.00005,
                        118.85 + (i % 997) as f64 * 0.00005
                    );
                    let r = client
                        .post(url.as_str())
                        .bearer_auth(tok)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().as_u16() == 204 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            err.fetch_add(1, Ordering::Relaxed);
                            let status = r.status();
                            let body = r.text().await.unwrap_or_default();
                            first_err.lock().get_or_insert(format!("{status} {body}"));
                        }
                        Err(e) => {
                            err.fetch_add(1, Ordering::Relaxed);
                            first_err.lock().get_or_insert(e.to_string());
                        }
                    };
                    let _ = hist.lock().record(intended.elapsed().as_micros() as u64);
                });
                i += 1;
            }
            *ran.lock() = start.elapsed().as_secs_f64();
        }));
    }
    let rss_max = Arc::new(AtomicU64::new(0));
    {
        let (stop, rss_max) = (stop.clone(), rss_max.clone());
        background.push(gen.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                rss_max.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    // Let the coverage clients and the first import get going before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sim = SimOptions {
        devices: devices.len(),
        seconds: o.seconds + 1,
        rate: o.device_rate,
        fault_every: 0,
    };
    let device_sim =
        gen.spawn(async move { crate::devices::simulate(&[base], &[pid], &devices, &sim).await });
    // One second of warm-up on the measuring thread's fresh connections, then the phase.
    let loaded = measure(
        o.shared_runtime,
        &measured,
        &open_at,
        &queries,
        o.nearest_rate,
        Duration::from_secs(1),
        phase,
    )
    .await?;
    let devices = device_sim.await?;
    stop.store(true, Ordering::Relaxed);
    for t in background {
        let _ = t.await;
    }
    drop(generators);
    let coverage = [0, 1, 2, 3, 4].map(|i| coverage[i].load(Ordering::Relaxed));
    let location_first_error = location_first_error.lock().clone();
    let import_ms = import_ms.lock().clone();
    let location_hist = location_hist.lock().clone();
    let location_seconds = *location_ran.lock();
    Ok(Report {
        alone,
        loaded,
        coverage,
        imports: import_ms.len() as u64,
        import_ms,
        locations_ok: loc_ok.load(Ordering::Relaxed),
        locations_err: loc_err.load(Ordering::Relaxed),
        location_seconds,
        location_first_error,
        location_hist,
        devices: devices?,
        rss_alone_kib,
        rss_max_kib: rss_max.load(Ordering::Relaxed),
    })
}

/// The load generators' runtime, shut down without waiting when dropped (also on an early
/// return: a runtime may not be dropped the ordinary way inside another one).
/// `None`: on the calling runtime (`--shared-runtime`).
struct Generators(Option<tokio::runtime::Runtime>);

impl Generators {
    fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .map_or_else(tokio::runtime::Handle::current, |rt| rt.handle().clone())
    }
}

impl Drop for Generators {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The caller's query, `warm` then `phase` at `rate`, on a thread with a runtime, a client and
/// connections of its own: nothing the load generators do can delay the measuring client
/// itself (in the field they are other machines). With `shared`, on the calling runtime
/// instead, as before the caller lane.
async fn measure(
    shared: bool,
    base: &str,
    open_at: &str,
    queries: &Arc<Vec<LatLon>>,
    rate: f64,
    warm: Duration,
    phase: Duration,
) -> anyhow::Result<Outcome> {
    let (base, open_at, queries) = (base.to_string(), open_at.to_string(), queries.clone());
    let run = move |client: reqwest::Client| async move {
        let target = Arc::new(Target::Nodes {
            client,
            bases: vec![base],
            open_at,
            next: std::sync::atomic::AtomicUsize::new(0),
        });
        let _ = open_loop(target.clone(), queries.clone(), 5, rate, warm, 64).await;
        open_loop(target, queries, 5, rate, phase, 64).await
    };
    if shared {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        return Ok(run(client).await);
    }
    let thread = std::thread::Builder::new().name("measure".into()).spawn(
        move || -> anyhow::Result<Outcome> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?;
            Ok(rt.block_on(run(client)))
        },
    )?;
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the measuring thread panicked"))?
}

/// `n` AEDs near the city's, as a municipal CSV list would have them.
fn synthetic_csv(places: &[LatLon], n: usize) -> String {
    let mut s = String::from("id,name,lat,lon,opening_hours\n");
    for i in 0..n {
        let p = places[i % places.len()];
        s.push_str(&format!(
            "iso-{i},AED {i},{:.6},{:.6},Mo-Fr 08:00-18:00\n",
            p.lat + (i % 37) as f64 * 0.0001,
            p.lon + (i % 41) as f64 * 0.0001
        ));
    }
    s
}

/// The report as a Markdown table.
pub fn table(o: &Options, r: &Report) -> String {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let mut s = String::new();
    s.push_str(&format!(
        "caller's query measured on the {}; load generators {}\n\n",
        match o.port {
            Port::Lane => "caller lane (its own listener and thread)",
            Port::Main => "main listener",
        },
        if o.shared_runtime {
            "and the measuring client on one runtime at normal priority (the layout before)"
        } else if o.niced {
            "niced (19)"
        } else {
            "at normal priority"
        }
    ));
    s.push_str("| phase | nearest req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for (name, x) in [("alone", &r.alone), ("under load", &r.loaded)] {
        s.push_str(&format!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |\n",
            x.rps(),
            x.ms(0.5),
            x.ms(0.99),
            x.ms(0.999),
            x.hist.max() as f64 / 1000.0,
            x.errors
        ));
    }
    let imports = if r.import_ms.is_empty() {
        "none finished".to_string()
    } else {
        let mut v = r.import_ms.clone();
        v.sort_unstable();
        format!("{} (median {} ms)", r.imports, v[v.len() / 2])
    };
    let d = &r.devices;
    s.push_str(&format!(
        "\nmeanwhile over {} s: coverage ({} clients, res 10) 200: {}, 200 stale: {}, 429: {}, 503: {}, other: {}; \
         imports finished: {imports}; locations ({:.0}/s offered, {:.0}/s sent) 204: {}, errors: {}, p99 {:.2} ms; \
         devices {} × {:.0}/s: {} acked of {} sent ({:.0}/s), ack p50 {:.2} ms, p99 {:.2} ms, errors {}; \
         server RSS {} MiB alone, {} MiB max under load\n",
        o.seconds,
        o.coverage_clients,
        r.coverage[0],
        r.coverage[1],
        r.coverage[2],
        r.coverage[3],
        r.coverage[4],
        o.location_rate,
        (r.locations_ok + r.locations_err) as f64 / r.location_seconds.max(0.001),
        r.locations_ok,
        r.locations_err,
        ms(&r.location_hist, 0.99),
        d.connected,
        o.device_rate,
        d.acked,
        d.sent,
        d.acked as f64 / d.seconds.max(0.001),
        ms(&d.ack_latency, 0.5),
        ms(&d.ack_latency, 0.99),
        d.errors,
        r.rss_alone_kib / 1024,
        r.rss_max_kib / 1024,
    ));
    if let Some(e) = &r.location_first_error {
        s.push_str(&format!("\nfirst refused location report: {e}\n"));
    }
    s
}
