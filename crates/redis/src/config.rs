//! How to reach Redis.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use wa_pairing_store::{ErrorKind, StoreError, StoreResult};

/// The environment variable [`RedisConfig::from_env`] reads.
pub const REDIS_URL_ENV: &str = "REDIS_URL";

/// The environment variable [`RedisConfig::from_env`] reads for
/// [`root_cert`](RedisConfig::root_cert) (optional).
pub const REDIS_ROOT_CERT_ENV: &str = "REDIS_ROOT_CERT";

/// How to reach Redis.
///
/// # Default
/// A 250 ms limit on every operation (connecting included), and no key prefix.
///
/// # TLS
/// `rediss://` connects over TLS (rustls) and checks the server's certificate and host name
/// against Mozilla's roots (compiled in), or only against the CA certificates of
/// [`root_cert`](Self::root_cert) when given (a private CA, a self-hosted Redis). The
/// `#insecure` URL fragment (no certificate check at all) is refused: give the server's CA
/// instead.
///
/// `Debug` never shows the password.
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_redis::RedisConfig;
///
/// let config = RedisConfig::new("rediss://default:s3cret@example.upstash.io:6379")
///     .timeout(Duration::from_millis(300))
///     .prefix("halloWA:");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
///
/// Plain data: it deserialises from a configuration file (only `url` is required; the
/// timeout as `"250ms"`).
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisConfig {
    pub(crate) url: String,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub(crate) timeout: Duration,
    #[serde(default)]
    pub(crate) prefix: String,
    #[serde(default)]
    pub(crate) root_cert: Option<PathBuf>,
}

const fn default_timeout() -> Duration {
    Duration::from_millis(250)
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact(&self.url))
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .field("root_cert", &self.root_cert)
            .finish()
    }
}

pub(crate) fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://***@{}", &url[at + 1..]),
        (Some(_), None) => url.to_owned(),
        _ => "<unparsed url>".to_owned(),
    }
}

impl RedisConfig {
    /// Connects with `url` (`redis://` or `rediss://` for TLS).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: default_timeout(),
            prefix: String::new(),
            root_cert: None,
        }
    }

    /// Checks the configuration without any I/O: a `redis://` or `rediss://` URL without
    /// `#insecure`, a root certificate only with `rediss://`, a timeout above zero.
    /// [`build`](Self::build) and [`connect`](Self::connect) check the same, and read the
    /// root certificate file.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wa_pairing_redis::RedisConfig;
    ///
    /// let refused = RedisConfig::new("redis://127.0.0.1:6379").timeout(Duration::ZERO).validate();
    /// assert!(refused.unwrap_err().message().contains("timeout is 0"));
    /// ```
    ///
    /// # Errors
    ///
    /// `Configuration`, naming the setting and what to write.
    pub fn validate(&self) -> StoreResult<()> {
        if self.timeout.is_zero() {
            return Err(StoreError::new(
                ErrorKind::Configuration,
                "timeout is 0: give Redis time to answer, such as 250ms",
            ));
        }
        crate::store::check_url(self).map(drop)
    }

    /// The store for this configuration, with no connection yet (nothing happens until the
    /// first call, so this works before Redis is up); the same as
    /// [`RedisStore::new`](crate::RedisStore::new).
    ///
    /// # Errors
    ///
    /// `Configuration` when [`validate`](Self::validate) refuses the configuration.
    pub fn build(&self) -> StoreResult<crate::RedisStore> {
        crate::RedisStore::new(self)
    }

    /// The store for this configuration, once Redis has answered a `PING`
    /// ([`RedisStore::ping`](crate::RedisStore::ping)).
    ///
    /// # Errors
    ///
    /// `Configuration` when [`validate`](Self::validate) refuses the configuration; the
    /// ping's error when Redis does not answer within the timeout (retryable) or refuses the
    /// credentials or TLS (permanent, saying what to change).
    pub async fn connect(&self) -> StoreResult<crate::RedisStore> {
        let store = self.build()?;
        store.ping().await?;
        Ok(store)
    }

    /// Reads [`REDIS_URL_ENV`] (`REDIS_URL`), and [`REDIS_ROOT_CERT_ENV`]
    /// (`REDIS_ROOT_CERT`) when set, and checks them ([`validate`](Self::validate)).
    ///
    /// # Errors
    ///
    /// `Configuration` naming the variable that is missing or malformed.
    pub fn from_env() -> StoreResult<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())?.ok_or_else(|| {
            StoreError::new(
                ErrorKind::Configuration,
                "REDIS_URL is not set: set it to redis://host:6379 (or rediss:// for TLS)",
            )
        })
    }

    /// Reads the same variables as [`from_env`](Self::from_env) through `lookup` (a
    /// variable's name to its value; empty counts as unset), and checks them: `None` when
    /// neither is set (Redis is optional). The one reader of these variables: `from_env`
    /// and the service both use it.
    ///
    /// ```
    /// use wa_pairing_redis::RedisConfig;
    ///
    /// let env = |name: &str| (name == "REDIS_URL").then(|| "http://cache:6379".to_owned());
    /// let refused = RedisConfig::from_lookup(env).unwrap_err();
    /// assert!(refused.message().starts_with("REDIS_URL"));
    /// assert!(RedisConfig::from_lookup(|_| None)?.is_none());
    /// # Ok::<(), wa_pairing_store::StoreError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `Configuration` naming the variable that is malformed, or a root certificate without
    /// a URL.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> StoreResult<Option<Self>> {
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let config = match (var(REDIS_URL_ENV), var(REDIS_ROOT_CERT_ENV)) {
            (None, None) => return Ok(None),
            (Some(url), None) => Self::new(url),
            (Some(url), Some(ca)) => Self::new(url).root_cert(ca),
            (None, Some(_)) => {
                return Err(StoreError::new(
                    ErrorKind::Configuration,
                    "REDIS_ROOT_CERT is set but REDIS_URL is not: set the rediss:// URL too, or remove the root certificate",
                ));
            }
        };
        config.validate()?;
        Ok(Some(config))
    }

    /// The limit on every operation, connecting included.
    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The file of the CA certificates (PEM) a `rediss://` server's certificate must chain
    /// to, instead of Mozilla's roots: for a Redis whose certificate a private CA signed. The
    /// host name is still checked. Read when the store is built.
    #[must_use]
    pub fn root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_cert = Some(path.into());
        self
    }

    /// A prefix for every key (to share one Redis between deployments).
    #[must_use]
    pub fn prefix(mut self, p: impl Into<String>) -> Self {
        self.prefix = p.into();
        self
    }
}
