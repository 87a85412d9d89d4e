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
use crate::types::{DeviceId, Fence};

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

    /// Opens a value sealed for `key` of `device`. Tampering, a value moved from another key
    /// or device, or a wrong key all give [`ErrorKind::Corrupt`], never garbage.
    pub fn open(&self, device: DeviceId, key: &str, sealed: &[u8]) -> StoreResult<Vec<u8>> {
        if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(corrupt(
                "a stored auth-state value is not in the encrypted format: it was written unencrypted or damaged",
            ));
        }
        let id = sealed[1];
        let cipher = self.cipher(id).ok_or_else(|| {
            corrupt(&format!(
                "a stored auth-state value was encrypted with key id {id}, which is not configured: add that key to {AUTH_KEYS_ENV}"
            ))
        })?;
        let nonce = XNonce::try_from(&sealed[2..HEADER_LEN])
            .map_err(|_| corrupt("a stored auth-state value has a damaged header"))?;
        cipher
            .decrypt(&nonce, Payload { msg: &sealed[HEADER_LEN..], aad: &aad(device, key) })
            .map_err(|_| {
                corrupt(&format!(
                    "a stored auth-state value failed authentication with key id {id}: it was changed, moved from another key or device, or the key is wrong"
                ))
            })
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

fn corrupt(message: &str) -> StoreError {
    StoreError::new(ErrorKind::Corrupt, message)
}

/// Wraps any [`AuthStateStore`] so that every value is sealed with XChaCha20-Poly1305 before
/// it is stored.
///
/// # Behavior
/// - The device id and key name are bound as associated data: a value copied to another key
///   or device fails to open (`Corrupt`), it never decrypts to the wrong data.
/// - Every value carries the id of the key that sealed it, so keys rotate: put the new key
///   first in the [`Keyring`] and keep the old ones until everything was rewritten.
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

    /// Rewrites every value of `device` with the current key (after a rotation); returns how
    /// many values were rewritten.
    pub async fn reseal(&self, device: DeviceId, fence: Fence) -> StoreResult<usize> {
        let entries = self.scan_prefix(device, "").await?;
        let n = entries.len();
        self.put_many(device, fence, &entries).await?;
        Ok(n)
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
            ErrorKind::Corrupt
        );
        assert_eq!(
            r.open(DeviceId::random(), "identity", &sealed)
                .unwrap_err()
                .kind(),
            ErrorKind::Corrupt
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
                ErrorKind::Corrupt,
                "byte {i}"
            );
        }
        let wrong = ring(1, 8);
        let err = wrong.open(d, "k", &sealed).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.to_string().contains("key id 1"), "{err}");
        let unknown = ring(2, 7);
        let err = unknown.open(d, "k", &sealed).unwrap_err();
        assert!(err.to_string().contains("not configured"), "{err}");
        assert_eq!(
            r.open(d, "k", b"plain").unwrap_err().kind(),
            ErrorKind::Corrupt
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
