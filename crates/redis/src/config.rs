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

    /// The store for this configuration (lazy: no connection yet; call it inside a Tokio
    /// runtime); the same as [`RedisStore::new`](crate::RedisStore::new).
    pub fn build(self) -> StoreResult<crate::RedisStore> {
        crate::RedisStore::new(self)
    }

    /// Reads [`REDIS_URL_ENV`] (`REDIS_URL`), and [`REDIS_ROOT_CERT_ENV`]
    /// (`REDIS_ROOT_CERT`) when set.
    pub fn from_env() -> StoreResult<Self> {
        let config = std::env::var(REDIS_URL_ENV).map(Self::new).map_err(|_| {
            StoreError::new(
                ErrorKind::Configuration,
                "REDIS_URL is not set: set it to redis://host:6379 (or rediss:// for TLS)",
            )
        })?;
        Ok(match std::env::var(REDIS_ROOT_CERT_ENV) {
            Ok(path) if !path.trim().is_empty() => config.root_cert(path.trim()),
            _ => config,
        })
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
