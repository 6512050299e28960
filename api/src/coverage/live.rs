//! The live map service: loaded at start-up, kept current from store events and the next
//! opening-hours boundary, its changes pushed as `/ws/coverage` frames; maps for other
//! parameters built beside it.

use std::collections::HashMap;
use std::sync::Arc;

use aednet_core::district::District;
use aednet_core::Event;
use aednet_coverage::{CellNetwork, CoverageMap, Grid, Params, PopulationPoint, Summary};
use aednet_geoindex::WalkKind;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use super::cache::{Answer, AnswerCache, Answers};
use super::config::{read_population_csv, CoverageConfig};
use super::network::{build_grid, load_network, zone_of};
use super::queries::MapRequest;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The live map and what it was built from.
#[derive(Debug)]
pub(super) struct Live {
    pub(super) map: CoverageMap,
    districts: Vec<District>,
    tz: Tz,
}

/// The live coverage service; see the module docs.
#[derive(Debug)]
pub struct Coverage {
    pub(super) state: AppState,
    pub(super) config: CoverageConfig,
    pub(super) params: Params,
    population: Vec<PopulationPoint>,
    pub(super) live: Arc<RwLock<Option<Live>>>,
    ready: watch::Sender<bool>,
    /// Frames for `/ws/coverage`, serialised once.
    pub(super) frames: broadcast::Sender<Arc<str>>,
    /// Grids at other resolutions, by (res, district-set version, the one district or all).
    grids: Mutex<HashMap<GridKey, Arc<Grid>>>,
    version: std::sync::atomic::AtomicU64,
    /// `aednet_coverage_population_share`: the live map's covered share (population-weighted,
    /// or of cells without population), for the coverage-drop alert.
    share_gauge: prometheus::Gauge,
    /// `aednet_coverage_map_builds_total{walk}`: full rebuilds of the live map, by the walk
    /// model they used (a load test waits for the one on the walking network before measuring).
    builds: prometheus::IntCounterVec,
    /// Finished public answers by parameters and [`Self::answers_version`], and the slots
    /// for computing them (`[coverage] max_concurrent`).
    answers: Answers,
    /// Moves on every change to the live map and every store event: a cached answer of an
    /// older version is never served.
    answers_version: std::sync::atomic::AtomicU64,
}

impl Coverage {
    /// Creates the service; reads the population grid file if configured.
    pub fn new(state: &AppState, config: CoverageConfig) -> Result<Arc<Self>, String> {
        config.validate()?;
        let population = match &config.population_grid {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("coverage.population_grid {}: {e}", path.display()))?;
                let (points, bad) = read_population_csv(&text)?;
                tracing::info!(
                    points = points.len(),
                    skipped = bad,
                    "population grid loaded"
                );
                points
            }
            None => Vec::new(),
        };
        let share_gauge = prometheus::Gauge::new(
            "aednet_coverage_population_share",
            "Share of the population within the coverage budget of a usable AED now (live map)",
        )
        .expect("static metric");
        // A second service on the same registry (tests) keeps the first's gauge.
        let _ = state
            .metrics
            .registry
            .register(Box::new(share_gauge.clone()));
        let answer_counter = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "aednet_coverage_answers_total",
                "Public coverage answers: from the cache (hit), computed, an earlier answer while busy (stale), or refused busy",
            ),
            &["result"],
        )
        .expect("static metric");
        let _ = state
            .metrics
            .registry
            .register(Box::new(answer_counter.clone()));
        let builds = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "aednet_coverage_map_builds_total",
                "Full rebuilds of the live coverage map (start-up, new walking network, districts, imports), by walk model",
            ),
            &["walk"],
        )
        .expect("static metric");
        let _ = state.metrics.registry.register(Box::new(builds.clone()));
        Ok(Arc::new(Self {
            share_gauge,
            builds,
            answers: Answers::new(
                AnswerCache::new(
                    config.cache_entries,
                    config.cache_bytes,
                    std::time::Duration::from_secs(config.cache_ttl_s),
                ),
                config.max_concurrent,
                std::time::Duration::from_secs(config.stale_s),
                answer_counter,
            ),
            answers_version: std::sync::atomic::AtomicU64::new(0),
            state: state.clone(),
            params: config.params(state.walk),
            config,
            population,
            live: Arc::new(RwLock::new(None)),
            ready: watch::channel(false).0,
            frames: broadcast::channel(256).0,
            grids: Mutex::new(HashMap::new()),
            version: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    pub fn config(&self) -> &CoverageConfig {
        &self.config
    }

    /// Subscribes to the bus, loads the map in the background and follows events; also sleeps
    /// until the next opening-hours boundary. Handlers wait for the first load.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        let mut rx = self.state.bus.subscribe();
        let mut graph_rx = self.state.walk_graph.subscribe();
        tokio::spawn(async move {
            loop {
                match me.reload().await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "coverage map load failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    }
                }
            }
            me.ready.send_replace(true);
            loop {
                let next = me.live.read().as_ref().and_then(|l| l.map.next_change());
                let wait = next.map(|t| {
                    let now = me.state.clock.now();
                    // A second late rather than early: the span ends exactly at the boundary.
                    (t - now).to_std().unwrap_or_default() + std::time::Duration::from_millis(5)
                });
                let timer = async {
                    match wait {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending::<()>().await,
                    }
                };
                let result = tokio::select! {
                    ev = rx.recv() => match ev {
                        Ok(event) => {
                            // Registry counts in the district summary move with any event.
                            me.bump_answers();
                            me.apply(&event).await
                        }
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "coverage fell behind the event bus; reloading");
                            me.reload().await
                        }
                        Err(RecvError::Closed) => break,
                    },
                    () = timer => {
                        me.advance(me.state.clock.now());
                        Ok(())
                    }
                    // A new walking network (an import, or the first load after start-up):
                    // every AED's walks change.
                    changed = graph_rx.changed() => match changed {
                        Ok(()) if me.params.walk_on == WalkKind::Network => me.reload().await,
                        _ => Ok(()),
                    },
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "coverage update failed");
                }
            }
        });
    }

    pub(super) async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Rebuilds the live map from the store (start-up, districts changed, import, lag).
    pub async fn reload(&self) -> Result<(), String> {
        let started = std::time::Instant::now();
        let net = load_network(self.state.store.as_ref(), &self.state.geo)
            .await
            .map_err(|e| e.to_string())?;
        let (res, points, params) = (self.config.res, self.population.clone(), self.params);
        let at = self.state.clock.now();
        let districts = net.districts.clone();
        // On the background threads: an import's rebuild must not take the callers' cores.
        let graph = self.walk_graph();
        let live = self
            .state
            .background
            .run(move || -> Result<Live, String> {
                let grid = Arc::new(build_grid(&net.districts, res, &points)?);
                let tz = zone_of(&grid);
                let network = cell_network(graph, &grid, &params);
                Ok(Live {
                    map: CoverageMap::build_on(grid, params, net.entries, at, network),
                    districts,
                    tz,
                })
            })
            .await
            .map_err(|e| e.to_string())??;
        tracing::info!(
            cells = live.map.grid().len(),
            aeds = live.map.aed_count(),
            walk = ?live.map.walk_used(),
            ms = started.elapsed().as_millis() as u64,
            "coverage map built"
        );
        let walk = match live.map.walk_used() {
            WalkKind::Network => "network",
            WalkKind::StraightLine => "straight_line",
        };
        let summary = summary_json(&live.map, None, self.config.res);
        self.builds.with_label_values(&[walk]).inc();
        self.share_gauge
            .set(summary["share"].as_f64().unwrap_or(0.0));
        *self.live.write() = Some(live);
        self.bump_answers();
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.grids.lock().clear();
        let _ = self.frames.send(
            json!({"type": "reload", "summary": summary})
                .to_string()
                .into(),
        );
        Ok(())
    }

    async fn apply(&self, event: &Event) -> Result<(), String> {
        let store = &self.state.store;
        match *event {
            Event::AedUpserted { id } => {
                let aed = store.get_aed(id).await.map_err(|e| e.to_string())?;
                self.change(|m| match &aed {
                    Some(a) => {
                        let e = self
                            .state
                            .geo
                            .with_schedules(|s| crate::geo_sync::entry_from_aed(a, s));
                        m.upsert(e)
                    }
                    None => m.remove(id),
                });
            }
            Event::AedDeleted { id } => self.change(|m| m.remove(id)),
            Event::AedReadinessChanged { id, status } => {
                let known = self
                    .live
                    .read()
                    .as_ref()
                    .is_some_and(|l| l.map.entry(id).is_some());
                if known {
                    self.change(|m| m.set_status(id, status));
                } else if let Some(a) = store.get_aed(id).await.map_err(|e| e.to_string())? {
                    // An event that overtook the AED's creation: index the whole record.
                    let e = self
                        .state
                        .geo
                        .with_schedules(|s| crate::geo_sync::entry_from_aed(&a, s));
                    self.change(|m| m.upsert(e));
                }
            }
            Event::DistrictUpserted { .. }
            | Event::DistrictDeleted { .. }
            | Event::BulkChange { .. } => self.reload().await?,
            _ => {}
        }
        Ok(())
    }

    fn advance(&self, now: DateTime<Utc>) {
        self.change(|m| m.advance(now));
    }

    /// Applies a change under the write lock and pushes the changed cells.
    fn change(&self, f: impl FnOnce(&mut CoverageMap) -> Vec<u32>) {
        let frame = {
            let mut guard = self.live.write();
            let Some(live) = guard.as_mut() else {
                return;
            };
            let now = self.state.clock.now();
            if now > live.map.at() {
                // Keep the map's clock current so every change is evaluated "now".
                let mut cells = live.map.advance(now);
                cells.extend(f(&mut live.map));
                cells.sort_unstable();
                cells.dedup();
                cells_frame(&live.map, &cells, self.config.res, &self.share_gauge)
            } else {
                let cells = f(&mut live.map);
                cells_frame(&live.map, &cells, self.config.res, &self.share_gauge)
            }
        };
        // Even without changed cells the map's time moved: answers "now" are new.
        self.bump_answers();
        if let Some(frame) = frame {
            let _ = self.frames.send(frame.into());
        }
    }

    fn bump_answers(&self) {
        self.answers_version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The answer for `key` from the cache, or computed by `compute` while holding one of the
    /// `max_concurrent` slots (503 `busy` with `Retry-After` when all are taken) and kept for
    /// the next asker. `true` with a cached answer.
    pub(super) async fn answer(
        &self,
        key: String,
        compute: impl std::future::Future<Output = ApiResult<Answer>>,
    ) -> ApiResult<(Answer, super::cache::Source)> {
        self.wait_ready().await;
        let version = self
            .answers_version
            .load(std::sync::atomic::Ordering::Acquire);
        self.answers.get_or_compute(key, version, compute).await
    }

    /// A map for another time, resolution or parameter set, built beside the live one (or the
    /// live one itself when nothing differs).
    pub(super) async fn map_for(&self, want: &MapRequest) -> ApiResult<MapHandle> {
        self.wait_ready().await;
        let same = want.res == self.config.res && want.params == self.params && want.at.is_none();
        if same {
            return Ok(MapHandle::Live(self.live.clone()));
        }
        let entries: Vec<_> = {
            let g = self.live.read();
            let live = g
                .as_ref()
                .ok_or_else(|| ApiError::Internal("no map".into()))?;
            live.map.entries().cloned().collect()
        };
        let grid = self.grid_for_request(want).await?;
        let (params, at) = (
            want.params,
            want.at.unwrap_or_else(|| self.state.clock.now()),
        );
        // The live map's snapped cells when the grid is the same; else snapped anew.
        let live_net = self
            .live
            .read()
            .as_ref()
            .filter(|l| Arc::ptr_eq(l.map.grid(), &grid))
            .and_then(|l| l.map.network().cloned());
        let graph = self.walk_graph();
        let map = self
            .state
            .background
            .run(move || {
                let network = match live_net {
                    Some(n) if params.walk_on == WalkKind::Network => Some(n),
                    _ => cell_network(graph, &grid, &params),
                };
                CoverageMap::build_on(grid, params, entries, at, network)
            })
            .await?;
        Ok(MapHandle::Own(Box::new(map)))
    }

    /// The grid a request's map is built on: the live map's own at its resolution; at
    /// another, one built beside it over the request's district (or all of them) and kept
    /// until the districts change. A grid that would hold far more cells than an answer may
    /// (estimated from the districts' areas) is refused before it is built.
    pub(super) async fn grid_for_request(&self, want: &MapRequest) -> ApiResult<Arc<Grid>> {
        let res = want.res;
        if res == self.config.res {
            if let Some(l) = self.live.read().as_ref() {
                return Ok(l.map.grid().clone());
            }
        }
        let version = self.version.load(std::sync::atomic::Ordering::Relaxed);
        let key = (res, version, want.district);
        let cached = self.grids.lock().get(&key).cloned();
        if let Some(g) = cached {
            return Ok(g);
        }
        let districts: Vec<District> = self
            .districts()
            .into_iter()
            .filter(|d| want.district.is_none_or(|only| d.id == only))
            .collect();
        if let Some(n) = super::network::estimated_cells(&districts, res) {
            // Estimates are within a few per cent; refuse only what is clearly too large.
            if n > self.config.max_cells as f64 * 1.25 {
                return Err(ApiError::invalid(
                    "bbox",
                    format!(
                        "about {:.0} cells at res {res} over {}, more than the limit of {} per \
                         answer; ask for {}",
                        n,
                        if want.district.is_some() {
                            "this district"
                        } else {
                            "the whole map"
                        },
                        self.config.max_cells,
                        if want.district.is_some() {
                            "a coarser res"
                        } else {
                            "a district_id or a coarser res"
                        }
                    ),
                ));
            }
        }
        let points = self.population.clone();
        let g = self
            .state
            .background
            .run(move || build_grid(&districts, res, &points))
            .await?
            .map_err(|m| ApiError::invalid("res", m))?;
        let g = Arc::new(g);
        let mut grids = self.grids.lock();
        grids.retain(|(_, v, _), _| *v == version);
        grids.insert(key, g.clone());
        Ok(g)
    }

    /// The walking network in use, if one is loaded.
    fn walk_graph(&self) -> Option<Arc<aednet_routing::Graph>> {
        self.state.walk_graph.get().map(|l| l.value.clone())
    }

    /// The live map's districts.
    pub(super) fn districts(&self) -> Vec<District> {
        self.live
            .read()
            .as_ref()
            .map(|l| l.districts.clone())
            .unwrap_or_default()
    }

    pub(super) fn tz(&self) -> Tz {
        self.live.read().as_ref().map_or(Tz::UTC, |l| l.tz)
    }

    /// Whether district `id` is one of the live map's, once it has loaded (a district that
    /// exists must not answer 422 right after start-up).
    pub(super) async fn district_known(&self, id: i64) -> bool {
        self.wait_ready().await;
        self.district_exists(id)
    }

    pub(super) fn district_exists(&self, id: i64) -> bool {
        self.live
            .read()
            .as_ref()
            .is_some_and(|l| l.districts.iter().any(|d| d.id == id))
    }
}

/// A grid beside the live one: (resolution, district-set version, the one district or all).
type GridKey = (u8, u64, Option<i64>);

pub(super) enum MapHandle {
    Live(Arc<RwLock<Option<Live>>>),
    Own(Box<CoverageMap>),
}

impl MapHandle {
    /// Runs `f` on the map on the background threads (a week's profile is tens of
    /// milliseconds).
    pub(super) async fn with<R: Send + 'static>(
        self,
        pool: &crate::background::Background,
        f: impl FnOnce(&CoverageMap) -> R + Send + 'static,
    ) -> ApiResult<R> {
        pool.run(move || match self {
            MapHandle::Live(l) => {
                // A copy, so event updates (and the socket's one-second promise) never wait
                // behind a long read.
                let map = l
                    .read()
                    .as_ref()
                    .map(|live| live.map.clone())
                    .ok_or_else(|| ApiError::Internal("coverage map not loaded".into()))?;
                Ok(f(&map))
            }
            MapHandle::Own(m) => Ok(f(&m)),
        })
        .await?
    }
}

/// The grid's cells snapped to `graph` when the parameters walk on the network.
fn cell_network(
    graph: Option<Arc<aednet_routing::Graph>>,
    grid: &Grid,
    params: &Params,
) -> Option<Arc<CellNetwork>> {
    let graph = graph.filter(|_| params.walk_on == WalkKind::Network)?;
    Some(Arc::new(CellNetwork::new(graph, grid, &params.walk)))
}

pub(super) fn summary_json(map: &CoverageMap, district: Option<i64>, res: u8) -> Value {
    let s: Summary = map.summary(|c| district.is_none_or(|d| c.district == Some(d)));
    let p = map.params();
    json!({
        "population": s.population.round(),
        "covered_population": s.covered_population.round(),
        "share": s.share,
        "weighting": if s.population > 0.0 { "population" } else { "cells" },
        "cells": s.cells,
        "covered_cells": s.covered_cells,
        "at": map.at(),
        "budget_s": p.budget_s,
        "mode": p.mode.as_str(),
        "walk": map.walk_used(),
        "res": res,
        "aeds": map.aed_count(),
    })
}

/// The `/ws/coverage` frame for changed cells (none when nothing changed), with the map's
/// summary, which also moves the `aednet_coverage_population_share` gauge.
fn cells_frame(
    map: &CoverageMap,
    cells: &[u32],
    res: u8,
    gauge: &prometheus::Gauge,
) -> Option<String> {
    if cells.is_empty() {
        return None;
    }
    let summary = summary_json(map, None, res);
    gauge.set(summary["share"].as_f64().unwrap_or(0.0));
    let list: Vec<Value> = cells
        .iter()
        .map(|&c| {
            let v = map.view(c);
            json!({"cell": v.cell, "time_s": v.time_s, "covered": v.covered})
        })
        .collect();
    Some(json!({"type": "cells", "cells": list, "summary": summary}).to_string())
}
