//! `whatsapp-rust`'s storage [`Backend`] for one device, on any [`AuthStateStore`]: the
//! backend itself here, the value framing in `encoding`, the process-wide lock table in
//! `lock`, and one file per storage trait of the client.

mod app_sync;
mod device;
mod encoding;
mod import;
mod lock;
mod msg_secret;
mod prekeys;
mod prelude;
mod protocol;
mod signal;
mod sweep;
mod tc_cache;

use std::fmt;

use tokio::sync::{Mutex, MutexGuard};
use wa_pairing_store::{AuthStateStore, StoreError};

#[cfg(doc)]
use wacore::store::traits::Backend;

pub(crate) use self::import::import_entries;
use self::lock::device_lock;
use self::prelude::*;
use crate::error::Error;

/// `whatsapp-rust`'s storage [`Backend`] for one device, on top of any [`AuthStateStore`].
///
/// Every entry of the client's state is its own key in the device's auth-state namespace
/// (the layout is documented in the crate docs, "Key layout"); nothing is kept in one blob.
/// Every write carries the lease's [`Fence`], so a runner that lost the device can never
/// overwrite the state of the one that took over: its writes fail with `LeaseLost`, which
/// the client sees as a database error.
///
/// # Behavior
/// - Gives the same answers as `wacore::store::InMemoryBackend` for the same calls (tested
///   with random call sequences, over the in-memory and the PostgreSQL store), and keeps
///   them across a restart: a new instance over the same store sees everything.
/// - One-time pre-keys are packed 256 to a value (see [`keys`](crate::keys)), so a linked
///   device keeps a handful of pre-key rows instead of hundreds; the client reads back
///   exactly the records it stored.
/// - The read-modify-write methods (the pre-key upload mark and folds, `take_sent_message`,
///   `put_msg_secrets`, the tc-token updates, LID mappings with their phone index,
///   `create`, and the writes they race with) run under one in-process lock per device,
///   shared by every instance for that device in the process.
/// - Batch methods write through one `put_many` (all or none).
/// - The trusted-contact tokens, which the client reads before every message it sends, are
///   kept in memory once read or written: a known token, or a known absence, costs no
///   database round trip. The lease makes this backend its device's one writer; a new
///   backend starts with nothing known.
/// - `load` restores the client's default device props (they are not serialised); the
///   client applies its own overrides afterwards.
/// - Values are stored as the client gives them (Signal records are already serialised),
///   with a few bytes of framing where the trait keeps a flag or a timestamp; the client's
///   serde-only types are JSON. Wrap the store in
///   [`EncryptedAuthState`](wa_pairing_store::EncryptedAuthState) to encrypt them at rest.
///
/// ```
/// use std::sync::Arc;
/// use wa_pairing_store::{DeviceId, Fence, MemoryStore};
/// use wa_pairing_whatsapp::WaBackend;
///
/// let store = Arc::new(MemoryStore::new());
/// let backend = WaBackend::new(store, DeviceId::random(), Fence(1));
/// # let _: &dyn wacore::store::traits::Backend = &backend;
/// ```
pub struct WaBackend {
    store: Arc<dyn AuthStateStore>,
    device: DeviceId,
    fence: Fence,
    lock: Arc<Mutex<()>>,
    on_undecryptable: Option<Reporter>,
    /// Set once the companion is logged out: nothing more is written for it.
    logged_out: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Set once the session is closing: a last save that cannot land is expected.
    closing: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// When the client's retention sweeps can find something (see `sweep`).
    sweeps: Arc<sweep::Sweeps>,
    /// The companion this backend registered for its device (once per companion).
    registered: std::sync::Mutex<Option<wa_pairing_store::CompanionKey>>,
    /// The trusted-contact tokens this backend read or wrote (see `tc_cache`).
    tc: tc_cache::TcCache,
}

fn lock_std<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Told about every value the store's keys cannot open.
type Reporter = Arc<dyn Fn(&StoreError) + Send + Sync>;

impl fmt::Debug for WaBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaBackend")
            .field("device", &self.device)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl WaBackend {
    /// The backend of `device` over `store`, writing with `fence` (the lease's).
    pub fn new(store: Arc<dyn AuthStateStore>, device: DeviceId, fence: Fence) -> Self {
        Self {
            store,
            device,
            fence,
            lock: device_lock(device),
            on_undecryptable: None,
            logged_out: None,
            closing: None,
            sweeps: Arc::default(),
            registered: std::sync::Mutex::new(None),
            tc: tc_cache::TcCache::default(),
        }
    }

    /// Stops writing once `flag` is set: after a logout the companion's state is dead, and a
    /// last flush from the client (its saver writes the device on shutdown) must not bring
    /// back what the runner wiped. Writes from then on are dropped and answered as done, so
    /// the client does not log the expected end of an unlink as a failed save.
    #[must_use]
    pub fn stop_writing_when(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.logged_out = Some(flag);
        self
    }

    /// Once `flag` is set (the session is closing), a save of the device record that cannot
    /// land (the lease is gone, or the companion was logged out) is dropped quietly: the
    /// client's last flush after an owner's refresh, disconnect or unlink is expected to be
    /// refused, and is not an error for the client to log. Nothing else changes: the write
    /// is refused either way.
    #[must_use]
    pub fn quiet_when_closing(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.closing = Some(flag);
        self
    }

    /// Whether the session this backend serves is closing.
    fn closing(&self) -> bool {
        self.closing
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Whether the companion was logged out (by us, or from the phone): its state is dead,
    /// so every write for it is dropped. Dropped quietly: the client's background saver and
    /// app-state sync keep running until the socket closes, and a write reported as failed
    /// is one they log as an error or a warning, for what is the expected end of an unlink
    /// or a logout. Nothing is kept either way (the runner then wipes and seals the state).
    fn logged_out(&self) -> bool {
        self.logged_out
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Calls `f` whenever a read finds a value the store's keys cannot open
    /// ([`ErrorKind::Undecryptable`](wa_pairing_store::ErrorKind::Undecryptable)), so the
    /// session can stop instead of going on with missing state.
    #[must_use]
    pub fn on_undecryptable(mut self, f: impl Fn(&StoreError) + Send + Sync + 'static) -> Self {
        self.on_undecryptable = Some(Arc::new(f));
        self
    }

    /// The outcome of a write for the client. A write the store refused because the lease
    /// is gone ([`LeaseLost`](wa_pairing_store::ErrorKind::LeaseLost)) is answered as done and
    /// logged at debug only: nothing was written (the fence saw to that), and the session is
    /// over. An owner's refresh, disconnect or unlink ends the lease before the runner has
    /// closed the session, so the client's flushes and app-state sync in between meet it; a
    /// takeover by another instance ends it too. Either way the runner is the one that
    /// reports it (its own log line, and `wa_pairing_leases_lost_total` for a lease really
    /// lost) and closes the session, and the session handle refuses to send once the lease
    /// is lost; the client logging each refused write as a failure would only repeat that.
    /// Any other failure stays an error.
    fn written(&self, r: std::result::Result<(), StoreError>) -> Result<()> {
        match r {
            Err(e) if e.kind() == wa_pairing_store::ErrorKind::LeaseLost => {
                tracing::debug!(
                    device = %self.device,
                    closing = self.closing(),
                    error = %e,
                    "a write after the lease ended was not kept"
                );
                Ok(())
            }
            other => other.map_err(|e| self.fail(e)),
        }
    }

    /// Maps a store failure for the client, reporting an undecryptable value first.
    fn fail(&self, e: StoreError) -> WaStoreError {
        if e.kind() == wa_pairing_store::ErrorKind::Undecryptable
            && let Some(f) = &self.on_undecryptable
        {
            f(&e);
        }
        store_error(e)
    }

    /// The device this backend serves.
    pub const fn device(&self) -> DeviceId {
        self.device
    }

    /// The fence every write carries.
    pub const fn fence(&self) -> Fence {
        self.fence
    }

    /// Whether the store holds a linked device (a saved client state with an account number):
    /// the condition for resuming a session without pairing.
    pub async fn is_linked(&self) -> std::result::Result<bool, Error> {
        match self.store.get(self.device, keys::DEVICE).await? {
            None => Ok(false),
            Some(bytes) => {
                let device: Device =
                    serde_json::from_slice(&bytes).map_err(|_| Error::corrupt("device"))?;
                Ok(device.pn.is_some())
            }
        }
    }

    /// Like [`is_linked`](Self::is_linked), after opening every value stored for the device:
    /// a value this process's keys cannot open fails here (an error of kind
    /// [`Undecryptable`](crate::ErrorKind::Undecryptable)), before anything is sent to
    /// WhatsApp. What a session checks before it logs in again.
    pub async fn check_resumable(&self) -> std::result::Result<bool, Error> {
        let entries = self.store.scan_prefix(self.device, "").await?;
        let Some((_, bytes)) = entries.iter().find(|(k, _)| k == keys::DEVICE) else {
            return Ok(false);
        };
        let device: Device = serde_json::from_slice(bytes).map_err(|_| Error::corrupt("device"))?;
        if device.pn.is_none() {
            return Ok(false);
        }
        self.register_companion(&device).await?;
        Ok(true)
    }

    /// Registers the linked companion `device` holds for this device
    /// ([`AuthStateStore::register_companion`]), once per companion: a companion already
    /// stored for another device is refused (two sockets with its keys would log each other
    /// out).
    async fn register_companion(&self, device: &Device) -> std::result::Result<(), StoreError> {
        if device.pn.is_none() {
            return Ok(());
        }
        let companion = wa_pairing_store::CompanionKey::of_noise_key(
            device.noise_key.public_key.public_key_bytes(),
        );
        if lock_std(&self.registered).as_ref() == Some(&companion) {
            return Ok(());
        }
        self.store
            .register_companion(self.device, self.fence, &companion)
            .await?;
        *lock_std(&self.registered) = Some(companion);
        Ok(())
    }

    async fn locked(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.store
            .get(self.device, key)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        if self.logged_out() {
            return Ok(());
        }
        let r = self.store.put(self.device, self.fence, key, value).await;
        self.written(r)
    }

    async fn put_many(&self, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.logged_out() {
            return Ok(());
        }
        let r = self.store.put_many(self.device, self.fence, entries).await;
        self.written(r)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        if self.logged_out() {
            return Ok(());
        }
        let r = self.store.delete(self.device, self.fence, key).await;
        self.written(r)
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        if self.logged_out() {
            return Ok(());
        }
        let r = self.store.delete_many(self.device, self.fence, keys).await;
        self.written(r)
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<Entry>> {
        self.store
            .scan_prefix(self.device, prefix)
            .await
            .map_err(|e| self.fail(e))
    }

    /// Whether any key of `family` is `user` followed by `@` or `:`.
    async fn has_user_key(&self, family: &str, user: &str) -> Result<bool> {
        let scan_prefix = key(family, &[user]);
        let entries = self.scan(&scan_prefix).await?;
        Ok(entries.iter().any(|(k, _)| {
            keys::components(family, k)
                .and_then(|c| c.into_iter().next())
                .and_then(|addr| {
                    addr.strip_prefix(user)
                        .map(|rest| rest.starts_with('@') || rest.starts_with(':'))
                })
                .unwrap_or(false)
        }))
    }

    /// The trusted-contact token of `jid`, from the cache or else the store (the caller holds
    /// the device lock, so a change cannot land between the store's answer and the cache).
    async fn read_tc(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        if let tc_cache::Known::Stored(known) = self.tc.get(jid) {
            return Ok(known);
        }
        let stored = self
            .get(&key(keys::TC_TOKEN, &[jid]))
            .await?
            .map(|v| from_json(&v, "trusted-contact token"))
            .transpose()?;
        self.tc.set(jid, stored.clone());
        Ok(stored)
    }

    /// Stores `entry` as the trusted-contact token of `jid` (`None`: deletes it), and keeps
    /// the cache in step (the caller holds the device lock).
    async fn write_tc(&self, jid: &str, entry: Option<TcTokenEntry>) -> Result<()> {
        let k = key(keys::TC_TOKEN, &[jid]);
        let written = match &entry {
            Some(e) => self.put(&k, &to_json(e)?).await,
            None => self.delete(&k).await,
        };
        if written.is_ok() {
            self.tc.set(jid, entry);
        } else {
            // The store may or may not hold it now.
            self.tc.forget(jid);
        }
        written
    }

    async fn read_lid(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.get(&key(keys::LID, &[lid]))
            .await?
            .map(|v| from_json(&v, "LID mapping"))
            .transpose()
    }

    /// Applies LID mappings in order, keeping the phone index in step; one write at the end.
    async fn put_lid_mappings_locked(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        // The final state of every touched key: Some(value) to write, None to delete.
        let mut overlay: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
        let mut known: HashMap<String, Option<LidPnMappingEntry>> = HashMap::new();
        for entry in entries {
            let lid_key = key(keys::LID, &[&entry.lid]);
            let previous = match known.get(&entry.lid) {
                Some(p) => p.clone(),
                None => self.read_lid(&entry.lid).await?,
            };
            if let Some(old) = previous.filter(|old| old.phone_number != entry.phone_number) {
                overlay.insert(key(keys::PN, &[&old.phone_number]), None);
            }
            overlay.insert(
                key(keys::PN, &[&entry.phone_number]),
                Some(entry.lid.as_bytes().to_vec()),
            );
            overlay.insert(lid_key, Some(to_json(entry)?));
            known.insert(entry.lid.clone(), Some(entry.clone()));
        }
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for (k, v) in overlay {
            match v {
                Some(v) => puts.push((k, v)),
                None => deletes.push(k),
            }
        }
        // Stale phone indexes go first: a failure in between leaves no index pointing at a
        // mapping that no longer carries that number.
        self.delete_many(&deletes).await?;
        self.put_many(&puts).await
    }
}

impl WaBackend {
    /// One retention sweep of `family` (the caller holds the device lock): deletes the rows
    /// whose expiry (`expiry` of the value; `None`: never) is at or before `cutoff`, unless
    /// the family's horizon says none can be, and records what is left.
    async fn sweep(
        &self,
        family: &str,
        horizon: &sweep::Horizon,
        cutoff: i64,
        expiry: impl Fn(&[u8]) -> Result<Option<i64>>,
    ) -> Result<u32> {
        if !horizon.begin(cutoff) {
            return Ok(0);
        }
        let swept = async {
            let mut doomed = Vec::new();
            let mut left = Vec::new();
            for (k, v) in self.scan(family).await? {
                match expiry(&v)? {
                    Some(at) if at <= cutoff => doomed.push(k),
                    Some(at) => left.push(at),
                    None => {}
                }
            }
            self.delete_many(&doomed).await?;
            Ok((encoding::count(doomed.len()), left))
        }
        .await;
        match swept {
            Ok((deleted, left)) => {
                horizon.swept(left);
                Ok(deleted)
            }
            Err(e) => {
                horizon.failed();
                Err(e)
            }
        }
    }
}
