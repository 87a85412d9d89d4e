//! The storage contract.
//!
//! Each method's `# Behavior` list is the spec; every bullet is backed by a test in the
//! conformance suite ([`crate::testkit`], feature `testkit`), named in brackets.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::Stream;
use wa_pairing_code::IssuedCode;
use wa_pairing_phone::PhoneNumber;

use crate::error::StoreResult;
use crate::types::{
    BudgetDecision, Change, ClaimedDevice, Device, DeviceId, DeviceUpdate, Fence, Lease, NewDevice,
    PairingRequest, UserId,
};

/// A stream of device changes, from [`DeviceStore::subscribe`].
pub type ChangeStream = Pin<Box<dyn Stream<Item = Change> + Send + 'static>>;

/// Devices: the owner's actions, and the runner's claims, leases and fenced writes.
#[async_trait]
pub trait DeviceStore: Send + Sync + 'static {
    /// Creates a device in status `disconnected`, with no lease and fence 0.
    ///
    /// # Behavior
    /// - The name is trimmed and must have 1 to 100 characters, else
    ///   [`InvalidInput`](crate::ErrorKind::InvalidInput) (test `create_validates_the_name`).
    /// - Unicode names are stored exactly (test `unicode_device_names`).
    /// - The new device is returned as stored, with a fresh id (test `create_and_get`).
    async fn create(&self, new: NewDevice) -> StoreResult<Device>;

    /// Reads one device.
    ///
    /// # Behavior
    /// - A device that does not exist gives [`NotFound`](crate::ErrorKind::NotFound)
    ///   (test `get_missing_is_not_found`).
    async fn get(&self, id: DeviceId) -> StoreResult<Device>;

    /// Lists a user's devices, oldest first.
    ///
    /// # Behavior
    /// - Only that user's devices, never another's (test `list_only_my_devices`).
    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Device>>;

    /// The owner asks to link the device: sets `connecting`, the method and (for codes) the
    /// number, and clears any old code, QR, error and retry-after.
    ///
    /// # Behavior
    /// - Allowed from `disconnected`, `failed`, `connecting` and `waiting_pairing` (which
    ///   restarts pairing); refused for a `connected` device with
    ///   [`InvalidTransition`](crate::ErrorKind::InvalidTransition)
    ///   (test `start_pairing_sets_connecting_and_clears`), (test `start_pairing_refused_when_connected`).
    /// - Refused with [`Throttled`](crate::ErrorKind::Throttled) while the device's
    ///   `retry_after` lies in the future (test `start_pairing_refused_while_throttled`).
    /// - Takes the device away from any runner holding it: the lease is cleared and the fence
    ///   bumped, so the holder's next write fails with `LeaseLost` and a runner claims it
    ///   afresh (test `owner_actions_revoke_the_lease`).
    async fn start_pairing(&self, id: DeviceId, request: PairingRequest) -> StoreResult<Device>;

    /// The owner asks for a fresh code: like [`start_pairing`](Self::start_pairing) with the
    /// number and method already stored.
    ///
    /// # Behavior
    /// - Refused with [`InvalidInput`](crate::ErrorKind::InvalidInput) when no pairing was
    ///   ever started (no method and number stored) (test `refresh_restarts_pairing`).
    async fn refresh(&self, id: DeviceId) -> StoreResult<Device>;

    /// The owner stops the device: `disconnected`, code and QR cleared, lease revoked.
    ///
    /// # Behavior
    /// - Allowed from every status; stopping a stopped device changes nothing else
    ///   (test `stop_disconnects_from_any_status`).
    /// - Revokes the lease like [`start_pairing`](Self::start_pairing)
    ///   (test `owner_actions_revoke_the_lease`).
    async fn stop(&self, id: DeviceId) -> StoreResult<Device>;

    /// Deletes the device and its auth state.
    ///
    /// # Behavior
    /// - Afterwards the device is not found and its auth state is gone
    ///   (test `delete_removes_device_and_auth_state`).
    /// - Deleting a missing device gives `NotFound`.
    async fn delete(&self, id: DeviceId) -> StoreResult<()>;

    /// Claims up to `limit` devices that need a worker and whose lease is free or lapsed,
    /// for runner instance `owner`, each for `lease_for`. One call for all work.
    ///
    /// # Behavior
    /// - Only devices whose status [needs a worker](crate::DeviceStatus::needs_worker)
    ///   (test `claim_takes_only_devices_that_need_work`).
    /// - Never more than `limit` (test `claim_honours_the_limit`).
    /// - Concurrent claimers never receive the same device (test `concurrent_claimers_never_share`).
    /// - A held, unexpired lease is not claimable; a lapsed one is, with a strictly higher
    ///   fence (test `expired_lease_is_claimable_with_higher_fence`).
    /// - The returned record shows the new lease.
    async fn claim(
        &self,
        owner: &str,
        limit: usize,
        lease_for: Duration,
    ) -> StoreResult<Vec<ClaimedDevice>>;

    /// Extends the given leases held by `owner` to `lease_for` from now; returns the devices
    /// whose lease is still held (the others are lost).
    ///
    /// # Behavior
    /// - A held lease is extended (test `renew_keeps_and_release_frees`).
    /// - A lease whose fence is stale is not renewed and not returned
    ///   (test `renew_skips_stale_leases`).
    async fn renew(
        &self,
        owner: &str,
        leases: &[Lease],
        lease_for: Duration,
    ) -> StoreResult<Vec<Lease>>;

    /// Gives up a lease. Returns whether it was still held.
    ///
    /// # Behavior
    /// - A released device is claimable at once (test `renew_keeps_and_release_frees`).
    /// - Releasing a stale lease changes nothing and returns `false`.
    async fn release(&self, lease: &Lease) -> StoreResult<bool>;

    /// Changes a device under a lease.
    ///
    /// # Behavior
    /// - Refused with [`LeaseLost`](crate::ErrorKind::LeaseLost) (never retryable) unless
    ///   the lease is the current one (test `stale_fence_is_refused_on_update`).
    /// - A status change is checked with
    ///   [`DeviceStatus::check_transition`](crate::DeviceStatus::check_transition)
    ///   (test `every_transition_allowed_and_refused`).
    /// - Returns the device as stored after the change.
    async fn update(&self, lease: &Lease, update: DeviceUpdate) -> StoreResult<Device>;

    /// A stream of changes, where the backend can push them (PostgreSQL LISTEN/NOTIFY, the
    /// in-memory backend). `None` means poll.
    ///
    /// # Behavior
    /// - Where supported, creates, deletes, every owner action, every runner
    ///   [`update`](Self::update) and every [`release`](Self::release) are announced
    ///   (test `change_feed_announces_changes`).
    /// - Claims and renewals are lease bookkeeping and are not announced, so an idle fleet
    ///   generates no notifications however many devices it holds.
    /// - After a gap (a lagging subscriber, a reconnected listener) the stream yields
    ///   [`Change::Resync`](crate::Change::Resync): look at everything.
    async fn subscribe(&self) -> StoreResult<Option<ChangeStream>> {
        Ok(None)
    }
}

/// A short-lived cache of the live pairing code per device (Redis in production).
///
/// Failures are never fatal to callers: the runner logs them and treats them as a miss, and
/// the primary store remains the truth.
#[async_trait]
pub trait CodeCache: Send + Sync + 'static {
    /// Caches `code` for exactly its remaining validity.
    ///
    /// # Behavior
    /// - Readable until it expires, gone after (test `code_cache_ttl_expiry`).
    /// - An already expired code is not stored.
    /// - A new code replaces the old one (test `code_cache_put_get_delete`).
    async fn put(&self, device: DeviceId, code: &IssuedCode) -> StoreResult<()>;

    /// The cached code, if any and still valid.
    async fn get(&self, device: DeviceId) -> StoreResult<Option<IssuedCode>>;

    /// Removes the cached code (on success or refresh).
    async fn delete(&self, device: DeviceId) -> StoreResult<()>;
}

/// One auth-state entry: key and value.
pub type Entry = (String, Vec<u8>);

/// A key-value store per device for the WhatsApp client's state (raw private keys: wrap it
/// in [`EncryptedAuthState`](crate::EncryptedAuthState)).
///
/// Writes carry the device's lease fence. A writer that lost its lease is refused with
/// [`LeaseLost`](crate::ErrorKind::LeaseLost), so it can never corrupt a session another
/// runner now owns.
#[async_trait]
pub trait AuthStateStore: Send + Sync + 'static {
    /// Announces that the holder of `fence` now works on `device`. Stores that keep their own
    /// fence record (Redis) raise it here, so that older fences are refused from now on; stores
    /// that check the device row's fence (SQL, memory) need nothing and keep this default.
    ///
    /// # Behavior
    /// - After a newer lease adopted its fence, writes with the older fence are refused
    ///   (test `stale_fence_is_refused_on_auth_writes`).
    async fn adopt_fence(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        let _ = (device, fence);
        Ok(())
    }

    /// Reads one value.
    ///
    /// # Behavior
    /// - Values come back byte for byte, any bytes and sizes up to at least 1 MiB
    ///   (test `auth_state_binary_round_trip`), (test `auth_state_large_values`).
    async fn get(&self, device: DeviceId, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Writes one value.
    ///
    /// # Behavior
    /// - Any UTF-8 key of up to 512 bytes, including `/`, `:`, `%`, `*`, quotes and
    ///   non-ASCII (test `auth_state_special_keys`).
    /// - Refused with `LeaseLost` for a stale fence (test `stale_fence_is_refused_on_auth_writes`).
    async fn put(&self, device: DeviceId, fence: Fence, key: &str, value: &[u8])
    -> StoreResult<()>;

    /// Writes many values at once (all or none).
    async fn put_many(&self, device: DeviceId, fence: Fence, entries: &[Entry]) -> StoreResult<()>;

    /// Deletes one key (missing keys are fine).
    async fn delete(&self, device: DeviceId, fence: Fence, key: &str) -> StoreResult<()>;

    /// Deletes many keys (missing keys are fine).
    async fn delete_many(&self, device: DeviceId, fence: Fence, keys: &[String])
    -> StoreResult<()>;

    /// All entries whose key starts with `prefix`, in key order (byte order of the UTF-8
    /// key).
    ///
    /// # Behavior
    /// - Exactly the keys with that prefix, sorted; an empty prefix lists everything
    ///   (test `auth_state_prefix_scan_order`).
    /// - Nothing of one device is visible from another (test `auth_state_devices_are_isolated`).
    async fn scan_prefix(&self, device: DeviceId, prefix: &str) -> StoreResult<Vec<Entry>>;

    /// Deletes every key starting with `prefix`; returns how many.
    ///
    /// # Behavior
    /// - Only keys with that prefix go (test `auth_state_delete_by_prefix`).
    async fn delete_prefix(&self, device: DeviceId, fence: Fence, prefix: &str)
    -> StoreResult<u64>;

    /// Deletes all of a device's state (logout, or a fresh pairing).
    ///
    /// # Behavior
    /// - Afterwards a scan finds nothing; other devices keep theirs (test `auth_state_clear`).
    async fn clear(&self, device: DeviceId, fence: Fence) -> StoreResult<()>;
}

/// A per-phone-number budget for pairing-code requests, so one tenant cannot burn
/// WhatsApp's per-number limit.
#[async_trait]
pub trait PairingBudget: Send + Sync + 'static {
    /// Spends one request for `phone` if the budget allows it.
    async fn try_acquire(&self, phone: &PhoneNumber) -> StoreResult<BudgetDecision>;
}

/// The time source of backends that keep time themselves (the SQL backends use the server's
/// clock instead).
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told, for tests.
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_store::{Clock, ManualClock};
///
/// let clock = ManualClock::new(chrono::Utc::now());
/// let before = clock.now();
/// clock.advance(Duration::from_secs(181));
/// assert_eq!((clock.now() - before).num_seconds(), 181);
/// ```
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(at))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += chrono::TimeDelta::from_std(by).unwrap_or(chrono::TimeDelta::MAX);
    }

    /// Sets the clock.
    pub fn set(&self, at: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}
