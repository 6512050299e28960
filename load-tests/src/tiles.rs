//! `load-tests tiles`: the street basemap as a map client loads it. An OSM extract is imported
//! into a fresh SQLite file (the import's own basemap line gives the build time and size), the
//! real server serves it (a child process), and `concurrency` clients fetch tiles closed-loop
//! — every tile position of zooms 12–16 over the data's bounds, in turn, gzip accepted, so
//! both stored tiles (200) and empty ones (204) are measured as a browser would meet them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::targets;

#[derive(Debug, Clone)]
pub struct Options {
    pub pbf: std::path::PathBuf,
    pub seconds: u64,
    pub concurrency: usize,
}

#[derive(Debug)]
pub struct Report {
    pub build_line: String,
    pub archive_bytes: i64,
    pub requests: u64,
    pub ok: u64,
    pub empty: u64,
    pub errors: u64,
    pub seconds: f64,
    pub hist: Histogram<u64>,
}

fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let lat = lat.to_radians();
    let x = (lon + 180.0) / 360.0 * n;
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n;
    (x as u32, y as u32)
}

pub async fn run(o: &Options, dir: &std::path::Path) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir)?;
    let db = dir.join("tiles.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let url = format!("sqlite://{}", db.display());
    let store = aednet_store::connect(&url).await?;
    let report = aednet_import::import_osm(
        store.as_ref(),
        &o.pbf,
        &aednet_import::ImportOptions::default(),
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .with_context(|| format!("importing {}", o.pbf.display()))?;
    let build_line = report
        .derived
        .iter()
        .find(|d| d.kind == "basemap")
        .map(|d| d.summary.clone())
        .context("the import built no basemap")?;
    let archive_bytes = store
        .artifact_versions()
        .await?
        .into_iter()
        .find(|i| i.kind == "basemap")
        .map(|i| i.size_bytes)
        .unwrap_or(0);
    drop(store);

    let (base, _child) = targets::spawn_aednet(&url).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.concurrency)
        .build()?;
    let tj: serde_json::Value = loop {
        let r = client
            .get(format!("{base}/tiles/basemap.json"))
            .send()
            .await?;
        if r.status().is_success() {
            break r.json().await?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let b: Vec<f64> = serde_json::from_value(tj["bounds"].clone())?;
    let version = tj["version"].as_i64().unwrap_or(0);
    let mut paths = Vec::new();
    for z in 12..=16u8 {
        let (x0, y0) = tile_of(b[0], b[3], z);
        let (x1, y1) = tile_of(b[2], b[1], z);
        for x in x0..=x1 {
            for y in y0..=y1 {
                paths.push(format!("{base}/tiles/{z}/{x}/{y}.pbf?v={version}"));
            }
        }
    }
    let paths = Arc::new(paths);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.seconds);
    let mut tasks = Vec::new();
    for _ in 0..o.concurrency {
        let (client, paths, next) = (client.clone(), paths.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let (mut ok, mut empty, mut errors) = (0u64, 0u64, 0u64);
            while Instant::now() < deadline {
                let p = &paths[next.fetch_add(1, Ordering::Relaxed) % paths.len()];
                let t = Instant::now();
                let r = client.get(p).header("Accept-Encoding", "gzip").send().await;
                match r {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body = r.bytes().await;
                        match (status, body) {
                            (200, Ok(_)) => ok += 1,
                            (204, Ok(_)) => empty += 1,
                            _ => errors += 1,
                        }
                    }
                    Err(_) => errors += 1,
                }
                let _ = h.record(t.elapsed().as_micros() as u64);
            }
            (h, ok, empty, errors)
        }));
    }
    let mut rep = Report {
        build_line,
        archive_bytes,
        requests: 0,
        ok: 0,
        empty: 0,
        errors: 0,
        seconds: 0.0,
        hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
    };
    for t in tasks {
        let (h, ok, empty, errors) = t.await?;
        rep.hist.add(h)?;
        rep.ok += ok;
        rep.empty += empty;
        rep.errors += errors;
    }
    rep.seconds = start.elapsed().as_secs_f64();
    rep.requests = rep.ok + rep.empty + rep.errors;
    Ok(rep)
}

pub fn table(o: &Options, r: &Report) -> String {
    let ms = |q: f64| r.hist.value_at_quantile(q) as f64 / 1000.0;
    format!(
        "basemap: {}\narchive: {:.1} MB stored\n\n| clients | tiles/s | 200 | 204 | errors | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n| {} | {:.0} | {} | {} | {} | {:.2} | {:.2} | {:.2} |\n",
        r.build_line,
        r.archive_bytes as f64 / 1e6,
        o.concurrency,
        r.requests as f64 / r.seconds,
        r.ok,
        r.empty,
        r.errors,
        ms(0.5),
        ms(0.99),
        r.hist.max() as f64 / 1000.0
    )
}
