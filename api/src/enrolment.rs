//! `POST /api/v1/rescuers/{id}/enrolment`: an admin signs a rescuer's phone in by QR code. It
//! issues a rescuer token bound to that rescuer and answers with the enrolment link
//! `<base_url>/responder#enrol=<token>` and that link as a QR code (SVG, drawn here: no CDN,
//! nothing leaves the server). The token is a secret shown once, like any new token: only its
//! hash is stored, the answer is `no-store`, and the link keeps the token in the fragment, which
//! browsers never send to a server (the app removes it from the address bar at once).

use aednet_core::Role;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{new_token, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{IdPath, JsonBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/rescuers/{id}/enrolment", post(enrol))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentInput {
    /// Where phones reach this server, e.g. `https://aed.example.org` (the console sends its
    /// own origin). Default: the request's `Host`, `https` behind a proxy that says so.
    #[serde(default)]
    pub base_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolment {
    /// The new token's id (revoke it with `DELETE /api/v1/tokens/{id}`).
    pub token_id: i64,
    pub rescuer_id: i64,
    /// Shown once: the rescuer token itself.
    pub token: String,
    /// `<base_url>/responder#enrol=<token>`: opening it signs the phone in.
    pub url: String,
    /// The link as a QR code, an SVG document.
    pub qr_svg: String,
}

/// `scheme://host[:port]` from `base`, or 422 naming `base_url`.
fn origin_of(base: &str) -> ApiResult<String> {
    let bad = || {
        ApiError::invalid(
            "base_url",
            "base_url must be an http or https origin such as https://aed.example.org",
        )
    };
    let uri: Uri = base.trim().parse().map_err(|_| bad())?;
    let scheme = uri.scheme_str().ok_or_else(bad)?;
    let authority = uri.authority().ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https")
        || authority.as_str().contains('@')
        || !matches!(uri.path(), "" | "/")
        || uri.query().is_some()
    {
        return Err(bad());
    }
    Ok(format!("{scheme}://{authority}"))
}

/// The origin from the request when the console did not say.
fn origin_from_headers(headers: &HeaderMap) -> ApiResult<String> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::invalid("base_url", "base_url is needed (no Host header)"))?;
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    origin_of(&format!(
        "{}://{host}",
        if https { "https" } else { "http" }
    ))
}

/// The QR code of `text` as an SVG document (error correction M: a phone camera reads it off
/// a screen at arm's length; 4 px per module, the standard quiet zone).
pub fn qr_svg(text: &str) -> ApiResult<String> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::Internal(format!("QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .module_dimensions(4, 4)
        .dark_color(qrcode::render::svg::Color("#000"))
        .light_color(qrcode::render::svg::Color("#fff"))
        .build())
}

#[utoipa::path(post, path = "/api/v1/rescuers/{id}/enrolment", tag = "rescuers", params(("id" = i64, Path)),
    request_body = EnrolmentInput, security(("bearer" = [])),
    responses((status = 201, body = Enrolment), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
/// Issues a rescuer token for the rescuer's phone and answers with its enrolment link and QR
/// code (admin). The token is shown once.
#[tracing::instrument(skip(state, caller, headers, input))]
pub async fn enrol(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    headers: HeaderMap,
    JsonBody(input): JsonBody<EnrolmentInput>,
) -> ApiResult<Response> {
    caller.require(&[Role::Admin])?;
    let origin = match input.base_url.as_deref() {
        Some(b) => origin_of(b)?,
        None => origin_from_headers(&headers)?,
    };
    let rescuer = state
        .store
        .get_rescuer(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let name: String = format!("responder app: {}", rescuer.data.name)
        .chars()
        .take(100)
        .collect();
    let (secret, new) = new_token(&name, Role::Rescuer, Some(id));
    let url = format!("{origin}/responder#enrol={secret}");
    let qr_svg = qr_svg(&url)?;
    let rec = state.store.create_token(&new).await?;
    let body = Enrolment {
        token_id: rec.id,
        rescuer_id: id,
        token: secret,
        url,
        qr_svg,
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            origin_of("https://aed.example.org/").unwrap(),
            "https://aed.example.org"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "aed.example.org",
            "ftp://aed.example.org",
            "https://aed.example.org/x",
            "https://aed.example.org/?a=1",
            "https://user@aed.example.org",
            "javascript:alert(1)",
        ] {
            assert!(origin_of(bad).is_err(), "{bad}");
        }
    }
}
