//! The link with the dispatch centre's computer-aided dispatch system (CAD), documented for
//! integrators in `docs/cad.md`.
//!
//! Inbound, `POST /api/v1/cad/incidents`: a call the CAD hands over. The CAD's credential is a
//! shared secret: each request carries `X-Aednet-Timestamp` (Unix seconds) and
//! `X-Aednet-Signature: sha256=<hex HMAC-SHA256 of "timestamp.body">`. A bad or missing
//! signature, or a timestamp outside the replay window, is 401; the same signed request again
//! is 409; a body that does not read is 422 naming the field; none of them creates anything.
//! The call id is the key of idempotency (`cad_calls`): the same call sent again (a retry with
//! a fresh signature) answers the incident made the first time. The position is, in order: the
//! caller's handset position (Advanced Mobile Location, ETSI TS 103 625: `lt`, `lg`, `rd`,
//! `top`), the CAD's own coordinates, or the address geocoded with the dispatcher's index.
//!
//! Outbound ([`outbound`]): the incident's events, signed the same way, POSTed to the CAD's URL
//! by a queue of their own that retries with back-off and never holds up dispatch.

pub mod outbound;

use std::collections::HashMap;
use std::sync::Arc;

pub use aednet_api::cad_config::CadConfig;
use aednet_api::error::ErrorBody;
use aednet_api::AppState;
use aednet_core::LatLon;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::engine::Engine;
use crate::incident::Intake;

pub const TIMESTAMP_HEADER: &str = "x-aednet-timestamp";
pub const SIGNATURE_HEADER: &str = "x-aednet-signature";

/// `sha256=<hex>` of HMAC-SHA256 over `timestamp`, `.`, `body`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Constant-time check of a `sha256=<hex>` signature.
fn verify(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(bytes) = signature.strip_prefix("sha256=").and_then(unhex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

/// The signatures this node has seen within the replay window (`[cad]` settings are in
/// [`AppState::cad`]).
#[derive(Debug, Default)]
pub struct Cad {
    seen: Mutex<HashMap<String, i64>>,
}

/// Starts sending `engine`'s incident events to the CAD, if `[cad] outbound_url` is set.
pub fn start_outbound(engine: &Arc<Engine>, config: &CadConfig) {
    if let (Some(url), Some(secret)) = (&config.outbound_url, &config.secret) {
        outbound::start(engine.clone(), url.clone(), secret.clone(), config);
    }
}

impl Cad {
    /// Whether this signature is new (and remembers it until it would be stale anyway).
    fn first_sighting(&self, signature: &str, now: i64, window: u64) -> bool {
        let window = window as i64;
        let mut seen = self.seen.lock();
        if seen.len() > 10_000 {
            seen.retain(|_, at| now - *at <= 2 * window);
        }
        match seen.get(signature) {
            Some(at) if now - *at <= 2 * window => false,
            _ => {
                seen.insert(signature.to_string(), now);
                true
            }
        }
    }
}

/// The least search score (0–1) at which a CAD address is taken without a position.
pub const MIN_GEOCODE_SCORE: f32 = 0.6;

/// A call is a few hundred bytes; the signature is checked over the whole body.
pub const MAX_BODY: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(aednet_api::auth::CAD_INBOUND_PATH, post(inbound))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(Extension(Arc::new(Cad::default())))
}

/// A refusal with the error contract's body.
fn refuse(
    status: StatusCode,
    code: &'static str,
    field: Option<&str>,
    message: String,
) -> Response {
    (
        status,
        Json(ErrorBody {
            error: code,
            message,
            field: field.map(str::to_string),
        }),
    )
        .into_response()
}

fn unauthorized(field: &str, message: impl Into<String>) -> Response {
    refuse(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        Some(field),
        message.into(),
    )
}

fn invalid(field: &str, message: impl Into<String>) -> Response {
    refuse(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        Some(field),
        message.into(),
    )
}

/// A position the CAD sends itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CadPosition {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub accuracy_m: Option<f64>,
}

/// The body of `POST /api/v1/cad/incidents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CadCall {
    pub call_id: String,
    /// When the 120 call was received (RFC 3339).
    pub received_at: DateTime<Utc>,
    /// Nature / determinant code (MPDS `09E01`, or the centre's own).
    pub nature: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub position: Option<CadPosition>,
    /// Advanced Mobile Location: an object `{"lt", "lg", "rd", "top"}` (numbers or strings)
    /// or the SMS text `A"ML=1;lt=+28.96123;lg=+118.87001;rd=15;top=20261202024000;…`.
    #[serde(default)]
    pub aml: Option<serde_json::Value>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// An AML fix: position, radius (metres, 68 % confidence per the standard) and time.
#[derive(Debug, Clone, PartialEq)]
pub struct AmlFix {
    pub pos: LatLon,
    pub radius_m: f64,
    pub at: Option<DateTime<Utc>>,
}

/// Reads AML fields from an object or an SMS body; the error names the field.
pub fn parse_aml(v: &serde_json::Value) -> Result<AmlFix, (String, String)> {
    let fields: HashMap<String, String> = match v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.to_lowercase(), s)
            })
            .collect(),
        serde_json::Value::String(s) => s
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
            .collect(),
        _ => {
            return Err((
                "aml".into(),
                "expected an object or the AML SMS text".into(),
            ))
        }
    };
    let num = |k: &str| -> Result<f64, (String, String)> {
        let raw = fields
            .get(k)
            .ok_or_else(|| (format!("aml.{k}"), "missing".to_string()))?;
        raw.trim_start_matches('+')
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| (format!("aml.{k}"), format!("not a number ({raw:?})")))
    };
    let (lat, lon) = (num("lt")?, num("lg")?);
    let pos = LatLon::named(lat, lon, "aml.lt", "aml.lg")
        .map_err(|e| (e.field.clone(), e.message.clone()))?;
    let radius_m = num("rd")?;
    if !(0.0..=100_000.0).contains(&radius_m) {
        return Err(("aml.rd".into(), "radius must be 0..=100000 m".into()));
    }
    let at = match fields.get("top") {
        None => None,
        Some(t) => Some(
            NaiveDateTime::parse_from_str(t, "%Y%m%d%H%M%S")
                .map(|n| n.and_utc())
                .map_err(|_| {
                    (
                        "aml.top".to_string(),
                        format!("expected YYYYMMDDhhmmss ({t:?})"),
                    )
                })?,
        ),
    };
    Ok(AmlFix { pos, radius_m, at })
}

/// A trimmed text field within `max` characters; the error is the message for `field`.
fn text_field(v: Option<String>, max: usize, required: bool) -> Result<Option<String>, String> {
    let v = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    match v {
        None if required => Err("required".into()),
        Some(s) if s.chars().count() > max => Err(format!("at most {max} characters")),
        Some(s) if s.chars().any(|c| c.is_control() && c != '\n') => {
            Err("control characters are not allowed".into())
        }
        v => Ok(v),
    }
}

#[tracing::instrument(skip_all)]
async fn inbound(
    State(state): State<AppState>,
    Extension(engine): Extension<Arc<Engine>>,
    Extension(cad): Extension<Arc<Cad>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = state.cad.clone();
    let Some(secret) = &config.secret else {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            None,
            "the CAD link is not configured on this server ([cad] secret)".into(),
        );
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let Some(ts) = header(TIMESTAMP_HEADER) else {
        return unauthorized("X-Aednet-Timestamp", "missing: Unix seconds of the request");
    };
    let Ok(ts_s) = ts.parse::<i64>() else {
        return unauthorized("X-Aednet-Timestamp", "not Unix seconds");
    };
    let Some(sig) = header(SIGNATURE_HEADER) else {
        return unauthorized(
            "X-Aednet-Signature",
            "missing: sha256=<hex HMAC-SHA256 of timestamp.body>",
        );
    };
    if !verify(secret.expose().as_bytes(), ts, &body, sig) {
        tracing::warn!("CAD request with a bad signature refused");
        return unauthorized(
            "X-Aednet-Signature",
            "the signature does not match (HMAC-SHA256 of timestamp.body with the shared secret)",
        );
    }
    let now = state.clock.now();
    let skew = (now.timestamp() - ts_s).abs();
    if skew > config.replay_window_s as i64 {
        return unauthorized(
            "X-Aednet-Timestamp",
            format!(
                "stale timestamp: {skew} s from the server's clock (window {} s)",
                config.replay_window_s
            ),
        );
    }
    if !cad.first_sighting(sig, now.timestamp(), config.replay_window_s) {
        return refuse(
            StatusCode::CONFLICT,
            "replayed",
            Some("X-Aednet-Signature"),
            "this signed request was received before (replay); sign a retry afresh".into(),
        );
    }
    let call: CadCall = {
        let mut de = serde_json::Deserializer::from_slice(&body);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(c) => c,
            Err(e) => {
                let path = e.path().to_string();
                let message = e.inner().to_string();
                // A missing or unknown field is reported at the top level: name it.
                let named = ["missing field `", "unknown field `"]
                    .iter()
                    .find_map(|p| message.strip_prefix(p))
                    .and_then(|rest| rest.split('`').next())
                    .map(str::to_string);
                let field = match (path.as_str(), named) {
                    ("." | "?", Some(n)) => n,
                    // Not JSON at all (serde_path_to_error has no path to give).
                    ("." | "?", None) => "body".to_string(),
                    (p, _) => p.to_string(),
                };
                return invalid(&field, message);
            }
        }
    };
    let call_id = match text_field(Some(call.call_id), 100, true) {
        Ok(v) => v.unwrap_or_default(),
        Err(m) => return invalid("call_id", m),
    };
    let nature = match text_field(Some(call.nature), 32, true) {
        Ok(v) => v.unwrap_or_default(),
        Err(m) => return invalid("nature", m),
    };
    let address = match text_field(call.address, 500, false) {
        Ok(v) => v,
        Err(m) => return invalid("address", m),
    };
    let notes = match text_field(call.notes, 2000, false) {
        Ok(v) => v,
        Err(m) => return invalid("notes", m),
    };
    // The handset's own fix first, then the CAD's coordinates, then the address.
    let (at, source, accuracy_m, label) = if let Some(aml) = &call.aml {
        match parse_aml(aml) {
            Ok(f) => (f.pos, "aml", Some(f.radius_m), None),
            Err((field, m)) => return invalid(&field, m),
        }
    } else if let Some(p) = &call.position {
        let pos = match LatLon::named(p.lat, p.lon, "position.lat", "position.lon") {
            Ok(pos) => pos,
            Err(e) => return invalid(&e.field, e.message),
        };
        if p.accuracy_m
            .is_some_and(|a| !(0.0..=100_000.0).contains(&a))
        {
            return invalid("position.accuracy_m", "0..=100000 m");
        }
        (pos, "cad", p.accuracy_m, None)
    } else if let Some(a) = &address {
        // Nobody checks this answer before rescuers are sent: only a close match will do.
        match state
            .geocode
            .search(a, None, 1)
            .into_iter()
            .find(|r| r.score >= MIN_GEOCODE_SCORE)
        {
            Some(r) => (
                LatLon {
                    lat: r.lat,
                    lon: r.lon,
                },
                "geocoded",
                None,
                Some(r.label),
            ),
            None => {
                return invalid(
                    "address",
                    "no such address in the address index; send a position or aml",
                )
            }
        }
    } else {
        return invalid("position", "send a position, an aml fix or an address");
    };
    let body_sha = hex(&Sha256::digest(&body));
    match state.store.claim_cad_call(&call_id, &body_sha, now).await {
        Ok(aednet_store::CadClaim::Claimed) => {}
        Ok(aednet_store::CadClaim::Existing {
            incident_id: Some(id),
            body_sha256,
        }) if body_sha256 == body_sha => {
            return (
                StatusCode::OK,
                Json(json!({"incident_id": id, "call_id": call_id, "duplicate": true})),
            )
                .into_response()
        }
        Ok(aednet_store::CadClaim::Existing {
            incident_id: Some(id),
            ..
        }) => {
            return refuse(
                StatusCode::CONFLICT,
                "conflict",
                Some("call_id"),
                format!(
                    "call {call_id} was handed over before with a different body (incident {id})"
                ),
            )
        }
        Ok(aednet_store::CadClaim::Existing {
            incident_id: None, ..
        }) => {
            return refuse(
                StatusCode::CONFLICT,
                "conflict",
                Some("call_id"),
                format!("call {call_id} is being created by an earlier request; retry shortly"),
            )
        }
        Err(e) => return aednet_api::ApiError::from(e).into_response(),
    }
    let intake = Intake {
        call_id: call_id.clone(),
        nature,
        received_at: call.received_at,
        position_source: source.into(),
        accuracy_m,
        geocoded_label: label.clone(),
    };
    let created = engine
        .create_from(at, address.or(label.clone()), notes, Some(intake))
        .await;
    let inc = match created {
        Ok(inc) => inc,
        Err(e) => {
            if let Err(re) = state.store.release_cad_call(&call_id).await {
                tracing::error!(error = %re, "releasing a CAD call claim");
            }
            return aednet_api::ApiError::from(e).into_response();
        }
    };
    if let Err(e) = state.store.bind_cad_call(&call_id, inc.id).await {
        tracing::error!(error = %e, incident = inc.id, "recording the CAD call's incident");
    }
    (
        StatusCode::CREATED,
        Json(json!({
            "incident_id": inc.id,
            "call_id": call_id,
            "lat": inc.lat,
            "lon": inc.lon,
            "position_source": source,
            "accuracy_m": accuracy_m,
            "geocoded_label": label,
            "offers": inc.offers.len(),
            "state": inc.state,
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_same_secret_timestamp_and_body() {
        let s = sign(b"k", "1700000000", b"{}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64);
        assert!(verify(b"k", "1700000000", b"{}", &s));
        assert!(!verify(b"x", "1700000000", b"{}", &s));
        assert!(!verify(b"k", "1700000001", b"{}", &s));
        assert!(!verify(b"k", "1700000000", b"{ }", &s));
        assert!(!verify(b"k", "1700000000", b"{}", "sha256=zz"));
        assert!(!verify(b"k", "1700000000", b"{}", &s[7..]));
    }

    #[test]
    fn aml_as_object_or_sms_text() {
        let f = parse_aml(
            &json!({"lt": "+28.96123", "lg": 118.87001, "rd": "15", "top": "20261202024000"}),
        )
        .unwrap();
        assert_eq!(f.pos.lat, 28.96123);
        assert_eq!(f.radius_m, 15.0);
        assert_eq!(f.at.unwrap().to_rfc3339(), "2026-12-02T02:40:00+00:00");
        let f = parse_aml(&json!(
            "A\"ML=1;lt=+55.74317;lg=-4.26881;rd=50;top=20191112100000;lc=83;pm=G;si=123456789012345;ei=1234567890123456;mcc=234;mnc=30;ml=124"
        ))
        .unwrap();
        assert_eq!(
            (f.pos.lat, f.pos.lon, f.radius_m),
            (55.74317, -4.26881, 50.0)
        );
        assert_eq!(
            parse_aml(&json!({"lt": 95, "lg": 1, "rd": 5}))
                .unwrap_err()
                .0,
            "aml.lt"
        );
        assert_eq!(
            parse_aml(&json!({"lt": 5, "lg": 1})).unwrap_err().0,
            "aml.rd"
        );
        assert_eq!(
            parse_aml(&json!({"lt": 5, "lg": 1, "rd": 3, "top": "yesterday"}))
                .unwrap_err()
                .0,
            "aml.top"
        );
    }
}
