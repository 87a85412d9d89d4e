//! PostgREST answers and transport failures as [`StoreError`]s.
//!
//! The `postgrest` crate returns every HTTP status as success, and the client follows no
//! redirects, so each response, a 3xx included, goes through [`from_status`]. PostgREST's
//! error body is `{"code", "message", "details", "hint"}` (PostgREST docs, "Errors");
//! `code` is either a PostgreSQL SQLSTATE (classified by [`wa_pairing_sql::classify`],
//! the same table as the PostgreSQL backend) or one of PostgREST's own `PGRST...` codes.

use std::time::Duration;

use serde::Deserialize;
use wa_pairing_retry::Verdict;
use wa_pairing_sql::{SqlFailure, classify};
use wa_pairing_store::{ErrorKind, StoreError};

/// PostgREST's error body.
#[derive(Debug, Default, Deserialize)]
struct Body {
    code: Option<String>,
    message: Option<String>,
    hint: Option<String>,
}

/// What a 3xx answer means for this client.
const REDIRECTED: &str = "Supabase answered with a redirect to another location; check SUPABASE_URL (use the project URL https://<ref>.supabase.co)";

fn is_sqlstate(code: &str) -> bool {
    code.len() == 5 && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Classifies a non-success answer: its status, body and `Retry-After` header.
pub(crate) fn from_status(status: u16, body: &str, retry_after: Option<&str>) -> StoreError {
    let parsed: Body = serde_json::from_str(body).unwrap_or_default();
    let message = parsed.message.as_deref().unwrap_or("").trim();
    let code = parsed.code.as_deref().unwrap_or("");
    let said = |what: &str| {
        if message.is_empty() {
            format!("{what} (HTTP {status})")
        } else {
            format!("{what} (HTTP {status}: {message})")
        }
    };

    if (300..400).contains(&status) {
        // Not followed (the client has no redirect policy), so the key went nowhere else;
        // the `Location` is not echoed.
        return StoreError::new(
            ErrorKind::Configuration,
            format!("{REDIRECTED} (HTTP {status}, not followed)"),
        );
    }
    if status == 401 || matches!(code, "PGRST300" | "PGRST301" | "PGRST302" | "PGRST303") {
        return StoreError::new(
            ErrorKind::PermissionDenied,
            said(
                "Supabase refused the service key: it is wrong, expired, or for another project; set SUPABASE_SERVICE_ROLE_KEY to the project's secret key",
            ),
        );
    }
    if status == 429 {
        let wait = retry_after
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return StoreError::new(
            ErrorKind::Unavailable,
            said("Supabase is rate-limiting this project's API: slow down"),
        )
        .with_verdict(Verdict::Throttled { retry_after: wait });
    }
    if code == "PGRST116" {
        return StoreError::new(ErrorKind::NotFound, "the device does not exist");
    }
    if matches!(code, "PGRST000" | "PGRST001" | "PGRST002" | "PGRST003") {
        return StoreError::new(
            ErrorKind::Unavailable,
            said("Supabase's API cannot reach its database right now: try again"),
        )
        .with_verdict(Verdict::Retry);
    }
    if code.starts_with("PGRST2") || code == "PGRST106" {
        return StoreError::new(
            ErrorKind::Configuration,
            said(
                "the project's schema is not what wa-pairing expects (a table or function is missing or not exposed): apply the migrations with `supabase db push`",
            ),
        );
    }
    if is_sqlstate(code) && !code.starts_with("PGRST") {
        let e = classify(&SqlFailure {
            code: Some(code),
            message,
            hint: parsed.hint.as_deref(),
        });
        // An unknown database error behind a 5xx is the server's trouble: worth a retry.
        if status >= 500 && e.kind() == ErrorKind::Backend {
            return StoreError::new(ErrorKind::Unavailable, e.message().to_owned())
                .with_verdict(Verdict::Retry);
        }
        return e;
    }
    if status >= 500 {
        return StoreError::new(
            ErrorKind::Unavailable,
            said("Supabase answered with a server error: try again"),
        )
        .with_verdict(Verdict::Retry);
    }
    if status == 403 {
        return StoreError::new(
            ErrorKind::PermissionDenied,
            said(
                "Supabase refused the request: the key lacks a permission wa-pairing needs; use the service key",
            ),
        );
    }
    if status == 404 {
        return StoreError::new(
            ErrorKind::Configuration,
            said("Supabase has no such endpoint: check SUPABASE_URL and apply the migrations"),
        );
    }
    StoreError::new(
        ErrorKind::Backend,
        said(&format!(
            "Supabase refused the request{}",
            if code.is_empty() {
                String::new()
            } else {
                format!(" with {code}")
            }
        )),
    )
}

/// Classifies a transport failure (no answer at all).
pub(crate) fn from_transport(op: &str, e: &reqwest::Error) -> StoreError {
    if e.is_timeout() {
        return wa_pairing_sql::timed_out("Supabase", op);
    }
    let what = if e.is_connect() {
        "Supabase could not be reached: check SUPABASE_URL and the network"
    } else {
        "the connection to Supabase failed: try again"
    };
    StoreError::new(ErrorKind::Unavailable, format!("{what} ({op})")).with_verdict(Verdict::Retry)
}

/// A success answer whose body cannot be read.
pub(crate) fn unreadable(op: &str) -> StoreError {
    StoreError::new(
        ErrorKind::Backend,
        format!(
            "Supabase answered {op} with a body wa-pairing cannot read: check that SUPABASE_URL points at the project's REST API"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_pairing_retry::Classify as _;

    fn body(code: &str, message: &str) -> String {
        serde_json::json!({"code": code, "message": message, "details": null, "hint": null})
            .to_string()
    }

    #[test]
    fn the_table() {
        // (status, code, kind, retryable)
        let cases: &[(u16, &str, ErrorKind, bool)] = &[
            (401, "PGRST301", ErrorKind::PermissionDenied, false),
            (401, "", ErrorKind::PermissionDenied, false),
            (429, "", ErrorKind::Unavailable, true),
            (406, "PGRST116", ErrorKind::NotFound, false),
            (503, "PGRST001", ErrorKind::Unavailable, true),
            (404, "PGRST202", ErrorKind::Configuration, false),
            (404, "PGRST205", ErrorKind::Configuration, false),
            (400, "WAL01", ErrorKind::LeaseLost, false),
            (400, "WAT01", ErrorKind::InvalidTransition, false),
            (400, "WAN01", ErrorKind::NotFound, false),
            (400, "WAI01", ErrorKind::InvalidInput, false),
            (400, "WAI03", ErrorKind::InvalidInput, false),
            (409, "23505", ErrorKind::Conflict, false),
            (500, "08006", ErrorKind::Unavailable, true),
            (503, "53300", ErrorKind::Unavailable, true),
            (409, "40001", ErrorKind::Unavailable, true),
            (409, "40P01", ErrorKind::Unavailable, true),
            (500, "XX000", ErrorKind::Unavailable, true),
            (404, "42883", ErrorKind::Configuration, false),
            (403, "42501", ErrorKind::PermissionDenied, false),
            (403, "", ErrorKind::PermissionDenied, false),
            (400, "22P02", ErrorKind::InvalidInput, false),
            (502, "", ErrorKind::Unavailable, true),
            (404, "", ErrorKind::Configuration, false),
            (400, "PGRST100", ErrorKind::Backend, false),
            (418, "", ErrorKind::Backend, false),
            (307, "", ErrorKind::Configuration, false),
            (301, "", ErrorKind::Configuration, false),
        ];
        for (status, code, kind, retry) in cases {
            let e = from_status(*status, &body(code, "msg"), None);
            assert_eq!(e.kind(), *kind, "{status} {code}");
            assert_eq!(e.verdict().is_retryable(), *retry, "{status} {code}");
        }
    }

    #[test]
    fn a_redirect_is_a_permanent_configuration_error() {
        for status in [300, 301, 302, 303, 307, 308] {
            let e = from_status(status, "", None);
            assert_eq!(e.kind(), ErrorKind::Configuration, "{status}");
            assert!(!e.verdict().is_retryable(), "{status}");
            assert!(
                e.message().starts_with(
                    "Supabase answered with a redirect to another location; check SUPABASE_URL (use the project URL https://<ref>.supabase.co)"
                ),
                "{e}"
            );
            assert!(e.message().contains(&status.to_string()), "{e}");
        }
    }

    #[test]
    fn throttling_keeps_the_servers_wait() {
        let e = from_status(429, "", Some("42"));
        assert_eq!(e.verdict().retry_after(), Some(Duration::from_secs(42)));
        let ours = from_status(
            400,
            &serde_json::json!({"code": "WAR01", "message": "wait", "hint": "90"}).to_string(),
            None,
        );
        assert_eq!(ours.kind(), ErrorKind::Throttled);
        assert_eq!(ours.verdict().retry_after(), Some(Duration::from_secs(90)));
    }

    #[test]
    fn a_401_says_what_to_do_and_survives_a_body_that_is_not_json() {
        let e = from_status(401, "<html>nope</html>", None);
        assert!(e.message().contains("SUPABASE_SERVICE_ROLE_KEY"), "{e}");
        let e = from_status(500, "not json", None);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }
}
