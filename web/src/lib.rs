//! The consoles (public AED map, dispatcher, maintenance board, planner) as static assets
//! embedded in the binary and served at `/`. So far a bilingual start page with the caller's
//! nearest-AED finder (a plain SVG plot, no tiles or CDN) and pointers to the API; the web issue
//! grows it into the four consoles. `e2e/` tests it in Debian's chromium.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../assets/index.html");

/// Routes for the embedded pages; generic over the state so any app can merge it.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index))
}

async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
}
