//! The one error shape every endpoint answers with.

use std::fmt;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};
use serde_json::json;
use wa_pairing_store::retry::Classify as _;
use wa_pairing_store::{ErrorKind, StoreError};

/// The stable, machine-readable code of an [`ApiError`]: what a client (the device page
/// among them) decides on and shows in its own words and languages; the message beside it is
/// English, for developers.
///
/// [`ErrorCode::ALL`] lists every code the API can answer with; the device page holds an
/// Indonesian and an English text for each (a test checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 401: no access token, or one that does not verify.
    Unauthorized,
    /// 401: the access token has expired: sign in again.
    SessionExpired,
    /// 404: no such device for this user.
    NotFound,
    /// 422: the request is not what the endpoint takes.
    InvalidInput,
    /// 422: the device name is empty, too long or carries characters that are not allowed.
    InvalidName,
    /// 422: the phone number cannot be read as a WhatsApp number.
    InvalidPhone,
    /// 409: the action is not possible in the device's current state.
    Conflict,
    /// 403: the owner already has as many devices as allowed.
    DeviceLimit,
    /// 429: the owner started pairing too often; `Retry-After` says when to try again.
    RateLimited,
    /// 429: WhatsApp limits pairing for this number; `Retry-After` says when to try again.
    Throttled,
    /// 404: the device shows no QR code now.
    NoQr,
    /// 503: the device store cannot be reached right now.
    Unavailable,
    /// 500: the server could not complete the request.
    Internal,
}

impl ErrorCode {
    /// Every code the API can answer with.
    pub const ALL: &'static [Self] = &[
        Self::Unauthorized,
        Self::SessionExpired,
        Self::NotFound,
        Self::InvalidInput,
        Self::InvalidName,
        Self::InvalidPhone,
        Self::Conflict,
        Self::DeviceLimit,
        Self::RateLimited,
        Self::Throttled,
        Self::NoQr,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The code as sent: `unauthorized`, `session_expired`, `not_found`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::SessionExpired => "session_expired",
            Self::NotFound => "not_found",
            Self::InvalidInput => "invalid_input",
            Self::InvalidName => "invalid_name",
            Self::InvalidPhone => "invalid_phone",
            Self::Conflict => "conflict",
            Self::DeviceLimit => "device_limit",
            Self::RateLimited => "rate_limited",
            Self::Throttled => "throttled",
            Self::NoQr => "no_qr",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An API error: an HTTP status, a stable code and a message a person can act on.
///
/// Serialised as `{"error": {"code": "...", "message": "..."}}`, with `Retry-After` when
/// waiting helps. The message is English; clients that speak to people in other languages
/// show their own words for the [`code`](ErrorCode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: ErrorCode,
    /// What happened and what to do, in English.
    pub message: String,
    /// How long to wait before trying again, if known.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with these parts.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 401: no token, or a token that does not verify.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// 401: the token has expired.
    pub fn session_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::SessionExpired,
            "the access token has expired: sign in again",
        )
    }

    /// 404: no such device for this user (whether it exists for another is never said).
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such device")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (status, code, message) = match e.kind() {
            ErrorKind::NotFound => return Self::not_found(),
            ErrorKind::InvalidInput => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidInput,
                e.message().to_owned(),
            ),
            ErrorKind::InvalidTransition | ErrorKind::Conflict | ErrorKind::LeaseLost => (
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                e.message().to_owned(),
            ),
            ErrorKind::QuotaExceeded => (
                StatusCode::FORBIDDEN,
                ErrorCode::DeviceLimit,
                e.message().to_owned(),
            ),
            ErrorKind::Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::Throttled,
                e.message().to_owned(),
            ),
            // The owner's pace, kept by the store for every replica and every way a row is
            // written.
            ErrorKind::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                e.message().to_owned(),
            ),
            ErrorKind::Unavailable | ErrorKind::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "the device store is unavailable right now: try again shortly".to_owned(),
            ),
            _ => {
                tracing::error!(error = %e, "store failure behind an API call");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The page's table of error texts: the JSON object between the markers in `app.js`.
    fn page_texts() -> serde_json::Map<String, serde_json::Value> {
        let js = include_str!("../assets/app.js");
        let start = js
            .find("/* error-texts */")
            .expect("app.js marks its error texts")
            + "/* error-texts */".len();
        let end = js[start..]
            .find("/* end error-texts */")
            .expect("app.js ends its error texts")
            + start;
        serde_json::from_str(&js[start..end]).expect("the error texts are JSON")
    }

    #[test]
    fn the_page_has_both_languages_for_every_code_the_api_can_return() {
        let texts = page_texts();
        for code in ErrorCode::ALL {
            let text = texts
                .get(code.as_str())
                .unwrap_or_else(|| panic!("the page has no text for `{code}`"));
            for lang in ["id", "en"] {
                let words = text[lang].as_str().unwrap_or_default();
                assert!(
                    words.trim().len() > 5,
                    "`{code}` has no {lang} text in the page"
                );
            }
            assert_ne!(text["id"], text["en"], "`{code}`: two languages, not one");
        }
        // And nothing the API never says (a renamed code), but the page's own fallback.
        for key in texts.keys() {
            assert!(
                key == "unknown" || ErrorCode::ALL.iter().any(|c| c.as_str() == key),
                "the page has a text for `{key}`, which the API never returns"
            );
        }
        assert!(
            texts.contains_key("unknown"),
            "a text for codes it does not know"
        );
    }

    #[test]
    fn every_store_error_maps_to_a_listed_code() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::InvalidInput,
            ErrorKind::InvalidTransition,
            ErrorKind::Conflict,
            ErrorKind::LeaseLost,
            ErrorKind::QuotaExceeded,
            ErrorKind::Throttled,
            ErrorKind::RateLimited,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
        ] {
            let e = ApiError::from(StoreError::new(kind, "x"));
            assert!(ErrorCode::ALL.contains(&e.code), "{kind:?}");
        }
    }
}
