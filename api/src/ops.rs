//! Liveness, readiness and the OpenAPI document.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    health_router()
        .route("/readyz", get(readyz))
        .route("/api/openapi.json", get(openapi))
}

/// `/healthz` alone (the caller lane's health check for a proxy or load balancer).
pub fn health_router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// The process is up.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The process can serve: its database answers. On a cluster the body also says whether the
/// link to the other nodes is up; a node without it still serves callers, devices and its own
/// sockets from the store, so it stays ready (the link comes back by itself). `walk_network`
/// gives the loaded walking network's version (`null` while none is loaded: answers use the
/// straight-line model meanwhile, so the node is ready either way).
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => {
            let walk = state
                .walk_graph
                .get()
                .map(|g| json!({"version": g.info.version, "nodes": g.value.node_count()}));
            let mut body = json!({
                "status": "ready",
                "backend": state.store.backend(),
                "walk_network": walk,
            });
            if let Some(p) = &state.peers {
                body["cluster"] = json!({"node": p.node_id(), "nats_connected": p.connected()});
            }
            Json(body).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not_ready", "reason": "database unavailable"})),
            )
                .into_response()
        }
    }
}

async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.openapi.as_ref().clone())
}
