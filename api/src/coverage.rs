//! The live four-minute coverage map and its HTTP surface.
//!
//! [`Coverage`] owns a [`CoverageMap`] at the configured resolution, mode and budget, loaded at
//! start-up and kept current from store events the way [`crate::geo_sync`] keeps the geoindex:
//! a readiness change or an edited AED recomputes only the cells that AED reaches; district
//! edits, imports and a lagging subscription rebuild it. Opening-hours boundaries are
//! scheduled: a timer sleeps until the earliest next change of any AED's hours. Every change
//! is pushed to `/ws/coverage` as the cells that changed.
//!
//! Routes: `GET /api/v1/coverage` (GeoJSON hexagons), `GET /api/v1/coverage/weekly`,
//! `GET /api/v1/districts/summary` (JSON or CSV), `POST /api/v1/plan` (planner, admin),
//! `GET /ws/coverage`. Requests for another time, resolution, mode or budget are computed on
//! a copy built beside the live map.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use aednet_core::district::District;
use aednet_core::{Event, LatLon, Role};
use aednet_coverage::{
    plan, Candidate, CoverageMap, DistrictArea, Grid, Mode, Params, PlanRequest, PopulationPoint,
    Summary,
};
use aednet_geoindex::{GeoIndex, HoursPolicy, ReadinessFilter, WalkModel};
use aednet_store::{ListQuery, Store};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, Params as QueryParams};
use crate::state::AppState;

/// `[coverage]` in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoverageConfig {
    /// `round_trip` (cell → AED → cell), `one_way` or `radius`.
    pub mode: Mode,
    pub budget_s: f64,
    /// For `mode = "radius"`.
    pub radius_m: f64,
    /// Times shown up to this; cells beyond have `time_s: null`.
    pub horizon_s: f64,
    /// H3 resolution of the live map (9, or 10 for ~0.015 km² cells).
    pub res: u8,
    pub readiness: ReadinessFilter,
    pub hours: HoursPolicy,
    pub include_restricted: bool,
    /// CSV `lat,lon,population` (e.g. a 250 m census grid); without it each district's
    /// population is spread evenly over its cells.
    pub population_grid: Option<PathBuf>,
    /// Most units one plan request may add, and most candidate sites it may send.
    pub max_plan_add: usize,
    pub max_candidates: usize,
}

impl Default for CoverageConfig {
    fn default() -> Self {
        let p = Params::default();
        Self {
            mode: p.mode,
            budget_s: p.budget_s,
            radius_m: p.radius_m,
            horizon_s: p.horizon_s,
            res: 9,
            readiness: p.readiness,
            hours: p.hours,
            include_restricted: p.include_restricted,
            population_grid: None,
            max_plan_add: 200,
            max_candidates: 20_000,
        }
    }
}

impl CoverageConfig {
    pub fn params(&self, walk: WalkModel) -> Params {
        Params {
            mode: self.mode,
            budget_s: self.budget_s,
            radius_m: self.radius_m,
            horizon_s: self.horizon_s,
            readiness: self.readiness,
            hours: self.hours,
            include_restricted: self.include_restricted,
            walk,
        }
    }

    /// Names the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if !(7..=11).contains(&self.res) {
            return Err("coverage.res must be between 7 and 11 (9 is the default)".into());
        }
        self.params(WalkModel::default())
            .validate()
            .map_err(|(f, m)| format!("coverage.{f}: {m}"))
    }
}

/// Reads a population grid CSV: a header naming `lat`, `lon` and `population` columns (any
/// order, extra columns ignored). Rows that do not parse are skipped and counted.
pub fn read_population_csv(text: &str) -> Result<(Vec<PopulationPoint>, usize), String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or("empty population grid")?
        .split(',')
        .map(|h| h.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let col = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.contains(&h.as_str()))
            .ok_or_else(|| format!("population grid has no {} column", names[0]))
    };
    let (la, lo, po) = (
        col(&["lat", "latitude", "y"])?,
        col(&["lon", "lng", "longitude", "x"])?,
        col(&["population", "pop", "people"])?,
    );
    let (mut out, mut bad) = (Vec::new(), 0);
    for line in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let num = |i: usize| {
            f.get(i)
                .and_then(|v| v.trim_matches('"').parse::<f64>().ok())
        };
        match (num(la), num(lo), num(po)) {
            (Some(lat), Some(lon), Some(p)) if p.is_finite() && p >= 0.0 => {
                match LatLon::new(lat, lon) {
                    Ok(pos) => out.push(PopulationPoint { pos, population: p }),
                    Err(_) => bad += 1,
                }
            }
            _ => bad += 1,
        }
    }
    Ok((out, bad))
}

/// The network as the map needs it, loaded from the store.
#[derive(Debug, Clone)]
pub struct Network {
    pub districts: Vec<District>,
    pub entries: Vec<aednet_geoindex::AedEntry>,
}

pub async fn load_districts(store: &dyn Store) -> aednet_store::Result<Vec<District>> {
    aednet_store::collect_all(ListQuery::default(), |q| async move {
        store.list_districts(&q).await
    })
    .await
}

pub async fn load_network(store: &dyn Store, geo: &GeoIndex) -> aednet_store::Result<Network> {
    let districts = load_districts(store).await?;
    let rows = store.load_aed_index().await?;
    let entries = geo.with_schedules(|s| {
        rows.into_iter()
            .map(|r| crate::geo_sync::entry_from_row(r, s))
            .collect()
    });
    Ok(Network { districts, entries })
}

pub fn district_areas(districts: &[District]) -> Vec<DistrictArea> {
    districts
        .iter()
        .filter_map(|d| {
            Some(DistrictArea {
                id: d.id,
                population: d.data.population.map(|p| p as f64),
                area: d.data.multipolygon()?,
            })
        })
        .collect()
}

/// The grid over the districts; without districts, the cells of the population grid.
pub fn build_grid(
    districts: &[District],
    res: u8,
    points: &[PopulationPoint],
) -> Result<Grid, String> {
    let res = aednet_coverage::resolution(res).ok_or("bad resolution")?;
    let areas = district_areas(districts);
    if areas.is_empty() {
        return Ok(Grid::from_points(points, res));
    }
    Grid::for_districts(&areas, res, points).map_err(|e| e.to_string())
}

/// The zone a week is counted in: where the first cell is (the network is one city).
fn zone_of(grid: &Grid) -> Tz {
    grid.cells
        .first()
        .map_or(Tz::UTC, |c| aednet_core::hours::time_zone_at(c.center))
}

/// The live map and what it was built from.
#[derive(Debug)]
struct Live {
    map: CoverageMap,
    districts: Vec<District>,
    tz: Tz,
}

/// The live coverage service; see the module docs.
#[derive(Debug)]
pub struct Coverage {
    state: AppState,
    config: CoverageConfig,
    params: Params,
    population: Vec<PopulationPoint>,
    live: Arc<RwLock<Option<Live>>>,
    ready: watch::Sender<bool>,
    /// Frames for `/ws/coverage`, serialised once.
    frames: broadcast::Sender<Arc<str>>,
    /// Grids at other resolutions, by (res, district-set version).
    grids: Mutex<HashMap<(u8, u64), Arc<Grid>>>,
    version: std::sync::atomic::AtomicU64,
    /// `aednet_coverage_population_share`: the live map's covered share (population-weighted,
    /// or of cells without population), for the coverage-drop alert.
    share_gauge: prometheus::Gauge,
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
        Ok(Arc::new(Self {
            share_gauge,
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
                        Ok(event) => me.apply(&event).await,
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
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "coverage update failed");
                }
            }
        });
    }

    async fn wait_ready(&self) {
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
        let live = tokio::task::spawn_blocking(move || -> Result<Live, String> {
            let grid = Arc::new(build_grid(&net.districts, res, &points)?);
            let tz = zone_of(&grid);
            Ok(Live {
                map: CoverageMap::build(grid, params, net.entries, at),
                districts,
                tz,
            })
        })
        .await
        .map_err(|e| e.to_string())??;
        tracing::info!(
            cells = live.map.grid().len(),
            aeds = live.map.aed_count(),
            ms = started.elapsed().as_millis() as u64,
            "coverage map built"
        );
        let summary = summary_json(&live.map, None, self.config.res);
        self.share_gauge
            .set(summary["share"].as_f64().unwrap_or(0.0));
        *self.live.write() = Some(live);
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
        if let Some(frame) = frame {
            let _ = self.frames.send(frame.into());
        }
    }

    /// A map for another time, resolution or parameter set, built beside the live one (or the
    /// live one itself when nothing differs).
    async fn map_for(&self, want: &MapRequest) -> ApiResult<MapHandle> {
        self.wait_ready().await;
        let same = want.res == self.config.res && want.params == self.params && want.at.is_none();
        if same {
            return Ok(MapHandle::Live(self.live.clone()));
        }
        let (entries, districts) = {
            let g = self.live.read();
            let live = g
                .as_ref()
                .ok_or_else(|| ApiError::Internal("no map".into()))?;
            let entries: Vec<_> = live.map.entries().cloned().collect();
            (entries, live.districts.clone())
        };
        let version = self.version.load(std::sync::atomic::Ordering::Relaxed);
        let cached = self.grids.lock().get(&(want.res, version)).cloned();
        let grid = match cached {
            Some(g) => g,
            None => {
                let (res, points) = (want.res, self.population.clone());
                let g = tokio::task::spawn_blocking(move || build_grid(&districts, res, &points))
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?
                    .map_err(|m| ApiError::invalid("res", m))?;
                let g = Arc::new(g);
                self.grids.lock().insert((want.res, version), g.clone());
                g
            }
        };
        let (params, at) = (
            want.params,
            want.at.unwrap_or_else(|| self.state.clock.now()),
        );
        let map =
            tokio::task::spawn_blocking(move || CoverageMap::build(grid, params, entries, at))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(MapHandle::Own(Box::new(map)))
    }

    fn tz(&self) -> Tz {
        self.live.read().as_ref().map_or(Tz::UTC, |l| l.tz)
    }

    fn district_exists(&self, id: i64) -> bool {
        self.live
            .read()
            .as_ref()
            .is_some_and(|l| l.districts.iter().any(|d| d.id == id))
    }
}

enum MapHandle {
    Live(Arc<RwLock<Option<Live>>>),
    Own(Box<CoverageMap>),
}

impl MapHandle {
    /// Runs `f` on the map off the async workers (a week's profile is tens of milliseconds).
    async fn with<R: Send + 'static>(
        self,
        f: impl FnOnce(&CoverageMap) -> R + Send + 'static,
    ) -> ApiResult<R> {
        tokio::task::spawn_blocking(move || match self {
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
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
    }
}

fn summary_json(map: &CoverageMap, district: Option<i64>, res: u8) -> Value {
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

/// What a coverage request asks for.
#[derive(Debug, Clone, PartialEq)]
struct MapRequest {
    res: u8,
    params: Params,
    at: Option<DateTime<Utc>>,
}

fn map_request(cov: &Coverage, q: &QueryParams) -> ApiResult<(MapRequest, Option<i64>)> {
    let district = match q.parse::<i64>("district_id", "an integer district id")? {
        Some(d) => Some(d),
        None => q.parse::<i64>("district", "an integer district id")?,
    };
    if let Some(d) = district {
        if !cov.district_exists(d) {
            return Err(ApiError::invalid("district_id", format!("no district {d}")));
        }
    }
    let res = q.parse::<u8>("res", "9 or 10")?.unwrap_or(cov.config.res);
    if !(res == cov.config.res || res == 9 || res == 10) {
        return Err(ApiError::invalid("res", "res must be 9 or 10"));
    }
    let at = q
        .get("at")
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| ApiError::bad_request("at", "at must be an RFC 3339 date-time"))
        })
        .transpose()?;
    let mut params = cov.params;
    if let Some(m) = q.get("mode") {
        params.mode = Mode::parse(m).ok_or_else(|| {
            ApiError::invalid("mode", "mode must be round_trip, one_way or radius")
        })?;
    }
    if let Some(b) = q.parse::<f64>("budget_s", "a number of seconds")? {
        params.budget_s = b;
    }
    if let Some(r) = q.parse::<f64>("radius_m", "a number of metres")? {
        params.radius_m = r;
    }
    if let Some(r) = q.get("readiness") {
        params.readiness = ReadinessFilter::parse(r).ok_or_else(|| {
            ApiError::invalid(
                "readiness",
                "readiness must be not_known_bad, ready_or_degraded, ready or any",
            )
        })?;
    }
    if let Some(h) = q.get("hours") {
        params.hours = match h {
            "open_or_unknown" => HoursPolicy::OpenOrUnknown,
            "open" => HoursPolicy::OpenOnly,
            "any" => HoursPolicy::Any,
            _ => {
                return Err(ApiError::invalid(
                    "hours",
                    "hours must be open_or_unknown, open or any",
                ))
            }
        };
    }
    params
        .validate()
        .map_err(|(f, m)| ApiError::invalid(f, m))?;
    Ok((MapRequest { res, params, at }, district))
}

pub fn router(cov: Arc<Coverage>) -> Router<AppState> {
    Router::new()
        .route("/api/v1/coverage", get(coverage_geojson))
        .route("/api/v1/coverage/weekly", get(weekly))
        .route("/api/v1/districts/summary", get(districts_summary))
        .route("/api/v1/plan", post(plan_handler))
        .route("/ws/coverage", get(ws_coverage))
        .layer(Extension(cov))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(coverage_geojson, weekly, districts_summary, plan_handler),
    tags((name = "coverage", description = "Four-minute AED coverage, district dashboard, placement"))
)]
pub struct ApiDoc;

/// `GET /api/v1/coverage`: the cells as GeoJSON hexagons.
#[utoipa::path(get, path = "/api/v1/coverage", tag = "coverage",
    params(("district_id" = Option<i64>, Query), ("res" = Option<u8>, Query, description = "H3 resolution, 9 (default) or 10"),
        ("at" = Option<String>, Query, description = "RFC 3339; default now (the live map)"),
        ("mode" = Option<String>, Query, description = "round_trip (default), one_way, radius"),
        ("budget_s" = Option<f64>, Query), ("radius_m" = Option<f64>, Query),
        ("readiness" = Option<String>, Query, description = "not_known_bad (default), ready_or_degraded, ready, any"),
        ("hours" = Option<String>, Query, description = "open_or_unknown (default), open, any"),
        ("bbox" = Option<String>, Query, description = "min_lon,min_lat,max_lon,max_lat: only cells whose centre is inside (the summary stays the district's or the whole map's)")),
    responses((status = 200, description = "GeoJSON FeatureCollection of hexagons with properties cell, time_s, covered, population, aed_id; top-level summary"),
        (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn coverage_geojson(
    Extension(cov): Extension<Arc<Coverage>>,
    q: QueryParams,
) -> ApiResult<Response> {
    let (req, district) = map_request(&cov, &q)?;
    let bbox = q
        .get("bbox")
        .map(|b| aednet_core::geo_util::BBox::parse("bbox", b))
        .transpose()?;
    let res = req.res;
    let handle = cov.map_for(&req).await?;
    let body = handle
        .with(move |map| {
            let mut features = Vec::new();
            for (i, c) in map.grid().cells.iter().enumerate() {
                if district.is_some_and(|d| c.district != Some(d))
                    || bbox.is_some_and(|b| !b.contains(&c.center))
                {
                    continue;
                }
                let v = map.view(i as u32);
                let mut ring: Vec<[f64; 2]> = c
                    .cell
                    .boundary()
                    .iter()
                    .map(|ll| [round6(ll.lng()), round6(ll.lat())])
                    .collect();
                if let Some(first) = ring.first().copied() {
                    ring.push(first);
                }
                features.push(json!({
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {
                        "cell": v.cell, "time_s": v.time_s, "covered": v.covered,
                        "population": (v.population * 10.0).round() / 10.0,
                        "aed_id": v.aed_id, "district_id": c.district,
                    }
                }));
            }
            json!({
                "type": "FeatureCollection",
                "features": features,
                "summary": summary_json(map, district, res),
            })
            .to_string()
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/geo+json")], body).into_response())
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// `GET /api/v1/coverage/weekly`: share for each hour of the week, actual and if every AED
/// were 24/7.
#[utoipa::path(get, path = "/api/v1/coverage/weekly", tag = "coverage",
    params(("district_id" = Option<i64>, Query), ("mode" = Option<String>, Query), ("budget_s" = Option<f64>, Query)),
    responses((status = 200, description = "{timezone, hours: [{hour, share, share_all_24_7}]}"), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn weekly(
    Extension(cov): Extension<Arc<Coverage>>,
    q: QueryParams,
) -> ApiResult<Response> {
    let (req, district) = map_request(&cov, &q)?;
    let tz = cov.tz();
    let handle = cov.map_for(&req).await?;
    let hours = handle
        .with(move |map| {
            map.weekly(tz, 1, |c| {
                district.is_none_or(|d| c.district == Some(d)).then_some(0)
            })
            .remove(0)
        })
        .await?;
    let hours: Vec<Value> = hours
        .iter()
        .map(|h| {
            json!({"hour": h.hour, "at": h.at, "share": h.share, "share_all_24_7": h.share_all_24_7,
                "covered_population": h.covered_population.round()})
        })
        .collect();
    Ok(
        Json(json!({"timezone": tz.name(), "district_id": district, "hours": hours}))
            .into_response(),
    )
}

/// One row of the district dashboard.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DistrictRow {
    pub id: i64,
    pub name: String,
    pub population: Option<i64>,
    pub aeds_total: u64,
    /// Telemetry or a check says ready (or degraded: works, needs attention).
    pub aeds_ready: u64,
    /// Counted by coverage: not known bad, and accessible.
    pub aeds_usable: u64,
    /// Recorded hours `24/7`.
    pub aeds_24_7: u64,
    pub aeds_per_10k: Option<f64>,
    pub target_per_10k: Option<f64>,
    pub target_aeds: Option<i64>,
    /// Target minus registered AEDs, never negative.
    pub shortfall: Option<i64>,
    /// Rescuers with a certificate valid today.
    pub rescuers_certified: u64,
    pub rescuers_target: Option<i64>,
    pub stations_by_kind: BTreeMap<String, u64>,
    pub coverage_share_now: f64,
    /// Mean share over the week's night hours (00:00–06:00 local).
    pub coverage_share_night: f64,
    /// Population of the district's cells counted by coverage (grid or spread).
    pub population_in_cells: f64,
}

/// Certified rescuers (valid `today`) and stations by kind, per district: the store's part of
/// the dashboard.
#[derive(Debug, Clone, Default)]
pub struct DistrictCounts {
    pub rescuers: HashMap<i64, u64>,
    pub stations: HashMap<i64, BTreeMap<String, u64>>,
}

pub async fn district_counts(
    store: &dyn Store,
    today: chrono::NaiveDate,
) -> aednet_store::Result<DistrictCounts> {
    let mut out = DistrictCounts::default();
    let mut after = None;
    loop {
        let page = store
            .list_rescuers(&ListQuery {
                after_id: after,
                limit: 1000,
                ..ListQuery::default()
            })
            .await?;
        for r in &page.items {
            if let (Some(d), true) = (r.data.district_id, r.data.is_certified_on(today)) {
                *out.rescuers.entry(d).or_default() += 1;
            }
        }
        match page.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    let mut after = None;
    loop {
        let page = store
            .list_stations(&ListQuery {
                after_id: after,
                limit: 1000,
                ..ListQuery::default()
            })
            .await?;
        for s in &page.items {
            if let Some(d) = s.data.district_id {
                *out.stations
                    .entry(d)
                    .or_default()
                    .entry(s.data.kind.as_str().to_string())
                    .or_default() += 1;
            }
        }
        match page.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    Ok(out)
}

/// The dashboard rows: AED counts from the map's AEDs, shares now (the map's time) and at
/// night (mean over 00:00–06:00 local of the map's week, in `tz`).
pub fn district_rows_from(
    map: &CoverageMap,
    districts: Vec<District>,
    mut counts: DistrictCounts,
    tz: Tz,
) -> Vec<DistrictRow> {
    let ids: Vec<i64> = districts.iter().map(|d| d.id).collect();
    let slot: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    let weekly = map.weekly(tz, ids.len(), |c| {
        c.district.and_then(|d| slot.get(&d).copied())
    });
    let p = map.params();
    let mut aeds: HashMap<i64, [u64; 4]> = HashMap::new();
    for e in map.entries() {
        let Some(d) = e.detail.district_id else {
            continue;
        };
        let c = aeds.entry(d).or_default();
        c[0] += 1;
        if matches!(
            e.status,
            aednet_core::ReadinessStatus::Ready | aednet_core::ReadinessStatus::Degraded
        ) {
            c[1] += 1;
        }
        if p.eligible(e) {
            c[2] += 1;
        }
        if e.schedule
            .hours()
            .raw()
            .is_some_and(|r| r.trim().eq_ignore_ascii_case("24/7"))
        {
            c[3] += 1;
        }
    }
    districts
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let now = map.summary(|c| c.district == Some(d.id));
            let night: Vec<f64> = weekly[i]
                .iter()
                .filter(|h| h.at.with_timezone(&tz).hour() < 6)
                .map(|h| h.share)
                .collect();
            let night = night.iter().sum::<f64>() / night.len().max(1) as f64;
            let c = aeds.get(&d.id).copied().unwrap_or_default();
            let pop = d.data.population;
            let target = d.target_aeds;
            DistrictRow {
                id: d.id,
                aeds_total: c[0],
                aeds_ready: c[1],
                aeds_usable: c[2],
                aeds_24_7: c[3],
                aeds_per_10k: pop
                    .filter(|p| *p > 0)
                    .map(|p| (c[0] as f64 * 10_000.0 / p as f64 * 100.0).round() / 100.0),
                target_per_10k: d.data.target_aeds_per_10k,
                target_aeds: target,
                shortfall: target.map(|t| (t - c[0] as i64).max(0)),
                rescuers_certified: counts.rescuers.get(&d.id).copied().unwrap_or(0),
                rescuers_target: d.data.target_rescuers,
                stations_by_kind: counts.stations.remove(&d.id).unwrap_or_default(),
                coverage_share_now: now.share,
                coverage_share_night: night,
                population_in_cells: now.population.round(),
                name: d.data.name,
                population: pop,
            }
        })
        .collect()
}

async fn district_rows(cov: &Coverage) -> ApiResult<Vec<DistrictRow>> {
    cov.wait_ready().await;
    let store = cov.state.store.as_ref();
    let districts = load_districts(store).await?;
    let counts = district_counts(store, cov.state.clock.now().date_naive()).await?;
    let tz = cov.tz();
    MapHandle::Live(cov.live.clone())
        .with(move |map| district_rows_from(map, districts, counts, tz))
        .await
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

pub fn rows_csv(rows: &[DistrictRow]) -> String {
    let mut out = String::from(
        "id,name,population,aeds_total,aeds_ready,aeds_usable,aeds_24_7,aeds_per_10k,target_per_10k,target_aeds,shortfall,rescuers_certified,rescuers_target,stations_by_kind,coverage_share_now,coverage_share_night\n",
    );
    for r in rows {
        let stations: Vec<String> = r
            .stations_by_kind
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.4},{:.4}\n",
            r.id,
            csv_field(&r.name),
            opt(r.population),
            r.aeds_total,
            r.aeds_ready,
            r.aeds_usable,
            r.aeds_24_7,
            opt(r.aeds_per_10k),
            opt(r.target_per_10k),
            opt(r.target_aeds),
            opt(r.shortfall),
            r.rescuers_certified,
            opt(r.rescuers_target),
            csv_field(&stations.join(";")),
            r.coverage_share_now,
            r.coverage_share_night,
        ));
    }
    out
}

/// `GET /api/v1/districts/summary`: the planners' dashboard, JSON or CSV.
#[utoipa::path(get, path = "/api/v1/districts/summary", tag = "coverage",
    params(("format" = Option<String>, Query, description = "json (default) or csv; or Accept: text/csv")),
    responses((status = 200, description = "{items: [DistrictRow]} or CSV", body = Vec<DistrictRow>), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn districts_summary(
    Extension(cov): Extension<Arc<Coverage>>,
    headers: HeaderMap,
    q: QueryParams,
) -> ApiResult<Response> {
    let csv = match q.get("format") {
        Some("csv") => true,
        Some("json") => false,
        Some(_) => {
            return Err(ApiError::bad_request(
                "format",
                "format must be json or csv",
            ))
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    let rows = district_rows(&cov).await?;
    if csv {
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"districts-summary.csv\"",
                ),
            ],
            rows_csv(&rows),
        )
            .into_response());
    }
    Ok(Json(json!({"items": rows, "timezone": cov.tz().name()})).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CandidateInput {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// New units to place.
    pub add: u32,
    #[serde(default)]
    pub district_id: Option<i64>,
    /// Candidate sites (e.g. public buildings); default: every cell centre in scope.
    #[serde(default)]
    pub candidates: Option<Vec<CandidateInput>>,
    /// Existing units that may move.
    #[serde(default)]
    pub relocate: Option<u32>,
    /// Suggest AEDs to convert to 24/7 cabinets.
    #[serde(default)]
    pub suggest_24_7: Option<bool>,
    /// Plan against the network as it is at this time (default now).
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// Most relocations per request.
pub const MAX_RELOCATE: u32 = 50;
/// Conversions listed when asked.
pub const CONVERSIONS_LISTED: usize = 20;

/// Turns the request into the library's, validating each field.
pub fn plan_request(
    input: PlanInput,
    config: &CoverageConfig,
    district_exists: impl Fn(i64) -> bool,
    tz: Tz,
) -> Result<PlanRequest, ApiError> {
    if input.add as usize > config.max_plan_add {
        return Err(ApiError::invalid(
            "add",
            format!("add must be at most {}", config.max_plan_add),
        ));
    }
    if input.relocate.unwrap_or(0) > MAX_RELOCATE {
        return Err(ApiError::invalid(
            "relocate",
            format!("relocate must be at most {MAX_RELOCATE}"),
        ));
    }
    if let Some(d) = input.district_id {
        if !district_exists(d) {
            return Err(ApiError::invalid("district_id", format!("no district {d}")));
        }
    }
    let candidates = match input.candidates {
        Some(list) => {
            if list.len() > config.max_candidates {
                return Err(ApiError::invalid(
                    "candidates",
                    format!("at most {} candidates", config.max_candidates),
                ));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, c) in list.into_iter().enumerate() {
                let pos = LatLon::named(
                    c.lat,
                    c.lon,
                    &format!("candidates[{i}].lat"),
                    &format!("candidates[{i}].lon"),
                )?;
                if c.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
                    return Err(ApiError::invalid(
                        format!("candidates[{i}].name"),
                        "name is longer than 200 characters",
                    ));
                }
                out.push(Candidate { pos, name: c.name });
            }
            Some(out)
        }
        None => None,
    };
    Ok(PlanRequest {
        add: input.add as usize,
        district: input.district_id,
        candidates,
        relocate: input.relocate.unwrap_or(0) as usize,
        suggest_24_7: if input.suggest_24_7.unwrap_or(false) {
            CONVERSIONS_LISTED
        } else {
            0
        },
        tz: Some(tz),
    })
}

/// `POST /api/v1/plan` (planner, admin): where the next units should go.
#[utoipa::path(post, path = "/api/v1/plan", tag = "coverage", request_body = PlanInput,
    security(("bearer" = [])),
    responses((status = 200, description = "{before, after, sites, relocations, conversions_24_7}"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn plan_handler(
    Extension(cov): Extension<Arc<Coverage>>,
    caller: Caller,
    JsonBody(input): JsonBody<PlanInput>,
) -> ApiResult<Response> {
    caller.require(&[Role::Planner, Role::Admin])?;
    cov.wait_ready().await;
    let at = input.at;
    let req = plan_request(input, &cov.config, |d| cov.district_exists(d), cov.tz())?;
    let handle = cov
        .map_for(&MapRequest {
            res: cov.config.res,
            params: cov.params,
            at,
        })
        .await?;
    let result = handle.with(move |map| plan(map, &req)).await?;
    Ok(Json(result).into_response())
}

/// `GET /ws/coverage`: `{"type":"cells","cells":[{cell,time_s,covered}],"summary":{…}}` for
/// the cells that changed, as they change; `{"type":"reload"}` when the whole map was rebuilt
/// (refetch); `{"type":"resync"}` when this socket fell behind (refetch). The first frame is a
/// `cells` frame with no cells and the current summary.
pub async fn ws_coverage(
    State(_state): State<AppState>,
    Extension(cov): Extension<Arc<Coverage>>,
    ws: WebSocketUpgrade,
) -> Response {
    // Subscribed before the upgrade completes: nothing after the handshake is missed.
    let rx = cov.frames.subscribe();
    ws.max_message_size(4096)
        .on_upgrade(move |socket| forward(socket, rx, cov))
}

async fn forward(mut socket: WebSocket, mut rx: broadcast::Receiver<Arc<str>>, cov: Arc<Coverage>) {
    cov.wait_ready().await;
    let hello = {
        let g = cov.live.read();
        g.as_ref().map(|l| {
            json!({"type": "cells", "cells": [], "summary": summary_json(&l.map, None, cov.config.res)})
                .to_string()
        })
    };
    if let Some(h) = hello {
        if socket.send(Message::Text(h.into())).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let text: String = match frame {
                    Ok(f) => f.to_string(),
                    Err(RecvError::Lagged(n)) => json!({"type": "resync", "missed": n}).to_string(),
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => {
                if !matches!(msg, Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Text(_)))) {
                    break;
                }
            }
        }
    }
}

/// Builds a map of the store's network at `at` without a server (the `aednet plan` command).
pub async fn offline_map(
    store: &dyn Store,
    config: &CoverageConfig,
    walk: WalkModel,
    at: DateTime<Utc>,
) -> Result<(CoverageMap, Vec<District>, Tz), String> {
    config.validate()?;
    let population = match &config.population_grid {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("coverage.population_grid {}: {e}", path.display()))?;
            read_population_csv(&text)?.0
        }
        None => Vec::new(),
    };
    let geo = GeoIndex::default();
    let net = load_network(store, &geo).await.map_err(|e| e.to_string())?;
    let grid = Arc::new(build_grid(&net.districts, config.res, &population)?);
    let tz = zone_of(&grid);
    let map = CoverageMap::build(grid, config.params(walk), net.entries, at);
    Ok((map, net.districts, tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_csv_any_column_order_bad_rows_counted() {
        let text = "id,lat,lon,population\n0,60.16,24.90,389\n1,91.0,24.9,5\n2,60.1,x,3\n\n3,60.17,24.91,0\n";
        let (pts, bad) = read_population_csv(text).unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(bad, 2);
        assert_eq!(pts[0].population, 389.0);
        let (pts, _) = read_population_csv("POP,LON,LAT\n7,24.9,60.1\n").unwrap();
        assert_eq!((pts[0].pos.lat, pts[0].population), (60.1, 7.0));
        assert!(read_population_csv("a,b\n1,2\n")
            .unwrap_err()
            .contains("lat"));
        assert!(read_population_csv("").is_err());
    }

    #[test]
    fn config_validation_names_the_key() {
        let bad = CoverageConfig {
            budget_s: 0.0,
            ..CoverageConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("budget_s"));
        let bad = CoverageConfig {
            res: 15,
            ..CoverageConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("coverage.res"));
        assert!(CoverageConfig::default().validate().is_ok());
    }
}
