//! The command line: `serve`, `demo`, `migrate`, `import`, `token`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aednet_core::Role;
use aednet_store::DynStore;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{redact_url, Config, LogFormat, Overrides};
pub use crate::server::{app, serve};

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
    /// The caller lane: the nearest queries alone on this address, on a thread of their own
    /// (off by default).
    #[arg(long)]
    pub caller_listen: Option<SocketAddr>,
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
        overrides.caller_listen = a.caller_listen;
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
            eprintln!("{}", crate::simulate::describe(&world));
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
