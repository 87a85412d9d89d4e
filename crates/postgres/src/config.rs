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

    /// Checks the configuration without any I/O: the URL parses as a PostgreSQL URL, its
    /// `sslmode` and `pool_mode` are known, the pool holds at least one connection and every
    /// timeout is more than zero. [`build`](Self::build) and [`connect`](Self::connect)
    /// check the same, and read the root certificate file.
    ///
    /// ```
    /// use wa_pairing_postgres::PostgresConfig;
    ///
    /// let refused = PostgresConfig::new("postgres://app@db/app").pool_size(0).validate();
    /// assert!(refused.unwrap_err().message().contains("pool_size is 0"));
    /// ```
    ///
    /// # Errors
    ///
    /// `Configuration`, naming the setting and what to write.
    pub fn validate(&self) -> StoreResult<()> {
        if self.pool_size == 0 {
            return Err(StoreError::new(
                ErrorKind::Configuration,
                "pool_size is 0: allow at least one connection (the default is 16)",
            ));
        }
        for (name, d) in [
            ("operation_timeout", self.operation_timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if d.is_zero() {
                return Err(StoreError::new(
                    ErrorKind::Configuration,
                    format!("{name} is 0: give the database time to answer, such as 5s"),
                ));
            }
        }
        // Parses the URL and its TLS parameters; the root certificate file is read when the
        // store is built.
        self.effective_pool_mode().map(drop)
    }

    /// The store for this configuration, with no connection yet (connections open on first
    /// use, so this works before the database is up); the same as
    /// [`PostgresStore::new`](crate::PostgresStore::new).
    ///
    /// # Errors
    ///
    /// `Configuration` when [`validate`](Self::validate) refuses the configuration.
    pub fn build(&self) -> StoreResult<crate::PostgresStore> {
        crate::PostgresStore::new(self)
    }

    /// The store for this configuration, once the database has answered one round trip
    /// ([`PostgresStore::ping`](crate::PostgresStore::ping)).
    ///
    /// # Errors
    ///
    /// `Configuration` when [`validate`](Self::validate) refuses the configuration; the
    /// ping's error when the database does not answer within the timeouts (retryable) or
    /// refuses the credentials or the TLS settings (permanent, saying what to change).
    pub async fn connect(&self) -> StoreResult<crate::PostgresStore> {
        let store = self.build()?;
        store.ping().await?;
        Ok(store)
    }

    /// Reads [`DATABASE_URL_ENV`] (`DATABASE_URL`), and libpq's `PGSSLMODE` and
    /// `PGSSLROOTCERT` for what the URL does not say, and checks them
    /// ([`validate`](Self::validate)).
    ///
    /// # Errors
    ///
    /// `Configuration` naming the variable that is missing or malformed.
    pub fn from_env() -> Result<Self, StoreError> {
        Self::from_lookup(|name| std::env::var(name).ok())?.ok_or_else(|| {
            StoreError::new(
                ErrorKind::Configuration,
                "DATABASE_URL is not set: set it to postgres://user:password@host:5432/database",
            )
        })
    }

    /// Reads the same variables as [`from_env`](Self::from_env) through `lookup` (a
    /// variable's name to its value; empty counts as unset), and checks them: `None` when
    /// `DATABASE_URL` is not set. The one reader of these variables: `from_env` and the
    /// service both use it.
    ///
    /// ```
    /// use wa_pairing_postgres::PostgresConfig;
    ///
    /// let env = |name: &str| (name == "DATABASE_URL").then(|| "mysql://db/app".to_owned());
    /// let refused = PostgresConfig::from_lookup(env).unwrap_err();
    /// assert!(refused.message().contains("postgres://"));
    /// assert!(PostgresConfig::from_lookup(|_| None)?.is_none());
    /// # Ok::<(), wa_pairing_store::StoreError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `Configuration` naming the variable that is malformed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> StoreResult<Option<Self>> {
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(url) = var(DATABASE_URL_ENV) else {
            return Ok(None);
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::new(
                ErrorKind::Configuration,
                "DATABASE_URL must be a postgres:// URL (postgres://user:password@host:5432/database)",
            ));
        }
        let config = Self::new(url).with_libpq_env(var)?;
        config.validate()?;
        Ok(Some(config))
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

    /// At most this many connections (at least one: [`validate`](Self::validate) refuses 0).
    #[must_use]
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n;
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
    fn nonsense_is_refused_with_the_setting_named_and_without_io() {
        let url = "postgres://u:secret@db.example.com/db";
        let refused = |config: PostgresConfig| config.validate().unwrap_err().to_string();
        assert!(refused(PostgresConfig::new(url).pool_size(0)).contains("pool_size is 0"));
        assert!(
            refused(PostgresConfig::new(url).operation_timeout(Duration::ZERO))
                .contains("operation_timeout is 0")
        );
        assert!(
            refused(PostgresConfig::new(url).connect_timeout(Duration::ZERO))
                .contains("connect_timeout is 0")
        );
        // A root certificate that does not exist is read when the store is built, not here.
        let later = PostgresConfig::new(format!("{url}?sslmode=verify-full"))
            .ssl_root_cert("/nonexistent/ca.crt");
        assert!(later.validate().is_ok());
        assert_eq!(later.build().unwrap_err().kind(), ErrorKind::Configuration);
        // From a file, the same checks.
        let from_file: PostgresConfig =
            serde_json::from_str(r#"{"url": "postgres://u@h/db", "pool_size": 0}"#).unwrap();
        assert!(refused(from_file).contains("pool_size is 0"));
        for text in [
            refused(PostgresConfig::new(url).pool_size(0)),
            refused(PostgresConfig::new(format!("{url}?pool_mode=sometimes"))),
        ] {
            assert!(!text.contains("secret"), "{text}");
        }
    }

    #[test]
    fn the_environment_is_read_by_one_function() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(PostgresConfig::from_lookup(env(&[])).unwrap().is_none());
        assert!(
            PostgresConfig::from_lookup(env(&[("DATABASE_URL", "  ")]))
                .unwrap()
                .is_none()
        );
        let config = PostgresConfig::from_lookup(env(&[
            ("DATABASE_URL", "postgres://u@h/db"),
            ("PGSSLMODE", "verify-full"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(config.ssl_mode, Some(SslMode::VerifyFull));
        let e = PostgresConfig::from_lookup(env(&[
            ("DATABASE_URL", "postgres://u@h/db"),
            ("PGSSLMODE", "sometimes"),
        ]))
        .unwrap_err();
        assert!(e.message().starts_with("PGSSLMODE"), "{e}");
        let e = PostgresConfig::from_lookup(env(&[("DATABASE_URL", "mysql://h/db")])).unwrap_err();
        assert!(e.message().starts_with("DATABASE_URL"), "{e}");
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
