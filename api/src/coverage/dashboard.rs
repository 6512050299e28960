//! The planners' district dashboard: `GET /api/v1/districts/summary` (JSON or CSV).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aednet_core::district::District;
use aednet_coverage::CoverageMap;
use aednet_store::{ListQuery, Store};
use axum::extract::Extension;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use chrono::Timelike;
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::json;

use super::cache::Answer;
use super::live::{Coverage, MapHandle};
use super::network::load_districts;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Params as QueryParams;

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
        .with(&cov.state.background, move |map| {
            district_rows_from(map, districts, counts, tz)
        })
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
    let key = format!("summary csv={csv}");
    let (answer, hit) = cov
        .answer(key, async {
            let rows = district_rows(&cov).await?;
            Ok(if csv {
                Answer {
                    content_type: "text/csv; charset=utf-8",
                    disposition: Some("attachment; filename=\"districts-summary.csv\""),
                    body: rows_csv(&rows).into(),
                }
            } else {
                Answer::json(json!({"items": rows, "timezone": cov.tz().name()}).to_string())
            })
        })
        .await?;
    Ok(answer.into_response(hit))
}
