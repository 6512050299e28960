//! Test harness: a real aednet server on a real socket (port 0) over a fresh database —
//! a temporary SQLite file or a fresh PostgreSQL database created for the test.

#![allow(dead_code)]

pub mod private_pg;
pub mod wire;

use std::sync::Arc;

use aednet_api::AppState;
use aednet_core::event::LocalBus;
use aednet_core::{Role, SystemClock};
use aednet_store::DynStore;
use serde_json::Value;
use tokio::net::TcpListener;

pub const PG_ADMIN_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub base: String,
    pub metrics: String,
    pub client: reqwest::Client,
    pub store: DynStore,
    pub state: AppState,
    pub tokens: std::collections::HashMap<Role, String>,
    /// The database URL (for tests that look at what was stored).
    pub url: String,
    /// The server's dispatch engine (tests drive its jobs, e.g. retention, at a chosen time).
    pub engine: Arc<aednet_dispatch::Engine>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
    pg_db: Option<String>,
}

/// Creates a fresh PostgreSQL database; fails loudly (never skips) if the server is not there.
pub async fn fresh_pg_database() -> (String, String) {
    use sqlx::Connection;
    let admin =
        std::env::var("AEDNET_TEST_PG_URL").unwrap_or_else(|_| PG_ADMIN_URL_DEFAULT.to_string());
    let name = format!("aednet_api_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL must be reachable at AEDNET_TEST_PG_URL (default 127.0.0.1:5432) for these tests");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let (base, _) = admin.rsplit_once('/').expect("database URL has a path");
    (format!("{base}/{name}"), name)
}

pub async fn drop_pg_database(name: &str) {
    use sqlx::Connection;
    let admin =
        std::env::var("AEDNET_TEST_PG_URL").unwrap_or_else(|_| PG_ADMIN_URL_DEFAULT.to_string());
    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

impl TestServer {
    pub async fn start(db: Db) -> TestServer {
        // Tests make many requests from one address; the limit has its own test.
        Self::start_with(
            db,
            aednet_mobile_api::PublicLimits {
                per_minute: 0,
                ..Default::default()
            },
        )
        .await
    }

    pub async fn start_with(db: Db, limits: aednet_mobile_api::PublicLimits) -> TestServer {
        Self::start_full(db, limits, aednet_device_gateway::GatewayConfig::default()).await
    }

    pub async fn start_full(
        db: Db,
        limits: aednet_mobile_api::PublicLimits,
        gateway: aednet_device_gateway::GatewayConfig,
    ) -> TestServer {
        Self::start_all(
            db,
            limits,
            gateway,
            aednet_dispatch::Policy::default(),
            None,
        )
        .await
    }

    /// Everything configurable; `url` reuses an existing database (a restart).
    pub async fn start_all(
        db: Db,
        limits: aednet_mobile_api::PublicLimits,
        gateway: aednet_device_gateway::GatewayConfig,
        policy: aednet_dispatch::Policy,
        reuse: Option<(String, Option<String>)>,
    ) -> TestServer {
        Self::start_tuned(db, limits, gateway, policy, reuse, |_| {}).await
    }

    /// [`Self::start_all`], then `tune` may change the state (`coverage`, `limits`) before the
    /// routers are built.
    pub async fn start_tuned(
        db: Db,
        limits: aednet_mobile_api::PublicLimits,
        gateway: aednet_device_gateway::GatewayConfig,
        policy: aednet_dispatch::Policy,
        reuse: Option<(String, Option<String>)>,
        tune: impl FnOnce(&mut AppState),
    ) -> TestServer {
        Self::start_notified(db, limits, gateway, policy, reuse, tune, None).await
    }

    /// [`Self::start_tuned`] with the notifier (`[notify]`: Web Push, webhook) on the engine.
    pub async fn start_notified(
        db: Db,
        limits: aednet_mobile_api::PublicLimits,
        gateway: aednet_device_gateway::GatewayConfig,
        policy: aednet_dispatch::Policy,
        reuse: Option<(String, Option<String>)>,
        tune: impl FnOnce(&mut AppState),
        notify: Option<aednet_notify::NotifyConfig>,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg_db) = match reuse {
            Some(r) => r,
            None => match db {
                Db::Sqlite => (
                    format!("sqlite://{}", dir.path().join("t.db").display()),
                    None,
                ),
                Db::Postgres => {
                    let (url, name) = fresh_pg_database().await;
                    (url, Some(name))
                }
            },
        };
        let store = aednet_store::connect(&url).await.expect("connect store");
        let db_url = url.clone();
        let mut tokens = std::collections::HashMap::new();
        for role in [
            Role::Admin,
            Role::Dispatcher,
            Role::Maintenance,
            Role::Planner,
            Role::Rescuer,
        ] {
            let (secret, new) = aednet_api::auth::new_token("test", role, None);
            store.create_token(&new).await.unwrap();
            tokens.insert(role, secret);
        }
        let mut state = AppState::new(
            store.clone(),
            Arc::new(LocalBus::default()),
            Arc::new(SystemClock),
        );
        // Tests make many requests from one address and rescuer: the coverage routes' and the
        // location reports' limits have their own tests (`start_tuned`).
        state.coverage.per_minute = 0;
        state.limits = Arc::new(aednet_api::limits::Limits::new(
            aednet_api::limits::LimitsConfig {
                location_per_s: 0,
                ..Default::default()
            },
        ));
        tune(&mut state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mlistener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let metrics = format!("http://{}/metrics", mlistener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        aednet_api::geo_sync::start(&state)
            .await
            .expect("load the geoindex");
        let app_state = state.clone();
        let gw = aednet_device_gateway::Gateway::new(state.clone(), gateway);
        gw.start().await.expect("start the device gateway");
        let engine = aednet_dispatch::Engine::new(state.clone(), policy);
        engine.start().await.expect("start the dispatch engine");
        if let Some(config) = notify {
            let n = aednet_notify::Notifier::start(
                state.store.clone(),
                config,
                &state.metrics.registry,
            )
            .expect("start the notifier");
            engine.set_notifier(n);
        }
        let app = aednet::cli::app(state.clone(), &limits, gw, engine.clone());
        let mapp = aednet_api::metrics_router(state);
        tokio::spawn(async move {
            let (mtx, mrx) = tokio::sync::oneshot::channel::<()>();
            let m = tokio::spawn(aednet_api::serve(mlistener, mapp, async move {
                let _ = mrx.await;
            }));
            aednet_api::serve(listener, app, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
            let _ = mtx.send(());
            let _ = m.await;
        });
        TestServer {
            base,
            metrics,
            client: reqwest::Client::new(),
            store,
            state: app_state,
            tokens,
            url: db_url,
            engine,
            shutdown: Some(tx),
            _dir: dir,
            pg_db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str, role: Option<Role>) -> reqwest::RequestBuilder {
        self.auth(self.client.get(self.url(path)), role)
    }
    pub fn post(&self, path: &str, role: Option<Role>, body: &Value) -> reqwest::RequestBuilder {
        self.auth(self.client.post(self.url(path)).json(body), role)
    }
    pub fn put(&self, path: &str, role: Option<Role>, body: &Value) -> reqwest::RequestBuilder {
        self.auth(self.client.put(self.url(path)).json(body), role)
    }
    pub fn delete(&self, path: &str, role: Option<Role>) -> reqwest::RequestBuilder {
        self.auth(self.client.delete(self.url(path)), role)
    }

    fn auth(&self, rb: reqwest::RequestBuilder, role: Option<Role>) -> reqwest::RequestBuilder {
        match role {
            Some(r) => rb.bearer_auth(&self.tokens[&r]),
            None => rb,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(name) = self.pg_db.take() {
            drop_pg_database(&name).await;
        }
    }
}

/// Sends a request and returns (status, JSON body).
pub async fn send(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = rb.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

pub fn aed_body(lat: f64, lon: f64, name: &str) -> Value {
    serde_json::json!({"lat": lat, "lon": lon, "name": name, "access": "yes", "opening_hours": "24/7"})
}

/// Polls `f` until it returns true or a 10 s deadline passes (index updates are asynchronous).
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Sends SIGTERM (via kill(1)) to a spawned aednet and waits up to 30 s for it to exit: the
/// graceful shutdown every binary test expects; panics if it does not end.
pub fn sigterm_and_wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "aednet (pid {}) did not exit after SIGTERM",
            child.id()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// What a spawned `aednet serve` printed up to the line announcing its addresses.
pub struct Announced {
    pub base: String,
    pub metrics: String,
    /// Every stdout line so far, the announcement last.
    pub stdout: Vec<String>,
}

/// Reads `child`'s piped stdout until "aednet listening on http://ADDR (metrics on
/// http://MADDR/metrics)" (tests and scripts learn `--listen …:0` ports from it), within
/// `secs`; kills the child and panics with what it printed otherwise. The rest of stdout keeps
/// being drained in the background so the child never blocks on a full pipe.
pub fn wait_for_announcement(child: &mut std::process::Child, what: &str, secs: u64) -> Announced {
    use std::io::{BufRead, BufReader};
    let out = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut stdout = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not announce its address; stdout so far: {stdout:#?}");
        };
        if let Some(rest) = line.strip_prefix("aednet listening on ") {
            let base = rest.split_whitespace().next().unwrap().to_string();
            let metrics = rest
                .split("metrics on ")
                .nth(1)
                .unwrap()
                .trim_end_matches(')')
                .to_string();
            stdout.push(line);
            return Announced {
                base,
                metrics,
                stdout,
            };
        }
        stdout.push(line);
    }
}

/// A spawned `aednet` (see [`start_aednet`]).
pub struct Running {
    pub child: std::process::Child,
    pub base: String,
    pub metrics: String,
    pub stdout: Vec<String>,
}

/// Starts the real binary, `aednet <args> --listen 127.0.0.1:0 --metrics-listen
/// 127.0.0.1:0`, in `dir` with `env` (and without any `AEDNET_DATABASE_URL` or
/// `AEDNET_CLUSTER__NATS_URL` of the test's own environment unless `env` names one), and
/// waits (with a deadline) for the line announcing the chosen ports. The child is waited for
/// by [`terminate`] or a test's own kill.
#[allow(clippy::zombie_processes)]
pub fn start_aednet(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aednet"))
        .args(args)
        .env_remove("AEDNET_DATABASE_URL")
        .env_remove("AEDNET_CLUSTER__NATS_URL")
        .envs(env.iter().copied())
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn aednet");
    let a = wait_for_announcement(&mut child, "aednet", 120);
    Running {
        child,
        base: a.base,
        metrics: a.metrics,
        stdout: a.stdout,
    }
}

/// A test that fails before [`terminate`] leaves no server behind.
impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGTERM: graceful shutdown, which must end the process with success.
pub fn terminate(mut r: Running) -> std::process::ExitStatus {
    sigterm_and_wait(&mut r.child)
}

/// The value of an unlabelled metric on a `/metrics` URL (`None` when absent or unreachable).
pub async fn metric(client: &reqwest::Client, metrics_url: &str, name: &str) -> Option<f64> {
    let text = client
        .get(metrics_url)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}
