#![doc = include_str!("../README.md")]

use std::time::Duration;

use serde_json::{Map, Value, json};

use wa_pairing_store::retry::Verdict;
use wa_pairing_store::{DeviceUpdate, ErrorKind, StoreError};

/// A failure reported by PostgreSQL, reduced to what classification needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlFailure<'a> {
    /// The SQLSTATE, when the server answered with an error; `None` when it could not be
    /// reached or the connection broke.
    pub code: Option<&'a str>,
    /// The server's message (the migrations' own messages are written for people).
    pub message: &'a str,
    /// The server's hint (the throttling error puts the seconds to wait there).
    pub hint: Option<&'a str>,
}

/// Classifies a failure of one of the migrations' functions, or of PostgreSQL itself.
///
/// | SQLSTATE | kind | verdict |
/// |---|---|---|
/// | `WAL01` (ours) | `LeaseLost` | permanent |
/// | `WAT01` (ours) | `InvalidTransition` | permanent |
/// | `WAN01` (ours) | `NotFound` | permanent |
/// | `WAR01` (ours) | `Throttled` | throttled, the hint's seconds |
/// | `WAI01`, `WAI02` (a name), `WAI03` (a number) (ours), `22*` | `InvalidInput` | permanent |
/// | `WAQ01` (ours) | `QuotaExceeded` | permanent |
/// | `WAP01` (ours) | `RateLimited` (the owner's pace) | throttled, the hint's seconds |
/// | `WAC01` (ours) | `Conflict` (a companion stored for another device) | permanent |
/// | `23505` | `Conflict` | permanent |
/// | `08*`, `53*`, `57P01`-`57P03`, `40001`, `40P01` | `Unavailable` | retry |
/// | `28*`, `42501` | `PermissionDenied` | permanent |
/// | `42*` | `Configuration` (schema missing: apply the migrations) | permanent |
/// | none (I/O, closed connection) | `Unavailable` | retry |
/// | anything else | `Backend` | permanent |
///
/// ```
/// use wa_pairing_store::ErrorKind;
/// use wa_pairing_sql::{SqlFailure, classify};
///
/// let e = classify(&SqlFailure { code: Some("WAL01"), message: "lease lost", hint: None });
/// assert_eq!(e.kind(), ErrorKind::LeaseLost);
/// ```
pub fn classify(f: &SqlFailure<'_>) -> StoreError {
    let Some(code) = f.code else {
        return StoreError::new(
            ErrorKind::Unavailable,
            "the database could not be reached or the connection broke: check its address and that it is up",
        );
    };
    match code {
        "WAL01" => StoreError::lease_lost(),
        "WAT01" => StoreError::new(ErrorKind::InvalidTransition, f.message),
        "WAN01" => StoreError::new(ErrorKind::NotFound, "the device does not exist"),
        "WAR01" => StoreError::throttled(f.message, hint_seconds(f.hint)),
        "WAP01" => StoreError::rate_limited(hint_seconds(f.hint).unwrap_or(Duration::from_secs(1))),
        "WAC01" => StoreError::new(ErrorKind::Conflict, f.message),
        "WAI01" | "WAI02" | "WAI03" => StoreError::new(ErrorKind::InvalidInput, f.message),
        "WAQ01" => StoreError::new(ErrorKind::QuotaExceeded, f.message),
        "23505" => StoreError::new(
            ErrorKind::Conflict,
            "the row already exists (unique constraint): use another id",
        ),
        "40001" | "40P01" => StoreError::new(
            ErrorKind::Unavailable,
            "the database aborted the transaction to resolve a conflict: try again",
        ),
        "57P01" | "57P02" | "57P03" => StoreError::new(
            ErrorKind::Unavailable,
            "the database is shutting down or restarting: try again shortly",
        ),
        "42501" => StoreError::new(
            ErrorKind::PermissionDenied,
            "the database role lacks a permission wa-pairing needs: use the table owner or the service role",
        ),
        c if c.starts_with("08") || c.starts_with("53") => StoreError::new(
            ErrorKind::Unavailable,
            "database connection failure or resources exhausted: try again",
        ),
        c if c.starts_with("28") => StoreError::new(
            ErrorKind::PermissionDenied,
            "the database refused the credentials: check the user and password",
        ),
        c if c.starts_with("42") => StoreError::new(
            ErrorKind::Configuration,
            format!(
                "the database schema is not what wa-pairing expects ({}): apply the migrations (`supabase db push` or the Postgres backend's migrate())",
                f.message
            ),
        ),
        c if c.starts_with("22") => StoreError::new(
            ErrorKind::InvalidInput,
            format!("the database refused a value: {}", f.message),
        ),
        _ => StoreError::new(
            ErrorKind::Backend,
            format!("database error {code}: {}", f.message),
        ),
    }
}

/// The seconds a throttling error's hint carries.
fn hint_seconds(hint: Option<&str>) -> Option<Duration> {
    hint.and_then(|h| h.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// The error for an operation that outlived its timeout (retryable).
pub fn timed_out(backend: &str, op: &str) -> StoreError {
    StoreError::new(
        ErrorKind::Timeout,
        format!("{backend} did not finish {op} in time: the server is slow or unreachable"),
    )
    .with_verdict(Verdict::Retry)
}

fn timestamp(d: chrono::DateTime<chrono::Utc>) -> Value {
    Value::String(d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// The JSON patch `wa_update_device(device, fence, patch)` takes: one member per column the
/// update touches, `null` to clear it; columns it leaves alone are absent.
///
/// ```
/// use wa_pairing_store::{DeviceStatus, DeviceUpdate};
///
/// let update = DeviceUpdate::status(DeviceStatus::Failed).clear_pairing_code();
/// let patch = wa_pairing_sql::update_patch(&update);
/// assert_eq!(patch["status"], "failed");
/// assert!(patch["pairing_code"].is_null());
/// assert!(patch.get("qr_code").is_none());
/// ```
pub fn update_patch(update: &DeviceUpdate) -> Value {
    let mut m = Map::new();
    if let Some(s) = update.status {
        m.insert("status".into(), json!(s.as_str()));
    }
    let mut field = |name: &str, f: Option<Value>| {
        m.insert(name.into(), f.unwrap_or(Value::Null));
    };
    if let Some(f) = &update.phone_number {
        field("phone_number", f.as_option().map(|v| json!(v.digits())));
    }
    if let Some(f) = &update.pairing_code {
        field(
            "pairing_code",
            f.as_option().map(|c| json!(c.code.to_string())),
        );
        field(
            "pairing_code_expires_at",
            f.as_option().map(|c| timestamp(c.expires_at)),
        );
    }
    if let Some(f) = &update.qr_code {
        field("qr_code", f.as_option().map(|v| json!(v)));
    }
    if let Some(f) = &update.error_message {
        field("error_message", f.as_option().map(|v| json!(v)));
    }
    if let Some(f) = &update.retry_after {
        field("retry_after", f.as_option().map(|t| timestamp(*t)));
    }
    if let Some(f) = &update.last_connected_at {
        field("last_connected_at", f.as_option().map(|t| timestamp(*t)));
    }
    Value::Object(m)
}

/// The `devices` columns a backend reads (never `session_data`, the original design's blob),
/// comma-separated without spaces: a REST client encodes a space in the query string as `+`,
/// which PostgREST reads as a space but not every PostgREST-compatible server does.
pub const DEVICE_COLUMNS: &str = "id,user_id,device_name,status,phone_number,connection_method,phone_for_pairing,pairing_code,pairing_code_expires_at,qr_code,error_message,retry_after,last_connected_at,lease_owner,lease_expires_at,lease_fence,created_at,updated_at";

#[cfg(test)]
mod tests {
    use super::*;
    use wa_pairing_store::retry::Classify as _;

    #[test]
    fn the_table() {
        let cases: &[(Option<&str>, ErrorKind, bool)] = &[
            (Some("WAL01"), ErrorKind::LeaseLost, false),
            (Some("WAT01"), ErrorKind::InvalidTransition, false),
            (Some("WAN01"), ErrorKind::NotFound, false),
            (Some("WAR01"), ErrorKind::Throttled, true),
            (Some("WAI01"), ErrorKind::InvalidInput, false),
            (Some("WAI02"), ErrorKind::InvalidInput, false),
            (Some("WAI03"), ErrorKind::InvalidInput, false),
            (Some("WAP01"), ErrorKind::RateLimited, true),
            (Some("WAC01"), ErrorKind::Conflict, false),
            (Some("23505"), ErrorKind::Conflict, false),
            (Some("40001"), ErrorKind::Unavailable, true),
            (Some("40P01"), ErrorKind::Unavailable, true),
            (Some("08006"), ErrorKind::Unavailable, true),
            (Some("08001"), ErrorKind::Unavailable, true),
            (Some("53300"), ErrorKind::Unavailable, true),
            (Some("57P01"), ErrorKind::Unavailable, true),
            (Some("28P01"), ErrorKind::PermissionDenied, false),
            (Some("42501"), ErrorKind::PermissionDenied, false),
            (Some("42P01"), ErrorKind::Configuration, false),
            (Some("42601"), ErrorKind::Configuration, false),
            (Some("22P02"), ErrorKind::InvalidInput, false),
            (Some("XX000"), ErrorKind::Backend, false),
            (None, ErrorKind::Unavailable, true),
        ];
        for (code, kind, retry) in cases {
            let e = classify(&SqlFailure {
                code: *code,
                message: "msg",
                hint: Some("90"),
            });
            assert_eq!(e.kind(), *kind, "{code:?}");
            assert_eq!(e.verdict().is_retryable(), *retry, "{code:?}");
        }
        let throttled = classify(&SqlFailure {
            code: Some("WAR01"),
            message: "limited",
            hint: Some("90"),
        });
        assert_eq!(
            throttled.verdict().retry_after(),
            Some(Duration::from_secs(90))
        );
        let paced = classify(&SqlFailure {
            code: Some("WAP01"),
            message: "too many pairing actions: try again in 90 s",
            hint: Some("90"),
        });
        assert_eq!(paced.verdict().retry_after(), Some(Duration::from_secs(90)));
        assert_eq!(
            paced.to_string(),
            "too many pairing actions: try again in 90 s"
        );
        let bad_hint = classify(&SqlFailure {
            code: Some("WAR01"),
            message: "limited",
            hint: Some("NaN"),
        });
        assert_eq!(bad_hint.kind(), ErrorKind::Throttled);
        assert!(timed_out("PostgreSQL", "x").verdict().is_retryable());
    }

    #[test]
    fn patches_name_only_the_touched_columns() {
        let empty = update_patch(&DeviceUpdate::new());
        assert_eq!(empty, json!({}));
        let code = wa_pairing_code::IssuedCode::new(
            wa_pairing_code::PairingCode::parse("ABCD-EFGH").unwrap(),
            chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            Duration::from_secs(60),
        );
        let patch = update_patch(&DeviceUpdate::new().pairing_code(code));
        assert_eq!(patch["pairing_code"], "ABCD-EFGH");
        assert_eq!(
            patch["pairing_code_expires_at"],
            "2027-01-15T08:01:00.000000Z"
        );
    }
}
