//! A simulated phone's own Signal state: the key material a companion fetches to start a
//! session with the phone, and the sessions the phone keeps with companions, used in both
//! directions (the key share opens the one with the account's own companions).
//!
//! Each account's state sits behind a `tokio::sync::Mutex` (decrypting and encrypting mutate
//! the ratchet across `.await`s); the simulator's state mutex is never held while it is.

use std::collections::HashMap;

use async_trait::async_trait;
use wacore::messages::MessageUtils;
use wacore_libsignal::protocol::error::Result as SignalResult;
use wacore_libsignal::protocol::{
    CiphertextMessage, CiphertextMessageType, Direction, GenericSignedPreKey as _, IdentityChange,
    IdentityKey, IdentityKeyPair, IdentityKeyStore, KeyPair, PreKeyBundle, PreKeyId, PreKeyRecord,
    PreKeySignalMessage, PreKeyStore, ProtocolAddress, SessionRecord, SessionStore, SignalMessage,
    SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord, SignedPreKeyStore, Timestamp,
    UsePQRatchet, message_decrypt, message_encrypt, process_prekey_bundle,
};
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

use crate::keyshare::BundleParts;
use crate::model::{EncType, SimError};
use crate::node::protocol;

/// The address under which a phone keeps its session with `phone`'s device `device`.
pub(crate) fn address(phone: &str, device: u32) -> ProtocolAddress {
    ProtocolAddress::new(phone, device.into())
}

/// A phone's Signal stores.
pub(crate) struct PhoneSignal {
    sessions: Sessions,
    identities: Identities,
    pre_keys: PreKeys,
    signed: SignedPreKeys,
}

impl PhoneSignal {
    /// Fresh state for the account whose identity (the ADV account key) is `identity`.
    pub(crate) fn new(identity: &KeyPair) -> Result<Self, SimError> {
        use rand::RngExt as _;
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let key = KeyPair::generate(&mut rng);
        let signature = identity
            .private_key
            .calculate_signature(&key.public_key.serialize(), &mut rng)
            .map_err(protocol)?;
        let id: u32 = rng.random_range(1..0x00FF_FFFF);
        let record = SignedPreKeyRecord::new(
            id.into(),
            Timestamp::from_epoch_millis(wacore::time::now_millis().unsigned_abs()),
            &key,
            &signature,
        );
        Ok(Self {
            sessions: Sessions::default(),
            identities: Identities {
                pair: IdentityKeyPair::new(
                    IdentityKey::new(identity.public_key),
                    identity.private_key.clone(),
                ),
                registration_id: rng.random_range(1..16_380),
                known: HashMap::new(),
            },
            pre_keys: PreKeys {
                records: HashMap::new(),
                next_id: rng.random_range(1..0x0080_0000),
            },
            signed: SignedPreKeys {
                record,
                public: key
                    .public_key
                    .public_key_bytes()
                    .try_into()
                    .map_err(protocol)?,
                signature: signature.to_vec(),
            },
        })
    }

    /// A bundle with a fresh one-time pre-key, which the phone keeps until a pkmsg uses it.
    pub(crate) fn bundle(&mut self) -> Result<BundleParts, SimError> {
        let key = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
        let id = self.pre_keys.next_id;
        self.pre_keys.next_id = if id >= 0x00FF_FFFF { 1 } else { id + 1 };
        self.pre_keys
            .records
            .insert(id, PreKeyRecord::new(id.into(), &key));
        let signed_id = self.signed.record.id().map_err(protocol)?;
        Ok(BundleParts {
            registration_id: self.identities.registration_id,
            identity: self
                .identities
                .pair
                .public_key()
                .public_key_bytes()
                .try_into()
                .map_err(protocol)?,
            one_time: Some((
                id,
                key.public_key
                    .public_key_bytes()
                    .try_into()
                    .map_err(protocol)?,
            )),
            signed: (
                signed_id.into(),
                self.signed.public,
                self.signed.signature.clone(),
            ),
        })
    }

    /// Whether the phone holds a session with `address`.
    pub(crate) fn has_session(&self, address: &ProtocolAddress) -> bool {
        self.sessions.0.contains_key(address.as_str())
    }

    /// Forgets every session (a phone whose Signal store was lost): the next message over
    /// one of them cannot be decrypted.
    pub(crate) fn forget_sessions(&mut self) {
        self.sessions.0.clear();
    }

    /// Forgets the session and identity of `address` (a companion removed or re-linked).
    pub(crate) fn forget(&mut self, address: &ProtocolAddress) {
        self.sessions.0.remove(address.as_str());
        self.identities.known.remove(address.as_str());
    }

    /// Starts a session with `address` from the bundle the server handed out for it.
    pub(crate) async fn start_session(
        &mut self,
        address: &ProtocolAddress,
        bundle: &PreKeyBundle,
    ) -> Result<(), SimError> {
        process_prekey_bundle(
            address,
            &mut self.sessions,
            &mut self.identities,
            bundle,
            &mut rand::make_rng::<rand::rngs::StdRng>(),
            UsePQRatchet::No,
        )
        .await
        .map(drop)
        .map_err(protocol)
    }

    /// Encrypts `message` (padded as `v="2"`) for `address`, over the session already held.
    pub(crate) async fn encrypt(
        &mut self,
        address: &ProtocolAddress,
        message: &wa::Message,
    ) -> Result<(EncType, Vec<u8>), SimError> {
        let plaintext = MessageUtils::pad_message_v2(message.encode_to_vec());
        let ciphertext = message_encrypt(
            &plaintext,
            address,
            &mut self.sessions,
            &mut self.identities,
        )
        .await
        .map_err(protocol)?;
        let kind = match ciphertext.message_type() {
            CiphertextMessageType::PreKey => EncType::PreKey,
            _ => EncType::Message,
        };
        Ok((kind, ciphertext.serialize().to_vec()))
    }

    /// Decrypts a copy `address` sent to this phone and decodes the message in it (`v` is the
    /// `<enc v>` padding version).
    pub(crate) async fn decrypt(
        &mut self,
        address: &ProtocolAddress,
        kind: EncType,
        bytes: &[u8],
        v: u8,
    ) -> Result<wa::Message, SimError> {
        let ciphertext = match kind {
            EncType::PreKey => CiphertextMessage::PreKeySignalMessage(
                PreKeySignalMessage::try_from(bytes).map_err(protocol)?,
            ),
            EncType::Message => {
                CiphertextMessage::SignalMessage(SignalMessage::try_from(bytes).map_err(protocol)?)
            }
        };
        let decrypted = message_decrypt(
            &ciphertext,
            address,
            &mut self.sessions,
            &mut self.identities,
            &mut self.pre_keys,
            &self.signed,
            &mut rand::make_rng::<rand::rngs::StdRng>(),
            UsePQRatchet::No,
        )
        .await
        .map_err(protocol)?;
        if let Some(used) = decrypted.consumed_prekey_id {
            self.pre_keys.records.remove(&u32::from(used));
        }
        wacore::messages::decode_plaintext(&decrypted.plaintext, v).map_err(protocol)
    }
}

/// The phone's Signal sessions, by address.
#[derive(Default)]
struct Sessions(HashMap<String, SessionRecord>);

#[async_trait]
impl SessionStore for Sessions {
    async fn load_session(&self, address: &ProtocolAddress) -> SignalResult<Option<SessionRecord>> {
        Ok(self.0.get(address.as_str()).cloned())
    }

    async fn has_session(&self, address: &ProtocolAddress) -> SignalResult<bool> {
        Ok(self.0.contains_key(address.as_str()))
    }

    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: SessionRecord,
    ) -> SignalResult<()> {
        self.0.insert(address.as_str().to_owned(), record);
        Ok(())
    }
}

/// The phone's identity and the identities it has seen (every one trusted on first use, as a
/// phone does for a companion it just linked or a contact it has never talked to).
struct Identities {
    pair: IdentityKeyPair,
    registration_id: u32,
    known: HashMap<String, IdentityKey>,
}

#[async_trait]
impl IdentityKeyStore for Identities {
    async fn get_identity_key_pair(&self) -> SignalResult<IdentityKeyPair> {
        Ok(self.pair.clone())
    }

    async fn get_local_registration_id(&self) -> SignalResult<u32> {
        Ok(self.registration_id)
    }

    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> SignalResult<IdentityChange> {
        let before = self.known.insert(address.as_str().to_owned(), *identity);
        Ok(match before {
            Some(k) if k != *identity => IdentityChange::ReplacedExisting,
            _ => IdentityChange::NewOrUnchanged,
        })
    }

    async fn is_trusted_identity(
        &self,
        _address: &ProtocolAddress,
        _identity: &IdentityKey,
        _direction: Direction,
    ) -> SignalResult<bool> {
        Ok(true)
    }

    async fn get_identity(&self, address: &ProtocolAddress) -> SignalResult<Option<IdentityKey>> {
        Ok(self.known.get(address.as_str()).copied())
    }
}

/// The phone's one-time pre-keys not yet used.
struct PreKeys {
    records: HashMap<u32, PreKeyRecord>,
    next_id: u32,
}

#[async_trait]
impl PreKeyStore for PreKeys {
    async fn get_pre_key(&self, prekey_id: PreKeyId) -> SignalResult<PreKeyRecord> {
        self.records
            .get(&u32::from(prekey_id))
            .cloned()
            .ok_or(SignalProtocolError::InvalidPreKeyId)
    }

    async fn save_pre_key(
        &mut self,
        prekey_id: PreKeyId,
        record: &PreKeyRecord,
    ) -> SignalResult<()> {
        self.records.insert(prekey_id.into(), record.clone());
        Ok(())
    }

    async fn remove_pre_key(&mut self, prekey_id: PreKeyId) -> SignalResult<()> {
        self.records.remove(&u32::from(prekey_id));
        Ok(())
    }
}

/// The phone's one signed pre-key.
struct SignedPreKeys {
    record: SignedPreKeyRecord,
    public: [u8; 32],
    signature: Vec<u8>,
}

#[async_trait]
impl SignedPreKeyStore for SignedPreKeys {
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> SignalResult<SignedPreKeyRecord> {
        if self.record.id()? == id {
            Ok(self.record.clone())
        } else {
            Err(SignalProtocolError::InvalidSignedPreKeyId)
        }
    }

    async fn save_signed_pre_key(
        &mut self,
        _id: SignedPreKeyId,
        record: &SignedPreKeyRecord,
    ) -> SignalResult<()> {
        self.record = record.clone();
        Ok(())
    }
}
