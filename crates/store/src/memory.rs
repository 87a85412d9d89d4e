//! The in-memory backend: every trait, safe under concurrent use, for tests and the demo.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::broadcast;
use wa_pairing_code::IssuedCode;
use wa_pairing_phone::PhoneNumber;

use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::traits::{
    AuthStateStore, ChangeStream, Clock, CodeCache, DeviceStore, Entry, PairingBudget, SystemClock,
};
use crate::types::{
    BudgetConfig, BudgetDecision, BudgetKey, Change, ClaimRequest, ClaimedDevice, CompanionKey,
    ConnectionMethod, DEFAULT_MAX_DEVICES_PER_USER, DEFAULT_PAIRING_STARTS_PER_MINUTE, Device,
    DeviceId, DeviceStatus, DeviceUpdate, Fence, Lease, NewDevice, OwnerAction, PairingRequest,
    UserId, validate_device_name,
};

/// Every store in one process: devices, auth state, the code cache and a pairing budget.
///
/// Cheap to clone (an `Arc` inside); clones share the same data. The embedded default for
/// the demo and for tests; nothing survives the process.
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_store::{ClaimRequest, DeviceStore, MemoryStore, NewDevice, PairingRequest, UserId, DeviceStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wa_pairing_store::StoreError> {
/// let store = MemoryStore::new();
/// let device = store.create(NewDevice::new(UserId::random(), "Shop phone")).await?;
/// let phone = wa_pairing_phone::parse("0812 3456 7890").unwrap();
/// store.start_pairing(device.id, PairingRequest::Code { phone }).await?;
///
/// let claimed = store.claim(&ClaimRequest::new("runner-1", 10, Duration::from_secs(30))).await?;
/// assert_eq!(claimed.len(), 1);
/// assert_eq!(claimed[0].device.status, DeviceStatus::Connecting);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    changes: broadcast::Sender<DeviceId>,
}

struct State {
    devices: HashMap<DeviceId, Device>,
    auth: HashMap<DeviceId, BTreeMap<String, Vec<u8>>>,
    codes: HashMap<DeviceId, IssuedCode>,
    buckets: HashMap<BudgetKey, Bucket>,
    max_devices_per_user: usize,
    /// The owner's pace: pairing starts per minute, and a bucket per owner.
    pairing_starts_per_minute: u32,
    pace: HashMap<UserId, Bucket>,
    /// The fence each device's auth state was last sealed under.
    sealed: HashMap<DeviceId, Fence>,
    /// Which device holds each companion, and each device's companion.
    companions: HashMap<CompanionKey, DeviceId>,
    companion_of: HashMap<DeviceId, CompanionKey>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            devices: HashMap::new(),
            auth: HashMap::new(),
            codes: HashMap::new(),
            buckets: HashMap::new(),
            max_devices_per_user: DEFAULT_MAX_DEVICES_PER_USER,
            pairing_starts_per_minute: DEFAULT_PAIRING_STARTS_PER_MINUTE,
            pace: HashMap::new(),
            sealed: HashMap::new(),
            companions: HashMap::new(),
            companion_of: HashMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("MemoryStore")
            .field("devices", &st.devices.len())
            .field("auth_state_devices", &st.auth.len())
            .field("cached_codes", &st.codes.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store on `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let (changes, _) = broadcast::channel(1024);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                clock,
                changes,
            }),
        }
    }

    /// Every store of this backend as [`Stores`](crate::Stores): devices, auth state, code
    /// cache, budget and clock, with a change feed and auth state that goes with its device.
    pub fn stores(&self) -> crate::StoresBuilder {
        crate::Stores::backend(self.clone())
            .code_cache(self.clone())
            .budget(self.clone())
            .clock(self.inner.clock.clone())
    }

    /// At most `n` devices per user (default
    /// [`DEFAULT_MAX_DEVICES_PER_USER`](crate::DEFAULT_MAX_DEVICES_PER_USER)); shared by every
    /// clone.
    #[must_use]
    pub fn with_max_devices_per_user(self, n: usize) -> Self {
        self.lock().max_devices_per_user = n;
        self
    }

    /// At most `n` pairing starts (or refreshes) per owner per minute, in a burst (default
    /// [`DEFAULT_PAIRING_STARTS_PER_MINUTE`](crate::DEFAULT_PAIRING_STARTS_PER_MINUTE));
    /// shared by every clone. Never zero, as in the database (`pairing_starts_per_minute`
    /// is at least 1 there too).
    ///
    /// ```
    /// use std::num::NonZeroU32;
    /// use wa_pairing_store::MemoryStore;
    ///
    /// let store = MemoryStore::new().with_pairing_starts_per_minute(NonZeroU32::new(2).unwrap());
    /// # let _ = store;
    /// ```
    #[must_use]
    pub fn with_pairing_starts_per_minute(self, n: std::num::NonZeroU32) -> Self {
        self.lock().pairing_starts_per_minute = n.get();
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before it can panic.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn announce(&self, id: DeviceId) {
        // No subscribers is fine.
        let _ = self.inner.changes.send(id);
    }

    /// Applies an owner action: checks it ([`OwnerAction::check`]), changes the record, and
    /// revokes the lease (the holder's next write fails, a runner claims afresh).
    fn owner_action(
        &self,
        id: DeviceId,
        action: OwnerAction,
        f: impl FnOnce(&mut Device) -> StoreResult<()>,
    ) -> StoreResult<Device> {
        let now = self.now();
        let device = {
            let mut st = self.lock();
            let device = st
                .devices
                .get_mut(&id)
                .ok_or_else(|| StoreError::not_found(format!("device {id}")))?;
            action.check(device, now)?;
            let mut next = device.clone();
            f(&mut next)?;
            if matches!(action, OwnerAction::StartPairing | OwnerAction::Refresh) {
                let (user, per_minute) = (next.user_id, st.pairing_starts_per_minute);
                pace_acquire(&mut st.pace, user, per_minute, now)?;
            }
            let device = st
                .devices
                .get_mut(&id)
                .ok_or_else(|| StoreError::not_found(format!("device {id}")))?;
            next.lease_owner = None;
            next.lease_expires_at = None;
            next.lease_fence = Fence(next.lease_fence.0 + 1);
            next.updated_at = now;
            *device = next.clone();
            if device.status != DeviceStatus::Connected {
                st.codes.remove(&id);
            }
            next
        };
        self.announce(id);
        Ok(device)
    }

    fn check_fence(st: &State, device: DeviceId, fence: Fence) -> StoreResult<()> {
        match st.devices.get(&device) {
            Some(d) if d.lease_fence == fence && d.lease_owner.is_some() => Ok(()),
            Some(_) => Err(StoreError::lease_lost()),
            None => Err(StoreError::not_found(format!("device {device}"))),
        }
    }

    /// The fence check of auth-state writes: the lease's, and never under a sealed fence.
    fn check_auth_fence(st: &State, device: DeviceId, fence: Fence) -> StoreResult<()> {
        Self::check_fence(st, device, fence)?;
        match st.sealed.get(&device) {
            Some(sealed) if fence <= *sealed => Err(StoreError::lease_lost()),
            _ => Ok(()),
        }
    }
}

/// Forgets `device`'s companion.
fn forget_companion(st: &mut State, device: DeviceId) {
    if let Some(c) = st.companion_of.remove(&device) {
        st.companions.remove(&c);
    }
}

/// Spends one of `user`'s pairing starts, or says how long to wait (the SQL's
/// `wa_pace_acquire`).
fn pace_acquire(
    pace: &mut HashMap<UserId, Bucket>,
    user: UserId,
    per_minute: u32,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let capacity = f64::from(per_minute.max(1));
    let per_token = 60.0 / capacity;
    let bucket = pace.entry(user).or_insert(Bucket {
        tokens: capacity,
        at: now,
    });
    let elapsed = (now - bucket.at).to_std().unwrap_or_default().as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed / per_token).min(capacity);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        Ok(())
    } else {
        Err(StoreError::rate_limited(Duration::from_secs_f64(
            (1.0 - bucket.tokens) * per_token,
        )))
    }
}

fn begin_pairing(device: &mut Device, method: ConnectionMethod, phone: Option<PhoneNumber>) {
    device.status = DeviceStatus::Connecting;
    device.connection_method = method;
    if method == ConnectionMethod::Pairing || phone.is_some() {
        device.phone_for_pairing = phone;
    }
    // A new link replaces the old one: the runner wipes the old state when it pairs.
    device.phone_number = None;
    clear_code(device);
    device.error_message = None;
    device.retry_after = None;
}

fn clear_code(device: &mut Device) {
    device.pairing_code = None;
    device.pairing_code_expires_at = None;
    device.qr_code = None;
}

fn lease_duration(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// The order a claim serves devices in: pairings and unlinks by when they last changed, then
/// sessions to resume by how long their lease has been free (the same order as the SQL).
fn claim_order(d: &Device) -> (bool, DateTime<Utc>, DeviceId) {
    let resume = d.status == DeviceStatus::Connected;
    let since = if resume {
        d.lease_expires_at.unwrap_or(d.updated_at)
    } else {
        d.updated_at
    };
    (resume, since, d.id)
}

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn create(&self, new: NewDevice) -> StoreResult<Device> {
        let name = validate_device_name(&new.device_name)?;
        let now = self.now();
        let mut device = Device::new_unchecked(
            DeviceId::random(),
            new.user_id,
            name,
            DeviceStatus::Disconnected,
            now,
        );
        device.connection_method = new.connection_method;
        {
            let mut st = self.lock();
            let owned = st
                .devices
                .values()
                .filter(|d| d.user_id == new.user_id)
                .count();
            if owned >= st.max_devices_per_user {
                return Err(too_many_devices(st.max_devices_per_user));
            }
            st.devices.insert(device.id, device.clone());
        }
        self.announce(device.id);
        Ok(device)
    }

    async fn get(&self, id: DeviceId) -> StoreResult<Device> {
        self.lock()
            .devices
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::not_found(format!("device {id}")))
    }

    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Device>> {
        let mut list: Vec<Device> = self
            .lock()
            .devices
            .values()
            .filter(|d| d.user_id == user)
            .cloned()
            .collect();
        list.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(list)
    }

    async fn start_pairing(&self, id: DeviceId, request: PairingRequest) -> StoreResult<Device> {
        let (method, phone) = match request {
            PairingRequest::Code { phone } => (ConnectionMethod::Pairing, Some(phone)),
            PairingRequest::Qr => (ConnectionMethod::Qr, None),
        };
        self.owner_action(id, OwnerAction::StartPairing, |d| {
            begin_pairing(d, method, phone);
            Ok(())
        })
    }

    async fn refresh(&self, id: DeviceId) -> StoreResult<Device> {
        self.owner_action(id, OwnerAction::Refresh, |d| {
            let method = d.connection_method;
            if method == ConnectionMethod::Pairing && d.phone_for_pairing.is_none() {
                return Err(StoreError::new(
                    ErrorKind::InvalidInput,
                    "no phone number is stored for this device: start pairing with a phone number first",
                ));
            }
            let phone = d.phone_for_pairing.clone();
            begin_pairing(d, method, phone);
            Ok(())
        })
    }

    async fn disconnect(&self, id: DeviceId) -> StoreResult<Device> {
        self.owner_action(id, OwnerAction::Disconnect, |d| {
            d.status = DeviceStatus::Disconnected;
            clear_code(d);
            Ok(())
        })
    }

    async fn resume(&self, id: DeviceId) -> StoreResult<Device> {
        self.owner_action(id, OwnerAction::Resume, |d| {
            d.status = DeviceStatus::Connected;
            clear_code(d);
            d.error_message = None;
            Ok(())
        })
    }

    async fn unlink(&self, id: DeviceId) -> StoreResult<Device> {
        self.owner_action(id, OwnerAction::Unlink, |d| {
            d.status = DeviceStatus::Unlinking;
            clear_code(d);
            d.error_message = None;
            Ok(())
        })
    }

    async fn delete(&self, id: DeviceId) -> StoreResult<()> {
        {
            let mut st = self.lock();
            if st.devices.remove(&id).is_none() {
                return Err(StoreError::not_found(format!("device {id}")));
            }
            st.auth.remove(&id);
            st.codes.remove(&id);
            st.sealed.remove(&id);
            forget_companion(&mut st, id);
        }
        self.announce(id);
        Ok(())
    }

    async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedDevice>> {
        let (owner, limit) = (request.owner.as_str(), request.limit);
        let now = self.now();
        let expires_at = now + lease_duration(request.lease_for);
        let claimed = {
            let mut st = self.lock();
            let mut candidates: Vec<&mut Device> = st
                .devices
                .values_mut()
                .filter(|d| {
                    d.status.needs_worker() && d.lease_is_free(now) && !request.skip.contains(&d.id)
                })
                .collect();
            // People first (pairings, unlinks: oldest change first, so none starves), then
            // sessions to resume, the longest-waiting lease first.
            candidates.sort_by_key(|d| claim_order(d));
            let mut resumes = request.resumes_allowed();
            candidates
                .into_iter()
                .filter(|d| {
                    if d.status != DeviceStatus::Connected {
                        return true;
                    }
                    let room = resumes > 0;
                    resumes = resumes.saturating_sub(1);
                    room
                })
                .take(limit)
                .map(|d| {
                    d.lease_fence = Fence(d.lease_fence.0 + 1);
                    d.lease_owner = Some(owner.to_owned());
                    d.lease_expires_at = Some(expires_at);
                    // A code or QR belonged to an earlier lease's connection: gone with it.
                    clear_code(d);
                    ClaimedDevice {
                        lease: Lease {
                            device_id: d.id,
                            owner: owner.to_owned(),
                            fence: d.lease_fence,
                            expires_at,
                        },
                        device: d.clone(),
                    }
                })
                .collect::<Vec<_>>()
        };
        Ok(claimed)
    }

    async fn renew(
        &self,
        owner: &str,
        leases: &[Lease],
        lease_for: Duration,
    ) -> StoreResult<Vec<Lease>> {
        let now = self.now();
        let expires_at = now + lease_duration(lease_for);
        let mut st = self.lock();
        Ok(leases
            .iter()
            .filter_map(|l| {
                let d = st.devices.get_mut(&l.device_id)?;
                let held = d.lease_fence == l.fence && d.lease_owner.as_deref() == Some(owner);
                held.then(|| {
                    d.lease_expires_at = Some(expires_at);
                    Lease {
                        device_id: d.id,
                        owner: owner.to_owned(),
                        fence: d.lease_fence,
                        expires_at,
                    }
                })
            })
            .collect())
    }

    async fn release(&self, lease: &Lease) -> StoreResult<bool> {
        let released = {
            let mut st = self.lock();
            match st.devices.get_mut(&lease.device_id) {
                Some(d) if d.lease_fence == lease.fence && d.lease_owner.is_some() => {
                    d.lease_owner = None;
                    d.lease_expires_at = None;
                    true
                }
                _ => false,
            }
        };
        if released {
            self.announce(lease.device_id);
        }
        Ok(released)
    }

    async fn update(&self, lease: &Lease, update: DeviceUpdate) -> StoreResult<Device> {
        let now = self.now();
        let device = {
            let mut st = self.lock();
            Self::check_fence(&st, lease.device_id, lease.fence)?;
            let device = st
                .devices
                .get_mut(&lease.device_id)
                .ok_or_else(|| StoreError::not_found(format!("device {}", lease.device_id)))?;
            if let Some(to) = update.status {
                device.status.check_transition(to)?;
            }
            update.apply_to(device);
            device.updated_at = now;
            device.clone()
        };
        self.announce(lease.device_id);
        Ok(device)
    }

    async fn subscribe(&self) -> StoreResult<Option<ChangeStream>> {
        let rx = self.inner.changes.subscribe();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(id) => Some((Change::Device(id), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((Change::Resync, rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Ok(Some(Box::pin(stream)))
    }

    /// A change feed, and auth state that goes with its device.
    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities::new()
            .with_change_feed(true)
            .with_auth_cascade(true)
    }
}

#[async_trait]
impl AuthStateStore for MemoryStore {
    async fn get(&self, device: DeviceId, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .lock()
            .auth
            .get(&device)
            .and_then(|m| m.get(key))
            .cloned())
    }

    async fn put(
        &self,
        device: DeviceId,
        fence: Fence,
        key: &str,
        value: &[u8],
    ) -> StoreResult<()> {
        check_key(key)?;
        let mut st = self.lock();
        Self::check_auth_fence(&st, device, fence)?;
        st.auth
            .entry(device)
            .or_default()
            .insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    async fn put_many(&self, device: DeviceId, fence: Fence, entries: &[Entry]) -> StoreResult<()> {
        for (k, _) in entries {
            check_key(k)?;
        }
        let mut st = self.lock();
        Self::check_auth_fence(&st, device, fence)?;
        let map = st.auth.entry(device).or_default();
        for (k, v) in entries {
            map.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    async fn delete_many(
        &self,
        device: DeviceId,
        fence: Fence,
        keys: &[String],
    ) -> StoreResult<()> {
        let mut st = self.lock();
        Self::check_auth_fence(&st, device, fence)?;
        if let Some(m) = st.auth.get_mut(&device) {
            for k in keys {
                m.remove(k);
            }
        }
        Ok(())
    }

    async fn scan_prefix(&self, device: DeviceId, prefix: &str) -> StoreResult<Vec<Entry>> {
        // BTreeMap<String, _> orders by the UTF-8 bytes, as the contract asks.
        Ok(self
            .lock()
            .auth
            .get(&device)
            .map(|m| {
                m.range(prefix.to_owned()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn delete_prefix(
        &self,
        device: DeviceId,
        fence: Fence,
        prefix: &str,
    ) -> StoreResult<u64> {
        let mut st = self.lock();
        Self::check_auth_fence(&st, device, fence)?;
        let Some(m) = st.auth.get_mut(&device) else {
            return Ok(0);
        };
        let doomed: Vec<String> = m
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            m.remove(k);
        }
        Ok(doomed.len() as u64)
    }

    async fn clear(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        let mut st = self.lock();
        Self::check_auth_fence(&st, device, fence)?;
        st.auth.remove(&device);
        forget_companion(&mut st, device);
        Ok(())
    }

    async fn seal(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        let mut st = self.lock();
        Self::check_fence(&st, device, fence)?;
        st.auth.remove(&device);
        forget_companion(&mut st, device);
        let sealed = st.sealed.entry(device).or_insert(fence);
        *sealed = (*sealed).max(fence);
        Ok(())
    }

    async fn register_companion(
        &self,
        device: DeviceId,
        fence: Fence,
        companion: &CompanionKey,
    ) -> StoreResult<()> {
        let mut st = self.lock();
        Self::check_auth_fence(&st, device, fence)?;
        match st.companions.get(companion) {
            Some(other) if *other != device => return Err(StoreError::companion_elsewhere(*other)),
            _ => {}
        }
        forget_companion(&mut st, device);
        st.companions.insert(companion.clone(), device);
        st.companion_of.insert(device, companion.clone());
        Ok(())
    }

    async fn devices(&self, after: Option<DeviceId>, limit: usize) -> StoreResult<Vec<DeviceId>> {
        let st = self.lock();
        let mut ids: Vec<DeviceId> = st
            .auth
            .iter()
            .filter(|(id, m)| !m.is_empty() && after.is_none_or(|a| **id > a))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids.truncate(limit);
        Ok(ids)
    }

    async fn replace(
        &self,
        device: DeviceId,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> StoreResult<bool> {
        check_key(key)?;
        let mut st = self.lock();
        match st.auth.get_mut(&device).and_then(|m| m.get_mut(key)) {
            Some(v) if v.as_slice() == expected => {
                *v = value.to_vec();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The refusal of a device over the per-user cap, the same words for every backend.
fn too_many_devices(max: usize) -> StoreError {
    StoreError::new(
        ErrorKind::QuotaExceeded,
        format!(
            "this account already has {max} devices, the most allowed: delete one before adding another"
        ),
    )
}

/// Longest auth-state key accepted, in bytes (the same limit for every backend).
pub const MAX_AUTH_KEY_BYTES: usize = 512;

/// Checks an auth-state key against the contract: 1 to [`MAX_AUTH_KEY_BYTES`] bytes, no NUL.
pub fn check_key(key: &str) -> StoreResult<()> {
    if key.is_empty() || key.len() > MAX_AUTH_KEY_BYTES || key.contains('\0') {
        return Err(StoreError::new(
            ErrorKind::InvalidInput,
            "an auth-state key must have 1 to 512 bytes and no NUL character",
        ));
    }
    Ok(())
}

#[async_trait]
impl CodeCache for MemoryStore {
    async fn put(&self, device: DeviceId, code: &IssuedCode) -> StoreResult<()> {
        let now = self.now();
        let mut st = self.lock();
        if code.is_expired(now) {
            st.codes.remove(&device);
        } else {
            st.codes.insert(device, *code);
        }
        Ok(())
    }

    async fn get(&self, device: DeviceId) -> StoreResult<Option<IssuedCode>> {
        let now = self.now();
        let mut st = self.lock();
        match st.codes.get(&device) {
            Some(c) if c.is_expired(now) => {
                st.codes.remove(&device);
                Ok(None)
            }
            other => Ok(other.copied()),
        }
    }

    async fn delete(&self, device: DeviceId) -> StoreResult<()> {
        self.lock().codes.remove(&device);
        Ok(())
    }
}

#[async_trait]
impl PairingBudget for MemoryStore {
    async fn try_acquire(
        &self,
        key: &BudgetKey,
        cfg: &BudgetConfig,
    ) -> StoreResult<BudgetDecision> {
        let now = self.now();
        let mut st = self.lock();
        let per_token = cfg.refill_every.as_secs_f64().max(f64::MIN_POSITIVE);
        let capacity = f64::from(cfg.capacity);
        let bucket = st.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = (now - bucket.at).to_std().unwrap_or_default().as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed / per_token).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(BudgetDecision::Allowed)
        } else {
            let wait = (1.0 - bucket.tokens) * per_token;
            Ok(BudgetDecision::Denied {
                retry_after: Duration::from_secs_f64(wait),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn key() -> BudgetKey {
        crate::BudgetKeyer::new(b"test").key(&wa_pairing_phone::parse("081234567890").unwrap())
    }

    #[tokio::test]
    async fn budget_refills_on_the_clock() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let store = MemoryStore::with_clock(clock.clone());
        let cfg = BudgetConfig::new(2, Duration::from_secs(100));
        for _ in 0..2 {
            assert_eq!(
                store.try_acquire(&key(), &cfg).await.unwrap(),
                BudgetDecision::Allowed
            );
        }
        assert_eq!(
            store.try_acquire(&key(), &cfg).await.unwrap(),
            BudgetDecision::Denied {
                retry_after: Duration::from_secs(100)
            }
        );
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            store.try_acquire(&key(), &cfg).await.unwrap(),
            BudgetDecision::Denied {
                retry_after: Duration::from_secs(40)
            }
        );
        clock.advance(Duration::from_secs(40));
        assert_eq!(
            store.try_acquire(&key(), &cfg).await.unwrap(),
            BudgetDecision::Allowed
        );
    }

    #[tokio::test]
    async fn code_cache_follows_the_clock() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let store = MemoryStore::with_clock(clock.clone());
        let id = DeviceId::random();
        let code = IssuedCode::new(
            wa_pairing_code::PairingCode::generate(),
            clock.now(),
            Duration::from_secs(180),
        );
        CodeCache::put(&store, id, &code).await.unwrap();
        clock.advance(Duration::from_secs(179));
        assert_eq!(CodeCache::get(&store, id).await.unwrap(), Some(code));
        clock.advance(Duration::from_secs(1));
        assert_eq!(CodeCache::get(&store, id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn leases_lapse_on_the_manual_clock() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let store = MemoryStore::with_clock(clock.clone());
        let d = store
            .create(NewDevice::new(UserId::random(), "a"))
            .await
            .unwrap();
        store.start_pairing(d.id, PairingRequest::Qr).await.unwrap();
        let req = |owner: &str| ClaimRequest::new(owner, 1, Duration::from_secs(30));
        let first = store.claim(&req("a")).await.unwrap();
        assert_eq!(first.len(), 1);
        clock.advance(Duration::from_secs(29));
        assert!(store.claim(&req("b")).await.unwrap().is_empty());
        clock.advance(Duration::from_secs(2));
        let second = store.claim(&req("b")).await.unwrap();
        assert!(second[0].lease.fence > first[0].lease.fence);
    }

    #[test]
    fn debug_shows_no_data() {
        let store = MemoryStore::new();
        assert!(format!("{store:?}").starts_with("MemoryStore"));
    }
}
