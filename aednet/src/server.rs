//! Serving: the routers merged into one application ([`app`]), [`serve`] (state, cluster,
//! dispatch, listeners, graceful shutdown), and the caller lane ([`caller_app`],
//! [`CallerLane`]): the caller's nearest queries alone on a listener of their own, served by a
//! thread of their own.

use std::net::SocketAddr;
use std::sync::Arc;

use aednet_api::AppState;
use aednet_core::event::LocalBus;
use aednet_core::SystemClock;
use aednet_store::DynStore;
use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{redact_url, Config};

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
    let (tx, rx) = tokio::sync::watch::channel(false);
    let lane = match config.caller_listen {
        Some(at) => {
            let l = std::net::TcpListener::bind(at).with_context(|| format!("binding {at}"))?;
            let mut lrx = rx.clone();
            let lane =
                CallerLane::start(l, caller_app(state.clone(), &config.public), async move {
                    let _ = lrx.changed().await;
                })?;
            // Before the main announcement, which tests and scripts wait for.
            println!("aednet caller lane on http://{}", lane.addr);
            tracing::info!(addr = %lane.addr, "caller lane: the nearest queries on a thread of their own");
            Some(lane)
        }
        None => None,
    };
    // Tests and scripts read this line to learn the ports chosen for `--listen …:0`.
    println!("aednet listening on http://{addr} (metrics on http://{maddr}/metrics)");
    tracing::info!(%addr, metrics = %maddr, backend = ?state.store.backend(), "serving");

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
    if let Some(lane) = lane {
        tokio::task::spawn_blocking(move || lane.join()).await??;
    }
    res?;
    metrics_task.await??;
    Ok(())
}

/// The caller lane's application: `GET /api/v1/aeds/nearest` and `GET
/// /api/v1/stations/nearest` (the same handlers, per-client limit and layers as on the main
/// listener; `[public]` applies to this listener on its own) and `/healthz`. Every other path
/// is a JSON 404: nothing that reads a body, needs a token or takes long is served here.
pub fn caller_app(state: AppState, public: &aednet_mobile_api::PublicLimits) -> axum::Router {
    let limiter = Arc::new(aednet_mobile_api::RateLimiter::new(public));
    aednet_api::finish(
        aednet_mobile_api::caller_routes(limiter).merge(aednet_api::ops::health_router()),
        state,
    )
}

/// A listener served by one dedicated thread running its own single-threaded tokio runtime.
///
/// Why: on the shared runtime a caller's request is one task among thousands (device
/// telemetry, location reports, coverage clients, sockets) and waits its turn on a busy
/// worker; p99 followed the load (3 ms alone, 10–45 ms beside it in `load-tests
/// isolation`). This thread is idle almost all the time, so when a request arrives the kernel
/// wakes it at once (an idle thread is owed CPU time) and it answers from memory without
/// queueing behind anything. Only short, memory-only routes belong here: anything slow would
/// hold up every other caller on this one thread.
#[derive(Debug)]
pub struct CallerLane {
    pub addr: SocketAddr,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl CallerLane {
    /// Serves `app` on `listener` (bound, blocking or not) until `shutdown` resolves.
    pub fn start(
        listener: std::net::TcpListener,
        app: axum::Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<CallerLane> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        // Started means serving: the thread reports once its runtime holds the listener (or
        // why it could not), so the lane is never announced before it exists.
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<std::io::Result<()>>(1);
        let thread = std::thread::Builder::new()
            .name("aednet-caller".into())
            .spawn(move || {
                let started = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("aednet-caller")
                    .build()
                    .and_then(|rt| {
                        // Registered with this runtime's reactor: readiness wakes this
                        // thread, not a shared worker.
                        let listener = {
                            let _in = rt.enter();
                            TcpListener::from_std(listener)?
                        };
                        Ok((rt, listener))
                    });
                let (rt, listener) = match started {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                rt.block_on(aednet_api::serve(listener, app, shutdown))
            })?;
        ready_rx.recv().map_err(|_| {
            std::io::Error::other("the caller lane's thread ended before it started")
        })??;
        Ok(CallerLane { addr, thread })
    }

    /// Waits for the lane to finish (after its shutdown future resolved).
    pub fn join(self) -> std::io::Result<()> {
        self.thread
            .join()
            .map_err(|_| std::io::Error::other("the caller lane's thread panicked"))?
    }
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
