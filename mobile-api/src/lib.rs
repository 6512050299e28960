//! HTTP and WebSocket API for callers and rescuers.
//!
//! Callers (no login): `GET /api/v1/aeds/nearest` — the AEDs that can be fetched and brought
//! back soonest, open and working — and `GET /api/v1/stations/nearest`, behind a per-client
//! rate limit. Rescuers: `PUT /api/v1/me/duty`, `POST /api/v1/me/location` (positions kept in
//! memory only, with consent, while on duty), through the same gate as the position frames of
//! the rescuer's WebSocket (served by the dispatch crate, which also owns the offers).

pub mod nearest;
pub mod rescuer;

use aednet_api::AppState;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;

/// The public per-client limiter lives in `aednet_api` (the coverage routes share it).
pub use aednet_api::rate_limit;
pub use aednet_api::rate_limit::{PublicLimits, RateLimiter};

/// The caller routes, rate limited per client, and the rescuer's own routes.
pub fn router(limits: &PublicLimits, eligibility: Arc<rescuer::Eligibility>) -> Router<AppState> {
    let public = caller_routes(Arc::new(RateLimiter::new(limits)));
    let rescuers = Router::new()
        .route("/api/v1/me/duty", axum::routing::put(rescuer::set_duty))
        .route("/api/v1/me/rescuer", get(rescuer::my_record))
        .route(
            "/api/v1/me/location",
            axum::routing::post(rescuer::report_location),
        )
        .layer(axum::Extension(eligibility));
    public.merge(rescuers)
}

/// The caller's queries (nearest AEDs, nearest stations) behind `limiter`: on the main
/// listener, and alone on the caller lane when one is configured.
pub fn caller_routes(limiter: Arc<RateLimiter>) -> Router<AppState> {
    Router::new()
        .route("/api/v1/aeds/nearest", get(nearest::nearest_aeds))
        .route("/api/v1/stations/nearest", get(nearest::nearest_stations))
        .route_layer(axum::middleware::from_fn_with_state(
            limiter,
            rate_limit::enforce,
        ))
}

#[derive(OpenApi)]
#[openapi(
    paths(nearest::nearest_aeds, nearest::nearest_stations, rescuer::set_duty, rescuer::report_location, rescuer::my_record),
    tags((name = "callers", description = "Public queries for someone beside a collapsed person"))
)]
pub struct ApiDoc;
