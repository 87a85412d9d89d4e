//! The storage contract.
//!
//! Each method's `# Behavior` list is the spec; every bullet is backed by a test in the
//! conformance suite (the `wa-pairing-store-testkit` crate), named in brackets.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::Stream;
use wa_pairing_code::IssuedCode;

use crate::error::StoreResult;
use crate::stores::Capabilities;
use crate::types::{
    BudgetConfig, BudgetDecision, BudgetKey, Change, ClaimRequest, ClaimedDevice, CompanionKey,
    Device, DeviceId, DeviceUpdate, Fence, Lease, NewDevice, PairingRequest, UserId,
};

/// A stream of device changes, from [`DeviceStore::subscribe`].
pub type ChangeStream = Pin<Box<dyn Stream<Item = Change> + Send + 'static>>;

/// Devices: the owner's actions, and the runner's claims, leases and fenced writes.
#[async_trait]
pub trait DeviceStore: Send + Sync + 'static {
    /// Creates a device in status `disconnected`, with no lease and fence 0.
    ///
    /// # Behavior
    /// - The name is checked as [`validate_device_name`](crate::validate_device_name) says
    ///   (trimmed of white space and invisible characters, 1 to 100 characters, no control
    ///   character, no direction override), else
    ///   [`InvalidInput`](crate::ErrorKind::InvalidInput) (test `create_validates_the_name`).
    /// - Unicode names are stored exactly, and no letter is ever trimmed (test
    ///   `unicode_device_names`), (test `device_names_keep_their_letters`).
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

    /// The owner asks to link the device ([`OwnerAction::StartPairing`](crate::OwnerAction)):
    /// sets `connecting`, the method and (for codes) the number, and clears any old code, QR,
    /// error, retry-after and linked number.
    ///
    /// # Behavior
    /// - Allowed as [`OwnerAction::check`](crate::OwnerAction::check) says: from
    ///   `disconnected`, `failed`, `connecting` and `waiting_pairing` (which restarts
    ///   pairing); refused for a `connected` or `unlinking` device with
    ///   [`InvalidTransition`](crate::ErrorKind::InvalidTransition)
    ///   (test `start_pairing_sets_connecting_and_clears`), (test `start_pairing_refused_when_connected`).
    /// - Refused with [`Throttled`](crate::ErrorKind::Throttled) while the device's
    ///   `retry_after` lies in the future (test `start_pairing_refused_while_throttled`).
    /// - Refused with [`RateLimited`](crate::ErrorKind::RateLimited) and the time to wait
    ///   once the owner has started (or refreshed) pairing
    ///   [`DEFAULT_PAIRING_STARTS_PER_MINUTE`](crate::DEFAULT_PAIRING_STARTS_PER_MINUTE)
    ///   times (or the backend's configured pace) in the last minute, across all their
    ///   devices; a refused start changes nothing (test `pairing_starts_are_paced_per_owner`).
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
    /// - Counts against the owner's pace like a start (test `pairing_starts_are_paced_per_owner`).
    async fn refresh(&self, id: DeviceId) -> StoreResult<Device>;

    /// The owner disconnects the device: `disconnected`, code and QR cleared, lease revoked.
    /// The link stays: [`resume`](Self::resume) brings it back without a code.
    ///
    /// # Behavior
    /// - Allowed from every status; disconnecting a disconnected device changes nothing else
    ///   (test `disconnect_from_any_status`).
    /// - Keeps the auth state and the linked number (test `disconnect_keeps_the_link`).
    /// - Revokes the lease like [`start_pairing`](Self::start_pairing)
    ///   (test `owner_actions_revoke_the_lease`).
    async fn disconnect(&self, id: DeviceId) -> StoreResult<Device>;

    /// The owner brings a linked, disconnected device back online: `connected`, so that a
    /// runner logs in again from the stored auth state, without a code.
    ///
    /// # Behavior
    /// - Allowed from `disconnected` and `failed` when the device is linked (its
    ///   `phone_number` is set); otherwise refused with
    ///   [`InvalidTransition`](crate::ErrorKind::InvalidTransition) saying what to do
    ///   (test `resume_needs_a_linked_device`).
    /// - Clears the code, QR and error; revokes the lease (test `owner_actions_revoke_the_lease`).
    async fn resume(&self, id: DeviceId) -> StoreResult<Device>;

    /// The owner unlinks the device: `unlinking`, so that a runner removes the companion from
    /// the WhatsApp account, wipes the auth state and leaves the device `disconnected`.
    ///
    /// # Behavior
    /// - Allowed from every status (test `unlink_from_any_status`).
    /// - Clears the code, QR and error; revokes the lease (test `owner_actions_revoke_the_lease`).
    async fn unlink(&self, id: DeviceId) -> StoreResult<Device>;

    /// Deletes the device and its auth state.
    ///
    /// # Behavior
    /// - Afterwards the device is not found and, where the backend keeps the auth state beside
    ///   the devices, its auth state is gone, and a late auth-state write of its last holder
    ///   is refused (test `delete_removes_the_device`),
    ///   (test `delete_removes_the_auth_state`), (test `auth_writes_after_delete_are_refused`).
    /// - Deleting a missing device gives `NotFound`.
    async fn delete(&self, id: DeviceId) -> StoreResult<()>;

    /// Claims up to `request.limit` devices that need a worker and whose lease is free or
    /// lapsed, for runner instance `request.owner`, each for `request.lease_for`. One call for
    /// all work.
    ///
    /// # Behavior
    /// - Only devices whose status [needs a worker](crate::DeviceStatus::needs_worker)
    ///   (test `claim_takes_only_devices_that_need_work`).
    /// - Never more than the limit (test `claim_honours_the_limit`).
    /// - Never a device listed in `request.skip` (test `claim_skips_what_it_is_told_to`).
    /// - Pairings and unlinks first, oldest change first; then `connected` devices, at most
    ///   [`ClaimRequest::resumes_allowed`] of them, the longest-waiting lease first (test
    ///   `claim_paces_resumes_after_pairings`).
    /// - Concurrent claimers never receive the same device (test `concurrent_claimers_never_share`).
    /// - A held, unexpired lease is not claimable; a lapsed one is, with a strictly higher
    ///   fence (test `expired_lease_is_claimable_with_higher_fence`).
    /// - A claimed device's code and QR are dropped: they belonged to an earlier holder's
    ///   WhatsApp connection (test `claim_drops_a_code_left_by_an_earlier_lease`).
    /// - The returned record shows the new lease.
    async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedDevice>>;

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

    /// What this store can do beyond the contract, as the backend reports it: whether
    /// [`subscribe`](Self::subscribe) pushes changes
    /// ([`change_feed`](Capabilities::change_feed)), and whether deleting a device deletes
    /// the auth state the same backend keeps beside it
    /// ([`auth_cascade`](Capabilities::auth_cascade)). [`Stores`](crate::Stores) derives its
    /// capabilities from this (the other fields follow from what the builder was given and
    /// are ignored here). Default: nothing beyond the contract.
    ///
    /// # Behavior
    /// - What it reports is what the conformance suite tests (test `declared_capabilities`).
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
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
    /// Provided: [`put_many`](Self::put_many) with this one entry; a backend overrides it
    /// where one value is cheaper to write alone.
    ///
    /// # Behavior
    /// - Any UTF-8 key of up to 512 bytes, including `/`, `:`, `%`, `*`, quotes and
    ///   non-ASCII (test `auth_state_special_keys`).
    /// - Refused with `LeaseLost` for a stale fence (test `stale_fence_is_refused_on_auth_writes`).
    async fn put(
        &self,
        device: DeviceId,
        fence: Fence,
        key: &str,
        value: &[u8],
    ) -> StoreResult<()> {
        self.put_many(device, fence, &[(key.to_owned(), value.to_vec())])
            .await
    }

    /// Writes many values at once (all or none).
    ///
    /// # Behavior
    /// - A batch with one bad entry writes nothing (test `auth_state_put_many_is_all_or_none`).
    async fn put_many(&self, device: DeviceId, fence: Fence, entries: &[Entry]) -> StoreResult<()>;

    /// Deletes one key (missing keys are fine).
    ///
    /// Provided: [`delete_many`](Self::delete_many) with this one key.
    async fn delete(&self, device: DeviceId, fence: Fence, key: &str) -> StoreResult<()> {
        self.delete_many(device, fence, &[key.to_owned()]).await
    }

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

    /// Wipes all of a device's state, like [`clear`](Self::clear), and from then on refuses
    /// every write under `fence` (or an older fence) with
    /// [`LeaseLost`](crate::ErrorKind::LeaseLost): only a newer lease writes again. For the
    /// end of a companion (logged out, unlinked): a write of its session that was still in
    /// flight, or its client's last flush, can never bring back what was wiped.
    ///
    /// # Behavior
    /// - Afterwards a scan finds nothing, writes under `fence` are refused, and a newer
    ///   lease's writes are accepted (test `seal_refuses_every_later_write_under_its_fence`).
    /// - The device's companion is forgotten, like after `clear` (test
    ///   `a_companion_is_stored_for_one_device_only`).
    /// - Refused with `LeaseLost` for a stale fence.
    async fn seal(&self, device: DeviceId, fence: Fence) -> StoreResult<()>;

    /// Records that the device's state holds `companion` (a linked companion device, by its
    /// Noise key), so that the same companion is never stored for a second device: two
    /// sockets with one companion's keys log each other out.
    ///
    /// # Behavior
    /// - Refused with [`Conflict`](crate::ErrorKind::Conflict), naming the other device's
    ///   id, while another device holds `companion`; registering it again for the same device
    ///   changes nothing, and a new companion replaces the device's old one (test
    ///   `a_companion_is_stored_for_one_device_only`).
    /// - [`clear`](Self::clear) and [`seal`](Self::seal) forget the device's companion, so
    ///   another device may then hold it (same test).
    /// - Refused with `LeaseLost` for a stale fence.
    async fn register_companion(
        &self,
        device: DeviceId,
        fence: Fence,
        companion: &CompanionKey,
    ) -> StoreResult<()>;

    /// The devices that have auth state, in id order, starting after `after`, at most
    /// `limit`: for maintenance that visits every stored value (re-encryption, key checks).
    ///
    /// # Behavior
    /// - Each device with at least one value once, in ascending id order; pages continue
    ///   where the last one ended (test `auth_state_devices_are_listed_in_pages`).
    async fn devices(&self, after: Option<DeviceId>, limit: usize) -> StoreResult<Vec<DeviceId>>;

    /// Replaces the value of `key` with `value`, but only while it is still exactly
    /// `expected`, in one atomic step; returns whether it was replaced.
    ///
    /// Carries no fence: it is for maintenance that rewrites a value without changing its
    /// meaning (re-encryption under a new key) while runners keep writing. A value a runner
    /// changed or deleted in the meantime is left alone.
    ///
    /// # Behavior
    /// - Replaces only an unchanged value; a changed or missing one is left as it is and
    ///   `false` is returned (test `auth_state_replace_is_compare_and_swap`).
    async fn replace(
        &self,
        device: DeviceId,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> StoreResult<bool>;
}

/// A per-phone-number budget for pairing-code requests, so one tenant cannot burn
/// WhatsApp's per-number limit.
///
/// Numbers are counted under a [`BudgetKey`] (a keyed hash, never the number), and the
/// caller gives the budget's shape, so that every backend applies the same policy.
#[async_trait]
pub trait PairingBudget: Send + Sync + 'static {
    /// Spends one request for `key` if a token bucket of shape `config` allows it.
    ///
    /// # Behavior
    /// - `capacity` requests pass in a burst, the next is denied with the wait until a token
    ///   is earned back; numbers are counted apart (test `budget_limits_each_number`).
    async fn try_acquire(
        &self,
        key: &BudgetKey,
        config: &BudgetConfig,
    ) -> StoreResult<BudgetDecision>;
}

/// Where a deployment keeps the secret its pairing-budget keys are made with
/// ([`BudgetKeyer`](crate::BudgetKeyer)): one secret for every instance, independent of the
/// auth-state keys, so that rotating those never starts the budgets afresh. The SQL
/// backends keep one in the database (made once, at random, by the migrations).
#[async_trait]
pub trait BudgetSecret: Send + Sync + 'static {
    /// The secret (at least 16 bytes).
    ///
    /// # Behavior
    /// - The same secret on every call and from every instance of the backend.
    async fn budget_secret(&self) -> StoreResult<Vec<u8>>;
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

/// Implements the store traits for `Arc<T>` and `Box<T>` by forwarding, so a concrete store
/// (`Arc<PostgresStore>`), a trait object (`Arc<dyn DeviceStore>`) or a boxed one can be
/// passed wherever a store is expected, without hand-written wrappers.
macro_rules! forward_store_traits {
    ($($ptr:ident),+) => {$(
        #[async_trait]
        impl<T: DeviceStore + ?Sized> DeviceStore for $ptr<T> {
            async fn create(&self, new: NewDevice) -> StoreResult<Device> {
                (**self).create(new).await
            }
            async fn get(&self, id: DeviceId) -> StoreResult<Device> {
                (**self).get(id).await
            }
            async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Device>> {
                (**self).list_for_user(user).await
            }
            async fn start_pairing(
                &self,
                id: DeviceId,
                request: PairingRequest,
            ) -> StoreResult<Device> {
                (**self).start_pairing(id, request).await
            }
            async fn refresh(&self, id: DeviceId) -> StoreResult<Device> {
                (**self).refresh(id).await
            }
            async fn disconnect(&self, id: DeviceId) -> StoreResult<Device> {
                (**self).disconnect(id).await
            }
            async fn resume(&self, id: DeviceId) -> StoreResult<Device> {
                (**self).resume(id).await
            }
            async fn unlink(&self, id: DeviceId) -> StoreResult<Device> {
                (**self).unlink(id).await
            }
            async fn delete(&self, id: DeviceId) -> StoreResult<()> {
                (**self).delete(id).await
            }
            async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedDevice>> {
                (**self).claim(request).await
            }
            async fn renew(
                &self,
                owner: &str,
                leases: &[Lease],
                lease_for: Duration,
            ) -> StoreResult<Vec<Lease>> {
                (**self).renew(owner, leases, lease_for).await
            }
            async fn release(&self, lease: &Lease) -> StoreResult<bool> {
                (**self).release(lease).await
            }
            async fn update(&self, lease: &Lease, update: DeviceUpdate) -> StoreResult<Device> {
                (**self).update(lease, update).await
            }
            async fn subscribe(&self) -> StoreResult<Option<ChangeStream>> {
                (**self).subscribe().await
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
        }

        #[async_trait]
        impl<T: CodeCache + ?Sized> CodeCache for $ptr<T> {
            async fn put(&self, device: DeviceId, code: &IssuedCode) -> StoreResult<()> {
                (**self).put(device, code).await
            }
            async fn get(&self, device: DeviceId) -> StoreResult<Option<IssuedCode>> {
                (**self).get(device).await
            }
            async fn delete(&self, device: DeviceId) -> StoreResult<()> {
                (**self).delete(device).await
            }
        }

        #[async_trait]
        impl<T: AuthStateStore + ?Sized> AuthStateStore for $ptr<T> {
            async fn adopt_fence(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
                (**self).adopt_fence(device, fence).await
            }
            async fn get(&self, device: DeviceId, key: &str) -> StoreResult<Option<Vec<u8>>> {
                (**self).get(device, key).await
            }
            async fn put(
                &self,
                device: DeviceId,
                fence: Fence,
                key: &str,
                value: &[u8],
            ) -> StoreResult<()> {
                (**self).put(device, fence, key, value).await
            }
            async fn put_many(
                &self,
                device: DeviceId,
                fence: Fence,
                entries: &[Entry],
            ) -> StoreResult<()> {
                (**self).put_many(device, fence, entries).await
            }
            async fn delete(&self, device: DeviceId, fence: Fence, key: &str) -> StoreResult<()> {
                (**self).delete(device, fence, key).await
            }
            async fn delete_many(
                &self,
                device: DeviceId,
                fence: Fence,
                keys: &[String],
            ) -> StoreResult<()> {
                (**self).delete_many(device, fence, keys).await
            }
            async fn scan_prefix(&self, device: DeviceId, prefix: &str) -> StoreResult<Vec<Entry>> {
                (**self).scan_prefix(device, prefix).await
            }
            async fn delete_prefix(
                &self,
                device: DeviceId,
                fence: Fence,
                prefix: &str,
            ) -> StoreResult<u64> {
                (**self).delete_prefix(device, fence, prefix).await
            }
            async fn clear(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
                (**self).clear(device, fence).await
            }
            async fn seal(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
                (**self).seal(device, fence).await
            }
            async fn register_companion(
                &self,
                device: DeviceId,
                fence: Fence,
                companion: &CompanionKey,
            ) -> StoreResult<()> {
                (**self).register_companion(device, fence, companion).await
            }
            async fn devices(
                &self,
                after: Option<DeviceId>,
                limit: usize,
            ) -> StoreResult<Vec<DeviceId>> {
                (**self).devices(after, limit).await
            }
            async fn replace(
                &self,
                device: DeviceId,
                key: &str,
                expected: &[u8],
                value: &[u8],
            ) -> StoreResult<bool> {
                (**self).replace(device, key, expected, value).await
            }
        }

        #[async_trait]
        impl<T: PairingBudget + ?Sized> PairingBudget for $ptr<T> {
            async fn try_acquire(
                &self,
                key: &BudgetKey,
                config: &BudgetConfig,
            ) -> StoreResult<BudgetDecision> {
                (**self).try_acquire(key, config).await
            }
        }

        impl<C: Clock + ?Sized> Clock for $ptr<C> {
            fn now(&self) -> DateTime<Utc> {
                (**self).now()
            }
        }
    )+};
}

use std::sync::Arc;
forward_store_traits!(Arc, Box);
