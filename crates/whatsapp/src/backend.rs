//! `whatsapp-rust`'s storage [`Backend`] for one device, on any [`AuthStateStore`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, LazyLock, Weak};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, MutexGuard};
use wa_pairing_store::{AuthStateStore, DeviceId, Entry, Fence, StoreError};
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::error::{Result, StoreError as WaStoreError};
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry, MessageSecret,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};
use whatsapp_rust::bytes::Bytes;

#[cfg(doc)]
use wacore::store::traits::Backend;

use crate::error::Error;
use crate::keys::{self, key, prefix};

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
/// - The read-modify-write methods (`take_sent_message`, `mark_prekeys_uploaded`,
///   `put_msg_secrets`, the tc-token updates, LID mappings with their phone index,
///   `create`, and the writes they race with) run under one in-process lock per device,
///   shared by every instance for that device in the process.
/// - Batch methods write through one `put_many` (all or none).
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

/// One lock per device for the whole process, so two backends of one device (a restart
/// inside the process, a takeover) never interleave their read-modify-writes.
fn device_lock(device: DeviceId) -> Arc<Mutex<()>> {
    static LOCKS: LazyLock<std::sync::Mutex<HashMap<DeviceId, Weak<Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let mut locks = LOCKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(lock) = locks.get(&device).and_then(Weak::upgrade) {
        return lock;
    }
    locks.retain(|_, l| l.strong_count() > 0);
    let lock = Arc::new(Mutex::new(()));
    locks.insert(device, Arc::downgrade(&lock));
    lock
}

fn store_error(e: StoreError) -> WaStoreError {
    use wa_pairing_store::ErrorKind as K;
    match e.kind() {
        K::Unavailable | K::Timeout => WaStoreError::Connection(Box::new(e)),
        _ => WaStoreError::Database(Box::new(e)),
    }
}

fn corrupt(what: &str) -> WaStoreError {
    WaStoreError::Serialization(Box::new(Error::corrupt(what)))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| WaStoreError::Serialization(Box::new(e)))
}

fn from_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|_| corrupt(what))
}

/// 8 bytes big-endian timestamp, then the payload.
fn stamped(ts: i64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn unstamp<'a>(value: &'a [u8], what: &str) -> Result<(i64, &'a [u8])> {
    if value.len() < 8 {
        return Err(corrupt(what));
    }
    let (ts, rest) = value.split_at(8);
    let ts = i64::from_be_bytes(ts.try_into().map_err(|_| corrupt(what))?);
    Ok((ts, rest))
}

/// Up to this many ids are read one by one; more with one prefix scan.
const FEW_IDS: usize = 8;

fn prekey_value(record: &[u8], uploaded: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + record.len());
    v.push(u8::from(uploaded));
    v.extend_from_slice(record);
    v
}

fn prekey_record(value: &[u8]) -> Result<&[u8]> {
    match value.split_first() {
        Some((0 | 1, record)) => Ok(record),
        _ => Err(corrupt("pre-key")),
    }
}

const MSG_SECRET_LEN: usize = 32;

fn msg_secret_value(secret: &MessageSecret, expires_at: i64, message_ts: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(MSG_SECRET_LEN + 16);
    v.extend_from_slice(secret);
    v.extend_from_slice(&expires_at.to_be_bytes());
    v.extend_from_slice(&message_ts.to_be_bytes());
    v
}

fn parse_msg_secret(value: &[u8]) -> Result<(MessageSecret, i64, i64)> {
    if value.len() != MSG_SECRET_LEN + 16 {
        return Err(corrupt("message secret"));
    }
    let secret: MessageSecret = value[..MSG_SECRET_LEN]
        .try_into()
        .map_err(|_| corrupt("message secret"))?;
    let expires_at = i64::from_be_bytes(
        value[MSG_SECRET_LEN..MSG_SECRET_LEN + 8]
            .try_into()
            .map_err(|_| corrupt("message secret"))?,
    );
    let message_ts = i64::from_be_bytes(
        value[MSG_SECRET_LEN + 8..]
            .try_into()
            .map_err(|_| corrupt("message secret"))?,
    );
    Ok((secret, expires_at, message_ts))
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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
        }
    }

    /// Stops writing once `flag` is set: after a logout the companion's state is dead, and a
    /// last flush from the client (its saver writes the device on shutdown) must not bring
    /// back what the runner wiped.
    #[must_use]
    pub fn stop_writing_when(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.logged_out = Some(flag);
        self
    }

    fn check_writable(&self) -> Result<()> {
        match &self.logged_out {
            Some(f) if f.load(std::sync::atomic::Ordering::SeqCst) => {
                Err(WaStoreError::Database(Box::new(Error::new(
                    crate::error::ErrorKind::Storage,
                    "the companion was logged out: its state is no longer kept",
                ))))
            }
            _ => Ok(()),
        }
    }

    /// Calls `f` whenever a read finds a value the store's keys cannot open
    /// ([`ErrorKind::Undecryptable`](wa_pairing_store::ErrorKind::Undecryptable)), so the
    /// session can stop instead of going on with missing state.
    #[must_use]
    pub fn on_undecryptable(mut self, f: impl Fn(&StoreError) + Send + Sync + 'static) -> Self {
        self.on_undecryptable = Some(Arc::new(f));
        self
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
        self.check_writable()?;
        self.store
            .put(self.device, self.fence, key, value)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn put_many(&self, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.check_writable()?;
        self.store
            .put_many(self.device, self.fence, entries)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.check_writable()?;
        self.store
            .delete(self.device, self.fence, key)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.check_writable()?;
        self.store
            .delete_many(self.device, self.fence, keys)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn scan(&self, prefix: &str) -> Result<Vec<Entry>> {
        self.store
            .scan_prefix(self.device, prefix)
            .await
            .map_err(|e| self.fail(e))
    }

    /// The stored values of `ids` in an id-keyed `family`. A few are read one by one; many
    /// (a pairing generates and uploads hundreds of pre-keys at once) with one prefix scan,
    /// one round trip instead of hundreds.
    async fn get_ids(&self, family: &str, ids: &[u32]) -> Result<HashMap<u32, Vec<u8>>> {
        if ids.len() <= FEW_IDS {
            let mut out = HashMap::with_capacity(ids.len());
            for &id in ids {
                if let Some(v) = self.get(&keys::id_key(family, id)).await? {
                    out.insert(id, v);
                }
            }
            return Ok(out);
        }
        let wanted: HashSet<u32> = ids.iter().copied().collect();
        Ok(self
            .scan(family)
            .await?
            .into_iter()
            .filter_map(|(k, v)| {
                keys::parse_id(family, &k)
                    .filter(|id| wanted.contains(id))
                    .map(|id| (id, v))
            })
            .collect())
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

    async fn read_tc(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.get(&key(keys::TC_TOKEN, &[jid]))
            .await?
            .map(|v| from_json(&v, "trusted-contact token"))
            .transpose()
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

#[async_trait::async_trait]
impl SignalStore for WaBackend {
    async fn put_identity(&self, address: &str, key_bytes: [u8; 32]) -> Result<()> {
        self.put(&key(keys::IDENTITY, &[address]), &key_bytes).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let entries: Vec<Entry> = identities
            .iter()
            .map(|(a, k)| (key(keys::IDENTITY, &[a]), k.to_vec()))
            .collect();
        self.put_many(&entries).await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        self.get(&key(keys::IDENTITY, &[address]))
            .await?
            .map(|v| <[u8; 32]>::try_from(v.as_slice()).map_err(|_| corrupt("identity key")))
            .transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.delete(&key(keys::IDENTITY, &[address])).await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self
            .get(&key(keys::SESSION, &[address]))
            .await?
            .map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put(&key(keys::SESSION, &[address]), session).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        let entries: Vec<Entry> = sessions
            .iter()
            .map(|(a, s)| (key(keys::SESSION, &[a]), s.to_vec()))
            .collect();
        self.put_many(&entries).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete(&key(keys::SESSION, &[address])).await
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        Ok(self.get(&key(keys::SESSION, &[address])).await?.is_some())
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        Ok(self.has_user_key(keys::SESSION, user).await?
            || self.has_user_key(keys::IDENTITY, user).await?)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        let _guard = self.locked().await;
        self.put(
            &keys::id_key(keys::PREKEY, id),
            &prekey_value(record, uploaded),
        )
        .await
    }

    async fn store_prekeys_batch(&self, pre_keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let entries: Vec<Entry> = pre_keys
            .iter()
            .map(|(id, r)| (keys::id_key(keys::PREKEY, *id), prekey_value(r, uploaded)))
            .collect();
        let _guard = self.locked().await;
        self.put_many(&entries).await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        self.get(&keys::id_key(keys::PREKEY, id))
            .await?
            .map(|v| prekey_record(&v).map(Bytes::copy_from_slice))
            .transpose()
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        let found = self.get_ids(keys::PREKEY, ids).await?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(v) = found.get(&id) {
                out.push((id, Bytes::copy_from_slice(prekey_record(v)?)));
            }
        }
        Ok(out)
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        // Update only: a key consumed in the meantime stays deleted.
        let _guard = self.locked().await;
        let mut found = self.get_ids(keys::PREKEY, ids).await?;
        let mut entries = Vec::new();
        for &id in ids {
            if let Some(v) = found.remove(&id) {
                let record = prekey_record(&v)?;
                if v[0] == 0 {
                    entries.push((keys::id_key(keys::PREKEY, id), prekey_value(record, true)));
                }
            }
        }
        self.put_many(&entries).await
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        let _guard = self.locked().await;
        self.delete(&keys::id_key(keys::PREKEY, id)).await
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        // Zero-padded ids: the last key in byte order is the largest id.
        let entries = self.scan(keys::PREKEY).await?;
        Ok(entries
            .iter()
            .filter_map(|(k, _)| keys::parse_id(keys::PREKEY, k))
            .max()
            .unwrap_or(0))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.put(&keys::id_key(keys::SIGNED_PREKEY, id), record)
            .await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.get(&keys::id_key(keys::SIGNED_PREKEY, id)).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let entries = self.scan(keys::SIGNED_PREKEY).await?;
        entries
            .into_iter()
            .map(|(k, v)| {
                keys::parse_id(keys::SIGNED_PREKEY, &k)
                    .map(|id| (id, v))
                    .ok_or_else(|| corrupt("signed pre-key id"))
            })
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.delete(&keys::id_key(keys::SIGNED_PREKEY, id)).await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put(&key(keys::SENDER_KEY, &[address]), record).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        let entries: Vec<Entry> = sender_keys
            .iter()
            .map(|(a, r)| (key(keys::SENDER_KEY, &[a]), r.to_vec()))
            .collect();
        self.put_many(&entries).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.get(&key(keys::SENDER_KEY, &[address])).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete(&key(keys::SENDER_KEY, &[address])).await
    }
}

#[async_trait::async_trait]
impl AppSyncStore for WaBackend {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        self.get(&format!("{}{}", keys::SYNC_KEY, keys::hex(key_id)))
            .await?
            .map(|v| from_json(&v, "app-state sync key"))
            .transpose()
    }

    async fn set_sync_key(&self, key_id: &[u8], sync_key: AppStateSyncKey) -> Result<()> {
        let entries = vec![
            (
                format!("{}{}", keys::SYNC_KEY, keys::hex(key_id)),
                to_json(&sync_key)?,
            ),
            (keys::LATEST_SYNC_KEY.to_owned(), key_id.to_vec()),
        ];
        self.put_many(&entries).await
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        Ok(self
            .get(&key(keys::VERSION, &[name]))
            .await?
            .map(|v| from_json(&v, "app-state version"))
            .transpose()?
            .unwrap_or_default())
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.put(&key(keys::VERSION, &[name]), &to_json(&state)?)
            .await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let base = prefix(keys::MUTATION_MAC, &[name]);
        let entries: Vec<Entry> = mutations
            .iter()
            .map(|m| {
                (
                    format!("{base}{}", keys::hex(&m.index_mac)),
                    m.value_mac.clone(),
                )
            })
            .collect();
        self.put_many(&entries).await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(&format!(
            "{}{}",
            prefix(keys::MUTATION_MAC, &[name]),
            keys::hex(index_mac)
        ))
        .await
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let base = prefix(keys::MUTATION_MAC, &[name]);
        let doomed: Vec<String> = index_macs
            .iter()
            .map(|m| format!("{base}{}", keys::hex(m)))
            .collect();
        self.delete_many(&doomed).await
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.check_writable()?;
        self.store
            .delete_prefix(
                self.device,
                self.fence,
                &prefix(keys::MUTATION_MAC, &[name]),
            )
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.get(keys::LATEST_SYNC_KEY).await
    }
}

#[async_trait::async_trait]
impl ProtocolStore for WaBackend {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let base = prefix(keys::SENDER_KEY_DEVICE, &[group_jid]);
        let entries = self.scan(&base).await?;
        entries
            .into_iter()
            .map(|(k, v)| {
                let device = keys::unescape(&k[base.len()..]);
                match v.as_slice() {
                    [flag @ (0 | 1)] => Ok((device, *flag == 1)),
                    _ => Err(corrupt("sender-key status")),
                }
            })
            .collect()
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let writes: Vec<Entry> = entries
            .iter()
            .map(|(device, has)| {
                (
                    key(keys::SENDER_KEY_DEVICE, &[group_jid, device]),
                    vec![u8::from(*has)],
                )
            })
            .collect();
        self.put_many(&writes).await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.check_writable()?;
        self.store
            .delete_prefix(
                self.device,
                self.fence,
                &prefix(keys::SENDER_KEY_DEVICE, &[group_jid]),
            )
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        let entries = self.scan(keys::SENDER_KEY_DEVICE).await?;
        let doomed: Vec<String> = entries
            .into_iter()
            .filter(|(k, _)| {
                keys::components(keys::SENDER_KEY_DEVICE, k)
                    .and_then(|c| c.get(1).cloned())
                    .is_some_and(|device| device_jids.contains(&device.as_str()))
            })
            .map(|(k, _)| k)
            .collect();
        self.delete_many(&doomed).await
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.check_writable()?;
        self.store
            .delete_prefix(self.device, self.fence, keys::SENDER_KEY_DEVICE)
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.read_lid(lid).await
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let Some(lid) = self.get(&key(keys::PN, &[phone])).await? else {
            return Ok(None);
        };
        let lid = String::from_utf8(lid).map_err(|_| corrupt("phone-number index"))?;
        self.read_lid(&lid).await
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        let _guard = self.locked().await;
        self.put_lid_mappings_locked(std::slice::from_ref(entry))
            .await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        let _guard = self.locked().await;
        self.put_lid_mappings_locked(entries).await
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        let entries = self.scan(keys::LID).await?;
        entries
            .iter()
            .map(|(_, v)| from_json(v, "LID mapping"))
            .collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.put(&key(keys::BASE_KEY, &[address, message_id]), base_key)
            .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        Ok(self
            .get(&key(keys::BASE_KEY, &[address, message_id]))
            .await?
            .is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.delete(&key(keys::BASE_KEY, &[address, message_id]))
            .await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.put(&key(keys::DEVICE_LIST, &[&record.user]), &to_json(&record)?)
            .await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let entries = records
            .iter()
            .map(|r| Ok((key(keys::DEVICE_LIST, &[&r.user]), to_json(r)?)))
            .collect::<Result<Vec<Entry>>>()?;
        self.put_many(&entries).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.get(&key(keys::DEVICE_LIST, &[user]))
            .await?
            .map(|v| from_json(&v, "device list"))
            .transpose()
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.delete(&key(keys::DEVICE_LIST, &[user])).await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.get(&key(keys::GROUP, &[group_jid])).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.put(&key(keys::GROUP, &[group_jid]), blob).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.delete(&key(keys::GROUP, &[group_jid])).await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.read_tc(jid).await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        let _guard = self.locked().await;
        self.put(&key(keys::TC_TOKEN, &[jid]), &to_json(entry)?)
            .await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        let _guard = self.locked().await;
        self.delete(&key(keys::TC_TOKEN, &[jid])).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        let entries = self.scan(keys::TC_TOKEN).await?;
        Ok(entries
            .iter()
            .map(|(k, _)| keys::unescape(&k[keys::TC_TOKEN.len()..]))
            .collect())
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let _guard = self.locked().await;
        let entries = self.scan(keys::TC_TOKEN).await?;
        let mut doomed = Vec::new();
        for (k, v) in entries {
            let entry: TcTokenEntry = from_json(&v, "trusted-contact token")?;
            let token_live = !entry.token.is_empty() && entry.token_timestamp >= token_cutoff;
            let sender_live = entry.sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
            if !(token_live || sender_live) {
                doomed.push(k);
            }
        }
        self.delete_many(&doomed).await?;
        Ok(count(doomed.len()))
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        let _guard = self.locked().await;
        let entry = match self.read_tc(jid).await? {
            Some(existing) => TcTokenEntry {
                sender_timestamp: Some(
                    existing
                        .sender_timestamp
                        .map_or(sender_timestamp, |e| e.max(sender_timestamp)),
                ),
                ..existing
            },
            None => TcTokenEntry {
                token: Vec::new(),
                token_timestamp: sender_timestamp,
                sender_timestamp: Some(sender_timestamp),
            },
        };
        self.put(&key(keys::TC_TOKEN, &[jid]), &to_json(&entry)?)
            .await
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        let _guard = self.locked().await;
        let existing = self.read_tc(jid).await?;
        // Newer wins; a byte-less placeholder never blocks the first real token.
        if let Some(existing) = &existing
            && !existing.token.is_empty()
            && token_timestamp < existing.token_timestamp
        {
            return Ok(());
        }
        let entry = TcTokenEntry {
            token: token.to_vec(),
            token_timestamp,
            sender_timestamp: existing.and_then(|e| e.sender_timestamp),
        };
        self.put(&key(keys::TC_TOKEN, &[jid]), &to_json(&entry)?)
            .await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        let value = stamped(wacore::time::now_secs(), payload);
        let _guard = self.locked().await;
        self.put(&key(keys::SENT, &[chat_jid, message_id]), &value)
            .await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let k = key(keys::SENT, &[chat_jid, message_id]);
        let _guard = self.locked().await;
        let Some(value) = self.get(&k).await? else {
            return Ok(None);
        };
        let (_, payload) = unstamp(&value, "sent message")?;
        let payload = payload.to_vec();
        self.delete(&k).await?;
        Ok(Some(payload))
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        let _guard = self.locked().await;
        let entries = self.scan(keys::SENT).await?;
        let mut doomed = Vec::new();
        for (k, v) in entries {
            let (ts, _) = unstamp(&v, "sent message")?;
            if ts < cutoff_timestamp {
                doomed.push(k);
            }
        }
        self.delete_many(&doomed).await?;
        Ok(count(doomed.len()))
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        let value = stamped(wacore::time::now_secs(), message);
        self.put(&key(keys::PENDING, &[chat, sender, id]), &value)
            .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.get(&key(keys::PENDING, &[chat, sender, id]))
            .await?
            .map(|v| unstamp(&v, "pending inbound message").map(|(_, m)| m.to_vec()))
            .transpose()
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete(&key(keys::PENDING, &[chat, sender, id])).await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        let _guard = self.locked().await;
        let entries = self.scan(keys::PENDING).await?;
        let mut doomed = Vec::new();
        for (k, v) in entries {
            let (ts, _) = unstamp(&v, "pending inbound message")?;
            if ts < cutoff_timestamp {
                doomed.push(k);
            }
        }
        self.delete_many(&doomed).await?;
        Ok(count(doomed.len()))
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let now = wacore::time::now_secs();
        let entries: Vec<Entry> = rows
            .iter()
            .map(|r| {
                (
                    key(keys::PENDING, &[r.chat, r.sender, r.id]),
                    stamped(now, r.message),
                )
            })
            .collect();
        self.put_many(&entries).await
    }

    async fn delete_pending_inbound_batch(&self, pending: &[PendingInboundKey<'_>]) -> Result<()> {
        let doomed: Vec<String> = pending
            .iter()
            .map(|k| key(keys::PENDING, &[k.chat, k.sender, k.id]))
            .collect();
        self.delete_many(&doomed).await
    }
}

#[async_trait::async_trait]
impl MsgSecretStore for WaBackend {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        let _guard = self.locked().await;
        // Entries of one batch may repeat a key: merge through the pending writes.
        let mut pending: BTreeMap<String, (MessageSecret, i64, i64)> = BTreeMap::new();
        for entry in entries {
            let k = key(
                keys::MSG_SECRET,
                &[&entry.chat, &entry.sender, &entry.msg_id],
            );
            let existing = match pending.get(&k) {
                Some(row) => Some(*row),
                None => self
                    .get(&k)
                    .await?
                    .map(|v| parse_msg_secret(&v))
                    .transpose()?,
            };
            let row = match existing {
                Some((_, expires_at, message_ts)) => (
                    entry.secret,
                    merge_msg_secret_expiry(expires_at, entry.expires_at),
                    merge_msg_secret_message_ts(message_ts, entry.message_ts),
                ),
                None => (entry.secret, entry.expires_at, entry.message_ts),
            };
            pending.insert(k, row);
        }
        let writes: Vec<Entry> = pending
            .into_iter()
            .map(|(k, (s, e, t))| (k, msg_secret_value(&s, e, t)))
            .collect();
        self.put_many(&writes).await?;
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        self.get(&key(keys::MSG_SECRET, &[chat, sender, msg_id]))
            .await?
            .map(|v| parse_msg_secret(&v).map(|(s, _, ts)| (s.to_vec(), ts)))
            .transpose()
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        let _guard = self.locked().await;
        let entries = self.scan(keys::MSG_SECRET).await?;
        let mut doomed = Vec::new();
        for (k, v) in entries {
            let (_, expires_at, _) = parse_msg_secret(&v)?;
            if expires_at != 0 && expires_at <= cutoff_timestamp {
                doomed.push(k);
            }
        }
        self.delete_many(&doomed).await?;
        Ok(count(doomed.len()))
    }
}

#[async_trait::async_trait]
impl DeviceStore for WaBackend {
    async fn save(&self, device: &Device) -> Result<()> {
        let value = to_json(device)?;
        let _guard = self.locked().await;
        self.put(keys::DEVICE, &value).await
    }

    async fn load(&self) -> Result<Option<Device>> {
        let Some(bytes) = self.get(keys::DEVICE).await? else {
            return Ok(None);
        };
        let mut device: Device = from_json(&bytes, "device")?;
        // Not serialised: without this a restart before pairing would send empty props.
        device.device_props = Arc::new(wacore::store::device::DEVICE_PROPS.clone());
        Ok(Some(device))
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.get(keys::DEVICE).await?.is_some())
    }

    async fn create(&self) -> Result<i32> {
        let _guard = self.locked().await;
        let last = match self.get(keys::DEVICE_SEQ).await? {
            Some(v) => i32::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| corrupt("device sequence"))?,
            ),
            None => 0,
        };
        let id = last
            .checked_add(1)
            .ok_or_else(|| corrupt("device sequence"))?;
        let mut writes = vec![(keys::DEVICE_SEQ.to_owned(), id.to_be_bytes().to_vec())];
        if self.get(keys::DEVICE).await?.is_none() {
            writes.push((keys::DEVICE.to_owned(), to_json(&Device::new())?));
        }
        self.put_many(&writes).await?;
        Ok(id)
    }
}
