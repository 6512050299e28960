//! The maintenance role's API: devices needing attention, readiness history, a live feed.

use std::sync::Arc;

use aednet_api::auth::Caller;
use aednet_api::extract::{IdPath, Params};
use aednet_api::{ApiError, ApiResult, AppState};
use aednet_core::aed::{Aed, ReadinessStatus};
use aednet_core::event::Event;
use aednet_core::Role;
use aednet_store::ListQuery;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{Duration, NaiveDate};
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::gateway::Gateway;

const STAFF: &[Role] = &[Role::Admin, Role::Maintenance];

/// States that need a visit, by default.
const ATTENTION: [ReadinessStatus; 5] = [
    ReadinessStatus::Fault,
    ReadinessStatus::Offline,
    ReadinessStatus::InUse,
    ReadinessStatus::CabinetOpen,
    ReadinessStatus::Degraded,
];

#[derive(Debug, Serialize)]
struct DeviceItem {
    id: i64,
    name: Option<String>,
    address: Option<String>,
    lat: f64,
    lon: f64,
    status: ReadinessStatus,
    reason: Option<String>,
    since: chrono::DateTime<chrono::Utc>,
    pads_expiry: Option<NaiveDate>,
    battery_expiry: Option<NaiveDate>,
    /// Why it is listed: the status, or `pads_expiring` / `battery_expiring`.
    attention: Vec<&'static str>,
}

fn item(a: Aed, statuses: &[ReadinessStatus], horizon: NaiveDate) -> Option<DeviceItem> {
    let d = a.data;
    let mut attention = Vec::new();
    if statuses.contains(&d.readiness.status) {
        attention.push(d.readiness.status.as_str());
    }
    if d.pads_expiry.is_some_and(|e| e <= horizon) {
        attention.push("pads_expiring");
    }
    if d.battery_expiry.is_some_and(|e| e <= horizon) {
        attention.push("battery_expiring");
    }
    (!attention.is_empty()).then_some(DeviceItem {
        id: a.id,
        name: d.name,
        address: d.address,
        lat: d.location.lat,
        lon: d.location.lon,
        status: d.readiness.status,
        reason: d.readiness.reason,
        since: d.readiness.since,
        pads_expiry: d.pads_expiry,
        battery_expiry: d.battery_expiry,
        attention,
    })
}

/// `GET /api/v1/maintenance/devices?status=fault,offline&expiring_days=30&district_id=`:
/// AEDs needing attention, oldest problem first.
pub async fn devices(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    caller.require(STAFF)?;
    let statuses: Vec<ReadinessStatus> = match p.get("status") {
        None => ATTENTION.to_vec(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                ReadinessStatus::parse(s)
                    .ok_or_else(|| ApiError::bad_request("status", format!("unknown status '{s}'")))
            })
            .collect::<Result<_, _>>()?,
    };
    let days = p
        .parse::<i64>("expiring_days", "a whole number of days")?
        .unwrap_or(30);
    if !(0..=3650).contains(&days) {
        return Err(ApiError::invalid(
            "expiring_days",
            "expiring_days must be between 0 and 3650",
        ));
    }
    let district_id = p.parse::<i64>("district_id", "an id")?;
    let horizon = (state.clock.now() + Duration::days(days)).date_naive();
    // A full pass over the registry in pages: fine for a city's thousands of AEDs.
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = state
            .store
            .list_aeds(&ListQuery {
                after_id: after,
                limit: 1000,
                district_id,
                ..ListQuery::default()
            })
            .await?;
        out.extend(
            page.items
                .into_iter()
                .filter_map(|a| item(a, &statuses, horizon)),
        );
        match page.next_after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    out.sort_by_key(|i| (i.since, i.id));
    Ok(Json(json!({"count": out.len(), "items": out})).into_response())
}

/// `GET /api/v1/aeds/{id}/readiness/history?limit=` — newest first.
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    p: Params,
) -> ApiResult<Response> {
    caller.require(STAFF)?;
    let limit = p.parse::<u32>("limit", "a whole number")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    if state.store.get_aed(id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let items = state.store.readiness_history(id, limit).await?;
    Ok(Json(json!({"aed_id": id, "items": items})).into_response())
}

/// `GET /ws/maintenance` (maintenance or admin token): one JSON text frame per readiness change,
/// `{"type": "readiness", "aed_id", "status"}`, as they happen.
pub async fn feed(
    State(state): State<AppState>,
    Extension(_gw): Extension<Arc<Gateway>>,
    caller: Caller,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = caller.require(STAFF) {
        return e.into_response();
    }
    let rx = state.bus.subscribe();
    ws.max_message_size(4096)
        .on_upgrade(move |socket| forward(socket, rx))
}

async fn forward(mut socket: WebSocket, mut rx: tokio::sync::broadcast::Receiver<Event>) {
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let frame = match ev {
                    Ok(Event::AedReadinessChanged { id, status }) => {
                        json!({"type": "readiness", "aed_id": id, "status": status})
                    }
                    Ok(_) => continue,
                    // Tell the board to reload rather than show a stale picture.
                    Err(RecvError::Lagged(n)) => json!({"type": "resync", "missed": n}),
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(frame.to_string().into())).await.is_err() {
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
