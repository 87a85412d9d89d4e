//! A code cache that never fails its caller.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tracing::{info, warn};
use wa_pairing_code::IssuedCode;
use wa_pairing_store::{CodeCache, DeviceId, StoreResult};

/// Wraps a [`CodeCache`] so that a slow or unavailable cache behaves as a miss: `get` returns
/// `None`, `put` and `delete` succeed without effect. It logs one warning per outage (and one
/// line when the cache is back), and counts every failure in the
/// `wa_pairing_redis_failures_total` counter, so pairing always carries on from the primary
/// store.
///
/// ```
/// use wa_pairing_redis::{RedisConfig, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wa_pairing_store::StoreError> {
/// let store = RedisStore::new(&RedisConfig::new("redis://127.0.0.1:6379"))?;
/// let cache = store.resilient_cache();
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ResilientCodeCache<C> {
    inner: C,
    down: AtomicBool,
}

impl<C: CodeCache> ResilientCodeCache<C> {
    /// Wraps `inner`.
    pub const fn new(inner: C) -> Self {
        Self {
            inner,
            down: AtomicBool::new(false),
        }
    }

    fn failed(&self, op: &'static str, e: &wa_pairing_store::StoreError) {
        metrics::counter!("wa_pairing_redis_failures_total", "op" => op).increment(1);
        if !self.down.swap(true, Ordering::SeqCst) {
            warn!(error = %e, "the code cache is unavailable; carrying on without it");
        }
    }

    fn ok(&self) {
        if self.down.swap(false, Ordering::SeqCst) {
            info!("the code cache is available again");
        }
    }

    /// Whether the last call found the cache unavailable.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<C: CodeCache> CodeCache for ResilientCodeCache<C> {
    async fn put(&self, device: DeviceId, code: &IssuedCode) -> StoreResult<()> {
        match self.inner.put(device, code).await {
            Ok(()) => self.ok(),
            Err(e) => self.failed("put", &e),
        }
        Ok(())
    }

    async fn get(&self, device: DeviceId) -> StoreResult<Option<IssuedCode>> {
        match self.inner.get(device).await {
            Ok(v) => {
                self.ok();
                Ok(v)
            }
            Err(e) => {
                self.failed("get", &e);
                Ok(None)
            }
        }
    }

    async fn delete(&self, device: DeviceId) -> StoreResult<()> {
        match self.inner.delete(device).await {
            Ok(()) => self.ok(),
            Err(e) => self.failed("delete", &e),
        }
        Ok(())
    }
}
