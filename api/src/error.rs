//! The API's one error type and its JSON body: `{"error": code, "message": …, "field": …}`.
//!
//! Client mistakes are 4xx and name the offending field or parameter. Server faults are an
//! opaque 500 whose detail goes to tracing only, so nothing internal (SQL, paths, secrets)
//! leaks to a caller.

use aednet_core::FieldError;
use aednet_store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: unparsable JSON, a query parameter of the wrong type.
    #[error("{message}")]
    BadRequest {
        field: Option<String>,
        message: String,
    },
    /// Well-formed but invalid: a value out of range, an unknown enum value, a bad date.
    #[error("{0}")]
    Invalid(FieldError),
    #[error("authentication required")]
    Unauthorized,
    #[error("this token's role may not do this")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    #[error("request body too large")]
    PayloadTooLarge,
    /// Per-client rate limit; retry after the given number of seconds.
    #[error("too many requests from this client; retry in {0} s")]
    RateLimited(u64),
    #[error("internal error")]
    Internal(String),
    /// A dependency is briefly unreachable (the node owning an incident died and another has
    /// not taken it over yet): retry shortly.
    #[error("{0}")]
    Unavailable(String),
    /// A bounded resource is full (concurrent coverage builds, WebSocket connections of one
    /// kind): 503 with `Retry-After`, so one kind of work cannot starve the others.
    #[error("{message}")]
    Busy { message: String, retry_after_s: u64 },
}

/// The JSON error body every 4xx/5xx carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code: `bad_request`, `invalid`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `payload_too_large`, `rate_limited`, `internal`, `unavailable`, `busy`.
    pub error: &'static str,
    pub message: String,
    /// The request field or parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid(FieldError::new(field, message))
    }

    fn parts(&self) -> (StatusCode, &'static str, Option<String>) {
        match self {
            ApiError::BadRequest { field, .. } => {
                (StatusCode::BAD_REQUEST, "bad_request", field.clone())
            }
            ApiError::Invalid(e) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                Some(e.field.clone()),
            ),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", None),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::Conflict { field, .. } => (StatusCode::CONFLICT, "conflict", field.clone()),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            ApiError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy", None),
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Invalid(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field, message } => ApiError::Conflict { field, message },
            // Unreachable, restarting, busy or full: nothing was written, retry shortly (the
            // detail is logged, never sent).
            other if other.is_transient() => {
                tracing::warn!(error = %other, "the store is unavailable");
                ApiError::Unavailable(
                    "the database is unavailable for a moment; nothing was changed, retry shortly"
                        .into(),
                )
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// Status and body as the HTTP answer would carry them (also for WebSocket error frames);
    /// an internal error's detail goes to the log, not the body.
    pub fn status_and_body(&self) -> (StatusCode, ErrorBody) {
        let (status, code, field) = self.parts();
        let message = match self {
            ApiError::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                "internal error".to_string()
            }
            ApiError::Invalid(e) => e.message.clone(),
            other => other.to_string(),
        };
        (
            status,
            ErrorBody {
                error: code,
                message,
                field,
            },
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited(secs)
        | ApiError::Busy {
            retry_after_s: secs,
            ..
        } = self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let ApiError::Unavailable(_) = self {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"aednet\""),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
