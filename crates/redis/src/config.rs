//! How to reach Redis.

use std::fmt;
use std::time::Duration;

use wa_pairing_store::{ErrorKind, StoreError, StoreResult};

/// The environment variable [`RedisConfig::from_env`] reads.
pub const REDIS_URL_ENV: &str = "REDIS_URL";

/// How to reach Redis.
///
/// # Default
/// A 250 ms limit on every operation (connecting included), and no key prefix.
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
        }
    }

    /// The store for this configuration (lazy: no connection yet; call it inside a Tokio
    /// runtime); the same as [`RedisStore::new`](crate::RedisStore::new).
    pub fn build(self) -> StoreResult<crate::RedisStore> {
        crate::RedisStore::new(self)
    }

    /// Reads [`REDIS_URL_ENV`] (`REDIS_URL`).
    pub fn from_env() -> StoreResult<Self> {
        std::env::var(REDIS_URL_ENV).map(Self::new).map_err(|_| {
            StoreError::new(
                ErrorKind::Configuration,
                "REDIS_URL is not set: set it to redis://host:6379 (or rediss:// for TLS)",
            )
        })
    }

    /// The limit on every operation, connecting included.
    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// A prefix for every key (to share one Redis between deployments).
    #[must_use]
    pub fn prefix(mut self, p: impl Into<String>) -> Self {
        self.prefix = p.into();
        self
    }
}
