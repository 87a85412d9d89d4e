//! Configuration of the PostgreSQL store.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use wa_pairing_store::{ErrorKind, StoreError, StoreResult};

use crate::tls::{PgTls, SSLMODE_ENV, SSLROOTCERT_ENV, SslMode};

/// The environment variable [`PostgresConfig::from_env`] reads.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// How to reach PostgreSQL.
///
/// # Default
/// A pool of 16 connections, a 5 s timeout on every operation (waiting for a pooled
/// connection included), a 5 s connect timeout, `sslmode=prefer` (see [`SslMode`]).
///
/// # TLS
/// `sslmode` and `sslrootcert` in the URL (`?sslmode=verify-full&sslrootcert=/etc/ca.crt`)
/// win over [`ssl_mode`](Self::ssl_mode) and [`ssl_root_cert`](Self::ssl_root_cert) (and so
/// over `PGSSLMODE` and `PGSSLROOTCERT`), as the connection string wins in libpq.
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
    #[serde(default)]
    pub(crate) pool_mode: Option<PoolMode>,
    #[serde(default)]
    pub(crate) ssl_mode: Option<SslMode>,
    #[serde(default)]
    pub(crate) ssl_root_cert: Option<PathBuf>,
}

/// How connections reach PostgreSQL: straight to the server or through a connection pooler
/// (Supabase's Supavisor, PgBouncer).
///
/// | mode | Supabase's connection string | what the store does |
/// |---|---|---|
/// | [`Direct`](PoolMode::Direct) | "Direct connection", `db.<ref>.supabase.co:5432` | everything, with the change feed (LISTEN/NOTIFY) |
/// | [`Session`](PoolMode::Session) | "Session pooler", `<region>.pooler.supabase.com:5432` | the same as direct: each connection keeps its server connection |
/// | [`Transaction`](PoolMode::Transaction) | "Transaction pooler", port `6543` | no change feed (LISTEN needs a session): runners find work by polling claims |
///
/// Every statement runs unnamed in one round trip, so no mode depends on server-side
/// prepared statements (which a transaction pooler cannot keep).
///
/// When not set, the mode is read from the URL: `pool_mode=direct|session|transaction` or
/// `pgbouncer=true` (transaction) in its query, else port 6543 means transaction (Supabase's
/// transaction pooler), else direct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PoolMode {
    /// Straight to the PostgreSQL server.
    Direct,
    /// Through a pooler in session mode.
    Session,
    /// Through a pooler in transaction mode: no LISTEN/NOTIFY, no session state.
    Transaction,
}

impl PoolMode {
    /// The mode's name as written in a URL or a configuration file.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Session => "session",
            Self::Transaction => "transaction",
        }
    }

    /// Whether LISTEN/NOTIFY works, and so the store's change feed.
    #[must_use]
    pub const fn has_change_feed(self) -> bool {
        !matches!(self, Self::Transaction)
    }
}

/// The URL query parameters the store reads itself (PostgreSQL's own parser refuses them).
const OWN_PARAMS: &[&str] = &["pool_mode", "pgbouncer"];

/// Supabase's transaction pooler port.
const TRANSACTION_POOLER_PORT: u16 = 6543;

/// `url` without the parameters in `own`, and the removed `(key, value)` pairs.
pub(crate) fn split_own_params(url: &str, own: &[&str]) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if own.contains(&key) {
            taken.push((key.to_owned(), value.to_owned()));
        } else {
            kept.push(pair);
        }
    }
    if kept.is_empty() {
        (base.to_owned(), taken)
    } else {
        (format!("{base}?{}", kept.join("&")), taken)
    }
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
            .field("pool_mode", &self.pool_mode)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
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
            pool_mode: None,
            ssl_mode: None,
            ssl_root_cert: None,
        }
    }

    /// The store for this configuration (connections open lazily, on first use); the same
    /// as [`PostgresStore::connect`](crate::PostgresStore::connect).
    pub fn build(&self) -> StoreResult<crate::PostgresStore> {
        crate::PostgresStore::connect(self)
    }

    /// Reads [`DATABASE_URL_ENV`] (`DATABASE_URL`), and libpq's `PGSSLMODE` and
    /// `PGSSLROOTCERT` for what the URL does not say.
    pub fn from_env() -> Result<Self, StoreError> {
        let config = std::env::var(DATABASE_URL_ENV).map(Self::new).map_err(|_| {
            StoreError::new(
                ErrorKind::Configuration,
                "DATABASE_URL is not set: set it to postgres://user:password@host:5432/database",
            )
        })?;
        config.with_libpq_env(|name| std::env::var(name).ok())
    }

    /// Applies libpq's `PGSSLMODE` and `PGSSLROOTCERT`, read through `lookup` (empty values
    /// count as unset); the URL's own `sslmode` and `sslrootcert` still win.
    ///
    /// ```
    /// use wa_pairing_postgres::PostgresConfig;
    ///
    /// let config = PostgresConfig::new("postgres://app@db.example.com/app")
    ///     .with_libpq_env(|name| (name == "PGSSLMODE").then(|| "verify-full".to_owned()))?;
    /// assert!(format!("{config:?}").contains("VerifyFull"));
    /// # Ok::<(), wa_pairing_store::StoreError>(())
    /// ```
    pub fn with_libpq_env(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, StoreError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(mode) = var(SSLMODE_ENV) {
            let mode = mode.parse::<SslMode>().map_err(|e| {
                StoreError::new(
                    ErrorKind::Configuration,
                    format!("{SSLMODE_ENV}: {}", e.message()),
                )
            })?;
            self.ssl_mode = Some(mode);
        }
        if let Some(path) = var(SSLROOTCERT_ENV) {
            self.ssl_root_cert = Some(PathBuf::from(path));
        }
        Ok(self)
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

    /// Connections go through a pooler in this mode (or straight to the server); see
    /// [`PoolMode`] for what is read from the URL when this is not called.
    #[must_use]
    pub fn pool_mode(mut self, mode: PoolMode) -> Self {
        self.pool_mode = Some(mode);
        self
    }

    /// The mode in force: the one set, else the one the URL says.
    pub fn effective_pool_mode(&self) -> Result<PoolMode, StoreError> {
        if let Some(mode) = self.pool_mode {
            return Ok(mode);
        }
        let (rest, own) = split_own_params(&self.url, OWN_PARAMS);
        if let Some((key, value)) = own.first() {
            return match (key.as_str(), value.as_str()) {
                ("pool_mode", "direct") | ("pgbouncer", "false") => Ok(PoolMode::Direct),
                ("pool_mode", "session") => Ok(PoolMode::Session),
                ("pool_mode", "transaction") | ("pgbouncer", "true") => Ok(PoolMode::Transaction),
                _ => Err(StoreError::new(
                    ErrorKind::Configuration,
                    format!(
                        "the database URL says {key}={value}: write pool_mode=direct, \
                         pool_mode=session or pool_mode=transaction (or pgbouncer=true)"
                    ),
                )),
            };
        }
        let (rest, _) = crate::tls::take_params(&rest)?;
        let pg: tokio_postgres::Config = rest.parse().map_err(|_| invalid_url())?;
        Ok(if pg.get_ports().contains(&TRANSACTION_POOLER_PORT) {
            PoolMode::Transaction
        } else {
            PoolMode::Direct
        })
    }

    /// How to use TLS when the URL has no `sslmode`: [`SslMode::Prefer`] unless set.
    /// `verify-full` is the safe choice across any network.
    #[must_use]
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }

    /// The file of the certificate authorities (PEM) that `verify-ca` and `verify-full`
    /// trust, when the URL has no `sslrootcert`; `"system"` for the platform's store. Without
    /// it, Mozilla's roots (compiled in). Read when the store is built: restart to pick up a
    /// new file. Given with `sslmode=require`, the chain is checked (`verify-ca`), as in
    /// libpq.
    #[must_use]
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_root_cert = Some(path.into());
        self
    }

    /// The tokio-postgres configuration, and the TLS every connection uses.
    pub(crate) fn pg(&self) -> Result<(tokio_postgres::Config, PgTls), StoreError> {
        let (url, _) = split_own_params(&self.url, OWN_PARAMS);
        let (url, tls) = crate::tls::take_params(&url)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| invalid_url())?;
        config.connect_timeout(self.connect_timeout);
        config.application_name("wa-pairing");
        let tls = PgTls::new(
            &mut config,
            &tls,
            self.ssl_mode,
            self.ssl_root_cert.as_deref(),
        )?;
        Ok((config, tls))
    }
}

fn invalid_url() -> StoreError {
    StoreError::new(
        ErrorKind::Configuration,
        "DATABASE_URL is not a valid PostgreSQL URL: write postgres://user:password@host:5432/database",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_mode_is_read_from_the_url_unless_set() {
        let mode = |url: &str| PostgresConfig::new(url).effective_pool_mode().unwrap();
        assert_eq!(mode("postgres://u@h/db"), PoolMode::Direct);
        assert_eq!(mode("postgres://u@h:5432/db"), PoolMode::Direct);
        assert_eq!(
            mode("postgres://u:p@h:6543/postgres"),
            PoolMode::Transaction
        );
        assert_eq!(
            mode("postgres://u@h/db?pgbouncer=true"),
            PoolMode::Transaction
        );
        assert_eq!(
            mode("postgres://u@h:6543/db?sslmode=require&pool_mode=session"),
            PoolMode::Session
        );
        assert_eq!(
            PostgresConfig::new("postgres://u@h:6543/db")
                .pool_mode(PoolMode::Direct)
                .effective_pool_mode()
                .unwrap(),
            PoolMode::Direct
        );
        let err = PostgresConfig::new("postgres://u:secret@h/db?pool_mode=statement")
            .effective_pool_mode()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(err.to_string().contains("pool_mode=transaction"), "{err}");
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn our_own_parameters_never_reach_the_postgres_parser() {
        let config =
            PostgresConfig::new("postgres://u@h:6543/db?pool_mode=transaction&sslmode=disable");
        assert!(config.pg().is_ok());
        assert_eq!(
            split_own_params("postgres://u@h/db?pgbouncer=true", OWN_PARAMS).0,
            "postgres://u@h/db"
        );
        assert_eq!(
            split_own_params("postgres://u@h/db?a=1&pool_mode=session&b=2", OWN_PARAMS),
            (
                "postgres://u@h/db?a=1&b=2".to_owned(),
                vec![("pool_mode".to_owned(), "session".to_owned())]
            )
        );
    }

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
