//! Request extractors that turn every client mistake into an [`ApiError`] naming the field:
//! axum's stock `Json` and `Path` rejections carry plain-text bodies without one.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use std::collections::HashMap;

use crate::error::ApiError;

/// A JSON body. Syntax errors are 400 `bad_request`; a well-formed document with a field of
/// the wrong type, an unknown enum value or an unknown field is 422 naming that field's path.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json") || ct.contains("+json"));
        if !is_json {
            return Err(ApiError::bad_request(
                "content-type",
                "expected Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rej| {
                if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad_request("body", rej.body_text())
                }
            })?;
        // Parse syntax first so "not JSON at all" and "JSON with a bad field" get different codes.
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest {
                field: None,
                message: format!("malformed JSON: {e}"),
            })?;
        from_value(value).map(JsonBody)
    }
}

/// A parsed JSON document into `T`, with a field of the wrong type, an unknown enum value, an
/// unknown or a missing field as 422 naming that field (also for WebSocket frames).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = if path == "." {
            // serde names a missing or unknown field only in its message: "missing field `lat`".
            message
                .strip_prefix("missing field `")
                .or_else(|| message.strip_prefix("unknown field `"))
                .and_then(|m| m.split('`').next())
                .unwrap_or("body")
                .to_string()
        } else {
            path
        };
        ApiError::invalid(field, message)
    })
}

/// A numeric `{id}` path segment; anything else is 400 naming `id`.
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw): axum::extract::Path<String> =
            axum::extract::Path::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::bad_request("id", "missing id"))?;
        raw.parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(IdPath)
            .ok_or_else(|| ApiError::bad_request("id", "id must be a positive integer"))
    }
}

/// Query parameters as strings, parsed by the handler so that each error names its parameter.
#[derive(Debug, Default)]
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let map: HashMap<String, String> =
            serde_urlencoded_pairs(q).map_err(|m| ApiError::BadRequest {
                field: None,
                message: m,
            })?;
        Ok(Params(map))
    }
}

fn serde_urlencoded_pairs(q: &str) -> Result<HashMap<String, String>, String> {
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(
        &format!("/?{q}")
            .parse()
            .map_err(|_| "malformed query string".to_string())?,
    )
    .map(|axum::extract::Query(m)| m)
    .map_err(|e| format!("malformed query string: {e}"))
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Parses a parameter with `FromStr`; a bad value is 400 naming it.
    pub fn parse<T: std::str::FromStr>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| ApiError::bad_request(name, format!("{name} must be {what}")))
            })
            .transpose()
    }
}
