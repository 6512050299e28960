//! The command line: `serve`, `demo`, `migrate`, `import`, `token`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aednet_api::AppState;
use aednet_core::event::LocalBus;
use aednet_core::{Role, SystemClock};
use aednet_store::DynStore;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::net::TcpListener;

use crate::config::{redact_url, Config, LogFormat, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "aednet",
    version,
    about = "Open AED network and emergency-response dispatch service"
)]
pub struct Cli {
    /// TOML configuration file (default: ./aednet.toml if it exists).
    #[arg(long, global = true, env = "AEDNET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://FILE (default sqlite://aednet-data/aednet.db) or postgres://…
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API.
    Serve(ServeArgs),
    /// Create a synthetic Quzhou-like demo city (if the database is empty) and serve it.
    Demo(DemoArgs),
    /// Run database migrations and exit.
    Migrate,
    /// Import AEDs, stations and districts from a file.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Manage API bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Simulations: the demo city, or the city in `--database-url`.
    #[command(subcommand)]
    Simulate(SimulateCommand),
    /// Where the next AEDs should go: greedy maximal covering on the 4-minute coverage map.
    Plan(crate::plan::PlanArgs),
    /// Web Push set-up.
    #[command(subcommand)]
    Push(PushCommand),
}

#[derive(Debug, Subcommand)]
pub enum PushCommand {
    /// Generate a VAPID key pair (RFC 8292) and print the `[notify.web_push]` configuration.
    Keys {
        /// The contact push services' operators see (`mailto:` or `https:`).
        #[arg(long, default_value = "mailto:admin@example.invalid")]
        subject: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SimulateCommand {
    /// Arrests under several dispatch policies, side by side, each through the real dispatch
    /// engine on a virtual clock (seeded: the same seed gives the same table), with 95 %
    /// bootstrap intervals and aednet's paired differences. In the demo city, or in the city
    /// a database holds when `--database-url` is given (e.g. an OSM import).
    Dispatch {
        #[arg(long, default_value_t = 2000)]
        incidents: usize,
        #[arg(long, default_value_t = crate::bootstrap::DEFAULT_SEED)]
        seed: u64,
        /// Mean probability an alerted rescuer accepts (field: 0.23 PulsePoint – 0.72 SAMBA).
        #[arg(long, default_value_t = 0.3)]
        accept: f64,
        /// Mean share of rescuers on duty (shaped by hour of day).
        #[arg(long, default_value_t = 0.25)]
        on_duty: f64,
        /// Registered rescuers per 1 000 people (default: each district's target_rescuers,
        /// else 20, the plans' 2 %).
        #[arg(long)]
        rescuers_per_1000: Option<f64>,
        /// Median walking speed, m/s (Swedish GPS study: 2.3; scaled to 1.8 where > 8 000/km²).
        #[arg(long, default_value_t = 2.3)]
        speed: f64,
        /// Median EMS arrival in urban places, minutes.
        #[arg(long, default_value_t = 10.0)]
        ems_urban_min: f64,
        /// Median EMS arrival in rural places, minutes.
        #[arg(long, default_value_t = 15.0)]
        ems_rural_min: f64,
        /// The demo city with one district at Shenzhen-like density.
        #[arg(long)]
        dense_core: bool,
        /// Bootstrap resamples for the 95 % intervals.
        #[arg(long, default_value_t = 1000)]
        bootstrap: usize,
        /// Also write the summary as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// The aednet policy to try, as JSON over the configured `[dispatch]`, e.g.
        /// '{"max_alerts": 20}'.
        #[arg(long)]
        policy: Option<String>,
    },
    /// "What it takes": the aednet policy over rescuer densities and AED densities (extra AEDs
    /// at the coverage planner's greedy sites) → CSV and PNG chart. The demo city, or the
    /// city in `--database-url`.
    Sweep {
        /// Arrests per point.
        #[arg(long, default_value_t = 300)]
        incidents: usize,
        #[arg(long, default_value_t = crate::bootstrap::DEFAULT_SEED)]
        seed: u64,
        #[arg(long, default_value_t = 0.3)]
        accept: f64,
        #[arg(long, default_value_t = 0.25)]
        on_duty: f64,
        /// Rescuers per 1 000 people, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1.0, 5.0, 10.0, 20.0, 40.0])]
        rescuers_per_1000: Vec<f64>,
        /// AEDs per 10 000 people, comma-separated (0: today's network).
        #[arg(long, value_delimiter = ',', default_values_t = [0.0, 1.5, 5.0, 10.0, 20.0])]
        aeds_per_10k: Vec<f64>,
        #[arg(long, default_value = "sweep.csv")]
        csv: PathBuf,
        /// The chart (PNG).
        #[arg(long, default_value = "sweep.png")]
        png: PathBuf,
        #[arg(long)]
        policy: Option<String>,
    },
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Public HTTP address (default 127.0.0.1:8080; port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Prometheus metrics address (default 127.0.0.1:9090).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Seed of the synthetic city; the same seed gives the same city.
    #[arg(long, default_value_t = crate::bootstrap::DEFAULT_SEED)]
    pub seed: u64,
    /// Generate the city and exit instead of serving.
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(Debug, Args)]
pub struct CommonImportArgs {
    /// The file to import.
    pub file: PathBuf,
    /// Source name recorded on each record (default: osm, csv:<file stem>, geojson:<file stem>).
    #[arg(long)]
    pub source: Option<String>,
    /// Reject the whole file if any record is rejected.
    #[arg(long)]
    pub strict: bool,
    /// IANA time zone for opening hours, instead of looking it up from each record's position.
    #[arg(long)]
    pub tz: Option<chrono_tz::Tz>,
    /// Write the full import report as JSON to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// OpenStreetMap PBF: emergency=defibrillator nodes/ways, first-aid posts, districts.
    Osm {
        #[command(flatten)]
        common: CommonImportArgs,
        /// admin_level of the boundary relations imported as districts.
        #[arg(long, default_value_t = 8)]
        admin_level: u8,
    },
    /// A municipal AED list in CSV (columns, separator and encoding detected).
    Csv {
        #[command(flatten)]
        common: CommonImportArgs,
        #[arg(long)]
        lat_col: Option<String>,
        #[arg(long)]
        lon_col: Option<String>,
        #[arg(long)]
        name_col: Option<String>,
        #[arg(long)]
        address_col: Option<String>,
        #[arg(long)]
        id_col: Option<String>,
        /// Field separator (detected from , ; and tab if not given).
        #[arg(long)]
        delimiter: Option<char>,
        /// Text encoding, e.g. utf-8, gbk, gb18030 (detected if not given).
        #[arg(long)]
        encoding: Option<String>,
    },
    /// GeoJSON FeatureCollection of AEDs, stations or districts.
    Geojson {
        #[command(flatten)]
        common: CommonImportArgs,
    },
    /// A city's address register in CSV (address text or its parts, lat, lon) for the
    /// dispatcher's address search; replaces the previous register.
    Addresses {
        /// The CSV file (columns, separator and encoding detected).
        file: PathBuf,
        /// Store nothing if any row is rejected.
        #[arg(long)]
        strict: bool,
        #[arg(long)]
        address_col: Option<String>,
        #[arg(long)]
        lat_col: Option<String>,
        #[arg(long)]
        lon_col: Option<String>,
        /// Field separator (detected from , ; and tab if not given).
        #[arg(long)]
        delimiter: Option<char>,
        /// Text encoding, e.g. utf-8, gbk, gb18030 (detected if not given).
        #[arg(long)]
        encoding: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once and only its hash is stored.
    Create {
        #[arg(long)]
        role: Role,
        #[arg(long)]
        name: String,
        /// The rescuer or device the token belongs to.
        #[arg(long)]
        subject_id: Option<i64>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let serve_args = match &cli.command {
        Command::Serve(a) => Some(a.clone()),
        Command::Demo(d) => Some(d.serve.clone()),
        _ => None,
    };
    let mut overrides = Overrides {
        database_url: cli.database_url.clone(),
        log_format: cli.log_format,
        ..Default::default()
    };
    if let Some(a) = &serve_args {
        overrides.listen = a.listen;
        overrides.metrics_listen = a.metrics_listen;
    }
    if matches!(cli.command, Command::Demo(_))
        && overrides.database_url.is_none()
        && std::env::var("AEDNET_DATABASE_URL").is_err()
    {
        overrides.database_url = Some(crate::bootstrap::DEFAULT_DATABASE_URL.to_string());
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    init_tracing(&config);
    tracing::debug!(?config, "configuration");

    match cli.command {
        Command::Serve(_) => {
            let store = open_store(&config).await?;
            serve(with_grid_beside_database(config), store).await
        }
        Command::Demo(args) => {
            let store = open_store(&config).await?;
            let dir = demo_dir(&config.database_url);
            let grid = grid_beside(&config.database_url)
                .unwrap_or_else(|| dir.join(crate::bootstrap::POPULATION_FILE));
            crate::bootstrap::ensure_demo(store.as_ref(), args.seed, &dir, &grid).await?;
            if args.no_serve {
                return Ok(());
            }
            serve(with_grid_beside_database(config), store).await
        }
        Command::Migrate => {
            open_store(&config).await?;
            println!("migrations applied to {}", redact_url(&config.database_url));
            Ok(())
        }
        Command::Import(cmd) => {
            let store = open_store(&config).await?;
            run_import(store.as_ref(), cmd).await
        }
        Command::Token(cmd) => {
            let store = open_store(&config).await?;
            run_token(store.as_ref(), cmd).await
        }
        Command::Push(PushCommand::Keys { subject }) => {
            let (private, public) = aednet_notify::Vapid::generate();
            println!("# VAPID key pair for Web Push; keep the private key secret.");
            println!("# Public key (the app subscribes with it): {public}");
            println!("[notify.web_push]");
            println!("vapid_private_key = \"{private}\"");
            println!("subject = \"{subject}\"");
            Ok(())
        }
        Command::Plan(args) => {
            let config = with_grid_beside_database(config);
            let store = open_store(&config).await?;
            crate::plan::run(store.as_ref(), &config.coverage, config.walk, args).await
        }
        Command::Simulate(SimulateCommand::Dispatch {
            incidents,
            seed,
            accept,
            on_duty,
            rescuers_per_1000,
            speed,
            ems_urban_min,
            ems_rural_min,
            dense_core,
            bootstrap,
            csv,
            policy,
        }) => {
            let policy = policy_over(&config.dispatch, policy.as_deref())?;
            anyhow::ensure!(
                (0.0..=1.0).contains(&accept),
                "--accept must be between 0 and 1"
            );
            anyhow::ensure!(
                (0.0..=1.0).contains(&on_duty),
                "--on-duty must be between 0 and 1"
            );
            anyhow::ensure!(
                rescuers_per_1000.is_none_or(|r| (0.0..=1000.0).contains(&r)),
                "--rescuers-per-1000 must be between 0 and 1000"
            );
            anyhow::ensure!(
                speed > 0.0 && ems_urban_min > 0.0 && ems_rural_min > 0.0,
                "--speed, --ems-urban-min and --ems-rural-min must be positive"
            );
            anyhow::ensure!(bootstrap >= 100, "--bootstrap must be at least 100");
            let o = crate::simulate::SimOptions {
                accept,
                on_duty,
                speed_mps: speed,
                ems_urban_s: ems_urban_min * 60.0,
                ems_rural_s: ems_rural_min * 60.0,
                bootstrap,
                ..crate::simulate::SimOptions::new(incidents, seed, policy)
            };
            let world = if cli.database_url.is_some() {
                anyhow::ensure!(!dense_core, "--dense-core is a variant of the demo city");
                let config = with_grid_beside_database(config);
                let store = open_store(&config).await?;
                crate::simulate::world::World::from_store(
                    store.as_ref(),
                    &config.coverage,
                    redact_url(&config.database_url),
                    rescuers_per_1000,
                    seed,
                )
                .await?
            } else {
                crate::simulate::world::World::demo(
                    seed,
                    crate::simulate::week0(),
                    dense_core,
                    rescuers_per_1000,
                )?
            };
            let world = Arc::new(world);
            println!("{}", crate::simulate::describe(&world));
            let results = crate::simulate::run(&o, world.clone()).await?;
            let summary = crate::simulate::summary(&o, &results);
            print!("{}", crate::simulate::table(&o, &world, &results, &summary));
            if let Some(path) = csv {
                std::fs::write(&path, crate::simulate::csv(&results, &summary))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::Simulate(SimulateCommand::Sweep {
            incidents,
            seed,
            accept,
            on_duty,
            rescuers_per_1000,
            aeds_per_10k,
            csv,
            png,
            policy,
        }) => {
            let policy = policy_over(&config.dispatch, policy.as_deref())?;
            anyhow::ensure!(
                (0.0..=1.0).contains(&accept) && (0.0..=1.0).contains(&on_duty),
                "--accept and --on-duty must be between 0 and 1"
            );
            anyhow::ensure!(
                rescuers_per_1000
                    .iter()
                    .chain(&aeds_per_10k)
                    .all(|x| (0.0..=1000.0).contains(x)),
                "--rescuers-per-1000 and --aeds-per-10k must be between 0 and 1000"
            );
            let o = crate::simulate::sweep::SweepOptions {
                sim: crate::simulate::SimOptions {
                    accept,
                    on_duty,
                    bootstrap: 400,
                    ..crate::simulate::SimOptions::new(incidents, seed, policy)
                },
                rescuers_per_1000,
                aeds_per_10k,
            };
            run_sweep(config, cli.database_url.is_some(), o, &csv, &png).await
        }
    }
}

/// `simulate sweep`: the city from the database, or the demo city written into an in-memory
/// store (its population grid in a temporary file), so the planner places the extra AEDs.
async fn run_sweep(
    config: Config,
    database: bool,
    o: crate::simulate::sweep::SweepOptions,
    csv: &Path,
    png: &Path,
) -> anyhow::Result<()> {
    let (store, config, _tmp) = if database {
        let config = with_grid_beside_database(config);
        (open_store(&config).await?, config, None)
    } else {
        let mut config = config;
        let store = aednet_store::connect("sqlite::memory:").await?;
        let city = crate::demo::generate(o.sim.seed, crate::simulate::week0());
        let dir = std::env::temp_dir().join(format!("aednet-sweep-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let grid = dir.join(crate::bootstrap::POPULATION_FILE);
        std::fs::write(&grid, crate::demo::population_csv(&city.population))?;
        crate::demo::load(store.as_ref(), &city).await?;
        config.coverage.population_grid = Some(grid);
        (store, config, Some(TempDir(dir)))
    };
    let at = crate::simulate::week0() + chrono::Duration::hours(12);
    let (map, _, tz) =
        aednet_api::coverage::offline_map(store.as_ref(), &config.coverage, config.walk, at)
            .await
            .map_err(anyhow::Error::msg)?;
    let name = if database {
        redact_url(&config.database_url)
    } else {
        "the demo city".into()
    };
    let world = crate::simulate::world::World::from_store(
        store.as_ref(),
        &config.coverage,
        name,
        None,
        o.sim.seed,
    )
    .await?;
    println!("{}", crate::simulate::describe(&world));
    let points = crate::simulate::sweep::sweep(&o, &world, &map, tz).await?;
    let text = crate::simulate::sweep::csv(&world, &points);
    print!("{text}");
    std::fs::write(csv, &text).with_context(|| format!("writing {}", csv.display()))?;
    crate::simulate::chart::png(&world.name, &points, png)?;
    println!("wrote {} and {}", csv.display(), png.display());
    Ok(())
}

/// Removes its directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The configured `[dispatch]` policy with `--policy` JSON fields over it.
fn policy_over(
    base: &aednet_dispatch::Policy,
    over: Option<&str>,
) -> anyhow::Result<aednet_dispatch::Policy> {
    let mut p = serde_json::to_value(base)?;
    if let Some(json) = over {
        let over: serde_json::Value = serde_json::from_str(json).context("--policy is not JSON")?;
        for (k, v) in over.as_object().context("--policy must be a JSON object")? {
            p[k] = v.clone();
        }
    }
    serde_json::from_value(p).context("--policy")
}

/// Without a configured `[coverage] population_grid`, the grid a SQLite database carries beside
/// it as `<name>-population.csv` (the demo writes `demo-population.csv` beside `demo.db`), so
/// `demo`, `serve` and `plan` on that database count the same people.
fn with_grid_beside_database(mut config: Config) -> Config {
    if config.coverage.population_grid.is_some() {
        return config;
    }
    if let Some(grid) = grid_beside(&config.database_url).filter(|g| g.exists()) {
        println!("population grid: {}", grid.display());
        config.coverage.population_grid = Some(grid);
    }
    config
}

/// `<name>-population.csv` beside a SQLite database; `None` for other databases.
fn grid_beside(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|p| Path::new(p.split('?').next().unwrap_or(p)))?;
    let stem = path.file_stem()?.to_string_lossy();
    Some(path.with_file_name(format!("{stem}-population.csv")))
}

/// Where the demo keeps its side files (the tokens it printed): beside the SQLite file.
fn demo_dir(database_url: &str) -> PathBuf {
    database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|p| {
            Path::new(p.split('?').next().unwrap_or(p))
                .parent()
                .unwrap_or(Path::new("."))
                .to_path_buf()
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests calling run twice) is harmless: keep the first subscriber.
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    if let Some(path) = config.database_url.strip_prefix("sqlite://") {
        let path = Path::new(path.split('?').next().unwrap_or(path));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    aednet_store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening database {}", redact_url(&config.database_url)))
}

/// Builds the full application router over `state`.
/// Every router, merged: the registry API, the caller and rescuer API, the web consoles.
pub fn app(
    mut state: AppState,
    public: &aednet_mobile_api::PublicLimits,
    gateway: Arc<aednet_device_gateway::Gateway>,
    dispatch: Arc<aednet_dispatch::Engine>,
) -> axum::Router {
    let eligibility = Arc::new(aednet_mobile_api::rescuer::Eligibility::new(
        &state.limits.config,
    ));
    eligibility.start(&state);
    // Accepted responders' moves become live distance/ETA frames.
    eligibility.observe(dispatch.clone());
    use utoipa::OpenApi;
    let mut extra = aednet_mobile_api::ApiDoc::openapi();
    extra.merge(aednet_device_gateway::ApiDoc::openapi());
    extra.merge(aednet_dispatch::http::ApiDoc::openapi());
    extra.merge(aednet_api::coverage::ApiDoc::openapi());
    // The live coverage map loads in the background and follows the bus from here on; its
    // handlers wait for the first load. A bad population grid was reported by `serve` already.
    let coverage = aednet_api::coverage::Coverage::new(&state, state.coverage.clone())
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "coverage: population grid ignored");
            let config = aednet_api::coverage::CoverageConfig {
                population_grid: None,
                ..state.coverage.clone()
            };
            aednet_api::coverage::Coverage::new(&state, config)
                .expect("coverage config validated at load")
        });
    coverage.start();
    let tiles = aednet_api::tiles::start(&state);
    state.openapi = Arc::new(aednet_api::openapi::document(Some(extra)));
    aednet_api::finish(
        aednet_api::routes()
            .merge(aednet_mobile_api::router(public, eligibility.clone()))
            .merge(aednet_device_gateway::router(gateway))
            .merge(aednet_dispatch::router(dispatch, eligibility))
            .merge(aednet_api::coverage::router(coverage, public))
            .merge(aednet_api::tiles::router(tiles))
            .merge(aednet_web::router()),
        state,
    )
}

pub async fn serve(config: Config, store: DynStore) -> anyhow::Result<()> {
    // Several nodes: the bus and the other nodes over NATS, incident leases on PostgreSQL.
    let cluster = match &config.cluster.nats_url {
        Some(url) => Some(
            aednet_cluster::Cluster::connect(&config.cluster)
                .await
                .with_context(|| format!("connecting to NATS at {}", redact_url(url)))?,
        ),
        None => None,
    };
    let bus: Arc<dyn aednet_core::EventBus> = match &cluster {
        Some(c) => c.bus.clone(),
        None => Arc::new(LocalBus::default()),
    };
    let mut state = AppState::new(store, bus, Arc::new(SystemClock));
    state.limits = Arc::new(aednet_api::limits::Limits::new(config.limits));
    state.background = Arc::new(aednet_api::background::Background::new(
        config.limits.background_threads,
        config.limits.background_low_priority,
    ));
    if let Some(c) = &cluster {
        tracing::info!(node = %c.node_id, prefix = %config.cluster.prefix, "cluster mode");
        state.peers = Some(c.peers.clone());
        spawn_cluster_metrics(&state, c);
    }
    state.walk = config.walk;
    // The walking network loads in the background; until it is in, walks are straight lines.
    aednet_api::artifacts::follow_into(
        &state,
        state.walk_graph.clone(),
        aednet_api::state::decode_walk_graph,
    );
    // Address search: the map's index and the address register, loaded in the background.
    state.geocode.start(&state);
    state.cad = Arc::new(config.cad.clone());
    state.coverage = config.coverage.clone();
    if let Some(path) = &config.coverage.population_grid {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading coverage.population_grid {}", path.display()))?;
        aednet_api::coverage::read_population_csv(&text)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("coverage.population_grid {}", path.display()))?;
    }
    // Callers are served from memory: load every AED and station before accepting requests.
    aednet_api::geo_sync::start(&state).await?;
    let gateway = aednet_device_gateway::Gateway::new(state.clone(), config.gateway.clone());
    gateway.start().await?;
    // Open incidents resume with their timers.
    let dispatch = match &cluster {
        Some(c) => {
            let leases = aednet_cluster::PgLeases::connect(
                &config.database_url,
                &c.node_id,
                std::time::Duration::from_millis(config.cluster.lease_heartbeat_ms),
            )
            .await
            .context("opening the incident lease session on PostgreSQL")?;
            aednet_dispatch::Engine::with_leases(state.clone(), config.dispatch.clone(), leases)
        }
        None => aednet_dispatch::Engine::new(state.clone(), config.dispatch.clone()),
    };
    dispatch.start().await?;
    // Offers, stand-downs and cancels the socket did not confirm go out by push and webhook.
    let notifier = aednet_notify::Notifier::start(
        state.store.clone(),
        config.notify.clone(),
        &state.metrics.registry,
    )
    .context("[notify]")?;
    if let Some(k) = notifier.vapid_public_key() {
        tracing::info!(vapid_public_key = k, "web push on");
    }
    dispatch.set_notifier(notifier);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let metrics_listener = TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("binding {}", config.metrics_listen))?;
    let addr = listener.local_addr()?;
    let maddr = metrics_listener.local_addr()?;
    let stop = shutdown_signal();
    // Tests and scripts read this line to learn the ports chosen for `--listen …:0`.
    println!("aednet listening on http://{addr} (metrics on http://{maddr}/metrics)");
    tracing::info!(%addr, metrics = %maddr, backend = ?state.store.backend(), "serving");

    let (tx, rx) = tokio::sync::watch::channel(false);
    let metrics_app = aednet_api::metrics_router(state.clone());
    let mut mrx = rx.clone();
    let metrics_task = tokio::spawn(aednet_api::serve(
        metrics_listener,
        metrics_app,
        async move {
            let _ = mrx.changed().await;
        },
    ));
    let mut arx = rx;
    let api = aednet_api::serve(
        listener,
        app(state, &config.public, gateway.clone(), dispatch),
        async move {
            let _ = arx.changed().await;
        },
    );
    let signal = async move {
        stop.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = tx.send(true);
    };
    let (res, ()) = tokio::join!(api, signal);
    // Device sockets close (1001) and the coalesced last-seen state is written: a graceful
    // stop loses nothing a device was told.
    gateway.shutdown().await;
    if let Some(c) = &cluster {
        // Events of the last requests still queued for the stream go out before exiting.
        if !c.bus.flush(std::time::Duration::from_secs(5)).await {
            tracing::warn!("some events were not published to the stream before shutdown");
        }
    }
    res?;
    metrics_task.await??;
    Ok(())
}

/// `aednet_cluster_*`: the event stream as this node sees it, copied every 5 s.
fn spawn_cluster_metrics(state: &AppState, cluster: &aednet_cluster::Cluster) {
    let gauge = |name: &str, help: &str| {
        let g = prometheus::IntGauge::new(name, help).expect("static metric");
        let _ = state.metrics.registry.register(Box::new(g.clone()));
        g
    };
    let connected = gauge(
        "aednet_cluster_nats_connected",
        "1 while this node's NATS link to the other nodes is up",
    );
    let published = gauge(
        "aednet_cluster_events_published",
        "Events this node stored in the stream (acknowledged)",
    );
    let failed = gauge(
        "aednet_cluster_events_publish_failed",
        "Events this node gave up publishing (the store has them; others repair or resync)",
    );
    let received = gauge(
        "aednet_cluster_events_received",
        "Other nodes' events applied on this node",
    );
    let resyncs = gauge(
        "aednet_cluster_resyncs",
        "Full reloads because events were missed for good",
    );
    let bus = cluster.bus.clone();
    let peers = cluster.peers.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            let s = bus.stats();
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            connected.set(i64::from(aednet_core::Peers::connected(peers.as_ref())));
            published.set(n(s.published));
            failed.set(n(s.publish_failed));
            received.set(n(s.received));
            resyncs.set(n(s.resyncs));
        }
    });
}

/// Registers the SIGINT and SIGTERM handlers now and returns a future that completes on the
/// first of them. Registering before the address is announced matters: a supervisor or test that
/// reads the announcement and at once sends SIGTERM must get a graceful shutdown, not the
/// default action (immediate exit).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                }
                _ => {
                    tracing::warn!("cannot install signal handlers; stop with SIGKILL");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn progress_bar() -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg} {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb
    } else {
        ProgressBar::hidden()
    }
}

async fn run_import(store: &dyn aednet_store::Store, cmd: ImportCommand) -> anyhow::Result<()> {
    use aednet_import::CsvOptions;
    if let ImportCommand::Addresses {
        file,
        strict,
        address_col,
        lat_col,
        lon_col,
        delimiter,
        encoding,
    } = cmd
    {
        let opts = CsvOptions {
            lat_col,
            lon_col,
            address_col,
            delimiter,
            encoding,
            ..Default::default()
        };
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let report = aednet_import::address_register::import_addresses(
            store,
            &bytes,
            &file_stem(&file),
            &opts,
            strict,
        )
        .await?;
        println!("{report}");
        if report.version.is_none() {
            anyhow::bail!("nothing stored: the address register in use (if any) stays");
        }
        return Ok(());
    }
    let pb = progress_bar();
    let (common, report) = match cmd {
        ImportCommand::Osm {
            common,
            admin_level,
        } => {
            let opts = import_options(&common, admin_level);
            let r = aednet_import::import_osm(store, &common.file, &opts, &pb).await?;
            (common, r)
        }
        ImportCommand::Csv {
            common,
            lat_col,
            lon_col,
            name_col,
            address_col,
            id_col,
            delimiter,
            encoding,
        } => {
            let mut opts = import_options(&common, 8);
            opts.csv = CsvOptions {
                lat_col,
                lon_col,
                name_col,
                address_col,
                id_col,
                delimiter,
                encoding,
            };
            let bytes = std::fs::read(&common.file)
                .with_context(|| format!("reading {}", common.file.display()))?;
            let name = file_stem(&common.file);
            let r = aednet_import::import_csv(store, &bytes, &name, &opts, &pb).await?;
            (common, r)
        }
        ImportCommand::Geojson { common } => {
            let opts = import_options(&common, 8);
            let bytes = std::fs::read(&common.file)
                .with_context(|| format!("reading {}", common.file.display()))?;
            let name = file_stem(&common.file);
            let r = aednet_import::import_geojson(store, &bytes, &name, &opts, &pb).await?;
            (common, r)
        }
        ImportCommand::Addresses { .. } => unreachable!("handled above"),
    };
    pb.finish_and_clear();
    println!("{report}");
    if let Some(path) = &common.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
        println!("full report written to {}", path.display());
    }
    Ok(())
}

fn import_options(common: &CommonImportArgs, admin_level: u8) -> aednet_import::ImportOptions {
    aednet_import::ImportOptions {
        source: common.source.clone(),
        strict: common.strict,
        tz: common.tz,
        admin_level,
        ..Default::default()
    }
}

fn file_stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into())
}

async fn run_token(store: &dyn aednet_store::Store, cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            role,
            name,
            subject_id,
        } => {
            anyhow::ensure!(role != Role::Public, "the public role needs no token");
            let (secret, new) = aednet_api::auth::new_token(&name, role, subject_id);
            let rec = store.create_token(&new).await?;
            println!(
                "token {} ({}, role {}): {secret}",
                rec.id,
                rec.name,
                rec.role.as_str()
            );
            println!("Store it now: it is shown only once.");
        }
        TokenCommand::List => {
            for t in store.list_tokens().await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{state}",
                    t.id,
                    t.role.as_str(),
                    t.name,
                    t.created_at.to_rfc3339()
                );
            }
        }
        TokenCommand::Revoke { id } => {
            anyhow::ensure!(
                store.revoke_token(id).await?,
                "no active token with id {id}"
            );
            println!("token {id} revoked");
        }
    }
    Ok(())
}
