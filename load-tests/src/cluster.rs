//! `load-tests cluster`: one or several `aednet serve` nodes over one PostgreSQL database and
//! NATS JetStream, started here as child processes, loaded with the same synthetic network;
//! nearest-AED throughput (closed loop, requests round-robin over the nodes) and device
//! telemetry throughput (sockets spread over the nodes).

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::Connection;

use crate::drive::closed_loop;
use crate::targets::{spawn_aednet_env, Target};
use crate::{devices, workload};

/// `load-tests cluster` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterOptions {
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    #[arg(long, default_value_t = 100_000)]
    pub aeds: usize,
    /// Seconds of each measured phase (nearest, then telemetry).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Closed-loop nearest requests in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    #[arg(long, default_value_t = 2000)]
    pub devices: usize,
    /// Telemetry messages per second per device.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Every n-th message is a status change; 0 for heartbeats only.
    #[arg(long, default_value_t = 100)]
    pub fault_every: u64,
    #[arg(long, default_value_t = 20261124)]
    pub seed: u64,
    /// PostgreSQL admin URL: a fresh database is created for the run and dropped after.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub pg_url: String,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// One node on the in-process bus (no NATS), as a baseline.
    #[arg(long)]
    pub local_bus: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub nodes: usize,
    pub bus: &'static str,
    pub aeds: usize,
    pub cores: usize,
    pub nearest_concurrency: usize,
    pub nearest_rps: f64,
    pub nearest_p50_ms: f64,
    pub nearest_p99_ms: f64,
    pub nearest_errors: u64,
    pub devices_connected: usize,
    pub telemetry_offered_per_s: f64,
    pub telemetry_acked_per_s: f64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub telemetry_errors: u64,
    pub server_cpu_us_per_message: f64,
    pub seconds: u64,
}

/// Drops the run's database and stream however the run ends.
struct Cleanup {
    admin_url: String,
    db: String,
    stream: Option<(async_nats::Client, String)>,
}

impl Cleanup {
    async fn run(self) {
        if let Some((client, stream)) = self.stream {
            let js = async_nats::jetstream::new(client);
            let _ = js.delete_stream(&stream).await;
        }
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
                .execute(&mut admin)
                .await;
        }
    }
}

pub async fn run(o: &ClusterOptions) -> anyhow::Result<ClusterReport> {
    anyhow::ensure!(o.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(
        !o.local_bus || o.nodes == 1,
        "--local-bus runs one node only (nodes without NATS do not share changes)"
    );
    let tag = format!("{:016x}", rand::random::<u64>());
    let db = format!("aednet_load_cluster_{tag}");
    let prefix = format!("aednet_load_{tag}");
    let mut admin = sqlx::PgConnection::connect(&o.pg_url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await?;
    drop(admin);
    let stream = if o.local_bus {
        None
    } else {
        let client = async_nats::connect(&o.nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {}", o.nats_url))?;
        Some((client, aednet_cluster::stream_name(&prefix)))
    };
    let cleanup = Cleanup {
        admin_url: o.pg_url.clone(),
        db: db.clone(),
        stream,
    };
    let result = measure(o, &db, &prefix).await;
    cleanup.run().await;
    result
}

async fn measure(o: &ClusterOptions, db: &str, prefix: &str) -> anyhow::Result<ClusterReport> {
    let (base, _) = o
        .pg_url
        .rsplit_once('/')
        .context("database URL has a path")?;
    let url = format!("{base}/{db}");
    let t = Instant::now();
    // Device AEDs (with their tokens) first, then the network the callers search.
    let tokens = devices::prepare(&url, o.devices).await?;
    let store = aednet_store::connect(&url).await?;
    let now = chrono::Utc::now();
    let network = workload::aeds(o.aeds, o.seed);
    let data: Vec<_> = network
        .iter()
        .map(|a| {
            let mut d = workload::aed_data(a, now);
            // Apart from the device AEDs' (`load-<n>` too).
            d.external_ref = Some(format!("net-{}", a.id));
            d
        })
        .collect();
    store.insert_aeds_bulk(&data).await?;
    drop(store);
    eprintln!(
        "{} AEDs ({} with device tokens) stored in PostgreSQL in {:.1} s",
        o.aeds + o.devices,
        o.devices,
        t.elapsed().as_secs_f64()
    );
    let mut env = Vec::new();
    if !o.local_bus {
        env.push(("AEDNET_CLUSTER__NATS_URL".to_string(), o.nats_url.clone()));
        env.push(("AEDNET_CLUSTER__PREFIX".to_string(), prefix.to_string()));
    }
    let mut bases = Vec::new();
    let mut children = Vec::new();
    for _ in 0..o.nodes {
        let (b, child) = spawn_aednet_env(&url, &env).await?;
        bases.push(b);
        children.push(child);
    }
    let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();

    let queries = Arc::new(workload::queries(o.aeds, o.seed, 8192));
    let target = Arc::new(Target::Nodes {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(o.concurrency * 2)
            .build()?,
        bases: bases.clone(),
        open_at: workload::query_time().to_rfc3339().replace('+', "%2B"),
        next: AtomicUsize::new(0),
    });
    // Warm-up: connections, pools, caches.
    closed_loop(
        target.clone(),
        queries.clone(),
        o.k,
        o.concurrency,
        Duration::from_secs(2),
    )
    .await;
    let near = closed_loop(
        target,
        queries,
        o.k,
        o.concurrency,
        Duration::from_secs(o.seconds),
    )
    .await;
    eprintln!("nearest: {:.0} req/s over {} node(s)", near.rps(), o.nodes);

    let sim = devices::SimOptions {
        devices: o.devices,
        seconds: o.seconds,
        rate: o.rate,
        fault_every: o.fault_every,
    };
    let r = devices::simulate(&bases, &pids, &tokens, &sim).await?;
    drop(children); // kill_on_drop
    let ms = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(ClusterReport {
        nodes: o.nodes,
        bus: if o.local_bus {
            "in-process"
        } else {
            "NATS JetStream"
        },
        aeds: o.aeds,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        nearest_concurrency: o.concurrency,
        nearest_rps: near.rps(),
        nearest_p50_ms: near.ms(0.5),
        nearest_p99_ms: near.ms(0.99),
        nearest_errors: near.errors,
        devices_connected: r.connected,
        telemetry_offered_per_s: o.rate * r.connected as f64,
        telemetry_acked_per_s: r.acked as f64 / r.seconds,
        ack_p50_ms: ms(&r.ack_latency, 0.5),
        ack_p99_ms: ms(&r.ack_latency, 0.99),
        telemetry_errors: r.errors,
        server_cpu_us_per_message: r.server_cpu_all_s * 1e6 / r.acked_all.max(1) as f64,
        seconds: o.seconds,
    })
}

/// The Markdown table of one or more runs.
pub fn table(rows: &[ClusterReport]) -> String {
    let mut s = String::new();
    s.push_str("| nodes | bus | AEDs | nearest req/s (closed, in flight) | p50 ms | p99 ms | devices | telemetry offered msg/s | acked msg/s | ack p50 ms | p99 ms | server CPU µs/msg | errors |\n");
    s.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.0} ({}) | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {} |\n",
            r.nodes,
            r.bus,
            r.aeds,
            r.nearest_rps,
            r.nearest_concurrency,
            r.nearest_p50_ms,
            r.nearest_p99_ms,
            r.devices_connected,
            r.telemetry_offered_per_s,
            r.telemetry_acked_per_s,
            r.ack_p50_ms,
            r.ack_p99_ms,
            r.server_cpu_us_per_message,
            r.nearest_errors + r.telemetry_errors
        ));
    }
    s
}
