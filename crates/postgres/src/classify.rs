//! Turns tokio-postgres and pool errors into [`StoreError`]s with the shared SQL
//! classification ([`wa_pairing_sql::classify`]).

use wa_pairing_retry::Verdict;
use wa_pairing_sql::{SqlFailure, classify};
use wa_pairing_store::{ErrorKind, StoreError};

/// Classifies a tokio-postgres error; TLS failures (an untrusted certificate, a server that
/// requires or refuses TLS) are `Configuration` errors that say what to change.
pub(crate) fn from_pg(e: &tokio_postgres::Error) -> StoreError {
    if let Some(tls) = crate::tls::explain(e) {
        return tls;
    }
    match e.as_db_error() {
        Some(db) => classify(&SqlFailure {
            code: Some(db.code().code()),
            message: db.message(),
            hint: db.hint(),
        }),
        None => StoreError::new(
            ErrorKind::Unavailable,
            "PostgreSQL could not be reached or the connection broke: check DATABASE_URL and that the server is up",
        ),
    }
}

/// Classifies a pool error.
pub(crate) fn from_pool(e: &deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => from_pg(e),
        PoolError::Timeout(_) => StoreError::new(
            ErrorKind::Timeout,
            "no PostgreSQL connection became free in time: the pool is exhausted or the server is slow",
        )
        .with_verdict(Verdict::Retry),
        _ => StoreError::new(
            ErrorKind::Unavailable,
            "PostgreSQL connection pool failure: check DATABASE_URL and that the server is up",
        ),
    }
}

/// The error for an operation that outlived its timeout.
pub(crate) fn timed_out(op: &str) -> StoreError {
    wa_pairing_sql::timed_out("PostgreSQL", op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_pairing_retry::Classify as _;

    #[test]
    fn timeouts_are_retryable() {
        let e = timed_out("claim");
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.verdict().is_retryable());
        assert!(e.message().contains("claim"));
    }
}
