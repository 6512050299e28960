//! aednet's HTTP API: the registry (AEDs, stations, rescuers, districts), bearer-token auth
//! with roles, the error contract, OpenAPI, metrics and health endpoints, and [`serve`].
//!
//! Other crates with HTTP surfaces (device-gateway, mobile-api, dispatch) expose their own
//! `router()` over the same [`AppState`]; the binary merges them.

pub mod aeds;
pub mod artifacts;
pub mod auth;
pub mod background;
pub mod cad_config;
pub mod coverage;
pub mod districts;
pub mod enrolment;
pub mod error;
pub mod extract;
pub mod geo_sync;
pub mod geocode;
pub mod import;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod output;
pub mod rate_limit;
pub mod rescuers;
pub mod sessions;
pub mod state;
pub mod stations;
pub mod tiles;
pub mod tokens;

use std::future::Future;
use std::time::Duration;

use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ApiResult};
pub use state::AppState;

/// Largest JSON body accepted on ordinary endpoints; imports have their own, larger limit.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// The registry API and ops endpoints, without state or layers (for merging).
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(aeds::router())
        .merge(stations::router())
        .merge(rescuers::router())
        .merge(enrolment::router())
        .merge(districts::router())
        .merge(tokens::router())
        .merge(import::router())
        .merge(geocode::router())
        .merge(ops::router())
}

/// Adds the layers every public route gets: JSON 404 fallback, body limit, request tracing
/// (method and matched route only: never headers, so tokens stay out of logs), metrics,
/// and a time-out.
pub fn finish(router: Router<AppState>, state: AppState) -> Router {
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(error::ErrorBody {
                    error: "method_not_allowed",
                    message: "method not allowed on this path".into(),
                    field: None,
                }),
            )
                .into_response()
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY))
        // Tokens before bodies: see auth::authenticate_first (inside ws_bearer, which turns a
        // console's subprotocol into the header it reads).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate_first,
        ))
        // Browsers' WebSockets carry the token as a subprotocol (see auth::ws_bearer).
        .layer(axum::middleware::from_fn(auth::ws_bearer))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let route = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                tracing::info_span!("http", method = %req.method(), route = %route)
            }),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .with_state(state)
}

/// The metrics listener's router: `/metrics` only.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::metrics_handler))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes in-flight requests.
/// Tests bind port 0 and pass a oneshot receiver.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    // Small replies (acks, JSON answers) go out at once instead of waiting for the peer's
    // TCP ack (Nagle).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // Peer addresses reach handlers (per-client rate limits) as `ConnectInfo`.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
