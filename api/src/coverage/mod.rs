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
//!
//! The public routes are guarded: a per-client rate limit of their own (`[coverage]
//! per_minute`, `burst`), at most `max_concurrent` answers computed at once (503 `busy`
//! otherwise), finished answers cached by parameters and map version (`cache`), at most
//! `max_cells` hexagons per map answer, and a cap on open `/ws/coverage` sockets
//! (`[limits] ws_coverage`).
//!
//! Files: `config` (`[coverage]`, population grid), `cache` (finished answers), `network` (loading districts and AEDs,
//! the grid), `live` (the [`Coverage`] service), `queries` (map and weekly routes),
//! `dashboard` (district summary), `planning` (placement), `ws` (`/ws/coverage`).

mod cache;
mod config;
mod dashboard;
mod live;
mod network;
mod planning;
mod queries;
mod ws;

use std::sync::Arc;

use axum::extract::Extension;
use axum::routing::{get, post};
use axum::Router;

pub use config::{read_population_csv, CoverageConfig};
pub use dashboard::{
    district_counts, district_rows_from, districts_summary, rows_csv, DistrictCounts, DistrictRow,
};
pub use live::Coverage;
pub use network::{build_grid, district_areas, load_districts, load_network, offline_map, Network};
pub use planning::{
    plan_handler, plan_request, CandidateInput, PlanInput, CONVERSIONS_LISTED, MAX_RELOCATE,
};
pub use queries::{coverage_geojson, weekly};
pub use ws::ws_coverage;

use crate::rate_limit::{PublicLimits, RateLimiter};
use crate::state::AppState;

/// The coverage routes. The public ones are rate limited per client with the `[public]`
/// client rules (forwarded-for) but a budget of their own (`[coverage] per_minute`, `burst`).
pub fn router(cov: Arc<Coverage>, public: &PublicLimits) -> Router<AppState> {
    let limiter = Arc::new(RateLimiter::new(&PublicLimits {
        per_minute: cov.config.per_minute,
        burst: cov.config.burst,
        ..*public
    }));
    let open = Router::new()
        .route("/api/v1/coverage", get(coverage_geojson))
        .route("/api/v1/coverage/weekly", get(weekly))
        .route("/api/v1/districts/summary", get(districts_summary))
        .route("/ws/coverage", get(ws_coverage))
        .route_layer(axum::middleware::from_fn_with_state(
            limiter,
            crate::rate_limit::enforce,
        ));
    open.route("/api/v1/plan", post(plan_handler))
        .layer(Extension(cov))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(queries::coverage_geojson, queries::weekly, dashboard::districts_summary, planning::plan_handler),
    tags((name = "coverage", description = "Four-minute AED coverage, district dashboard, placement"))
)]
pub struct ApiDoc;
