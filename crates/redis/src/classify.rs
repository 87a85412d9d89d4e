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
    if let Some(tls) = rustls_error(e) {
        return tls_failure(tls);
    }
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return StoreError::new(
            ErrorKind::PermissionDenied,
            "Redis refused the password (authentication failed): check the user and password in REDIS_URL",
        );
    }
    // The server's own words for a database number it does not have (it names no secret).
    if e.to_string().contains("DB index is out of range") {
        return StoreError::new(
            ErrorKind::Configuration,
            "REDIS_URL names a database number Redis does not have (DB index is out of range): use one below the server's `databases` setting (16 by default), such as redis://host:6379/0",
        );
    }
    classify_failure(Failure {
        code: e.code(),
        io: e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped(),
        timeout: e.is_timeout(),
    })
}

/// The rustls error in the chain: the handshake's `io::Error` holds it, and the Redis error
/// holds that `io::Error` in an `Arc` (whose `source` skips it).
fn rustls_error(e: &redis::RedisError) -> Option<&rustls::Error> {
    fn within<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.get_ref().and_then(|inner| within(inner));
        }
        if let Some(shared) =
            err.downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()
        {
            return within(shared.as_ref());
        }
        None
    }
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = within(err) {
            return Some(tls);
        }
        current = err.source();
    }
    None
}

/// A TLS failure, in words that say what to change: permanent (`Configuration`), since
/// retrying does not help.
fn tls_failure(e: &rustls::Error) -> StoreError {
    use rustls::CertificateError as C;
    let message = match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "Redis's TLS certificate is not signed by a trusted certificate authority: set the Redis root certificate (REDIS_ROOT_CERT, or RedisConfig::root_cert) to the file of the CA that signed it".to_owned()
        }
        rustls::Error::InvalidCertificate(C::NotValidForNameContext {
            expected,
            presented,
        }) => {
            let names: Vec<&str> = presented
                .iter()
                .filter_map(|n| {
                    n.strip_prefix("DnsName(\"")
                        .and_then(|r| r.strip_suffix("\")"))
                        .or_else(|| n.strip_prefix("IpAddress(").and_then(|r| r.strip_suffix(')')))
                })
                .collect();
            let names = if names.is_empty() {
                "other names".to_owned()
            } else {
                names.join(", ")
            };
            format!(
                "Redis's TLS certificate is for {names}, not for {}: connect to a name the certificate is for (the host in REDIS_URL)",
                expected.to_str()
            )
        }
        rustls::Error::InvalidCertificate(C::NotValidForName) => {
            "Redis's TLS certificate is not for the host in REDIS_URL: connect to a name the certificate is for".to_owned()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "Redis's TLS certificate has expired: renew it on the server".to_owned()
        }
        rustls::Error::InvalidCertificate(other) => format!(
            "Redis's TLS certificate was refused ({other:?}): check the server's certificate and the Redis root certificate"
        ),
        rustls::Error::InvalidMessage(_) => {
            "the TLS handshake with Redis failed: the server on that port does not speak TLS (use redis:// for a plaintext port, or the server's TLS port)".to_owned()
        }
        other => format!(
            "the TLS handshake with Redis failed ({other}): check REDIS_URL's port and the server's TLS settings"
        ),
    };
    StoreError::new(ErrorKind::Configuration, message)
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
