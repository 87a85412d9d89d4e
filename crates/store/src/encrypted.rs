//! Encryption at rest for auth state.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, Generate as _, Payload};
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::traits::{AuthStateStore, Entry};
use crate::types::{BudgetKeyer, CompanionKey, DeviceId, Fence};

/// Format version byte of sealed values.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + NONCE_LEN;
const AAD_DOMAIN: &[u8] = b"wa-pairing auth-state v1\0";

/// The name of the environment variable [`Keyring::from_env`] reads.
pub const AUTH_KEYS_ENV: &str = "WA_PAIRING_AUTH_KEYS";

/// Encryption keys for auth state: one current key for new writes, older keys for reading
/// what they wrote, each with a one-byte id stored beside every value.
///
/// `Debug` shows only the key ids; the keys are wiped from memory when dropped.
///
/// ```
/// use wa_pairing_store::Keyring;
///
/// // "id:base64" entries, the current key first; a bare base64 key means id 1.
/// let (_ring, encoded) = Keyring::generate(1);
/// let ring = Keyring::parse(&format!("1:{encoded}"))?;
/// assert_eq!(ring.current_id(), 1);
/// assert!(!format!("{ring:?}").contains(&encoded));
///
/// let err = Keyring::parse("1:not-base64").unwrap_err();
/// assert!(err.to_string().contains("32 bytes"));
/// # Ok::<(), wa_pairing_store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    current: u8,
    keys: BTreeMap<u8, Arc<Zeroizing<[u8; 32]>>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring whose current key is `key` with id `id`.
    pub fn new(id: u8, key: [u8; 32]) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(id, Arc::new(Zeroizing::new(key)));
        Self { current: id, keys }
    }

    /// Adds an older key that can still decrypt what it wrote; new writes keep using the
    /// current key. Replaces a key with the same id.
    #[must_use]
    pub fn with_old_key(mut self, id: u8, key: [u8; 32]) -> Self {
        self.keys.insert(id, Arc::new(Zeroizing::new(key)));
        self
    }

    /// A fresh random key with id `id`, and its base64 form to put in configuration.
    pub fn generate(id: u8) -> (Self, String) {
        let key = Key::generate();
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&key);
        let encoded = BASE64.encode(*bytes);
        (Self::new(id, *bytes), encoded)
    }

    /// Parses `id:base64[,id:base64...]`, the current key first (a bare `base64` means id 1).
    /// Each key is 32 bytes of standard base64.
    pub fn parse(spec: &str) -> StoreResult<Self> {
        let mut ring: Option<Self> = None;
        for (n, part) in spec.split(',').map(str::trim).enumerate() {
            if part.is_empty() {
                continue;
            }
            let (id, b64) = match part.split_once(':') {
                Some((id, b64)) => {
                    let id = id.trim().parse::<u8>().map_err(|_| {
                        config_error(format!(
                            "key {} of {AUTH_KEYS_ENV} has an id that is not a number from 0 to 255: write keys as id:base64",
                            n + 1
                        ))
                    })?;
                    (id, b64.trim())
                }
                None => (1, part),
            };
            let key = decode_key(b64).ok_or_else(|| {
                config_error(format!(
                    "key {} of {AUTH_KEYS_ENV} is not 32 bytes of base64: generate one with `openssl rand -base64 32`",
                    n + 1
                ))
            })?;
            ring = Some(match ring {
                None => Self::new(id, *key),
                Some(r) if r.keys.contains_key(&id) => {
                    return Err(config_error(format!(
                        "{AUTH_KEYS_ENV} lists key id {id} twice: give every key its own id"
                    )));
                }
                Some(r) => r.with_old_key(id, *key),
            });
        }
        ring.ok_or_else(|| {
            config_error(format!(
                "{AUTH_KEYS_ENV} is empty: set it to id:base64 of a 32-byte key (`openssl rand -base64 32`)"
            ))
        })
    }

    /// Reads [`AUTH_KEYS_ENV`] (`WA_PAIRING_AUTH_KEYS`).
    pub fn from_env() -> StoreResult<Self> {
        let value = std::env::var(AUTH_KEYS_ENV).map_err(|_| {
            config_error(format!(
                "{AUTH_KEYS_ENV} is not set: set it to id:base64 of a 32-byte key (`openssl rand -base64 32`)"
            ))
        })?;
        Self::parse(&value)
    }

    /// The id new values are written with.
    pub const fn current_id(&self) -> u8 {
        self.current
    }

    /// The ids of every key that can decrypt.
    pub fn key_ids(&self) -> Vec<u8> {
        self.keys.keys().copied().collect()
    }

    fn cipher(&self, id: u8) -> Option<XChaCha20Poly1305> {
        self.keys
            .get(&id)
            .map(|k| XChaCha20Poly1305::new(&Key::from(***k)))
    }

    /// Seals `plaintext` for `key` of `device` with the current key.
    pub fn seal(&self, device: DeviceId, key: &str, plaintext: &[u8]) -> StoreResult<Vec<u8>> {
        let cipher = self.cipher(self.current).ok_or_else(|| {
            config_error("the current key is missing from the keyring".to_owned())
        })?;
        let nonce = XNonce::generate();
        let aad = aad(device, key);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::new(ErrorKind::Backend, "encrypting auth state failed"))?;
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.push(VERSION);
        out.push(self.current);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed for `key` of `device`.
    ///
    /// A value these keys cannot open gives [`ErrorKind::Undecryptable`], never garbage: its
    /// key id is not configured, the key under that id is not the one it was sealed with, it
    /// was moved from another key or device, changed, or is not in the sealed format at all
    /// (written without encryption). The message names the key id, never a key.
    pub fn open(&self, device: DeviceId, key: &str, sealed: &[u8]) -> StoreResult<Vec<u8>> {
        let Some(id) = Self::key_id_of(sealed) else {
            return Err(undecryptable(
                "a stored auth-state value is not in the encrypted format: it was written without encryption (configure the same keys on every instance) or damaged".to_owned(),
            ));
        };
        let cipher = self.cipher(id).ok_or_else(|| {
            undecryptable(format!(
                "a stored auth-state value was sealed with key id {id}, which is not configured: add that key to {AUTH_KEYS_ENV}"
            ))
        })?;
        let nonce = XNonce::try_from(&sealed[2..HEADER_LEN]).map_err(|_| {
            undecryptable("a stored auth-state value has a damaged header".to_owned())
        })?;
        cipher
            .decrypt(&nonce, Payload { msg: &sealed[HEADER_LEN..], aad: &aad(device, key) })
            .map_err(|_| {
                undecryptable(format!(
                    "a stored auth-state value failed authentication with key id {id}: the key configured as id {id} in {AUTH_KEYS_ENV} is not the one it was sealed with, or the value was changed"
                ))
            })
    }

    /// The id of the key that sealed `sealed`, if it is in the sealed format.
    ///
    /// ```
    /// use wa_pairing_store::{DeviceId, Keyring};
    ///
    /// let (ring, _) = Keyring::generate(7);
    /// let sealed = ring.seal(DeviceId::random(), "k", b"v")?;
    /// assert_eq!(Keyring::key_id_of(&sealed), Some(7));
    /// assert_eq!(Keyring::key_id_of(b"plain"), None);
    /// # Ok::<(), wa_pairing_store::StoreError>(())
    /// ```
    pub fn key_id_of(sealed: &[u8]) -> Option<u8> {
        (sealed.len() >= HEADER_LEN + TAG_LEN && sealed[0] == VERSION).then(|| sealed[1])
    }

    /// A [`BudgetKeyer`] whose secret is derived from the current key, so every instance with
    /// the same keys counts pairing budgets under the same keys (a rotation starts the
    /// budgets afresh).
    pub fn budget_keyer(&self) -> BudgetKeyer {
        use hmac::{KeyInit as _, Mac as _};
        let Some(key) = self.keys.get(&self.current) else {
            return BudgetKeyer::random();
        };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&***key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"wa-pairing budget key v1");
        let derived = Zeroizing::new(mac.finalize().into_bytes().to_vec());
        BudgetKeyer::new(&derived)
    }
}

fn decode_key(b64: &str) -> Option<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(BASE64.decode(b64).ok()?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return None;
    }
    key.copy_from_slice(&bytes);
    Some(key)
}

fn aad(device: DeviceId, key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 16 + key.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(device.as_uuid().as_bytes());
    aad.extend_from_slice(key.as_bytes());
    aad
}

fn config_error(message: String) -> StoreError {
    StoreError::new(ErrorKind::Configuration, message)
}

fn undecryptable(message: String) -> StoreError {
    StoreError::new(ErrorKind::Undecryptable, message)
}

/// Wraps any [`AuthStateStore`] so that every value is sealed with XChaCha20-Poly1305 before
/// it is stored.
///
/// # Behavior
/// - The device id and key name are bound as associated data: a value copied to another key
///   or device fails to open (`Undecryptable`), it never decrypts to the wrong data.
/// - Every value carries the id of the key that sealed it, so keys rotate: put the new key
///   first in the [`Keyring`], run [`reencrypt`](Self::reencrypt), and remove the old key
///   once it reports no value left on it.
/// - Key names stay in clear (prefix scans need them); values do not.
/// - Passes the whole conformance suite over any inner store.
///
/// ```
/// use wa_pairing_store::{AuthStateStore, EncryptedAuthState, Keyring, MemoryStore};
///
/// let (keyring, _base64_for_config) = Keyring::generate(1);
/// let store = EncryptedAuthState::new(MemoryStore::new(), keyring);
/// # let _: &dyn AuthStateStore = &store;
/// ```
#[derive(Clone)]
pub struct EncryptedAuthState<S> {
    inner: S,
    keyring: Keyring,
}

impl<S> fmt::Debug for EncryptedAuthState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedAuthState")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl<S: AuthStateStore> EncryptedAuthState<S> {
    /// Seals values with `keyring`'s current key before they reach `inner`.
    pub const fn new(inner: S, keyring: Keyring) -> Self {
        Self { inner, keyring }
    }

    /// The wrapped store.
    pub const fn inner(&self) -> &S {
        &self.inner
    }

    /// The keyring.
    pub const fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Checks the keys against what is stored, writing nothing: opens every value of up to
    /// `max_devices` devices (in id order) and counts what each key id holds and what cannot
    /// be opened. A service runs it at start to refuse keys that open nothing.
    ///
    /// ```
    /// use wa_pairing_store::{AuthStateStore, EncryptedAuthState, Keyring, MemoryStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wa_pairing_store::StoreError> {
    /// let (keys, _) = Keyring::generate(1);
    /// let store = EncryptedAuthState::new(MemoryStore::new(), keys);
    /// let report = store.check_keys(50).await?;
    /// assert_eq!(report.values, 0);
    /// assert!(!report.opens_none());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn check_keys(&self, max_devices: usize) -> StoreResult<KeyReport> {
        self.visit(max_devices, false, |_| {}).await
    }

    /// Re-encrypts every stored value that is not sealed with the current key, for every
    /// device, and reports what it did; `progress` sees the running totals after each device.
    ///
    /// # Behavior
    /// - Safe while runners write: each value is replaced in one atomic step only if it is
    ///   still the value that was read ([`AuthStateStore::replace`]); a value changed in the
    ///   meantime was written by a runner and is left alone (counted in
    ///   [`KeyReport::changed`]).
    /// - Idempotent and resumable: values already on the current key are left alone, so a
    ///   second run (or a run after an interruption) finishes the rest.
    /// - A value none of the keys can open is left alone and counted in
    ///   [`KeyReport::unreadable`], with its device.
    /// - The old key may be removed once a run reports no values left on it
    ///   ([`KeyReport::on_older_keys`] is 0 and nothing is unreadable).
    pub async fn reencrypt(
        &self,
        progress: impl FnMut(&KeyReport) + Send,
    ) -> StoreResult<KeyReport> {
        self.visit(usize::MAX, true, progress).await
    }

    async fn visit(
        &self,
        max_devices: usize,
        rewrite: bool,
        mut progress: impl FnMut(&KeyReport) + Send,
    ) -> StoreResult<KeyReport> {
        const PAGE: usize = 100;
        let mut report = KeyReport {
            current_key_id: self.keyring.current,
            ..KeyReport::default()
        };
        let mut after = None;
        while report.devices < max_devices {
            let page = self
                .inner
                .devices(after, PAGE.min(max_devices - report.devices))
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(*last);
            for device in page {
                self.visit_device(device, rewrite, &mut report).await?;
                progress(&report);
            }
        }
        Ok(report)
    }

    async fn visit_device(
        &self,
        device: DeviceId,
        rewrite: bool,
        report: &mut KeyReport,
    ) -> StoreResult<()> {
        report.devices += 1;
        for (key, raw) in self.inner.scan_prefix(device, "").await? {
            report.values += 1;
            let id = Keyring::key_id_of(&raw);
            if let Some(id) = id {
                *report.values_by_key_id.entry(id).or_default() += 1;
            }
            let plain = match self.keyring.open(device, &key, &raw) {
                Ok(plain) => Zeroizing::new(plain),
                Err(_) => {
                    report.unreadable += 1;
                    report.unreadable_devices.insert(device);
                    if let Some(id) = id.filter(|id| !self.keyring.keys.contains_key(id)) {
                        report.missing_key_ids.insert(id);
                    }
                    continue;
                }
            };
            if id == Some(self.keyring.current) {
                report.on_current_key += 1;
                continue;
            }
            if !rewrite {
                report.on_older_keys += 1;
                continue;
            }
            let sealed = self.keyring.seal(device, &key, &plain)?;
            if self.inner.replace(device, &key, &raw, &sealed).await? {
                report.rewritten += 1;
            } else {
                report.changed += 1;
            }
        }
        Ok(())
    }
}

/// What [`EncryptedAuthState::check_keys`] found or [`EncryptedAuthState::reencrypt`] did.
///
/// Holds key ids and device ids only, never keys or values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyReport {
    /// The id new values are sealed with.
    pub current_key_id: u8,
    /// Devices visited.
    pub devices: usize,
    /// Values visited.
    pub values: u64,
    /// Values per key id that sealed them (values not in the sealed format are not counted).
    pub values_by_key_id: BTreeMap<u8, u64>,
    /// Values sealed with the current key.
    pub on_current_key: u64,
    /// Values sealed with an older configured key and left there (a check, not a rewrite).
    pub on_older_keys: u64,
    /// Values re-encrypted with the current key.
    pub rewritten: u64,
    /// Values a runner changed between the read and the rewrite (already rewritten by it).
    pub changed: u64,
    /// Values none of the configured keys can open.
    pub unreadable: u64,
    /// The devices holding such values.
    pub unreadable_devices: std::collections::BTreeSet<DeviceId>,
    /// Key ids found on stored values that are not configured.
    pub missing_key_ids: std::collections::BTreeSet<u8>,
}

impl KeyReport {
    /// Whether values are stored and none of them could be opened: the keys are wrong.
    pub fn opens_none(&self) -> bool {
        self.values > 0 && self.unreadable == self.values
    }
}

#[async_trait]
impl<S: AuthStateStore> AuthStateStore for EncryptedAuthState<S> {
    async fn adopt_fence(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.inner.adopt_fence(device, fence).await
    }

    async fn get(&self, device: DeviceId, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match self.inner.get(device, key).await? {
            Some(v) => self.keyring.open(device, key, &v).map(Some),
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        device: DeviceId,
        fence: Fence,
        key: &str,
        value: &[u8],
    ) -> StoreResult<()> {
        let sealed = self.keyring.seal(device, key, value)?;
        self.inner.put(device, fence, key, &sealed).await
    }

    async fn put_many(&self, device: DeviceId, fence: Fence, entries: &[Entry]) -> StoreResult<()> {
        let sealed = entries
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.keyring.seal(device, k, v)?)))
            .collect::<StoreResult<Vec<Entry>>>()?;
        self.inner.put_many(device, fence, &sealed).await
    }

    async fn delete(&self, device: DeviceId, fence: Fence, key: &str) -> StoreResult<()> {
        self.inner.delete(device, fence, key).await
    }

    async fn delete_many(
        &self,
        device: DeviceId,
        fence: Fence,
        keys: &[String],
    ) -> StoreResult<()> {
        self.inner.delete_many(device, fence, keys).await
    }

    async fn scan_prefix(&self, device: DeviceId, prefix: &str) -> StoreResult<Vec<Entry>> {
        self.inner
            .scan_prefix(device, prefix)
            .await?
            .into_iter()
            .map(|(k, v)| {
                let plain = self.keyring.open(device, &k, &v)?;
                Ok((k, plain))
            })
            .collect()
    }

    async fn delete_prefix(
        &self,
        device: DeviceId,
        fence: Fence,
        prefix: &str,
    ) -> StoreResult<u64> {
        self.inner.delete_prefix(device, fence, prefix).await
    }

    async fn clear(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.inner.clear(device, fence).await
    }

    async fn seal(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.inner.seal(device, fence).await
    }

    async fn register_companion(
        &self,
        device: DeviceId,
        fence: Fence,
        companion: &CompanionKey,
    ) -> StoreResult<()> {
        self.inner
            .register_companion(device, fence, companion)
            .await
    }

    async fn devices(&self, after: Option<DeviceId>, limit: usize) -> StoreResult<Vec<DeviceId>> {
        self.inner.devices(after, limit).await
    }

    /// Compares plaintexts: the stored value is opened and compared with `expected`; the
    /// sealed form of `value` replaces it only if the sealed value read is still stored.
    async fn replace(
        &self,
        device: DeviceId,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> StoreResult<bool> {
        let Some(raw) = self.inner.get(device, key).await? else {
            return Ok(false);
        };
        if *self.keyring.open(device, key, &raw).map(Zeroizing::new)? != expected {
            return Ok(false);
        }
        let sealed = self.keyring.seal(device, key, value)?;
        self.inner.replace(device, key, &raw, &sealed).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: u8, byte: u8) -> Keyring {
        Keyring::new(id, [byte; 32])
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let r = ring(1, 7);
        let d = DeviceId::random();
        let sealed = r.seal(d, "identity", b"secret key bytes").unwrap();
        assert_eq!(sealed.len(), HEADER_LEN + 16 + TAG_LEN);
        assert_eq!(r.open(d, "identity", &sealed).unwrap(), b"secret key bytes");
        // Bound to the key name and the device.
        assert_eq!(
            r.open(d, "identity2", &sealed).unwrap_err().kind(),
            ErrorKind::Undecryptable
        );
        assert_eq!(
            r.open(DeviceId::random(), "identity", &sealed)
                .unwrap_err()
                .kind(),
            ErrorKind::Undecryptable
        );
        // Never the same ciphertext twice.
        assert_ne!(sealed, r.seal(d, "identity", b"secret key bytes").unwrap());
    }

    #[test]
    fn tampering_and_wrong_keys_are_reported_not_decrypted() {
        let r = ring(1, 7);
        let d = DeviceId::random();
        let sealed = r.seal(d, "k", b"value").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                r.open(d, "k", &bad).unwrap_err().kind(),
                ErrorKind::Undecryptable,
                "byte {i}"
            );
        }
        let wrong = ring(1, 8);
        let err = wrong.open(d, "k", &sealed).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Undecryptable);
        assert!(err.to_string().contains("key id 1"), "{err}");
        let unknown = ring(2, 7);
        let err = unknown.open(d, "k", &sealed).unwrap_err();
        assert!(err.to_string().contains("not configured"), "{err}");
        assert_eq!(
            r.open(d, "k", b"plain").unwrap_err().kind(),
            ErrorKind::Undecryptable
        );
    }

    #[test]
    fn rotation_reads_old_and_writes_new() {
        let d = DeviceId::random();
        let old = ring(1, 1);
        let sealed_old = old.seal(d, "k", b"v").unwrap();
        let rotated = ring(2, 2).with_old_key(1, [1; 32]);
        assert_eq!(rotated.open(d, "k", &sealed_old).unwrap(), b"v");
        let sealed_new = rotated.seal(d, "k", b"v").unwrap();
        assert_eq!(sealed_new[1], 2);
        assert!(old.open(d, "k", &sealed_new).is_err());
    }

    async fn sealed_store(
        ring: &Keyring,
        store: &crate::MemoryStore,
        values: usize,
    ) -> (DeviceId, Fence) {
        use crate::{ClaimRequest, DeviceStore, NewDevice, PairingRequest, UserId};
        let d = store
            .create(NewDevice::new(UserId::random(), "d"))
            .await
            .unwrap();
        store.start_pairing(d.id, PairingRequest::Qr).await.unwrap();
        let c = store
            .claim(&ClaimRequest::new(
                "r",
                10,
                std::time::Duration::from_secs(60),
            ))
            .await
            .unwrap()
            .remove(0);
        let sealed = EncryptedAuthState::new(store.clone(), ring.clone());
        for i in 0..values {
            sealed
                .put(
                    d.id,
                    c.lease.fence,
                    &format!("k{i}"),
                    format!("v{i}").as_bytes(),
                )
                .await
                .unwrap();
        }
        (d.id, c.lease.fence)
    }

    #[tokio::test]
    async fn reencrypt_moves_everything_to_the_current_key_once() {
        let store = crate::MemoryStore::new();
        let old = ring(1, 1);
        let (a, _) = sealed_store(&old, &store, 3).await;
        let (b, _) = sealed_store(&old, &store, 2).await;
        let rotated = EncryptedAuthState::new(store.clone(), ring(2, 2).with_old_key(1, [1; 32]));
        let before = rotated.check_keys(100).await.unwrap();
        assert_eq!(
            (before.values, before.on_older_keys, before.on_current_key),
            (5, 5, 0)
        );
        assert!(!before.opens_none());
        let mut seen = Vec::new();
        let report = rotated.reencrypt(|r| seen.push(r.devices)).await.unwrap();
        assert_eq!(seen, [1, 2], "progress after each device");
        assert_eq!((report.rewritten, report.unreadable), (5, 0));
        assert_eq!(report.values_by_key_id.get(&1), Some(&5));
        // Everything now opens with the new key alone, with the same contents.
        let new_only = EncryptedAuthState::new(store.clone(), ring(2, 2));
        assert_eq!(
            new_only.get(a, "k2").await.unwrap().as_deref(),
            Some(&b"v2"[..])
        );
        assert_eq!(
            new_only.get(b, "k1").await.unwrap().as_deref(),
            Some(&b"v1"[..])
        );
        let again = rotated.reencrypt(|_| {}).await.unwrap();
        assert_eq!((again.rewritten, again.on_current_key), (0, 5));
    }

    #[tokio::test]
    async fn keys_that_open_nothing_are_reported_with_their_ids() {
        let store = crate::MemoryStore::new();
        let (a, _) = sealed_store(&ring(1, 1), &store, 2).await;
        let wrong_id = EncryptedAuthState::new(store.clone(), ring(2, 2));
        let report = wrong_id.check_keys(10).await.unwrap();
        assert!(report.opens_none());
        assert_eq!(report.missing_key_ids, [1].into());
        assert_eq!(report.unreadable_devices, [a].into());
        let err = wrong_id.get(a, "k0").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Undecryptable);
        assert!(err.to_string().contains("key id 1"), "{err}");
        // Same id, another key: nothing opens, no id is missing.
        let wrong_key = EncryptedAuthState::new(store.clone(), ring(1, 9));
        let report = wrong_key.check_keys(10).await.unwrap();
        assert!(report.opens_none() && report.missing_key_ids.is_empty());
        // Re-encryption leaves what it cannot open alone.
        let report = wrong_key.reencrypt(|_| {}).await.unwrap();
        assert_eq!((report.rewritten, report.unreadable), (0, 2));
        let right = EncryptedAuthState::new(store, ring(1, 1));
        assert_eq!(
            right.get(a, "k0").await.unwrap().as_deref(),
            Some(&b"v0"[..])
        );
    }

    #[tokio::test]
    async fn reencrypt_leaves_a_value_a_runner_changed_meanwhile() {
        let store = crate::MemoryStore::new();
        let (a, fence) = sealed_store(&ring(1, 1), &store, 1).await;
        let rotated = EncryptedAuthState::new(store.clone(), ring(2, 2).with_old_key(1, [1; 32]));
        let raw = store.get(a, "k0").await.unwrap().unwrap();
        // A runner writes between the tool's read and its swap.
        rotated.put(a, fence, "k0", b"runner's").await.unwrap();
        let sealed = rotated.keyring().seal(a, "k0", b"v0").unwrap();
        assert!(!store.replace(a, "k0", &raw, &sealed).await.unwrap());
        assert_eq!(
            rotated.get(a, "k0").await.unwrap().as_deref(),
            Some(&b"runner's"[..])
        );
        // Through the wrapper, replace compares plaintexts.
        assert!(!rotated.replace(a, "k0", b"v0", b"x").await.unwrap());
        assert!(rotated.replace(a, "k0", b"runner's", b"x").await.unwrap());
        assert_eq!(
            rotated.get(a, "k0").await.unwrap().as_deref(),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn budget_keys_follow_the_current_key() {
        let phone = wa_pairing_phone::parse("+6281234567890").unwrap();
        let a = ring(1, 1).budget_keyer().key(&phone);
        assert_eq!(
            a,
            ring(1, 1)
                .with_old_key(3, [3; 32])
                .budget_keyer()
                .key(&phone)
        );
        assert_ne!(a, ring(1, 2).budget_keyer().key(&phone));
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn parse_specs() {
        let k1 = BASE64.encode([1u8; 32]);
        let k2 = BASE64.encode([2u8; 32]);
        let r = Keyring::parse(&format!(" 2:{k2} , 1:{k1} ")).unwrap();
        assert_eq!(r.current_id(), 2);
        assert_eq!(r.key_ids(), [1, 2]);
        assert_eq!(Keyring::parse(&k1).unwrap().current_id(), 1);
        for bad in [
            "",
            " , ",
            "x:abc",
            "1:abc",
            &format!("1:{k1},1:{k2}"),
            &BASE64.encode([0u8; 16]),
        ] {
            let err = Keyring::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{bad}");
            assert!(!err.to_string().contains(&k1) && !err.to_string().contains(&k2));
        }
        let dbg = format!("{r:?}");
        assert!(
            !dbg.contains(&k1) && !dbg.contains(&k2) && !dbg.contains("[1, 1"),
            "{dbg}"
        );
    }
}
