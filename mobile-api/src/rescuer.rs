//! The rescuer's own endpoints (rescuer token, bound to one rescuer): go on or off duty, report
//! position. Positions live only in memory (the geoindex, expired after its TTL), are kept only
//! with consent while on duty with a valid certificate, and are never in any public response.

use std::collections::HashMap;
use std::sync::Arc;

use aednet_api::auth::Caller;
use aednet_api::extract::JsonBody;
use aednet_api::{ApiError, ApiResult, AppState};
use aednet_core::rescuer::RescuerData;
use aednet_core::{LatLon, Role};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::NaiveDate;
use parking_lot::RwLock;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

/// What decides whether a position may be kept, per rescuer, so location updates (many per
/// second in a city) do not read the store. Filled on first use; the duty endpoint refreshes
/// it at once, and `RescuerUpserted`/`RescuerDeleted` events (an admin's edits) drop entries.
#[derive(Default)]
pub struct Eligibility {
    map: RwLock<HashMap<i64, Option<Rule>>>,
    /// Location reports per rescuer (`[limits] location_per_s`, `location_burst`); `None` is
    /// no limit. One phone stuck in a loop must not crowd out everyone else's positions.
    limiter: Option<governor::DefaultKeyedRateLimiter<i64>>,
    checks: std::sync::atomic::AtomicU64,
    /// Told of every accepted position (the dispatch engine: live distance and ETA of
    /// responders on their way). Called inline on the hot path, so it must not block.
    observer: RwLock<Option<Arc<dyn LocationObserver>>>,
}

impl std::fmt::Debug for Eligibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eligibility")
            .field("cached", &self.map.read().len())
            .finish()
    }
}

/// Something that follows accepted rescuer positions (the dispatch engine). Positions it is
/// handed must stay in memory, like the index's.
pub trait LocationObserver: Send + Sync {
    fn moved(&self, rescuer_id: i64, pos: LatLon, at: chrono::DateTime<chrono::Utc>);
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    on_duty: bool,
    consent: bool,
    issued: NaiveDate,
    expires: NaiveDate,
}

impl Rule {
    fn of(d: &RescuerData) -> Self {
        Self {
            on_duty: d.on_duty,
            consent: d.location_consent,
            issued: d.cert_issued,
            expires: d.cert_expires,
        }
    }
}

impl Eligibility {
    /// With the per-rescuer location limit of `[limits]`.
    pub fn new(limits: &aednet_api::limits::LimitsConfig) -> Self {
        let limiter = std::num::NonZeroU32::new(limits.location_per_s).map(|rate| {
            let burst = std::num::NonZeroU32::new(limits.location_burst).unwrap_or(rate);
            governor::RateLimiter::keyed(governor::Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            ..Self::default()
        }
    }

    /// 429 with the seconds to wait when rescuer `id` reports faster than allowed.
    fn check_rate(&self, id: i64) -> ApiResult<()> {
        use governor::clock::{Clock, DefaultClock};
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        // Forget idle rescuers now and then so the key map stays small.
        if self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 65_536
            == 65_535
        {
            l.retain_recent();
        }
        l.check_key(&id).map_err(|not_until| {
            ApiError::RateLimited(
                not_until
                    .wait_time_from(DefaultClock::default().now())
                    .as_secs_f64()
                    .ceil() as u64,
            )
        })
    }

    /// Follows the bus: any change to a rescuer drops its cached rule. On a cluster also takes
    /// the positions other nodes accepted (they checked the rules), as if reported here.
    pub fn start(self: &Arc<Self>, state: &AppState) {
        if let Some(peers) = &state.peers {
            let mut signals = peers.signals();
            let (me, state) = (self.clone(), state.clone());
            tokio::spawn(async move {
                loop {
                    match signals.recv().await {
                        Ok(aednet_core::Signal::RescuerMoved {
                            rescuer_id,
                            lat,
                            lon,
                            at,
                        }) => {
                            if let Ok(pos) = LatLon::new(lat, lon) {
                                me.moved(&state, rescuer_id, pos, at);
                            }
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => break,
                    }
                }
            });
        }
        let mut rx = state.bus.subscribe();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(
                        aednet_core::Event::RescuerUpserted { id }
                        | aednet_core::Event::RescuerDeleted { id },
                    ) => {
                        me.map.write().remove(&id);
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => me.map.write().clear(),
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    pub fn observe(&self, observer: Arc<dyn LocationObserver>) {
        *self.observer.write() = Some(observer);
    }

    /// A position from the rescuer's phone (HTTP or WebSocket): rate limited per rescuer (429),
    /// validated, kept in memory only with consent while on duty with a valid certificate
    /// (409 naming the field otherwise), and handed to the observer.
    pub async fn accept_location(
        &self,
        state: &AppState,
        id: i64,
        input: &LocationInput,
    ) -> ApiResult<LatLon> {
        self.check_rate(id)?;
        let pos = LatLon::new(input.lat, input.lon)?;
        if input
            .accuracy_m
            .is_some_and(|a| !(0.0..=10_000.0).contains(&a))
        {
            return Err(ApiError::invalid(
                "accuracy_m",
                "accuracy_m must be between 0 and 10000",
            ));
        }
        let r = self.get(state, id).await?.ok_or(ApiError::Forbidden)?;
        let now = state.clock.now();
        let refuse = |field: &str, message: &str| ApiError::Conflict {
            field: Some(field.into()),
            message: message.into(),
        };
        if !r.consent {
            return Err(refuse(
                "location_consent",
                "no consent to share location: nothing is kept",
            ));
        }
        if !r.on_duty {
            return Err(refuse(
                "on_duty",
                "off duty: locations are kept only while on duty",
            ));
        }
        let today = now.date_naive();
        if !(r.issued <= today && today <= r.expires) {
            return Err(refuse("certificate", "the certificate is not valid today"));
        }
        self.moved(state, id, pos, now);
        if let Some(peers) = &state.peers {
            // The other nodes plan with it too (memory only there as well).
            peers.signal(aednet_core::Signal::RescuerMoved {
                rescuer_id: id,
                lat: pos.lat,
                lon: pos.lon,
                at: now,
            });
        }
        Ok(pos)
    }

    /// An accepted position, reported here or to another node: into the index, then to the
    /// observer.
    fn moved(&self, state: &AppState, id: i64, pos: LatLon, at: chrono::DateTime<chrono::Utc>) {
        state.geo.rescuer_moved(id, pos, at);
        let observer = self.observer.read().clone();
        if let Some(o) = observer {
            o.moved(id, pos, at);
        }
    }

    async fn get(&self, state: &AppState, id: i64) -> ApiResult<Option<Rule>> {
        if let Some(r) = self.map.read().get(&id) {
            return Ok(*r);
        }
        let rule = state
            .store
            .get_rescuer(id)
            .await?
            .map(|r| Rule::of(&r.data));
        self.map.write().insert(id, rule);
        Ok(rule)
    }
}

fn rescuer_id(caller: &Caller) -> ApiResult<i64> {
    caller.subject(Role::Rescuer)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DutyInput {
    pub on_duty: bool,
    #[serde(default)]
    pub location_consent: Option<bool>,
}

#[utoipa::path(put, path = "/api/v1/me/duty", tag = "rescuers",
    request_body(content = serde_json::Value, description = r#"{"on_duty": true, "location_consent": true}"#),
    security(("bearer" = [])),
    responses((status = 200, description = "Duty and consent now"), (status = 409, body = aednet_api::error::ErrorBody)))]
/// `PUT /api/v1/me/duty` `{"on_duty": true, "location_consent": true}`. Going off duty (or
/// withdrawing consent) forgets the position at once.
pub async fn set_duty(
    State(state): State<AppState>,
    Extension(cache): Extension<Arc<Eligibility>>,
    caller: Caller,
    JsonBody(input): JsonBody<DutyInput>,
) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    let mut r = state
        .store
        .get_rescuer(id)
        .await?
        .ok_or(ApiError::Forbidden)?;
    r.data.on_duty = input.on_duty;
    if let Some(c) = input.location_consent {
        r.data.location_consent = c;
    }
    if r.data.on_duty && !r.data.is_certified_on(state.clock.now().date_naive()) {
        return Err(ApiError::Conflict {
            field: Some("on_duty".into()),
            message: "the certificate is not valid today: renew it before going on duty".into(),
        });
    }
    state
        .store
        .replace_rescuer(id, &r.data)
        .await?
        .ok_or(ApiError::Forbidden)?;
    // Before answering: a position sent right after going off duty must already be refused.
    cache.map.write().insert(id, Some(Rule::of(&r.data)));
    if !r.data.on_duty || !r.data.location_consent {
        state.geo.rescuer_gone(id);
    }
    state
        .bus
        .publish(aednet_core::Event::RescuerUpserted { id });
    Ok(
        Json(json!({"on_duty": r.data.on_duty, "location_consent": r.data.location_consent}))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationInput {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub accuracy_m: Option<f64>,
}

#[utoipa::path(post, path = "/api/v1/me/location", tag = "rescuers",
    request_body(content = serde_json::Value, description = r#"{"lat": 28.97, "lon": 118.87, "accuracy_m": 8}"#),
    security(("bearer" = [])),
    responses((status = 204, description = "Kept in memory"), (status = 409, body = aednet_api::error::ErrorBody), (status = 422, body = aednet_api::error::ErrorBody),
        (status = 429, body = aednet_api::error::ErrorBody, description = "more reports than `[limits] location_per_s` allows; Retry-After")))]
/// `POST /api/v1/me/location` `{"lat", "lon", "accuracy_m"}` → 204. 409 unless on duty with
/// consent and a valid certificate.
pub async fn report_location(
    State(state): State<AppState>,
    Extension(cache): Extension<Arc<Eligibility>>,
    caller: Caller,
    JsonBody(input): JsonBody<LocationInput>,
) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    cache.accept_location(&state, id, &input).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/v1/me/rescuer", tag = "rescuers", security(("bearer" = [])),
    responses((status = 200, description = "The caller's own record: name, certificate, duty and consent")))]
/// `GET /api/v1/me/rescuer`: what the responder app shows about its user (their own record
/// only; no position: that lives in memory and is never read back).
pub async fn my_record(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    let r = state
        .store
        .get_rescuer(id)
        .await?
        .ok_or(ApiError::Forbidden)?;
    let d = &r.data;
    Ok(Json(
        json!({"id": r.id, "name": d.name, "level": d.level, "team": d.team,
        "cert_issued": d.cert_issued, "cert_expires": d.cert_expires,
        "certified_today": d.is_certified_on(state.clock.now().date_naive()),
        "on_duty": d.on_duty, "location_consent": d.location_consent}),
    )
    .into_response())
}
