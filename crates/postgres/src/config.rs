//! Configuration of the PostgreSQL store.

use std::fmt;
use std::time::Duration;

use wa_pairing_store::{ErrorKind, StoreError, StoreResult};

/// The environment variable [`PostgresConfig::from_env`] reads.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// How to reach PostgreSQL.
///
/// # Default
/// A pool of 16 connections, a 5 s timeout on every operation (waiting for a pooled
/// connection included), a 5 s connect timeout.
///
/// `Debug` never shows the password. Plain data: it deserialises from a configuration file
/// (only `url` is required; durations as `"5s"`, `"500ms"`).
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_postgres::PostgresConfig;
///
/// let config = PostgresConfig::new("postgres://app:s3cret@db.example.com:5432/postgres")
///     .pool_size(32)
///     .operation_timeout(Duration::from_secs(3));
/// assert!(!format!("{config:?}").contains("s3cret"));
///
/// let from_file: PostgresConfig =
///     serde_json::from_str(r#"{"url": "postgres://app@db/postgres", "operation_timeout": "3s"}"#)?;
/// # let _ = from_file;
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PostgresConfig {
    pub(crate) url: String,
    #[serde(default = "defaults::pool_size")]
    pub(crate) pool_size: usize,
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub(crate) operation_timeout: Duration,
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub(crate) connect_timeout: Duration,
}

mod defaults {
    use std::time::Duration;

    pub(super) const fn pool_size() -> usize {
        16
    }

    pub(super) const fn timeout() -> Duration {
        Duration::from_secs(5)
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("operation_timeout", &self.operation_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// A connection URL with its password replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsed url>".to_owned();
    };
    let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = tail.split_once('?').map_or(tail, |(path, _)| path);
    format!("{scheme}://{authority}/{tail}")
}

impl PostgresConfig {
    /// Connects with `url` (`postgres://user:password@host:port/db`).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: defaults::pool_size(),
            operation_timeout: defaults::timeout(),
            connect_timeout: defaults::timeout(),
        }
    }

    /// The store for this configuration (connections open lazily, on first use); the same
    /// as [`PostgresStore::connect`](crate::PostgresStore::connect).
    pub fn build(&self) -> StoreResult<crate::PostgresStore> {
        crate::PostgresStore::connect(self)
    }

    /// Reads [`DATABASE_URL_ENV`] (`DATABASE_URL`).
    pub fn from_env() -> Result<Self, StoreError> {
        std::env::var(DATABASE_URL_ENV).map(Self::new).map_err(|_| {
            StoreError::new(
                ErrorKind::Configuration,
                "DATABASE_URL is not set: set it to postgres://user:password@host:5432/database",
            )
        })
    }

    /// At most this many connections.
    #[must_use]
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// The limit on every operation, waiting for a connection included.
    #[must_use]
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// The limit on opening a connection.
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    pub(crate) fn pg(&self) -> Result<tokio_postgres::Config, StoreError> {
        let mut config: tokio_postgres::Config = self.url.parse().map_err(|_| {
            StoreError::new(
                ErrorKind::Configuration,
                "DATABASE_URL is not a valid PostgreSQL URL: write postgres://user:password@host:5432/database",
            )
        })?;
        config.connect_timeout(self.connect_timeout);
        config.application_name("wa-pairing");
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@h:5432/db?sslmode=require&password=x"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("garbage"), "<unparsed url>");
    }

    #[test]
    fn bad_urls_say_what_to_write() {
        let err = PostgresConfig::new("postgres://u:secret@:::bad")
            .pg()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(!err.to_string().contains("secret"));
    }
}
