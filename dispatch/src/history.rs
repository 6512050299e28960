//! `GET /api/v1/me/incidents`: a rescuer's own call-outs, served from the store so that they
//! follow the rescuer to a new phone. Each incident that offered them something, newest first,
//! with only their own offers (role, AED, what became of it and when) — never another
//! rescuer's offers, identity or position, nor the dispatcher's notes. The incident's outcome
//! (AED applied, shock, handed to EMS) only to a rescuer who accepted.

use std::sync::Arc;

use aednet_api::auth::Caller;
use aednet_api::extract::Params;
use aednet_api::{ApiError, ApiResult, AppState};
use aednet_core::Role;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::Engine;
use crate::incident::{AuditEvent, Incident, IncidentState, OfferState, Outcome};

/// Items per page unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/me/incidents", get(my_incidents))
}

/// One of the rescuer's own offers in an incident.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MyOffer {
    pub offer_id: u32,
    /// `cpr` or `fetch_aed`.
    pub role: String,
    /// The AED to fetch (fetch role only).
    pub aed_id: Option<i64>,
    /// offered, accepted, arrived, declined, timed_out or stood_down.
    #[schema(value_type = String)]
    pub state: OfferState,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub arrived_at: Option<DateTime<Utc>>,
    /// When it ended otherwise: declined, timed out or stood down.
    pub ended_at: Option<DateTime<Utc>>,
}

/// One incident as its rescuer sees it afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MyIncident {
    pub incident_id: i64,
    /// created, alerting, en_route, on_scene, closed or cancelled.
    #[schema(value_type = String)]
    pub state: IncidentState,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Where the rescuer was sent (as the offer said).
    pub address: Option<String>,
    /// Only when this rescuer accepted.
    #[schema(value_type = Option<Object>)]
    pub outcome: Option<Outcome>,
    pub offers: Vec<MyOffer>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyIncidents {
    pub items: Vec<MyIncident>,
    /// Pass as `cursor` for older ones; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// What `rescuer_id` may see of `inc`; `None` if it never offered them anything.
pub fn own_view(inc: &Incident, rescuer_id: i64) -> Option<MyIncident> {
    let when = |offer: u32, pick: fn(&AuditEvent) -> Option<(u32, i64)>| {
        inc.audit
            .iter()
            .find(|e| pick(&e.event) == Some((offer, rescuer_id)))
            .map(|e| e.at)
    };
    let offers: Vec<MyOffer> = inc
        .offers
        .iter()
        .filter(|o| o.rescuer_id == rescuer_id)
        .map(|o| MyOffer {
            offer_id: o.id,
            role: if o.fetch_aed.is_some() {
                "fetch_aed"
            } else {
                "cpr"
            }
            .to_string(),
            aed_id: o.fetch_aed,
            state: o.state,
            offered_at: o.offered_at,
            expires_at: o.expires_at,
            accepted_at: when(o.id, |e| match e {
                AuditEvent::Accepted {
                    offer, rescuer_id, ..
                } => Some((*offer, *rescuer_id)),
                _ => None,
            }),
            arrived_at: when(o.id, |e| match e {
                AuditEvent::Arrived {
                    offer, rescuer_id, ..
                } => Some((*offer, *rescuer_id)),
                _ => None,
            }),
            ended_at: when(o.id, |e| match e {
                AuditEvent::Declined { offer, rescuer_id }
                | AuditEvent::TimedOut { offer, rescuer_id }
                | AuditEvent::StoodDown { offer, rescuer_id } => Some((*offer, *rescuer_id)),
                _ => None,
            }),
        })
        .collect();
    if offers.is_empty() {
        return None;
    }
    let helped = offers.iter().any(|o| {
        matches!(o.state, OfferState::Accepted | OfferState::Arrived) || o.accepted_at.is_some()
    });
    Some(MyIncident {
        incident_id: inc.id,
        state: inc.state,
        created_at: inc.created_at,
        closed_at: inc.closed_at,
        address: inc.address.clone(),
        outcome: if helped { inc.outcome } else { None },
        offers,
    })
}

#[utoipa::path(get, path = "/api/v1/me/incidents", tag = "rescuers",
    params(("limit" = Option<u32>, Query, description = "1–100, default 20"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    security(("bearer" = [])),
    responses((status = 200, body = MyIncidents), (status = 400, body = aednet_api::error::ErrorBody),
        (status = 401, body = aednet_api::error::ErrorBody), (status = 403, body = aednet_api::error::ErrorBody)))]
/// `GET /api/v1/me/incidents` (rescuer token): the caller's own call-outs, newest first.
#[tracing::instrument(skip_all)]
pub(crate) async fn my_incidents(
    State(state): State<AppState>,
    Extension(engine): Extension<Arc<Engine>>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    let me = caller.subject(Role::Rescuer)?;
    let limit = params
        .parse::<u32>("limit", "an integer from 1 to 100")?
        .unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            "limit must be an integer from 1 to 100",
        ));
    }
    let before = params.parse::<i64>("cursor", "a cursor returned by a previous page")?;
    // One more than asked: whether there is a next page.
    let docs = state.store.rescuer_history(me, before, limit + 1).await?;
    let more = docs.len() > limit as usize;
    let mut items = Vec::with_capacity(docs.len().min(limit as usize));
    for doc in docs.iter().take(limit as usize) {
        let Ok(stored) = crate::engine::read_stored(&state.store, doc).await else {
            continue;
        };
        // An open incident this node owns is newer in memory than in the store.
        let inc = if stored.state.is_open() {
            engine.get(stored.id).await.unwrap_or(stored)
        } else {
            stored
        };
        if let Some(v) = own_view(&inc, me) {
            items.push(v);
        }
    }
    let next_cursor = if more {
        docs.get(limit as usize - 1)
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|v| v["id"].as_i64())
            .map(|id| id.to_string())
    } else {
        None
    };
    Ok(Json(MyIncidents { items, next_cursor }).into_response())
}
