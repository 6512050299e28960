//! Dispatcher and rescuer endpoints over the [`Engine`], and the rescuer's live channel.

use std::sync::Arc;

use aednet_api::auth::Caller;
use aednet_api::extract::{IdPath, JsonBody};
use aednet_api::sessions::{SessionWatch, CLOSE_REVOKED};
use aednet_api::{ApiError, ApiResult, AppState};
use aednet_core::{LatLon, Role};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use aednet_mobile_api::rescuer::{Eligibility, LocationInput};

use crate::engine::{Engine, EngineError};
use crate::incident::{Answer, DispatchError, Outcome};

const DISPATCH: &[Role] = &[Role::Admin, Role::Dispatcher];

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound | EngineError::Dispatch(DispatchError::UnknownOffer) => {
                ApiError::NotFound
            }
            EngineError::Dispatch(DispatchError::NotYourOffer) => ApiError::Forbidden,
            EngineError::Dispatch(DispatchError::IncidentClosed) => ApiError::Conflict {
                field: None,
                message: "the incident is closed".into(),
            },
            EngineError::Dispatch(DispatchError::Conflict(m)) => ApiError::Conflict {
                field: None,
                message: m,
            },
            // The database is unreachable, busy or full: the incident is as it was (changes
            // are applied only once stored), so the caller may simply try again.
            EngineError::Store(s) if s.is_transient() => {
                tracing::warn!(error = %s, "dispatch change refused: the store is unavailable");
                ApiError::Unavailable(
                    "the database is unavailable; nothing was changed, try again".into(),
                )
            }
            EngineError::Store(s) => s.into(),
            EngineError::Unavailable(m) => ApiError::Unavailable(m),
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, list, get_one, close, cancel, my_offers, answer,
        crate::push_http::push_info, crate::push_http::subscribe, crate::push_http::list_subscriptions,
        crate::push_http::unsubscribe, crate::push_http::received, crate::history::my_incidents),
    components(schemas(crate::history::MyIncidents, crate::history::MyIncident, crate::history::MyOffer)),
    tags((name = "dispatch", description = "Incidents for dispatchers; offers reach rescuers over /ws/rescuer")),
)]
pub struct ApiDoc;

/// The dispatch routes; `eligibility` is the rescuer location gate shared with mobile-api, so
/// positions sent over `/ws/rescuer` obey the same rules as `POST /api/v1/me/location`.
pub fn router(engine: Arc<Engine>, eligibility: Arc<Eligibility>) -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list).post(create))
        .route("/api/v1/incidents/{id}", get(get_one))
        .route("/api/v1/incidents/{id}/close", post(close))
        .route("/api/v1/incidents/{id}/cancel", post(cancel))
        .route("/api/v1/me/offers", get(my_offers))
        .route(
            "/api/v1/me/offers/{incident}/{offer}/{answer}",
            post(answer),
        )
        .route("/ws/rescuer", get(rescuer_socket))
        .route("/ws/dispatch", get(dispatch_socket))
        .merge(crate::push_http::router())
        .merge(crate::history::router())
        .merge(crate::cad::router())
        .layer(Extension(engine))
        .layer(Extension(eligibility))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/incidents", tag = "dispatch",
    request_body(content = serde_json::Value, description = r#"{"lat": 28.97, "lon": 118.87, "address": "…", "notes": "…"}"#),
    security(("bearer" = [])),
    responses((status = 201, description = "The incident with the first wave's offers"), (status = 422, body = aednet_api::error::ErrorBody)))]
/// `POST /api/v1/incidents` (dispatcher): stores it and alerts the first wave.
async fn create(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    JsonBody(input): JsonBody<NewIncident>,
) -> ApiResult<Response> {
    caller.require(DISPATCH)?;
    let at = LatLon::new(input.lat, input.lon)?;
    let address = aednet_core::validate::clean(input.address);
    aednet_core::validate::max_len("address", &address, 500)?;
    let notes = aednet_core::validate::clean(input.notes);
    aednet_core::validate::max_len("notes", &notes, 2000)?;
    let inc = e.create(at, address, notes).await?;
    Ok((StatusCode::CREATED, Json(inc)).into_response())
}

#[utoipa::path(get, path = "/api/v1/incidents", tag = "dispatch", security(("bearer" = [])),
    responses((status = 200, description = "Open incidents")))]
async fn list(Extension(e): Extension<Arc<Engine>>, caller: Caller) -> ApiResult<Response> {
    caller.require(DISPATCH)?;
    let items = e.open_incidents().await?;
    Ok(Json(json!({"count": items.len(), "items": items})).into_response())
}

#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "dispatch", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Incident, offers, audit log, responders with live ETA, AEDs nearby"), (status = 404, body = aednet_api::error::ErrorBody)))]
/// The incident with its audit log as stored.
async fn get_one(
    State(state): State<AppState>,
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    caller.require(DISPATCH)?;
    let inc = e.get(id).await?;
    let audit: Vec<serde_json::Value> = state
        .store
        .incident_audit(id)
        .await?
        .iter()
        .filter_map(|s| serde_json::from_str(s).ok())
        .collect();
    let mut body = serde_json::to_value(&inc).unwrap_or_default();
    body["audit_log"] = json!(audit);
    let live = e.live_view(&inc).await;
    body["responders"] = live["responders"].clone();
    body["aeds_nearby"] = live["aeds_nearby"].clone();
    // How each offer, stand-down and cancel reached (or failed to reach) each rescuer.
    body["deliveries"] = json!(state.store.deliveries(id).await?);
    Ok(Json(body).into_response())
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/close", tag = "dispatch", params(("id" = i64, Path)),
    request_body(content = serde_json::Value, description = r#"{"aed_applied": true, "shock_delivered": false, "handed_to_ems": true}"#),
    security(("bearer" = [])),
    responses((status = 200, description = "Closed; everyone still on the way is stood down"), (status = 409, body = aednet_api::error::ErrorBody)))]
async fn close(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(outcome): JsonBody<Outcome>,
) -> ApiResult<Response> {
    caller.require(DISPATCH)?;
    Ok(Json(e.close(id, Some(outcome)).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/cancel", tag = "dispatch", params(("id" = i64, Path)),
    security(("bearer" = [])), responses((status = 200, description = "Cancelled"), (status = 409, body = aednet_api::error::ErrorBody)))]
async fn cancel(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    caller.require(DISPATCH)?;
    Ok(Json(e.close(id, None).await?).into_response())
}

fn rescuer_id(caller: &Caller) -> ApiResult<i64> {
    caller.subject(Role::Rescuer)
}

#[utoipa::path(get, path = "/api/v1/me/offers", tag = "rescuers", security(("bearer" = [])),
    responses((status = 200, description = "This rescuer's pending and accepted offers")))]
async fn my_offers(Extension(e): Extension<Arc<Engine>>, caller: Caller) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    let items = e.offers_for(id).await;
    Ok(Json(json!({"count": items.len(), "items": items})).into_response())
}

#[utoipa::path(post, path = "/api/v1/me/offers/{incident}/{offer}/{answer}", tag = "rescuers",
    params(("incident" = i64, Path), ("offer" = u32, Path), ("answer" = String, Path, description = "accept, decline or arrived")),
    security(("bearer" = [])),
    responses((status = 200, description = "The offer; `cabinet_code` for an accepted fetch of a locked cabinet"),
        (status = 403, body = aednet_api::error::ErrorBody), (status = 404, body = aednet_api::error::ErrorBody), (status = 409, body = aednet_api::error::ErrorBody)))]
/// `POST /api/v1/me/offers/{incident}/{offer}/{accept|decline|arrived}`: idempotent; the
/// cabinet code comes back only to an accepted fetcher.
async fn answer(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    Path((incident, offer, answer)): Path<(i64, u32, String)>,
) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    let a = match answer.as_str() {
        "accept" => Answer::Accept,
        "decline" => Answer::Decline,
        "arrived" => Answer::Arrived,
        _ => return Err(ApiError::NotFound),
    };
    Ok(Json(e.answer(incident, offer, id, a).await?).into_response())
}

/// `GET /ws/rescuer` (rescuer token): the protocol of docs/rescuer-protocol.md. The server
/// sends pending offers first (a reconnect resumes them), then `offer`, `update`, `stand_down`
/// frames as they happen; the client sends `location`, `accept`, `decline`, `arrived`, each
/// answered by an `ack` or an `error` frame naming the field, with the HTTP endpoints' rules.
async fn rescuer_socket(
    State(state): State<AppState>,
    Extension(e): Extension<Arc<Engine>>,
    Extension(gate): Extension<Arc<Eligibility>>,
    caller: Caller,
    ws: WebSocketUpgrade,
) -> Response {
    let id = match rescuer_id(&caller) {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
    // `[limits] ws_rescuer`: 503 `busy` beyond it.
    let slot = match state.limits.ws_rescuer.open() {
        Ok(s) => s,
        Err(err) => return err.into_response(),
    };
    let rx = e.subscribe(id);
    let watch = state.sessions.open(&caller);
    ws.max_message_size(4096)
        .on_upgrade(move |socket| async move {
            serve(
                socket,
                Session {
                    state,
                    engine: e,
                    gate,
                    rescuer_id: id,
                },
                rx,
                watch,
            )
            .await;
            drop(slot);
        })
}

struct Session {
    state: AppState,
    engine: Arc<Engine>,
    gate: Arc<Eligibility>,
    rescuer_id: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerFrame {
    incident_id: i64,
    offer_id: u32,
}

/// Closes a socket whose token was revoked (4401, docs/rescuer-protocol.md).
async fn close_revoked(socket: &mut WebSocket, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: CLOSE_REVOKED,
            reason: reason.into(),
        })))
        .await;
}

/// Policy violation: a binary frame or one that is not text.
const CLOSE_UNSUPPORTED: u16 = 1003;

impl Session {
    /// One client frame → the reply frame (`ack` or `error`).
    async fn handle(&self, text: &str) -> serde_json::Value {
        let mut v: serde_json::Value = match serde_json::from_str(text) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) => {
                return error_frame(
                    None,
                    None,
                    &ApiError::bad_request("body", "a frame is a JSON object"),
                )
            }
            Err(err) => {
                return error_frame(
                    None,
                    None,
                    &ApiError::BadRequest {
                        field: None,
                        message: format!("malformed JSON: {err}"),
                    },
                )
            }
        };
        let obj = v.as_object_mut().expect("checked above");
        // `ref` is the client's own correlation id, echoed back untouched.
        let r = obj.remove("ref");
        let kind = obj.remove("type");
        let kind = kind
            .as_ref()
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let result = match kind.as_str() {
            "location" => match aednet_api::extract::from_value::<LocationInput>(v) {
                Ok(input) => self
                    .gate
                    .accept_location(&self.state, self.rescuer_id, &input)
                    .await
                    .map(|_| json!({})),
                Err(err) => Err(err),
            },
            "accept" | "decline" | "arrived" => {
                let answer = match kind.as_str() {
                    "accept" => Answer::Accept,
                    "decline" => Answer::Decline,
                    _ => Answer::Arrived,
                };
                match aednet_api::extract::from_value::<AnswerFrame>(v) {
                    Ok(f) => self
                        .engine
                        .answer(f.incident_id, f.offer_id, self.rescuer_id, answer)
                        .await
                        .map_err(ApiError::from)
                        .map(|a| serde_json::to_value(a).unwrap_or_default()),
                    Err(err) => Err(err),
                }
            }
            "received" => match aednet_api::extract::from_value::<crate::push_http::Received>(v) {
                Ok(f) => match f.key(self.rescuer_id) {
                    Ok(key) => self
                        .engine
                        .confirm_received(key, f.via.unwrap_or(aednet_store::Channel::Ws))
                        .await
                        .map_err(ApiError::from)
                        .map(|()| json!({})),
                    Err(err) => Err(err),
                },
                Err(err) => Err(err),
            },
            _ => Err(ApiError::invalid(
                "type",
                "type must be one of location, accept, decline, arrived, received",
            )),
        };
        match result {
            Ok(mut body) => {
                body["type"] = json!("ack");
                body["of"] = json!(kind);
                if let Some(r) = r {
                    body["ref"] = r;
                }
                body
            }
            Err(err) => error_frame(r, Some(&kind), &err),
        }
    }
}

fn error_frame(
    r: Option<serde_json::Value>,
    of: Option<&str>,
    err: &ApiError,
) -> serde_json::Value {
    let (status, body) = err.status_and_body();
    let mut v = json!({"type": "error", "status": status.as_u16(), "error": body.error,
        "message": body.message, "field": body.field});
    if let Some(of) = of.filter(|o| !o.is_empty()) {
        v["of"] = json!(of);
    }
    if let Some(r) = r {
        v["ref"] = r;
    }
    v
}

/// Offer, stand-down and cancel frames already on this socket: a frame pushed again (after
/// the owner of an incident died and another node took it over, or one that raced the
/// pending offers sent on connect) is not delivered twice.
#[derive(Default)]
struct Delivered(std::collections::HashSet<(i64, i64, String)>);

impl Delivered {
    /// Whether `frame` should go out; remembers it.
    fn first_time(&mut self, frame: &str) -> bool {
        #[derive(Deserialize)]
        struct Key {
            #[serde(rename = "type")]
            kind: String,
            incident_id: Option<i64>,
            offer_id: Option<i64>,
        }
        match serde_json::from_str::<Key>(frame) {
            Ok(k) if matches!(k.kind.as_str(), "offer" | "stand_down" | "cancel") => {
                self.0.insert((
                    k.incident_id.unwrap_or_default(),
                    k.offer_id.unwrap_or_default(),
                    k.kind,
                ))
            }
            _ => true,
        }
    }
}

async fn serve(
    mut socket: WebSocket,
    session: Session,
    mut rx: tokio::sync::broadcast::Receiver<String>,
    mut watch: SessionWatch,
) {
    let (e, id) = (session.engine.clone(), session.rescuer_id);
    let mut delivered = Delivered::default();
    for m in e.offers_for(id).await {
        let text = m.to_string();
        if delivered.first_time(&text) && socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            reason = watch.revoked() => {
                close_revoked(&mut socket, reason).await;
                break;
            }
            m = rx.recv() => match m {
                Ok(text) => {
                    if delivered.first_time(&text)
                        && socket.send(Message::Text(text.into())).await.is_err()
                    {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    for m in e.offers_for(id).await {
                        let text = m.to_string();
                        if delivered.first_time(&text)
                            && socket.send(Message::Text(text.into())).await.is_err()
                        {
                            return;
                        }
                    }
                }
                Err(RecvError::Closed) => break,
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Text(t))) => {
                    let reply = session.handle(t.as_str()).await;
                    if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Binary(_))) => {
                    let _ = socket
                        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                            code: CLOSE_UNSUPPORTED,
                            reason: "frames are JSON text".into(),
                        })))
                        .await;
                    break;
                }
                _ => break,
            }
        }
    }
}

/// `GET /ws/dispatch` (dispatcher or admin): every incident change as it happens.
async fn dispatch_socket(
    State(state): State<AppState>,
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(err) = caller.require(DISPATCH) {
        return err.into_response();
    }
    // `[limits] ws_dispatch`: 503 `busy` beyond it.
    let slot = match state.limits.ws_dispatch.open() {
        Ok(s) => s,
        Err(err) => return err.into_response(),
    };
    let mut rx = e.board();
    let mut watch = state.sessions.open(&caller);
    ws.max_message_size(4096).on_upgrade(move |mut socket| async move {
        let _slot = slot;
        loop {
            tokio::select! {
                reason = watch.revoked() => {
                    close_revoked(&mut socket, reason).await;
                    break;
                }
                m = rx.recv() => match m {
                    Ok(text) => {
                        if socket.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        let resync = json!({"type": "resync", "missed": n}).to_string();
                        if socket.send(Message::Text(resync.into())).await.is_err() {
                            break;
                        }
                    }
                    Err(RecvError::Closed) => break,
                },
                m = socket.recv() => {
                    if !matches!(m, Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Text(_)))) {
                        break;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::Delivered;

    #[test]
    fn a_socket_gets_each_offer_and_stand_down_once() {
        let mut d = Delivered::default();
        let offer = r#"{"type":"offer","incident_id":4,"offer_id":2,"lat":1.0}"#;
        assert!(d.first_time(offer));
        // Pushed again by the node that took the incident over (fields may differ).
        assert!(!d.first_time(r#"{"type":"offer","incident_id":4,"offer_id":2,"state":"offered"}"#));
        // Another offer of the same incident, and the same offer id of another incident.
        assert!(d.first_time(r#"{"type":"offer","incident_id":4,"offer_id":3}"#));
        assert!(d.first_time(r#"{"type":"offer","incident_id":5,"offer_id":2}"#));
        let down = r#"{"type":"stand_down","incident_id":4,"reason":"x"}"#;
        assert!(d.first_time(down));
        assert!(!d.first_time(down));
        // Live updates always go out.
        let update = r#"{"type":"update","incident_id":4,"offer_id":2,"eta_s":30}"#;
        assert!(d.first_time(update));
        assert!(d.first_time(update));
        assert!(d.first_time("not json"));
    }
}
