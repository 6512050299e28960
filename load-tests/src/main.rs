//! `load-tests compare`: the same nearest-AED workload against aednet, PostGIS and Redis, loaded
//! with the same synthetic AEDs, printed side by side.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aednet_load_tests::drive::{closed_loop, open_loop, Outcome};
use aednet_load_tests::targets::{self, Target};
use aednet_load_tests::workload;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "load-tests",
    about = "Load generator and peer comparison for aednet's nearest-AED query"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the same AEDs into aednet, PostGIS and Redis; closed- then open-loop load on each.
    Compare {
        #[arg(long, default_value_t = 1_000_000)]
        aeds: usize,
        #[arg(long, default_value_t = 20261124)]
        seed: u64,
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// Seconds of each closed-loop and each open-loop phase.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Closed-loop workers (in-flight requests).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Comma list of aednet, aednet-network (the same AEDs on a synthetic street grid,
        /// answers re-ranked by walking time), postgis, redis.
        #[arg(long, default_value = "aednet,aednet-network,postgis,redis")]
        targets: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        pg_url: String,
        #[arg(long, default_value = "redis://127.0.0.1:6379/")]
        redis_url: String,
        /// Where aednet's SQLite file is kept between runs.
        #[arg(long, default_value = "target/load-tests")]
        dir: PathBuf,
    },
    /// Simulated AED cabinets over WebSockets against the real server: throughput, ack latency,
    /// memory per socket, and the time from a fault to its AED leaving nearest answers.
    Devices {
        #[arg(long, default_value_t = 10_000)]
        devices: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Messages per second per device.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Every n-th message is a status change (self-test fail/pass); 0 for heartbeats only.
        #[arg(long, default_value_t = 100)]
        fault_every: u64,
        #[arg(long, default_value = "target/load-tests")]
        dir: PathBuf,
    },
    /// Rescuer location updates over HTTP (`POST /api/v1/me/location`), closed loop; with
    /// `--ws`, as frames over `/ws/rescuer` (`--concurrency` sockets, `--window` in flight each).
    Locations {
        #[arg(long, default_value_t = 10_000)]
        rescuers: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long)]
        ws: bool,
        #[arg(long, default_value_t = 8)]
        window: usize,
        #[arg(long, default_value = "target/load-tests")]
        dir: PathBuf,
    },
    /// Dispatch: `--rescuers` live in the index, `--sockets` of them connected; incidents one
    /// after another; POST → offer frame on the nearest rescuer's socket.
    Dispatch {
        #[arg(long, default_value_t = 100_000)]
        rescuers: usize,
        #[arg(long, default_value_t = 1000)]
        sockets: usize,
        #[arg(long, default_value_t = 2000)]
        incidents: usize,
        #[arg(long, default_value_t = 10_000)]
        aeds: usize,
        #[arg(long, default_value = "target/load-tests")]
        dir: PathBuf,
    },
    /// Web Push: `--rescuers` live in the index, `--subscriptions` of them subscribed, a push
    /// service here answering after `--delay-ms`; incidents one after another; POST → the last
    /// of the first wave's push requests at the push service.
    Push {
        #[arg(long, default_value_t = 100_000)]
        rescuers: usize,
        #[arg(long, default_value_t = 10_000)]
        subscriptions: usize,
        #[arg(long, default_value_t = 1000)]
        incidents: usize,
        #[arg(long, default_value_t = 10_000)]
        aeds: usize,
        #[arg(long, default_value_t = 200)]
        delay_ms: u64,
        /// `[notify.web_push] concurrency` of the server (default: the server's).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Pause after each incident's cancel, ms.
        #[arg(long, default_value_t = 0)]
        gap_ms: u64,
        #[arg(long, default_value = "target/load-tests")]
        dir: PathBuf,
    },
    /// Several aednet nodes over one PostgreSQL + NATS JetStream (started here): nearest-AED
    /// throughput with requests round-robin over the nodes, then telemetry throughput with
    /// device sockets spread over them. Compare `--nodes 1` with `--nodes 2`.
    Cluster {
        #[command(flatten)]
        options: aednet_load_tests::cluster::ClusterOptions,
        /// The table and JSON (`cluster-<nodes>.json`) go here.
        #[arg(long, default_value = "target/load-tests")]
        dir: PathBuf,
    },
    /// Is the caller's nearest query protected? It alone, then beside 20 clients hammering
    /// `/api/v1/coverage?res=10`, an import running, 1 000 location reports/s and device
    /// telemetry; the demo city.
    Isolation {
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 200.0)]
        nearest_rate: f64,
        #[arg(long, default_value_t = 20)]
        coverage_clients: usize,
        #[arg(long, default_value_t = 1000.0)]
        location_rate: f64,
        #[arg(long, default_value_t = 2000)]
        rescuers: usize,
        #[arg(long, default_value_t = 200)]
        devices: usize,
        #[arg(long, default_value_t = 2.0)]
        device_rate: f64,
        /// An OSM extract imported again and again; without it a generated CSV.
        #[arg(long)]
        pbf: Option<PathBuf>,
        /// Where the caller's query is measured: the caller lane or the main listener.
        #[arg(long, value_enum, default_value = "lane")]
        port: aednet_load_tests::isolation::Port,
        /// Run the load generators at normal priority instead of niced (19).
        #[arg(long)]
        normal_generators: bool,
        /// The layout before the caller lane, for comparisons: the measuring client and the
        /// generators on one runtime at normal priority.
        #[arg(long)]
        shared_runtime: bool,
        #[arg(long, default_value = "target/load-tests")]
        dir: PathBuf,
    },
    /// The street basemap: import an OSM extract (build time and size from its report), then
    /// tiles of zooms 12–16 closed-loop from the real server (p50/p99 per tile).
    Tiles {
        #[arg(long, default_value = "../shared/data/liechtenstein.osm.pbf")]
        pbf: PathBuf,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value = "target/load-tests")]
        dir: PathBuf,
    },
    /// (internal) Serve aednet on a database without a public rate limit.
    #[command(hide = true)]
    ServeAednet { database_url: String },
}

struct Row {
    name: &'static str,
    closed: Outcome,
    open: Outcome,
    rate: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::ServeAednet { database_url } => {
            // `AEDNET_*` variables apply underneath (`cluster` passes the NATS settings so).
            let overrides = aednet::config::Overrides {
                database_url: Some(database_url),
                listen: Some("127.0.0.1:0".parse()?),
                metrics_listen: Some("127.0.0.1:0".parse()?),
                ..Default::default()
            };
            let loaded = aednet::config::Config::load(None, &overrides)?;
            let config = aednet::config::Config {
                log_level: "warn".into(),
                public: aednet_mobile_api::PublicLimits {
                    per_minute: 0,
                    // The isolation scenario's coverage clients are told apart by this header
                    // (each its own per-client budget), as behind a reverse proxy.
                    trust_forwarded_for: true,
                    ..Default::default()
                },
                // Simulated rescuers report faster than phones do; the limit has its own test.
                limits: aednet_api::limits::LimitsConfig {
                    location_per_s: 0,
                    ..loaded.limits
                },
                // Simulated devices send faster than real ones.
                gateway: aednet_device_gateway::GatewayConfig {
                    messages_per_s: 1_000_000.0,
                    burst: 1_000_000.0,
                    max_connections: 50_000,
                    ..Default::default()
                },
                ..loaded
            };
            let store = aednet::cli::open_store(&config).await?;
            aednet::cli::serve(config, store).await
        }
        Command::Isolation {
            seconds,
            nearest_rate,
            coverage_clients,
            location_rate,
            rescuers,
            devices,
            device_rate,
            pbf,
            port,
            normal_generators,
            shared_runtime,
            dir,
        } => {
            use aednet_load_tests::isolation;
            let o = isolation::Options {
                seconds,
                nearest_rate,
                coverage_clients,
                location_rate,
                rescuers,
                devices,
                device_rate,
                pbf,
                port,
                niced: !normal_generators,
                shared_runtime,
            };
            let r = isolation::run(&o, &dir).await?;
            println!();
            print!("{}", isolation::table(&o, &r));
            Ok(())
        }
        Command::Tiles {
            pbf,
            seconds,
            concurrency,
            dir,
        } => {
            use aednet_load_tests::tiles;
            let o = tiles::Options {
                pbf,
                seconds,
                concurrency,
            };
            let r = tiles::run(&o, &dir).await?;
            println!();
            print!("{}", tiles::table(&o, &r));
            Ok(())
        }
        Command::Push {
            rescuers,
            subscriptions,
            incidents,
            aeds,
            delay_ms,
            concurrency,
            gap_ms,
            dir,
        } => {
            use aednet_load_tests::push;
            let o = push::Options {
                rescuers,
                subscriptions,
                incidents,
                aeds,
                delay_ms,
                concurrency,
                gap_ms,
            };
            let r = push::run(&o, &dir).await?;
            println!();
            print!("{}", push::table(&o, &r));
            Ok(())
        }
        Command::Cluster { options: o, dir } => {
            use aednet_load_tests::cluster;
            std::fs::create_dir_all(&dir)?;
            let r = cluster::run(&o).await?;
            let name = if o.local_bus {
                "cluster-1-local.json".to_string()
            } else {
                format!("cluster-{}.json", o.nodes)
            };
            std::fs::write(dir.join(&name), serde_json::to_vec_pretty(&r)?)?;
            println!();
            print!("{}", cluster::table(std::slice::from_ref(&r)));
            println!(
                "({} cores shared by the load generator and every node; JSON in {})",
                r.cores,
                dir.join(name).display()
            );
            Ok(())
        }
        Command::Dispatch {
            rescuers,
            sockets,
            incidents,
            aeds,
            dir,
        } => {
            use aednet_load_tests::dispatch as d;
            std::fs::create_dir_all(&dir)?;
            let db = dir.join(format!("dispatch-{rescuers}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            let url = format!("sqlite://{}", db.display());
            let t = std::time::Instant::now();
            let p = d::prepare(&url, rescuers, aeds).await?;
            eprintln!(
                "{rescuers} rescuers with tokens and {aeds} AEDs stored in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            let (base, child) = targets::spawn_aednet(&url).await?;
            let t = std::time::Instant::now();
            d::report_positions(&base, &p.rescuers, 64).await?;
            eprintln!(
                "{rescuers} positions reported over HTTP in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            // Warm-up: connections, pools, caches.
            d::incidents(&base, &p, sockets.min(100), 20).await?;
            let r = d::incidents(&base, &p, sockets, incidents).await?;
            let ms =
                |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!();
            println!("| live rescuers | sockets | incidents | POST → offer on socket p50 ms | p99 ms | max ms | POST → 201 p50 ms | p99 ms | offers on sockets / incident | missed |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            println!(
                "| {rescuers} | {sockets} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
                r.incidents,
                ms(&r.to_offer, 0.5),
                ms(&r.to_offer, 0.99),
                r.to_offer.max() as f64 / 1000.0,
                ms(&r.to_answer, 0.5),
                ms(&r.to_answer, 0.99),
                r.offers_on_sockets as f64 / r.incidents.max(1) as f64,
                r.missed
            );
            drop(child);
            Ok(())
        }
        Command::Locations {
            rescuers,
            seconds,
            concurrency,
            ws,
            window,
            dir,
        } => {
            std::fs::create_dir_all(&dir)?;
            let db = dir.join(format!("rescuers-{rescuers}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            let url = format!("sqlite://{}", db.display());
            let tokens =
                std::sync::Arc::new(aednet_load_tests::locations::prepare(&url, rescuers).await?);
            let (base, child) = targets::spawn_aednet(&url).await?;
            if ws {
                let sockets = concurrency.min(tokens.len());
                // Warm-up, then the measured run.
                aednet_load_tests::dispatch::ws_locations(&base, &tokens, sockets, window, 2)
                    .await?;
                let r = aednet_load_tests::dispatch::ws_locations(
                    &base, &tokens, sockets, window, seconds,
                )
                .await?;
                println!();
                println!("| transport | sockets | in flight each | updates acked/s | p50 ms | p99 ms | p99.9 ms | errors |");
                println!("|---|---:|---:|---:|---:|---:|---:|---:|");
                println!(
                    "| /ws/rescuer | {sockets} | {window} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                    r.acked as f64 / r.seconds,
                    r.hist.value_at_quantile(0.5) as f64 / 1000.0,
                    r.hist.value_at_quantile(0.99) as f64 / 1000.0,
                    r.hist.value_at_quantile(0.999) as f64 / 1000.0,
                    r.errors
                );
                drop(child);
                return Ok(());
            }
            // Warm the eligibility cache and the connection pool.
            aednet_load_tests::locations::drive(&base, tokens.clone(), concurrency, 2).await?;
            let r =
                aednet_load_tests::locations::drive(&base, tokens, concurrency, seconds).await?;
            println!();
            println!("| rescuers | in flight | updates/s | p50 ms | p99 ms | p99.9 ms | errors |");
            println!("|---:|---:|---:|---:|---:|---:|---:|");
            println!(
                "| {rescuers} | {concurrency} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                r.requests as f64 / r.seconds,
                r.hist.value_at_quantile(0.5) as f64 / 1000.0,
                r.hist.value_at_quantile(0.99) as f64 / 1000.0,
                r.hist.value_at_quantile(0.999) as f64 / 1000.0,
                r.errors
            );
            drop(child);
            Ok(())
        }
        Command::Devices {
            devices,
            seconds,
            rate,
            fault_every,
            dir,
        } => {
            std::fs::create_dir_all(&dir)?;
            let db = dir.join(format!("devices-{devices}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            let url = format!("sqlite://{}", db.display());
            let t = std::time::Instant::now();
            let tokens = aednet_load_tests::devices::prepare(&url, devices).await?;
            eprintln!(
                "{devices} AEDs and device tokens in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            let (base, child) = targets::spawn_aednet(&url).await?;
            let pid = child.id().unwrap_or(0);
            let opts = aednet_load_tests::devices::SimOptions {
                devices,
                seconds,
                rate,
                fault_every,
            };
            let r = aednet_load_tests::devices::simulate(
                std::slice::from_ref(&base),
                &[pid],
                &tokens,
                &opts,
            )
            .await?;
            let probe =
                aednet_load_tests::devices::fault_to_nearest(&base, tokens[0].0, &tokens[0].1)
                    .await;
            let per_socket = (r.rss_after_kib.saturating_sub(r.rss_before_kib)) as f64
                / r.connected.max(1) as f64;
            println!();
            println!("| devices connected | connect time | offered msg/s | messages acked/s | ack p50 ms | p99 ms | p99.9 ms | server RSS before → after connect → loaded | per socket (idle / loaded) | errors | fault → gone from nearest |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|");
            let loaded_per_socket = (r.rss_loaded_kib.saturating_sub(r.rss_before_kib)) as f64
                / r.connected.max(1) as f64;
            println!(
                "| {} of {} | {:.1} s | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} → {} → {} MiB | {:.1} / {:.1} KiB | {} | {} |",
                r.connected,
                r.devices,
                r.connect_seconds,
                rate * r.connected as f64,
                r.acked as f64 / r.seconds,
                r.ack_latency.value_at_quantile(0.5) as f64 / 1000.0,
                r.ack_latency.value_at_quantile(0.99) as f64 / 1000.0,
                r.ack_latency.value_at_quantile(0.999) as f64 / 1000.0,
                r.rss_before_kib / 1024,
                r.rss_after_kib / 1024,
                r.rss_loaded_kib / 1024,
                per_socket,
                loaded_per_socket,
                r.errors,
                match probe {
                    Ok(ms) => format!("{ms:.1} ms"),
                    Err(e) => format!("failed: {e}"),
                }
            );
            println!(
                "({} sent, {} not sent (send buffer full), {} acks later than 64 messages, {:.0} msg/s per device offered, every {fault_every}th a status change, {seconds} s)",
                r.sent, r.skipped, r.late, rate
            );
            let per_msg_us = r.server_cpu_all_s * 1e6 / r.acked_all.max(1) as f64;
            let sim_us = r.sim_cpu_s * 1e6 / r.sent.max(1) as f64;
            println!(
                "server CPU: {:.1} core-seconds for {} acked messages (until every sent message was answered; {:.1} core-seconds in the {seconds} s window) = {per_msg_us:.1} µs per message, i.e. {:.0} messages/s per core if the server had it to itself",
                r.server_cpu_all_s,
                r.acked_all,
                r.server_cpu_s,
                1e6 / per_msg_us.max(0.001)
            );
            println!(
                "simulator CPU: {:.1} core-seconds = {sim_us:.1} µs per message sent; both on {} cores",
                r.sim_cpu_s,
                std::thread::available_parallelism().map_or(0, |n| n.get())
            );
            drop(child);
            Ok(())
        }
        Command::Compare {
            aeds,
            seed,
            k,
            duration,
            concurrency,
            targets: which,
            pg_url,
            redis_url,
            dir,
        } => {
            let network = workload::aeds(aeds, seed);
            let queries = Arc::new(workload::queries(aeds, seed, 8192));
            let admitted = network
                .iter()
                .filter(|a| a.admitted(workload::query_hour_of_week()))
                .count();
            eprintln!(
                "{aeds} AEDs, {:.0} % pass the caller's filters at the query time; k = {k}; {duration} s per phase",
                100.0 * admitted as f64 / aeds as f64
            );
            let mut rows = Vec::new();
            for name in which.split(',').map(str::trim) {
                let target = match name {
                    "aednet" => targets::aednet(&dir, &network, seed, concurrency).await?,
                    "aednet-network" => {
                        targets::aednet_network(&dir, &network, seed, concurrency).await?
                    }
                    "postgis" => targets::postgis(&pg_url, &network, seed, concurrency).await?,
                    "redis" => targets::redis(&redis_url, &network, seed).await?,
                    other => anyhow::bail!("unknown target {other}"),
                };
                let target = Arc::new(target);
                // Warm caches and connection pools.
                closed_loop(
                    target.clone(),
                    queries.clone(),
                    k,
                    concurrency,
                    Duration::from_secs(2),
                )
                .await;
                let closed = closed_loop(
                    target.clone(),
                    queries.clone(),
                    k,
                    concurrency,
                    Duration::from_secs(duration),
                )
                .await;
                let rate = (closed.rps() / 2.0).max(1.0);
                let open = open_loop(
                    target.clone(),
                    queries.clone(),
                    k,
                    rate,
                    Duration::from_secs(duration),
                    4096,
                )
                .await;
                eprintln!(
                    "{}: {:.0} req/s closed loop; at {:.0} req/s open loop p99 {:.2} ms; {} answers walked on the network",
                    target.name(),
                    closed.rps(),
                    rate,
                    open.ms(0.99),
                    target.walked()
                );
                let name = target.name();
                if let Ok(t) = Arc::try_unwrap(target) {
                    Target::shutdown(t).await;
                }
                rows.push(Row {
                    name,
                    closed,
                    open,
                    rate,
                });
            }
            print_table(&rows, aeds, k, concurrency);
            Ok(())
        }
    }
}

fn print_table(rows: &[Row], n: usize, k: usize, concurrency: usize) {
    println!();
    println!("nearest AED, k = {k}, {n} AEDs, filtered (~30 % rejected); closed loop with {concurrency} in flight; open loop at half of each target's max, latency from intended start");
    println!();
    println!("| target | max req/s (closed) | p50 ms | p99 ms | p99.9 ms | open-loop rate | p50 ms | p99 ms | p99.9 ms | answers/query | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            r.name,
            r.closed.rps(),
            r.closed.ms(0.5),
            r.closed.ms(0.99),
            r.closed.ms(0.999),
            r.rate,
            r.open.ms(0.5),
            r.open.ms(0.99),
            r.open.ms(0.999),
            r.open.mean_answers(),
            r.closed.errors + r.open.errors
        );
    }
    let straight = rows.iter().find(|r| r.name == "aednet (HTTP)");
    let network = rows.iter().find(|r| r.name.contains("walking network"));
    if let (Some(s), Some(n)) = (straight, network) {
        println!(
            "aednet on the walking network / straight line: {:.2}× requests per second (goal ≥ 0.7×)",
            n.closed.rps() / s.closed.rps()
        );
    }
    if let Some(a) = straight {
        for r in rows.iter().filter(|r| !r.name.starts_with("aednet")) {
            println!(
                "aednet / {}: {:.1}× requests per second",
                r.name,
                a.closed.rps() / r.closed.rps()
            );
        }
    }
}
