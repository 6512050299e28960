//! The three systems answering the same query: k nearest AEDs around a point within 10 km
//! that are not known bad, publicly accessible and open (or of unknown hours) at the query time.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, Context};
use redis::AsyncCommands;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};
use tokio::io::AsyncBufReadExt;

use crate::workload::{self, SynthAed, MAX_DISTANCE_M};

pub enum Target {
    /// The real server in a child process, over HTTP.
    Aednet {
        client: reqwest::Client,
        base: String,
        open_at: String,
        child: tokio::process::Child,
        /// Serving with a walking network (answers re-ranked by walking time).
        network: bool,
        /// Answers whose walks were measured on the walking network (`walk: network`).
        walked: std::sync::atomic::AtomicU64,
    },
    /// Several aednet nodes over one database (`load-tests cluster`): queries go round-robin.
    Nodes {
        client: reqwest::Client,
        bases: Vec<String>,
        open_at: String,
        next: std::sync::atomic::AtomicUsize,
    },
    /// PostgreSQL + PostGIS: KNN `<->` on a GiST index, filters in SQL.
    Postgis { pool: PgPool, how: i32 },
    /// Redis GEOSEARCH, filters applied to the members it returns.
    Redis {
        conn: redis::aio::MultiplexedConnection,
        how: usize,
    },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Aednet { network: false, .. } => "aednet (HTTP)",
            Target::Aednet { network: true, .. } => "aednet, walking network (HTTP)",
            Target::Nodes { .. } => "aednet nodes (HTTP)",
            Target::Postgis { .. } => "PostGIS (SQL)",
            Target::Redis { .. } => "Redis GEOSEARCH",
        }
    }

    /// Runs one query; returns the number of AEDs in the answer.
    pub async fn query(&self, at: aednet_core::LatLon, k: usize) -> anyhow::Result<usize> {
        match self {
            Target::Aednet {
                client,
                base,
                open_at,
                walked,
                ..
            } => {
                let (count, on_network) = nearest_count(client, base, open_at, at, k).await?;
                if on_network {
                    walked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(count)
            }
            Target::Nodes {
                client,
                bases,
                open_at,
                next,
            } => {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % bases.len();
                Ok(nearest_count(client, &bases[i], open_at, at, k).await?.0)
            }
            Target::Postgis { pool, how } => {
                let rows: Vec<(i64, f64)> = sqlx::query_as(POSTGIS_QUERY)
                    .bind(at.lon)
                    .bind(at.lat)
                    .bind(*how)
                    .bind(MAX_DISTANCE_M)
                    .bind(k as i64)
                    .fetch_all(pool)
                    .await?;
                Ok(rows.len())
            }
            Target::Redis { conn, how } => {
                let mut conn = conn.clone();
                // As a careful Redis user would: a small radius first (GEOSEARCH costs grow
                // with the points inside the radius), a few more than k (about 65 % pass),
                // widening the count when it cut the answer and the radius when it did not.
                let (mut radius, mut count) = (500.0f64, k * 2);
                loop {
                    let members: Vec<String> = redis::cmd("GEOSEARCH")
                        .arg(REDIS_KEY)
                        .arg("FROMLONLAT")
                        .arg(at.lon)
                        .arg(at.lat)
                        .arg("BYRADIUS")
                        .arg(radius)
                        .arg("m")
                        .arg("ASC")
                        .arg("COUNT")
                        .arg(count)
                        .query_async(&mut conn)
                        .await?;
                    let passing = members
                        .iter()
                        .filter(|m| decode(m).is_some_and(|a| a.admitted(*how)))
                        .take(k)
                        .count();
                    if passing >= k {
                        return Ok(passing);
                    }
                    if members.len() == count {
                        count *= 2;
                    } else if radius < MAX_DISTANCE_M {
                        radius = (radius * 4.0).min(MAX_DISTANCE_M);
                    } else {
                        return Ok(passing);
                    }
                }
            }
        }
    }

    /// Answers walked on the walking network so far (aednet targets; 0 for the others).
    pub fn walked(&self) -> u64 {
        match self {
            Target::Aednet { walked, .. } => walked.load(std::sync::atomic::Ordering::Relaxed),
            _ => 0,
        }
    }

    pub async fn shutdown(self) {
        if let Target::Aednet { mut child, .. } = self {
            let _ = child.kill().await;
        }
    }
}

/// aednet's nearest query over HTTP; the number of AEDs in the answer.
async fn nearest_count(
    client: &reqwest::Client,
    base: &str,
    open_at: &str,
    at: aednet_core::LatLon,
    k: usize,
) -> anyhow::Result<(usize, bool)> {
    let url = format!(
        "{base}/api/v1/aeds/nearest?lat={}&lon={}&k={k}&open_at={open_at}&max_distance_m={MAX_DISTANCE_M}",
        at.lat, at.lon
    );
    let resp = client.get(url).send().await?;
    if !resp.status().is_success() {
        bail!("HTTP {}", resp.status());
    }
    #[derive(serde::Deserialize)]
    struct Count {
        count: usize,
        walk: Option<String>,
    }
    let c = resp.json::<Count>().await?;
    Ok((c.count, c.walk.as_deref() == Some("network")))
}

/// Waits until a freshly started server is quiet: its walking network decoded (when `network`)
/// and its live coverage map built on it, so the measurement does not share the cores with
/// start-up work (a 10^6-AED map and a 2.8 M-node graph take a while to load).
pub async fn wait_settled(
    client: &reqwest::Client,
    base: &str,
    metrics_url: &str,
    network: bool,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let label = if network { "network" } else { "straight_line" };
    let wanted = format!("aednet_coverage_map_builds_total{{walk=\"{label}\"}}");
    loop {
        let ready: serde_json::Value = client
            .get(format!("{base}/readyz"))
            .send()
            .await?
            .json()
            .await
            .unwrap_or_default();
        let graph_ok = !network || !ready["walk_network"].is_null();
        let metrics = client.get(metrics_url).send().await?.text().await?;
        let built = metrics
            .lines()
            .filter_map(|l| l.strip_prefix(wanted.as_str()))
            .any(|v| v.trim().parse::<f64>().is_ok_and(|n| n >= 1.0));
        if graph_ok && built {
            eprintln!(
                "aednet: settled after {:.1} s (walking network {}, coverage map built)",
                t.elapsed().as_secs_f64(),
                if network { "loaded" } else { "not used" }
            );
            return Ok(());
        }
        if t.elapsed() > std::time::Duration::from_secs(1800) {
            bail!("aednet did not settle in 30 min (walking network loaded: {graph_ok}, coverage map on {label} built: {built})");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

const POSTGIS_QUERY: &str = "\
    SELECT id, ST_Distance(geog, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography) \
    FROM load_aeds \
    WHERE status <> ALL('{fault,offline,in_use,cabinet_open,retired}') \
      AND access NOT IN ('customers', 'private', 'no') \
      AND get_bit(open_mask, $3) = 1 \
      AND ST_DWithin(geog, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, $4) \
    ORDER BY geog <-> ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography \
    LIMIT $5";

const REDIS_KEY: &str = "aednet:load:aeds";
const REDIS_META: &str = "aednet:load:meta";

/// Redis members carry the attributes the filter needs: `id|status|access|hours`.
fn encode(a: &SynthAed) -> String {
    format!(
        "{}|{}|{}|{}",
        a.id,
        a.status.as_str(),
        a.access.as_str(),
        a.hours
    )
}

fn decode(m: &str) -> Option<SynthAed> {
    let mut it = m.split('|');
    let id = it.next()?.parse().ok()?;
    let status = aednet_core::aed::ReadinessStatus::parse(it.next()?)?;
    let access = aednet_core::aed::Access::parse(it.next()?)?;
    let hours = it.next()?.parse().ok()?;
    Some(SynthAed {
        id,
        pos: aednet_core::LatLon { lat: 0.0, lon: 0.0 },
        status,
        access,
        hours,
    })
}

fn mask_bits(a: &SynthAed) -> String {
    a.open_mask()
        .iter()
        .map(|&o| if o { '1' } else { '0' })
        .collect()
}

/// Loads the network into a SQLite file (kept between runs, keyed by size and seed) and starts
/// `aednet serve` on it in a child process (this binary, re-executed), without a rate limit.
pub async fn aednet(
    dir: &Path,
    aeds: &[SynthAed],
    seed: u64,
    concurrency: usize,
) -> anyhow::Result<Target> {
    aednet_with(dir, aeds, seed, concurrency, false).await
}

/// aednet with a synthetic street grid ([`workload::street_grid`], 200 m blocks) stored as
/// the database's walking network: the same queries, answered by walking time.
pub async fn aednet_network(
    dir: &Path,
    aeds: &[SynthAed],
    seed: u64,
    concurrency: usize,
) -> anyhow::Result<Target> {
    aednet_with(dir, aeds, seed, concurrency, true).await
}

async fn aednet_with(
    dir: &Path,
    aeds: &[SynthAed],
    seed: u64,
    concurrency: usize,
    network: bool,
) -> anyhow::Result<Target> {
    std::fs::create_dir_all(dir)?;
    let tag = if network { "-network" } else { "" };
    let db = dir.join(format!("aednet{tag}-{}-{seed}.db", aeds.len()));
    let url = format!("sqlite://{}", db.display());
    let store = aednet_store::connect(&url).await?;
    let have = store.count_aeds().await?;
    let have_graph = store
        .artifact_versions()
        .await?
        .iter()
        .any(|a| a.kind == aednet_store::artifacts::kind::WALK_GRAPH);
    if have != aeds.len() as i64 || (network && !have_graph) {
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let store = aednet_store::connect(&url).await?;
        let t = Instant::now();
        let now = chrono::Utc::now();
        let data: Vec<_> = aeds.iter().map(|a| workload::aed_data(a, now)).collect();
        store.insert_aeds_bulk(&data).await?;
        eprintln!(
            "aednet: loaded {} AEDs into {} in {:.1} s",
            aeds.len(),
            db.display(),
            t.elapsed().as_secs_f64()
        );
        if network {
            let t = Instant::now();
            let g = workload::street_grid(aeds.len(), seed, 200.0);
            let bytes = g.encode();
            let meta = serde_json::json!({
                "format": aednet_routing::FORMAT_VERSION,
                "origin": "load-tests street grid",
                "nodes": g.node_count(),
                "edges": g.edge_count(),
            })
            .to_string();
            store
                .put_artifact(aednet_store::artifacts::kind::WALK_GRAPH, &meta, &bytes)
                .await?;
            eprintln!(
                "aednet: street grid of {} nodes ({} junctions), {} edges, {} MiB, built and stored in {:.1} s",
                g.node_count(),
                g.junction_count(),
                g.edge_count(),
                bytes.len() >> 20,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let Spawned {
        base,
        metrics,
        child,
        ..
    } = spawn_aednet_full(&url, &[]).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .build()?;
    let metrics = metrics.context("aednet did not say where its metrics are")?;
    wait_settled(&client, &base, &metrics, network).await?;
    Ok(Target::Aednet {
        client,
        base,
        open_at: workload::query_time().to_rfc3339().replace('+', "%2B"),
        child,
        network,
        walked: std::sync::atomic::AtomicU64::new(0),
    })
}

/// Starts `aednet serve` on `url` in a child process (this binary, re-executed) and returns its
/// base URL once it listens.
pub async fn spawn_aednet(url: &str) -> anyhow::Result<(String, tokio::process::Child)> {
    spawn_aednet_env(url, &[]).await
}

/// [`spawn_aednet`] with extra environment for the child, e.g. `AEDNET_CLUSTER__NATS_URL`
/// (the served configuration layers `AEDNET_*` variables under the load-test settings).
pub async fn spawn_aednet_env(
    url: &str,
    env: &[(String, String)],
) -> anyhow::Result<(String, tokio::process::Child)> {
    let Spawned { base, child, .. } = spawn_aednet_full(url, env).await?;
    Ok((base, child))
}

/// A served child process and the addresses it announced.
pub struct Spawned {
    pub base: String,
    /// The caller lane, when the server announced one (`AEDNET_CALLER_LISTEN` in `env`).
    pub lane: Option<String>,
    /// The metrics listener's `/metrics` URL, when announced.
    pub metrics: Option<String>,
    pub child: tokio::process::Child,
}

/// Starts `aednet serve` on `url` with extra environment and reads what it announced.
pub async fn spawn_aednet_full(url: &str, env: &[(String, String)]) -> anyhow::Result<Spawned> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .arg("serve-aednet")
        .arg(url)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let t = Instant::now();
    let mut lane = None;
    let (base, metrics) = loop {
        let line = lines
            .next_line()
            .await?
            .context("aednet exited before listening")?;
        if let Some(rest) = line.strip_prefix("aednet caller lane on ") {
            lane = Some(rest.trim().to_string());
        }
        if let Some(rest) = line.strip_prefix("aednet listening on ") {
            // "http://host:port (metrics on http://host:port/metrics)"
            let metrics = rest
                .split("metrics on ")
                .nth(1)
                .map(|m| m.trim_end_matches(')').trim().to_string());
            break (
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                metrics,
            );
        }
    };
    eprintln!(
        "aednet: serving at {base} after {:.2} s start-up (load from the database + index build)",
        t.elapsed().as_secs_f64()
    );
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Spawned {
        base,
        lane,
        metrics,
        child,
    })
}

/// Loads the network into a PostGIS table (kept between runs, keyed by size and seed).
pub async fn postgis(
    admin_url: &str,
    aeds: &[SynthAed],
    seed: u64,
    concurrency: usize,
) -> anyhow::Result<Target> {
    let dbname = "aednet_load_postgis";
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .context("connecting to PostgreSQL")?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(dbname)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE {dbname}"))
            .execute(&mut admin)
            .await?;
    }
    let (base, _) = admin_url
        .rsplit_once('/')
        .context("database URL has a path")?;
    let url = format!("{base}/{dbname}");
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(concurrency).unwrap_or(32).clamp(2, 64))
        .connect(&url)
        .await?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS postgis")
        .execute(&pool)
        .await
        .context("PostGIS is not installed: apt-get install postgresql-15-postgis-3")?;
    let marker = format!("{}:{seed}", aeds.len());
    let have: Option<(String,)> =
        sqlx::query_as("SELECT obj_description('load_aeds'::regclass, 'pg_class')")
            .fetch_optional(&pool)
            .await
            .ok()
            .flatten();
    if have.as_ref().map(|h| h.0.as_str()) != Some(marker.as_str()) {
        let t = Instant::now();
        let mut conn = pool.acquire().await?;
        sqlx::query("DROP TABLE IF EXISTS load_aeds")
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "CREATE TABLE load_aeds (id bigint PRIMARY KEY, geog geography(Point, 4326) NOT NULL, \
             status text NOT NULL, access text NOT NULL, open_mask bit(168) NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        let mut copy = conn
            .copy_in_raw(
                "COPY load_aeds (id, geog, status, access, open_mask) FROM STDIN WITH (FORMAT csv)",
            )
            .await?;
        let mut buf = String::with_capacity(1 << 20);
        for a in aeds {
            use std::fmt::Write;
            let _ = writeln!(
                buf,
                "{},SRID=4326;POINT({} {}),{},{},{}",
                a.id,
                a.pos.lon,
                a.pos.lat,
                a.status.as_str(),
                a.access.as_str(),
                mask_bits(a)
            );
            if buf.len() > 1 << 20 {
                copy.send(buf.as_bytes()).await?;
                buf.clear();
            }
        }
        copy.send(buf.as_bytes()).await?;
        copy.finish().await?;
        sqlx::query("CREATE INDEX load_aeds_geog ON load_aeds USING gist (geog)")
            .execute(&mut *conn)
            .await?;
        sqlx::query("ANALYZE load_aeds").execute(&mut *conn).await?;
        sqlx::query(&format!("COMMENT ON TABLE load_aeds IS '{marker}'"))
            .execute(&mut *conn)
            .await?;
        eprintln!(
            "PostGIS: loaded {} AEDs and built the GiST index in {:.1} s",
            aeds.len(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(Target::Postgis {
        pool,
        how: i32::try_from(workload::query_hour_of_week()).unwrap_or(0),
    })
}

/// Loads the network into a Redis geo set (kept between runs, keyed by size and seed).
pub async fn redis(url: &str, aeds: &[SynthAed], seed: u64) -> anyhow::Result<Target> {
    let client = redis::Client::open(url)?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")?;
    let marker = format!("{}:{seed}", aeds.len());
    let have: Option<String> = conn.get(REDIS_META).await?;
    if have.as_deref() != Some(marker.as_str()) {
        let t = Instant::now();
        let _: () = conn.del(REDIS_KEY).await?;
        for chunk in aeds.chunks(5000) {
            let mut cmd = redis::cmd("GEOADD");
            cmd.arg(REDIS_KEY);
            for a in chunk {
                cmd.arg(a.pos.lon).arg(a.pos.lat).arg(encode(a));
            }
            let _: i64 = cmd.query_async(&mut conn).await?;
        }
        let _: () = conn.set(REDIS_META, &marker).await?;
        eprintln!(
            "Redis: loaded {} AEDs in {:.1} s",
            aeds.len(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(Target::Redis {
        conn,
        how: workload::query_hour_of_week(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_their_attributes() {
        for a in workload::aeds(200, 1) {
            let b = decode(&encode(&a)).unwrap();
            assert_eq!(
                (a.id, a.status, a.access, a.hours),
                (b.id, b.status, b.access, b.hours)
            );
            assert_eq!(mask_bits(&a).len(), 168);
        }
        assert!(workload::BAD.contains(&aednet_core::aed::ReadinessStatus::Fault));
    }
}
