//! Counting the auth-state store's round trips, for the benchmarks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use wa_pairing_store::{AuthStateStore, CompanionKey, DeviceId, Entry, Fence, StoreResult};

/// An auth-state store that counts what the WhatsApp client asks of it: reads (`get`,
/// `scan_prefix`) and writes (every call that changes something), each one round trip.
pub struct Counting<S> {
    inner: S,
    reads: AtomicU64,
    writes: AtomicU64,
    /// Reads and writes by key family (the key up to its first `/`, or `.`).
    families: Mutex<BTreeMap<String, (u64, u64)>>,
}

/// The family of `key`: `prekeys` for `prekeys/00000001.…`, `device` for `device`.
fn family(key: &str) -> String {
    key.split(['/', '.']).next().unwrap_or_default().to_owned()
}

impl<S> Counting<S> {
    /// Counts the calls to `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            families: Mutex::default(),
        }
    }
    fn read(&self, key: &str) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.families.lock() {
            f.entry(family(key)).or_default().0 += 1;
        }
    }
    fn write(&self, key: &str) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut f) = self.families.lock() {
            f.entry(family(key)).or_default().1 += 1;
        }
    }
    /// Reads and writes so far by key family (`prekeys`, `session`, `device`, ...; an empty
    /// family for calls on the whole device).
    pub fn by_family(&self) -> BTreeMap<String, (u64, u64)> {
        self.families.lock().map(|f| f.clone()).unwrap_or_default()
    }
    /// Reads and writes so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.reads.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }
}

#[async_trait]
impl AuthStateStore for Counting<Arc<dyn AuthStateStore>> {
    async fn adopt_fence(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.inner.adopt_fence(device, fence).await
    }
    async fn get(&self, device: DeviceId, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(key);
        self.inner.get(device, key).await
    }
    async fn put(
        &self,
        device: DeviceId,
        fence: Fence,
        key: &str,
        value: &[u8],
    ) -> StoreResult<()> {
        self.write(key);
        self.inner.put(device, fence, key, value).await
    }
    async fn put_many(&self, device: DeviceId, fence: Fence, entries: &[Entry]) -> StoreResult<()> {
        self.write(entries.first().map_or("", |(k, _)| k.as_str()));
        self.inner.put_many(device, fence, entries).await
    }
    async fn delete_many(
        &self,
        device: DeviceId,
        fence: Fence,
        keys: &[String],
    ) -> StoreResult<()> {
        self.write(keys.first().map_or("", String::as_str));
        self.inner.delete_many(device, fence, keys).await
    }
    async fn scan_prefix(&self, device: DeviceId, prefix: &str) -> StoreResult<Vec<Entry>> {
        self.read(prefix);
        self.inner.scan_prefix(device, prefix).await
    }
    async fn delete_prefix(
        &self,
        device: DeviceId,
        fence: Fence,
        prefix: &str,
    ) -> StoreResult<u64> {
        self.write(prefix);
        self.inner.delete_prefix(device, fence, prefix).await
    }
    async fn clear(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.write("");
        self.inner.clear(device, fence).await
    }
    async fn seal(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.write("");
        self.inner.seal(device, fence).await
    }
    async fn register_companion(
        &self,
        device: DeviceId,
        fence: Fence,
        companion: &CompanionKey,
    ) -> StoreResult<()> {
        self.write("");
        self.inner
            .register_companion(device, fence, companion)
            .await
    }
    async fn devices(&self, after: Option<DeviceId>, limit: usize) -> StoreResult<Vec<DeviceId>> {
        self.inner.devices(after, limit).await
    }
    async fn replace(
        &self,
        device: DeviceId,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> StoreResult<bool> {
        self.write(key);
        self.inner.replace(device, key, expected, value).await
    }
}
