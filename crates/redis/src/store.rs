//! The code cache, the auth state and the pairing budget on Redis.

use std::fmt;
use std::sync::{Arc, Once};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;
use wa_pairing_code::IssuedCode;
use wa_pairing_store::{
    AuthStateStore, BudgetConfig, BudgetDecision, BudgetKey, CodeCache, CompanionKey, DeviceId,
    Entry, ErrorKind, Fence, PairingBudget, StoreError, StoreResult, check_key,
};

use crate::classify::{classify, timed_out};
use crate::config::RedisConfig;
use crate::resilient::ResilientCodeCache;
use crate::scripts;

/// Installs rustls's `ring` provider as the process default, once, and only when the
/// application has not chosen one: a `rediss://` connect needs a process-wide provider and
/// would otherwise panic, while an application's own choice (aws-lc-rs, a FIPS build) must
/// win.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

fn invalid_url() -> StoreError {
    StoreError::new(
        ErrorKind::Configuration,
        "REDIS_URL is not a valid Redis URL: write redis://[:password@]host:6379[/db] or rediss:// for TLS",
    )
}

/// The URL checked without any I/O: a Redis URL, `#insecure` (no certificate check)
/// refused, a root certificate only with `rediss://`.
pub(crate) fn check_url(config: &RedisConfig) -> StoreResult<redis::Client> {
    let client = redis::Client::open(config.url.as_str()).map_err(|_| invalid_url())?;
    if let redis::ConnectionAddr::TcpTls { insecure: true, .. } =
        client.get_connection_info().addr()
    {
        return Err(StoreError::new(
            ErrorKind::Configuration,
            "REDIS_URL ends in #insecure (TLS without checking the server's certificate), which wa-pairing refuses: remove it, and set the Redis root certificate (REDIS_ROOT_CERT) to the CA that signed the server's certificate",
        ));
    }
    if config.root_cert.is_some() && !config.url.trim_start().starts_with("rediss://") {
        return Err(StoreError::new(
            ErrorKind::Configuration,
            "a Redis root certificate is set but REDIS_URL is not a rediss:// (TLS) URL: use rediss://, or remove the root certificate",
        ));
    }
    Ok(client)
}

/// The client for `config`: its URL, with the CA certificates of `root_cert` when given.
fn client(config: &RedisConfig) -> StoreResult<redis::Client> {
    let client = check_url(config)?;
    let client = match &config.root_cert {
        None => client,
        Some(path) => {
            let shown = path.display();
            let pem = std::fs::read(path).map_err(|e| {
                StoreError::new(
                    ErrorKind::Configuration,
                    format!("the Redis root certificate {shown} cannot be read: {e}"),
                )
            })?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(StoreError::new(
                    ErrorKind::Configuration,
                    format!(
                        "the Redis root certificate {shown} holds no certificate (-----BEGIN CERTIFICATE-----)"
                    ),
                ));
            }
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(config.url.as_str(), certificates).map_err(|e| {
                if e.kind() == redis::ErrorKind::InvalidClientConfig {
                    invalid_url()
                } else {
                    StoreError::new(
                        ErrorKind::Configuration,
                        format!("the Redis root certificate {shown} is not usable: {e}"),
                    )
                }
            })?
        }
    };
    Ok(client)
}

/// The code cache, the auth state and the pairing budget on Redis.
///
/// Connects lazily (nothing happens until the first call), bounds every call by the
/// configured timeout and never retries inside a call. Cheap to clone.
///
/// # Key layout
/// - `{prefix}pairing:{device}`: the live code (JSON), expiring with the code;
/// - `{prefix}auth:{{device}}:keys` (sorted set, all scores 0, for prefix scans in byte
///   order), `...:vals` (hash of values), `...:fence` (the highest fence adopted); the braces
///   keep a device's keys in one cluster slot;
/// - `{prefix}companions`: which device holds each companion, and each device's companion
///   (a hash: `c:<companion>` and `d:<device>`);
/// - `{prefix}budget:{key}`: a token bucket per [`BudgetKey`] (a keyed hash of the number:
///   the number itself is never stored, and cannot be recovered by hashing candidates).
///
/// # Crypto provider
/// A `rediss://` connection needs a process-wide rustls crypto provider. The first store
/// created installs `ring`'s as the process default, but only when the application has not
/// installed one itself (install yours first to choose another).
#[derive(Clone)]
pub struct RedisStore {
    /// Made on the first call, inside the runtime that makes it (the manager runs a task).
    conn: Arc<OnceCell<ConnectionManager>>,
    client: redis::Client,
    config: RedisConfig,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The store for `config`, with no connection yet: nothing happens until the first
    /// call, so this works before Redis is up and outside an async runtime.
    /// [`RedisConfig::connect`] also checks that Redis answers. The same as
    /// [`RedisConfig::build`].
    ///
    /// # Errors
    ///
    /// `Configuration`, saying what to write, when [`RedisConfig::validate`] refuses the
    /// configuration (the URL is not a Redis URL, the root certificate cannot be used, a
    /// zero timeout).
    pub fn new(config: &RedisConfig) -> StoreResult<Self> {
        config.validate()?;
        install_crypto_provider();
        Ok(Self {
            conn: Arc::new(OnceCell::new()),
            client: client(config)?,
            config: config.clone(),
        })
    }

    /// The connection manager, made on first use (it reconnects by itself afterwards).
    async fn manager(&self) -> StoreResult<ConnectionManager> {
        let made = self
            .conn
            .get_or_try_init(|| async {
                let manager_config = ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(Some(self.config.timeout))
                    .set_response_timeout(Some(self.config.timeout));
                ConnectionManager::new_lazy_with_config(self.client.clone(), manager_config)
                    .map_err(|e| classify(&e))
            })
            .await?;
        Ok(made.clone())
    }

    /// One `PING`, within the timeout: `Ok` when Redis answers. A TLS or credentials problem
    /// is a permanent error (`Configuration`, `PermissionDenied`) that says what to change;
    /// an outage is a retryable one.
    ///
    /// A `rediss://` URL to a port that speaks plain text never completes its TLS handshake
    /// (the server waits for a command, the client for the server's hello), which looks like
    /// an outage; when the handshake does not answer, the port is asked for a plaintext
    /// `PING`, and a Redis reply there makes it a `Configuration` error.
    pub async fn ping(&self) -> StoreResult<()> {
        let answered = self
            .run("ping", async move |c| {
                redis::cmd("PING").query_async::<()>(c).await
            })
            .await;
        match answered {
            Err(e)
                if matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Unavailable)
                    && self.config.url.starts_with("rediss://")
                    && speaks_plain_text(&self.config.url, self.config.timeout).await =>
            {
                Err(StoreError::new(
                    ErrorKind::Configuration,
                    "REDIS_URL says rediss:// (TLS), but the server on that port answers in plain text: use redis:// for a plaintext port, or the server's TLS port",
                ))
            }
            other => other,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// This store as a [`CodeCache`] that degrades to a miss when Redis is slow or down.
    pub fn resilient_cache(&self) -> ResilientCodeCache<Self> {
        ResilientCodeCache::new(self.clone())
    }

    fn code_key(&self, device: DeviceId) -> String {
        format!("{}pairing:{device}", self.config.prefix)
    }

    fn auth_keys(&self, device: DeviceId) -> [String; 3] {
        let base = format!("{}auth:{{{device}}}", self.config.prefix);
        [
            format!("{base}:fence"),
            format!("{base}:keys"),
            format!("{base}:vals"),
        ]
    }

    fn companions_key(&self) -> String {
        format!("{}companions", self.config.prefix)
    }

    async fn forget_companion(&self, device: DeviceId) -> StoreResult<()> {
        let (key, id) = (self.companions_key(), device.to_string());
        self.run("companion forget", async move |c| {
            scripts::FORGET_COMPANION
                .key(&key)
                .arg(&id)
                .invoke_async::<i64>(c)
                .await
        })
        .await?;
        Ok(())
    }

    /// Runs one command or script within the timeout.
    async fn run<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        f: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.manager().await?;
        match tokio::time::timeout(self.config.timeout, f(&mut conn)).await {
            Ok(r) => r.map_err(|e| classify(&e)),
            Err(_) => Err(timed_out(op)),
        }
    }

    async fn fenced(
        &self,
        op: &'static str,
        script: &'static redis::Script,
        device: DeviceId,
        fence: Fence,
        args: Vec<Vec<u8>>,
    ) -> StoreResult<i64> {
        let keys = self.auth_keys(device);
        self.run(op, async move |c| {
            let mut inv = script.prepare_invoke();
            inv.key(&keys[0]).key(&keys[1]).key(&keys[2]).arg(fence.0);
            for a in &args {
                inv.arg(a.as_slice());
            }
            inv.invoke_async(c).await
        })
        .await
    }
}

#[async_trait]
impl CodeCache for RedisStore {
    async fn put(&self, device: DeviceId, code: &IssuedCode) -> StoreResult<()> {
        let remaining = code.remaining(chrono::Utc::now());
        let key = self.code_key(device);
        let ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return self
                .run("cache delete", async move |c| {
                    redis::cmd("DEL").arg(&key).query_async::<()>(c).await
                })
                .await;
        }
        let value = serde_json::to_string(code)
            .map_err(|e| StoreError::new(ErrorKind::Backend, e.to_string()))?;
        self.run("cache put", async move |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(&value)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(c)
                .await
        })
        .await
    }

    async fn get(&self, device: DeviceId) -> StoreResult<Option<IssuedCode>> {
        let key = self.code_key(device);
        let raw: Option<String> = self
            .run("cache get", async move |c| {
                redis::cmd("GET").arg(&key).query_async(c).await
            })
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        let code: IssuedCode = serde_json::from_str(&raw).map_err(|_| {
            StoreError::new(
                ErrorKind::Corrupt,
                "a cached pairing code is unreadable: it was written by other software",
            )
        })?;
        Ok((!code.is_expired(chrono::Utc::now())).then_some(code))
    }

    async fn delete(&self, device: DeviceId) -> StoreResult<()> {
        let key = self.code_key(device);
        self.run("cache delete", async move |c| {
            redis::cmd("DEL").arg(&key).query_async::<()>(c).await
        })
        .await
    }
}

#[async_trait]
impl AuthStateStore for RedisStore {
    async fn adopt_fence(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.fenced(
            "auth adopt fence",
            &scripts::ADOPT,
            device,
            fence,
            Vec::new(),
        )
        .await?;
        Ok(())
    }

    async fn get(&self, device: DeviceId, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let [_, _, vals] = self.auth_keys(device);
        let key = key.to_owned();
        self.run("auth get", async move |c| {
            redis::cmd("HGET").arg(&vals).arg(&key).query_async(c).await
        })
        .await
    }

    async fn put_many(&self, device: DeviceId, fence: Fence, entries: &[Entry]) -> StoreResult<()> {
        let mut args = Vec::with_capacity(entries.len() * 2);
        for (k, v) in entries {
            check_key(k)?;
            args.push(k.as_bytes().to_vec());
            args.push(v.clone());
        }
        self.fenced("auth put", &scripts::PUT, device, fence, args)
            .await?;
        Ok(())
    }

    async fn delete_many(
        &self,
        device: DeviceId,
        fence: Fence,
        keys: &[String],
    ) -> StoreResult<()> {
        let args = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        self.fenced("auth delete", &scripts::DELETE, device, fence, args)
            .await?;
        Ok(())
    }

    async fn scan_prefix(&self, device: DeviceId, prefix: &str) -> StoreResult<Vec<Entry>> {
        let keys = self.auth_keys(device);
        let prefix = prefix.to_owned();
        let flat: Vec<Vec<u8>> = self
            .run("auth scan", async move |c| {
                scripts::SCAN
                    .key(&keys[1])
                    .key(&keys[2])
                    .arg(prefix.as_bytes())
                    .invoke_async(c)
                    .await
            })
            .await?;
        flat.chunks_exact(2)
            .map(|kv| {
                let key = String::from_utf8(kv[0].clone()).map_err(|_| {
                    StoreError::new(
                        ErrorKind::Corrupt,
                        "an auth-state key in Redis is not UTF-8",
                    )
                })?;
                Ok((key, kv[1].clone()))
            })
            .collect()
    }

    async fn delete_prefix(
        &self,
        device: DeviceId,
        fence: Fence,
        prefix: &str,
    ) -> StoreResult<u64> {
        let n = self
            .fenced(
                "auth delete prefix",
                &scripts::DELETE_PREFIX,
                device,
                fence,
                vec![prefix.as_bytes().to_vec()],
            )
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn clear(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.fenced("auth clear", &scripts::CLEAR, device, fence, Vec::new())
            .await?;
        self.forget_companion(device).await
    }

    async fn seal(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.fenced("auth seal", &scripts::SEAL, device, fence, Vec::new())
            .await?;
        self.forget_companion(device).await
    }

    /// The fence is checked first, then the companion registered (the registry lives in
    /// one key of its own, outside the device's cluster slot, so the two are separate calls).
    async fn register_companion(
        &self,
        device: DeviceId,
        fence: Fence,
        companion: &CompanionKey,
    ) -> StoreResult<()> {
        self.fenced(
            "companion fence",
            &scripts::ADOPT,
            device,
            fence,
            Vec::new(),
        )
        .await?;
        let key = self.companions_key();
        let (id, companion) = (device.to_string(), companion.as_str().to_owned());
        let holder: String = self
            .run("companion register", async move |c| {
                scripts::REGISTER_COMPANION
                    .key(&key)
                    .arg(&id)
                    .arg(&companion)
                    .invoke_async(c)
                    .await
            })
            .await?;
        if holder.is_empty() {
            Ok(())
        } else {
            Err(StoreError::companion_elsewhere(holder))
        }
    }

    /// Walks the keyspace with `SCAN` (a device's keys live in its own cluster slot, so there
    /// is no index to keep): every page costs one pass over the keys, which is fine for the
    /// maintenance it serves.
    async fn devices(&self, after: Option<DeviceId>, limit: usize) -> StoreResult<Vec<DeviceId>> {
        let head = format!("{}auth:{{", self.config.prefix);
        let pattern = format!("{head}*}}:keys");
        let mut cursor: u64 = 0;
        let mut found = Vec::new();
        loop {
            let pattern = pattern.clone();
            let (next, keys): (u64, Vec<String>) = self
                .run("auth devices", async move |c| {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(c)
                        .await
                })
                .await?;
            found.extend(keys.iter().filter_map(|k| {
                k.strip_prefix(&head)?
                    .strip_suffix("}:keys")?
                    .parse::<DeviceId>()
                    .ok()
            }));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        found.retain(|d| after.is_none_or(|a| *d > a));
        found.sort_unstable();
        found.dedup();
        found.truncate(limit);
        Ok(found)
    }

    async fn replace(
        &self,
        device: DeviceId,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> StoreResult<bool> {
        check_key(key)?;
        let [_, _, vals] = self.auth_keys(device);
        let (key, expected, value) = (key.to_owned(), expected.to_vec(), value.to_vec());
        let replaced: i64 = self
            .run("auth replace", async move |c| {
                scripts::REPLACE
                    .key(&vals)
                    .arg(key.as_bytes())
                    .arg(expected.as_slice())
                    .arg(value.as_slice())
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(replaced == 1)
    }
}

#[async_trait]
impl PairingBudget for RedisStore {
    async fn try_acquire(
        &self,
        key: &BudgetKey,
        config: &BudgetConfig,
    ) -> StoreResult<BudgetDecision> {
        let key = format!("{}budget:{}", self.config.prefix, key.as_str());
        let capacity = config.capacity;
        let refill_ms = u64::try_from(config.refill_every.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let (allowed, wait_ms): (i64, i64) = self
            .run("budget", async move |c| {
                scripts::BUDGET
                    .key(&key)
                    .arg(capacity)
                    .arg(refill_ms)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(if allowed == 1 {
            BudgetDecision::Allowed
        } else {
            BudgetDecision::Denied {
                retry_after: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)),
            }
        })
    }
}

/// Whether the server at `url`'s host and port answers a plaintext `PING` with a Redis reply
/// (`+PONG`, or an error such as `-NOAUTH`), within `within`.
async fn speaks_plain_text(url: &str, within: Duration) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Some(addr) = host_and_port(url) else {
        return false;
    };
    let probe = async {
        let mut socket = tokio::net::TcpStream::connect(addr.as_str()).await.ok()?;
        socket.write_all(b"PING\r\n").await.ok()?;
        let mut first = [0_u8; 1];
        let n = socket.read(&mut first).await.ok()?;
        Some(n == 1 && matches!(first[0], b'+' | b'-'))
    };
    tokio::time::timeout(within, probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// `host:port` of a `redis://` or `rediss://` URL (6379 when it names no port).
fn host_and_port(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() {
        return None;
    }
    let has_port = match host_port.rsplit_once(':') {
        Some((host, port)) => {
            !host.ends_with(':')
                && port.bytes().all(|b| b.is_ascii_digit())
                && !port.is_empty()
                && (!host.starts_with('[') || host.ends_with(']'))
        }
        None => false,
    };
    Some(if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::redact;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("redis://:pw@h:6379/0"), "redis://***@h:6379/0");
        assert_eq!(redact("rediss://default:pw@h:6379"), "rediss://***@h:6379");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
        let err = RedisStore::new(&RedisConfig::new("http://:secret@nope")).unwrap_err();
        assert!(!err.to_string().contains("secret"));
        assert_eq!(err.kind(), ErrorKind::Configuration);
    }
}
#[cfg(test)]
mod host_tests {
    use super::host_and_port;

    #[test]
    fn host_and_port_of_redis_urls() {
        for (url, expected) in [
            ("rediss://127.0.0.1:6380", Some("127.0.0.1:6380")),
            (
                "rediss://user:pw@cache.example.com:6380/2",
                Some("cache.example.com:6380"),
            ),
            ("redis://cache.example.com", Some("cache.example.com:6379")),
            ("rediss://[::1]:6380/0", Some("[::1]:6380")),
            ("rediss://[::1]", Some("[::1]:6379")),
            ("rediss://", None),
        ] {
            assert_eq!(host_and_port(url).as_deref(), expected, "{url}");
        }
    }
}
