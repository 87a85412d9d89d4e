//! The one error shape every endpoint answers with.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wa_pairing_store::retry::Classify as _;
use wa_pairing_store::{ErrorKind, StoreError};

/// An API error: an HTTP status, a stable code and a message a person can act on.
///
/// Serialised as `{"error": {"code": "...", "message": "..."}}`, with `Retry-After` when
/// waiting helps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (`unauthorized`, `not_found`, `invalid_phone`, ...).
    pub code: &'static str,
    /// What happened and what to do.
    pub message: String,
    /// How long to wait before trying again, if known.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with these parts.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 401: no token, or a token that does not verify.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404: no such device for this user (whether it exists for another is never said).
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such device")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (status, code, message) = match e.kind() {
            ErrorKind::NotFound => return Self::not_found(),
            ErrorKind::InvalidInput => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                e.message().to_owned(),
            ),
            ErrorKind::InvalidTransition | ErrorKind::Conflict | ErrorKind::LeaseLost => {
                (StatusCode::CONFLICT, "conflict", e.message().to_owned())
            }
            ErrorKind::QuotaExceeded => (
                StatusCode::FORBIDDEN,
                "quota_exceeded",
                e.message().to_owned(),
            ),
            ErrorKind::Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                e.message().to_owned(),
            ),
            // The owner's pace, kept by the store for every replica and every way a row is
            // written.
            ErrorKind::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                e.message().to_owned(),
            ),
            ErrorKind::Unavailable | ErrorKind::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the device store is unavailable right now: try again shortly".to_owned(),
            ),
            _ => {
                tracing::error!(error = %e, "store failure behind an API call");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server could not complete the request".to_owned(),
                )
            }
        };
        Self {
            retry_after: e.verdict().retry_after(),
            ..Self::new(status, code, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if let Some(wait) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
