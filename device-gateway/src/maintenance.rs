//! The maintenance role's API: devices needing attention, readiness history, a live feed.

use std::sync::Arc;

use aednet_api::auth::Caller;
use aednet_api::extract::{IdPath, JsonBody, Params};
use aednet_api::{ApiError, ApiResult, AppState};
use aednet_core::aed::ReadinessStatus;
use aednet_core::event::Event;
use aednet_core::Role;
use aednet_store::{AttentionItem, AttentionQuery, ReadinessOverride};
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
    district_id: Option<i64>,
    status: ReadinessStatus,
    reason: Option<String>,
    since: chrono::DateTime<chrono::Utc>,
    pads_expiry: Option<NaiveDate>,
    battery_expiry: Option<NaiveDate>,
    /// Why it is listed: the status, or `pads_expiring` / `battery_expiring`.
    attention: Vec<&'static str>,
    /// A manual readiness held against telemetry (`until` null: until cleared).
    #[serde(rename = "override")]
    over: Option<ReadinessOverride>,
}

fn item(i: AttentionItem, statuses: &[ReadinessStatus], horizon: NaiveDate) -> DeviceItem {
    let (id, d) = (i.aed.id, i.aed.data);
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
    DeviceItem {
        id,
        name: d.name,
        address: d.address,
        lat: d.location.lat,
        lon: d.location.lon,
        district_id: d.district_id,
        status: d.readiness.status,
        reason: d.readiness.reason,
        since: d.readiness.since,
        pads_expiry: d.pads_expiry,
        battery_expiry: d.battery_expiry,
        attention,
        over: i.over,
    }
}

#[utoipa::path(get, path = "/api/v1/maintenance/devices", tag = "maintenance",
    params(("status" = Option<String>, Query, description = "comma list; default fault, offline, in_use, cabinet_open, degraded"),
        ("expiring_days" = Option<i64>, Query, description = "pads or battery expiring within this many days, default 30"),
        ("district_id" = Option<i64>, Query), ("limit" = Option<u32>, Query, description = "1..=5000, default 1000; `truncated` says when more matched")),
    security(("bearer" = [])),
    responses((status = 200, description = "AEDs needing attention, oldest problem first"), (status = 400, body = aednet_api::error::ErrorBody)))]
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
    let limit = p.parse::<u32>("limit", "a whole number")?.unwrap_or(1000);
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            "limit must be between 1 and 5000",
        ));
    }
    let horizon = (state.clock.now() + Duration::days(days)).date_naive();
    // One indexed query (status, pads_expiry, battery_expiry), not a pass over the registry.
    let mut rows = state
        .store
        .attention_list(&AttentionQuery {
            statuses: statuses.clone(),
            horizon,
            district_id,
            limit: limit + 1,
        })
        .await?;
    let truncated = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let out: Vec<DeviceItem> = rows
        .into_iter()
        .map(|i| item(i, &statuses, horizon))
        .collect();
    Ok(Json(json!({"count": out.len(), "truncated": truncated, "items": out})).into_response())
}

#[utoipa::path(get, path = "/api/v1/aeds/{id}/readiness/history", tag = "maintenance",
    params(("id" = i64, Path), ("limit" = Option<u32>, Query, description = "1..=1000, default 100")),
    security(("bearer" = [])),
    responses((status = 200, description = "Readiness changes with their source, newest first"), (status = 404, body = aednet_api::error::ErrorBody)))]
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
    // `[limits] ws_maintenance`: 503 `busy` beyond it.
    let slot = match state.limits.ws_maintenance.open() {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let rx = state.bus.subscribe();
    let watch = state.sessions.open(&caller);
    ws.max_message_size(4096)
        .on_upgrade(move |socket| async move {
            forward(socket, rx, watch).await;
            drop(slot);
        })
}

async fn forward(
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<Event>,
    mut watch: aednet_api::sessions::SessionWatch,
) {
    loop {
        tokio::select! {
            reason = watch.revoked() => {
                let _ = socket
                    .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: aednet_api::sessions::CLOSE_REVOKED,
                        reason: reason.into(),
                    })))
                    .await;
                break;
            }
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

/// Who did it, for the record: the token's name.
fn author(caller: &Caller) -> String {
    caller
        .token
        .as_ref()
        .map_or_else(|| "unknown".to_string(), |t| t.name.clone())
}

fn required_text(field: &str, v: Option<String>, max: usize) -> ApiResult<String> {
    let v = aednet_core::validate::clean(v)
        .ok_or_else(|| ApiError::invalid(field, format!("{field} is required")))?;
    if v.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(v)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInput {
    pub ok: bool,
    #[serde(default)]
    pub note: Option<String>,
    /// For a failed check: hold the fault against telemetry until then (RFC 3339); without it,
    /// until cleared (`DELETE /api/v1/aeds/{id}/readiness/override`) or a passing check.
    #[serde(default)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

#[utoipa::path(post, path = "/api/v1/aeds/{id}/checks", tag = "maintenance",
    params(("id" = i64, Path)), request_body(content = serde_json::Value, description = r#"{"ok": false, "note": "电极片缺失", "until": "2026-12-01T00:00:00Z"}"#),
    security(("bearer" = [])),
    responses((status = 201, description = "The readiness set by the check, and the override it holds"), (status = 404, body = aednet_api::error::ErrorBody), (status = 422, body = aednet_api::error::ErrorBody)))]
/// `POST /api/v1/aeds/{id}/checks` `{"ok": true, "note": …, "until": …}`: a guardian's manual
/// check. OK → ready ("guardian check OK by …") and any override cleared. Not OK → fault with the
/// note, **held against telemetry** (a heartbeat does not undo what an inspection found) until
/// `until`, a passing check, or `DELETE …/readiness/override`; telemetry may still make it worse
/// (offline, in use).
pub async fn guardian_check(
    State(state): State<AppState>,
    Extension(gw): Extension<Arc<Gateway>>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<CheckInput>,
) -> ApiResult<Response> {
    caller.require(STAFF)?;
    let note = aednet_core::validate::clean(input.note);
    aednet_core::validate::max_len("note", &note, 500)?;
    let now = state.clock.now();
    if input.ok && input.until.is_some() {
        return Err(ApiError::invalid(
            "until",
            "until applies to a failed check (the fault it holds)",
        ));
    }
    if input.until.is_some_and(|u| u <= now) {
        return Err(ApiError::invalid("until", "until must be in the future"));
    }
    let by = author(&caller);
    let reason = match (input.ok, note) {
        (true, None) => format!("guardian check OK by {by}"),
        (true, Some(n)) => format!("guardian check OK by {by}: {n}"),
        (false, None) => format!("guardian check failed ({by})"),
        (false, Some(n)) => format!("guardian check failed ({by}): {n}"),
    };
    let out = gw
        .guardian_check(id, input.ok, reason, input.until, &by)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut body = serde_json::to_value(&out.readiness).unwrap_or_default();
    body["override"] = serde_json::to_value(&out.over).unwrap_or_default();
    Ok((axum::http::StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/aeds/{id}/readiness/override", tag = "maintenance",
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, description = "The readiness telemetry gives now"), (status = 404, body = aednet_api::error::ErrorBody)))]
/// `DELETE /api/v1/aeds/{id}/readiness/override`: ends a held fault; readiness returns to what
/// telemetry says (`unknown` for a cabinet without telemetry). 404 when there is none.
pub async fn clear_override(
    Extension(gw): Extension<Arc<Gateway>>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    caller.require(STAFF)?;
    let out = gw
        .clear_override(id, &author(&caller))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(out.readiness).into_response())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWorkOrder {
    pub aed_id: i64,
    #[serde(default)]
    pub title: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderAction {
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub resolution: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/work-orders", tag = "maintenance",
    params(("aed_id" = Option<i64>, Query), ("include_closed" = Option<bool>, Query)),
    security(("bearer" = [])), responses((status = 200, description = "Work orders, oldest first")))]
/// `GET /api/v1/work-orders?aed_id=&include_closed=true`
pub async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    p: Params,
) -> ApiResult<Response> {
    caller.require(STAFF)?;
    let aed_id = p.parse::<i64>("aed_id", "an id")?;
    let all = p
        .parse::<bool>("include_closed", "true or false")?
        .unwrap_or(false);
    let items = state.store.list_work_orders(aed_id, all).await?;
    Ok(Json(json!({"count": items.len(), "items": items})).into_response())
}

#[utoipa::path(post, path = "/api/v1/work-orders", tag = "maintenance",
    request_body(content = serde_json::Value, description = r#"{"aed_id": 1, "title": "更换电极片"}"#),
    security(("bearer" = [])),
    responses((status = 201, body = aednet_store::WorkOrder), (status = 422, body = aednet_api::error::ErrorBody)))]
/// `POST /api/v1/work-orders` `{"aed_id", "title"}` → 201.
pub async fn open_order(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<NewWorkOrder>,
) -> ApiResult<Response> {
    caller.require(STAFF)?;
    let title = required_text("title", input.title, 200)?;
    if state.store.get_aed(input.aed_id).await?.is_none() {
        return Err(ApiError::invalid(
            "aed_id",
            format!("no AED {}", input.aed_id),
        ));
    }
    let w = state
        .store
        .create_work_order(input.aed_id, &title, &author(&caller), state.clock.now())
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(w)).into_response())
}

#[utoipa::path(get, path = "/api/v1/work-orders/{id}", tag = "maintenance", params(("id" = i64, Path)),
    security(("bearer" = [])), responses((status = 200, body = aednet_store::WorkOrder), (status = 404, body = aednet_api::error::ErrorBody)))]
pub async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    caller.require(STAFF)?;
    let w = state
        .store
        .get_work_order(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(w).into_response())
}

#[utoipa::path(post, path = "/api/v1/work-orders/{id}/{action}", tag = "maintenance",
    params(("id" = i64, Path), ("action" = String, Path, description = "assign (assignee), notes (note) or close (resolution)")),
    request_body(content = serde_json::Value, description = r#"{"assignee": "…"} | {"note": "…"} | {"resolution": "…"}"#),
    security(("bearer" = [])),
    responses((status = 200, body = aednet_store::WorkOrder), (status = 404, body = aednet_api::error::ErrorBody),
        (status = 409, body = aednet_api::error::ErrorBody), (status = 422, body = aednet_api::error::ErrorBody)))]
/// `POST /api/v1/work-orders/{id}/{assign|notes|close}`.
pub async fn act_on_order(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path((id, action)): axum::extract::Path<(i64, String)>,
    JsonBody(input): JsonBody<WorkOrderAction>,
) -> ApiResult<Response> {
    caller.require(STAFF)?;
    let now = state.clock.now();
    let existing = state
        .store
        .get_work_order(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let closed = || ApiError::Conflict {
        field: None,
        message: format!("work order {id} is closed"),
    };
    let w = match action.as_str() {
        "assign" => {
            let assignee = required_text("assignee", input.assignee, 100)?;
            state
                .store
                .update_work_order(id, &aednet_store::WorkOrderUpdate::Assign { assignee }, now)
                .await?
                .ok_or_else(closed)?
        }
        "close" => {
            let resolution = required_text("resolution", input.resolution, 1000)?;
            state
                .store
                .update_work_order(
                    id,
                    &aednet_store::WorkOrderUpdate::Close { resolution },
                    now,
                )
                .await?
                .ok_or_else(closed)?
        }
        "notes" => {
            if existing.status == "closed" {
                return Err(closed());
            }
            let note = required_text("note", input.note, 2000)?;
            state
                .store
                .add_work_order_note(id, &author(&caller), &note, now)
                .await?
                .ok_or(ApiError::NotFound)?
        }
        _ => return Err(ApiError::NotFound),
    };
    Ok(Json(w).into_response())
}
