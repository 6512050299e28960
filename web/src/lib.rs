//! The consoles (public AED map, dispatcher, maintenance board, planner) as static assets
//! embedded in the binary and served at `/`. The foundation serves a bilingual start page that
//! points a new user at the API; the web issue replaces it with the consoles.

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
