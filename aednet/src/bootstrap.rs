//! First start of the demo: fill an empty database with the synthetic city and issue one token
//! per staff role, so a new user can try every part of the API straight away.

use std::path::Path;

use aednet_core::Role;
use aednet_store::Store;
use anyhow::Context;

/// The seed of the committed demo city.
pub const DEFAULT_SEED: u64 = 20_261_124;
/// The demo's own database, so it never mixes with real data in `aednet-data/aednet.db`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://aednet-data/demo.db";
/// Staff tokens issued on first start, written beside the database (demo only).
pub const TOKENS_FILE: &str = "demo-tokens.txt";
/// The demo city's population grid (CSV `lat,lon,population`), written on first start beside
/// a SQLite database as `<name>-population.csv` (`demo-population.csv` beside `demo.db`; here,
/// beside nothing, for other databases); `demo`, `serve` and `plan` on that database use it as
/// `[coverage] population_grid` unless another grid is configured — a real deployment
/// configures its census grid the same way.
pub const POPULATION_FILE: &str = "demo-population.csv";

/// Loads the demo city unless the database already holds AEDs. Returns whether it loaded.
pub async fn ensure_demo(
    store: &dyn Store,
    seed: u64,
    dir: &Path,
    grid: &Path,
) -> anyhow::Result<bool> {
    if store.count_aeds().await? > 0 {
        println!("database already has data: serving it (delete it to regenerate the demo city)");
        if dir.join(TOKENS_FILE).exists() {
            println!("demo staff tokens: {}", dir.join(TOKENS_FILE).display());
        }
        return Ok(false);
    }
    let now = chrono::Utc::now();
    let city = crate::demo::generate(seed, now);
    std::fs::create_dir_all(dir)?;
    std::fs::write(grid, crate::demo::population_csv(&city.population))
        .with_context(|| format!("writing {}", grid.display()))?;
    println!("demo population grid written to {}", grid.display());
    let summary = crate::demo::load(store, &city)
        .await
        .context("loading the demo city")?;
    println!("demo city loaded: {}", serde_json::to_string(&summary)?);

    let mut lines =
        vec!["# aednet demo tokens (demo data only; shown once at creation)".to_string()];
    for role in [
        Role::Admin,
        Role::Dispatcher,
        Role::Maintenance,
        Role::Planner,
    ] {
        let (secret, new) =
            aednet_api::auth::new_token(&format!("demo {}", role.as_str()), role, None);
        store.create_token(&new).await?;
        lines.push(format!("{}\t{secret}", role.as_str()));
    }
    let text = lines.join("\n") + "\n";
    let path = dir.join(TOKENS_FILE);
    write_private(&path, &text)?;
    println!("demo staff tokens (also in {}):\n{text}", path.display());
    Ok(true)
}

/// Writes a file readable by its owner only: it holds bearer tokens.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    std::fs::write(path, text)
}
