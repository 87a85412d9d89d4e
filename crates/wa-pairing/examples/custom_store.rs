//! A store of your own, checked against the contract: a decorator that counts every call on
//! its way to the in-memory store (the same shape wraps a database client), run through
//! behaviours of the shared conformance suite.
//!
//! ```sh
//! cargo run -p wa-pairing --example custom_store --features testkit
//! ```
//!
//! A real backend crate stamps the whole suite into its tests with one line:
//! `wa_pairing_store_testkit::conformance_tests!(backend; devices, auth_state, auth_cascade, change_feed);`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wa_pairing::store::{
    AuthStateStore, Capabilities, ClaimRequest, ClaimedDevice, CompanionKey, Device, DeviceId,
    DeviceStore, DeviceUpdate, Entry, Fence, Lease, MemoryStore, NewDevice, PairingRequest,
    StoreResult, Stores, UserId, async_trait,
};
use wa_pairing::testkit::{self, TestBackend};

/// Counts calls, then lets the inner store answer.
#[derive(Clone)]
struct Counted {
    inner: MemoryStore,
    calls: Arc<AtomicU64>,
}

impl Counted {
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl DeviceStore for Counted {
    async fn create(&self, new: NewDevice) -> StoreResult<Device> {
        self.tick();
        self.inner.create(new).await
    }
    async fn get(&self, id: DeviceId) -> StoreResult<Device> {
        self.tick();
        DeviceStore::get(&self.inner, id).await
    }
    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Device>> {
        self.tick();
        self.inner.list_for_user(user).await
    }
    async fn start_pairing(&self, id: DeviceId, request: PairingRequest) -> StoreResult<Device> {
        self.tick();
        self.inner.start_pairing(id, request).await
    }
    async fn refresh(&self, id: DeviceId) -> StoreResult<Device> {
        self.tick();
        self.inner.refresh(id).await
    }
    async fn disconnect(&self, id: DeviceId) -> StoreResult<Device> {
        self.tick();
        self.inner.disconnect(id).await
    }
    async fn resume(&self, id: DeviceId) -> StoreResult<Device> {
        self.tick();
        self.inner.resume(id).await
    }
    async fn unlink(&self, id: DeviceId) -> StoreResult<Device> {
        self.tick();
        self.inner.unlink(id).await
    }
    async fn delete(&self, id: DeviceId) -> StoreResult<()> {
        self.tick();
        DeviceStore::delete(&self.inner, id).await
    }
    async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedDevice>> {
        self.tick();
        self.inner.claim(request).await
    }
    async fn renew(
        &self,
        owner: &str,
        leases: &[Lease],
        lease_for: std::time::Duration,
    ) -> StoreResult<Vec<Lease>> {
        self.tick();
        self.inner.renew(owner, leases, lease_for).await
    }
    async fn release(&self, lease: &Lease) -> StoreResult<bool> {
        self.tick();
        self.inner.release(lease).await
    }
    async fn update(&self, lease: &Lease, update: DeviceUpdate) -> StoreResult<Device> {
        self.tick();
        self.inner.update(lease, update).await
    }
    // `subscribe` is left to its default (no change feed: the runner polls), so the store
    // reports only that its auth state goes with its device.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with_auth_cascade(true)
    }
}

#[async_trait]
impl AuthStateStore for Counted {
    async fn get(&self, device: DeviceId, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.tick();
        AuthStateStore::get(&self.inner, device, key).await
    }
    // `put` and `delete` are provided: they go through `put_many` and `delete_many`.
    async fn put_many(&self, device: DeviceId, fence: Fence, entries: &[Entry]) -> StoreResult<()> {
        self.tick();
        self.inner.put_many(device, fence, entries).await
    }
    async fn delete_many(
        &self,
        device: DeviceId,
        fence: Fence,
        keys: &[String],
    ) -> StoreResult<()> {
        self.tick();
        self.inner.delete_many(device, fence, keys).await
    }
    async fn scan_prefix(&self, device: DeviceId, prefix: &str) -> StoreResult<Vec<Entry>> {
        self.tick();
        self.inner.scan_prefix(device, prefix).await
    }
    async fn delete_prefix(
        &self,
        device: DeviceId,
        fence: Fence,
        prefix: &str,
    ) -> StoreResult<u64> {
        self.tick();
        self.inner.delete_prefix(device, fence, prefix).await
    }
    async fn clear(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.tick();
        self.inner.clear(device, fence).await
    }
    async fn seal(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.tick();
        self.inner.seal(device, fence).await
    }
    async fn register_companion(
        &self,
        device: DeviceId,
        fence: Fence,
        companion: &CompanionKey,
    ) -> StoreResult<()> {
        self.tick();
        self.inner
            .register_companion(device, fence, companion)
            .await
    }
    async fn devices(&self, after: Option<DeviceId>, limit: usize) -> StoreResult<Vec<DeviceId>> {
        self.tick();
        self.inner.devices(after, limit).await
    }
    async fn replace(
        &self,
        device: DeviceId,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> StoreResult<bool> {
        self.tick();
        self.inner.replace(device, key, expected, value).await
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let calls = Arc::new(AtomicU64::new(0));
    // Each behaviour gets a fresh backend, as the suite's macro gives each test one.
    let backend = || {
        let store = Counted {
            inner: MemoryStore::new(),
            calls: Arc::clone(&calls),
        };
        // One backend for devices and auth state: the stores take its reported capabilities.
        TestBackend::new(Stores::backend(store).build())
    };
    testkit::create_and_get(&backend()).await;
    testkit::every_transition_allowed_and_refused(&backend()).await;
    testkit::owner_actions_revoke_the_lease(&backend()).await;
    testkit::stale_fence_is_refused_on_auth_writes(&backend()).await;
    testkit::auth_state_replace_is_compare_and_swap(&backend()).await;
    testkit::delete_removes_the_auth_state(&backend()).await;
    println!(
        "the counting store meets six behaviours of the contract ({} calls went through it)",
        calls.load(Ordering::Relaxed)
    );
}
