//! HTTP and WebSocket API for callers and rescuers.
//!
//! Callers (no login): `GET /api/v1/aeds/nearest` — the AEDs that can be fetched and brought
//! back soonest, open and working — and `GET /api/v1/stations/nearest`, behind a per-client
//! rate limit. The dispatch issue adds the rescuer side (duty, location, offers).

pub mod nearest;
pub mod rate_limit;

use aednet_api::AppState;
use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;

pub use rate_limit::{PublicLimits, RateLimiter};

/// The caller routes, rate limited per client.
pub fn router(limits: &PublicLimits) -> Router<AppState> {
    let limiter = std::sync::Arc::new(RateLimiter::new(limits));
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
    paths(nearest::nearest_aeds, nearest::nearest_stations),
    tags((name = "callers", description = "Public queries for someone beside a collapsed person"))
)]
pub struct ApiDoc;
