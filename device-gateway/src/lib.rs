//! AED telemetry ingest: the `/ws/device` WebSocket protocol (`docs/device-protocol.md`),
//! device authentication by token, sequence numbers with durable acks, readiness derivation
//! ([`aednet_core::telemetry::Health`]), the heartbeat watchdog that marks silent devices
//! offline, coalesced last-seen writes, and the maintenance API (devices needing attention,
//! readiness history, a live feed).
//!
//! Also the maintenance side: guardian checks for cabinets without telemetry and work orders.
//! With `gateway.mqtt_url` set, the same messages also arrive from an MQTT broker ([`mqtt`]).

pub mod deadlines;
pub mod gateway;
pub mod maintenance;
pub mod mqtt;

pub use gateway::{Gateway, GatewayConfig};

use std::sync::Arc;

use aednet_api::AppState;
use axum::routing::{delete, get, post};
use axum::{Extension, Router};

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(maintenance::devices, maintenance::history, maintenance::guardian_check, maintenance::clear_override,
        maintenance::list_orders, maintenance::open_order, maintenance::get_order, maintenance::act_on_order),
    components(schemas(aednet_store::ReadinessOverride, aednet_store::WorkOrder, aednet_store::WorkOrderNote, aednet_store::ReadinessChange)),
    tags((name = "maintenance", description = "Devices needing attention, readiness history, guardian checks, work orders; the device protocol is in docs/device-protocol.md"))
)]
pub struct ApiDoc;

/// `/ws/device`, the maintenance API and its live feed.
pub fn router(gw: Arc<Gateway>) -> Router<AppState> {
    Router::new()
        .route("/ws/device", get(gateway::device_socket))
        .route("/ws/maintenance", get(maintenance::feed))
        .route("/api/v1/maintenance/devices", get(maintenance::devices))
        .route(
            "/api/v1/aeds/{id}/readiness/history",
            get(maintenance::history),
        )
        .route(
            "/api/v1/aeds/{id}/checks",
            post(maintenance::guardian_check),
        )
        .route(
            "/api/v1/aeds/{id}/readiness/override",
            delete(maintenance::clear_override),
        )
        .route(
            "/api/v1/work-orders",
            get(maintenance::list_orders).post(maintenance::open_order),
        )
        .route("/api/v1/work-orders/{id}", get(maintenance::get_order))
        .route(
            "/api/v1/work-orders/{id}/{action}",
            post(maintenance::act_on_order),
        )
        .layer(Extension(gw))
}
