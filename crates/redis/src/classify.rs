//! One pure function that turns Redis errors into [`StoreError`]s.

use wa_pairing_retry::Verdict;
use wa_pairing_store::{ErrorKind, StoreError};

/// What classification needs from a Redis error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure<'a> {
    /// The server's error code (`WRONGTYPE`, `LOADING`...), when it answered with one.
    pub(crate) code: Option<&'a str>,
    /// An I/O failure, refused or dropped connection.
    pub(crate) io: bool,
    /// A timeout inside the client.
    pub(crate) timeout: bool,
}

/// | failure | kind | verdict |
/// |---|---|---|
/// | `WALOST` (our scripts) | `LeaseLost` | permanent |
/// | I/O, refused, dropped, `LOADING`, `TRYAGAIN`, `BUSY`, `CLUSTERDOWN`, `MASTERDOWN` | `Unavailable` | retry |
/// | client timeout | `Timeout` | retry |
/// | `NOAUTH`, `WRONGPASS`, `NOPERM` | `PermissionDenied` | permanent |
/// | `WRONGTYPE` | `Corrupt` | permanent |
/// | anything else | `Backend` | permanent |
pub(crate) fn classify_failure(f: Failure<'_>) -> StoreError {
    match f.code {
        Some("WALOST") => StoreError::lease_lost(),
        Some("LOADING" | "TRYAGAIN" | "BUSY" | "CLUSTERDOWN" | "MASTERDOWN") => StoreError::new(
            ErrorKind::Unavailable,
            "Redis is loading, busy or failing over: try again shortly",
        ),
        Some("NOAUTH" | "WRONGPASS" | "NOPERM") => StoreError::new(
            ErrorKind::PermissionDenied,
            "Redis refused the credentials or the command: check the password and ACL in REDIS_URL",
        ),
        Some("WRONGTYPE") => StoreError::new(
            ErrorKind::Corrupt,
            "a wa-pairing key in Redis holds another type: another program uses the same keys; set a key prefix",
        ),
        Some(code) => StoreError::new(ErrorKind::Backend, format!("Redis error {code}")),
        None if f.timeout => StoreError::new(ErrorKind::Timeout, "Redis did not answer in time")
            .with_verdict(Verdict::Retry),
        None if f.io => StoreError::new(
            ErrorKind::Unavailable,
            "Redis could not be reached: check REDIS_URL and that the server is up",
        ),
        None => StoreError::new(ErrorKind::Backend, "Redis reported an unexpected error"),
    }
}

pub(crate) fn classify(e: &redis::RedisError) -> StoreError {
    classify_failure(Failure {
        code: e.code(),
        io: e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped(),
        timeout: e.is_timeout(),
    })
}

pub(crate) fn timed_out(op: &str) -> StoreError {
    StoreError::new(
        ErrorKind::Timeout,
        format!("Redis did not finish {op} in time: it is slow or unreachable"),
    )
    .with_verdict(Verdict::Retry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_pairing_retry::Classify as _;

    #[test]
    fn the_table() {
        let f = |code, io, timeout| Failure { code, io, timeout };
        let cases = [
            (f(Some("WALOST"), false, false), ErrorKind::LeaseLost, false),
            (
                f(Some("LOADING"), false, false),
                ErrorKind::Unavailable,
                true,
            ),
            (
                f(Some("TRYAGAIN"), false, false),
                ErrorKind::Unavailable,
                true,
            ),
            (f(Some("BUSY"), false, false), ErrorKind::Unavailable, true),
            (
                f(Some("CLUSTERDOWN"), false, false),
                ErrorKind::Unavailable,
                true,
            ),
            (
                f(Some("MASTERDOWN"), false, false),
                ErrorKind::Unavailable,
                true,
            ),
            (
                f(Some("NOAUTH"), false, false),
                ErrorKind::PermissionDenied,
                false,
            ),
            (
                f(Some("WRONGPASS"), false, false),
                ErrorKind::PermissionDenied,
                false,
            ),
            (
                f(Some("NOPERM"), false, false),
                ErrorKind::PermissionDenied,
                false,
            ),
            (
                f(Some("WRONGTYPE"), false, false),
                ErrorKind::Corrupt,
                false,
            ),
            (f(Some("ERR"), false, false), ErrorKind::Backend, false),
            (f(None, true, false), ErrorKind::Unavailable, true),
            (f(None, false, true), ErrorKind::Timeout, true),
            (f(None, false, false), ErrorKind::Backend, false),
        ];
        for (failure, kind, retry) in cases {
            let e = classify_failure(failure);
            assert_eq!(e.kind(), kind, "{failure:?}");
            assert_eq!(e.verdict().is_retryable(), retry, "{failure:?}");
        }
        assert!(timed_out("x").verdict().is_retryable());
    }
}
