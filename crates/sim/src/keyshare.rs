//! The phone's first message to a freshly linked companion: the account's app-state sync keys,
//! end-to-end encrypted as a Signal pre-key message over the pre-keys the companion uploaded.
//!
//! WhatsApp's primary device sends this right after linking; a client that does not receive
//! it waits a grace period (10 s for whatsapp-rust 0.7) before it asks for the keys itself and
//! announces that it is connected.

use std::collections::HashMap;

use async_trait::async_trait;
use wacore::messages::MessageUtils;
use wacore_binary::Node;
use wacore_libsignal::protocol::error::Result as SignalResult;
use wacore_libsignal::protocol::{
    Direction, IdentityChange, IdentityKey, IdentityKeyPair, IdentityKeyStore, KeyPair,
    PreKeyBundle, ProtocolAddress, PublicKey, SessionRecord, SessionStore, UsePQRatchet,
    message_encrypt, process_prekey_bundle,
};
use waproto::buffa::{Message as _, MessageField};
use waproto::whatsapp as wa;

use crate::model::SimError;
use crate::node::{bytes_of, protocol};

/// The public half of the keys a companion uploaded (`<iq xmlns="encrypt" type="set">`): what
/// the server hands out as the companion's pre-key bundle.
#[derive(Clone)]
pub(crate) struct UploadedKeys {
    registration_id: u32,
    identity: [u8; 32],
    one_time: Vec<(u32, [u8; 32])>,
    signed: (u32, [u8; 32], Vec<u8>),
}

impl UploadedKeys {
    /// Reads an upload; `None` when it is not one (or is malformed).
    pub(crate) fn parse(iq: &Node) -> Option<Self> {
        let registration: [u8; 4] = iq
            .get_optional_child("registration")
            .and_then(bytes_of)?
            .try_into()
            .ok()?;
        let identity: [u8; 32] = iq
            .get_optional_child("identity")
            .and_then(bytes_of)?
            .try_into()
            .ok()?;
        let id_of = |n: &Node| {
            let b = n.get_optional_child("id").and_then(bytes_of)?;
            (b.len() <= 4).then(|| b.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x)))
        };
        let key_of = |n: &Node| -> Option<[u8; 32]> {
            n.get_optional_child("value")
                .and_then(bytes_of)?
                .try_into()
                .ok()
        };
        let one_time = iq
            .get_optional_child("list")
            .and_then(Node::children)
            .unwrap_or_default()
            .iter()
            .filter_map(|k| Some((id_of(k)?, key_of(k)?)))
            .collect();
        let skey = iq.get_optional_child("skey")?;
        let signature = skey.get_optional_child("signature").and_then(bytes_of)?;
        Some(Self {
            registration_id: u32::from_be_bytes(registration),
            identity,
            one_time,
            signed: (id_of(skey)?, key_of(skey)?, signature.to_vec()),
        })
    }

    /// One-time pre-keys the server still holds.
    pub(crate) fn count(&self) -> usize {
        self.one_time.len()
    }

    /// Adds a later upload (the companion replenishing its pre-keys).
    pub(crate) fn merge(&mut self, later: Self) {
        self.registration_id = later.registration_id;
        self.identity = later.identity;
        self.signed = later.signed;
        self.one_time.extend(later.one_time);
    }

    /// The bundle the server hands out, consuming one one-time pre-key as the server does.
    pub(crate) fn take_bundle(&mut self, device: u32) -> Result<PreKeyBundle, SimError> {
        let one_time = if self.one_time.is_empty() {
            None
        } else {
            let (id, key) = self.one_time.remove(0);
            Some((id.into(), public(&key)?))
        };
        let (signed_id, signed_key, signature) = &self.signed;
        PreKeyBundle::new(
            self.registration_id,
            device.into(),
            one_time,
            (*signed_id).into(),
            public(signed_key)?,
            signature.clone(),
            IdentityKey::new(public(&self.identity)?),
        )
        .map_err(protocol)
    }
}

/// One app-state sync key of an account.
#[derive(Clone)]
pub(crate) struct AppStateKey {
    id: Vec<u8>,
    data: [u8; 32],
    timestamp: i64,
}

impl AppStateKey {
    pub(crate) fn id(&self) -> &[u8] {
        &self.id
    }

    pub(crate) fn generate() -> Self {
        use rand::RngExt as _;
        let mut rng = rand::rng();
        Self {
            id: (0..6).map(|_| rng.random::<u8>()).collect(),
            data: rng.random(),
            timestamp: wacore::time::now_secs(),
        }
    }
}

fn public(key: &[u8; 32]) -> Result<PublicKey, SimError> {
    PublicKey::from_djb_public_key_bytes(key).map_err(protocol)
}

/// The encrypted key share for companion `device`: a `pkmsg` payload from the phone.
pub(crate) async fn encrypt(
    phone_identity: &KeyPair,
    bundle: &PreKeyBundle,
    device: u32,
    key: &AppStateKey,
) -> Result<Vec<u8>, SimError> {
    let address = ProtocolAddress::new("companion", device.into());
    let mut identities = Identities {
        pair: IdentityKeyPair::new(
            IdentityKey::new(phone_identity.public_key),
            phone_identity.private_key.clone(),
        ),
        registration_id: {
            use rand::RngExt as _;
            rand::rng().random_range(1..16_380)
        },
        known: HashMap::new(),
    };
    let mut sessions = Sessions::default();
    let mut rng = rand::make_rng::<rand::rngs::StdRng>();
    process_prekey_bundle(
        &address,
        &mut sessions,
        &mut identities,
        bundle,
        &mut rng,
        UsePQRatchet::No,
    )
    .await
    .map_err(protocol)?;
    let share = wa::message::AppStateSyncKeyShare {
        keys: vec![wa::message::AppStateSyncKey {
            key_id: MessageField::some(wa::message::AppStateSyncKeyId {
                key_id: Some(key.id.clone()),
            }),
            key_data: MessageField::some(wa::message::AppStateSyncKeyData {
                key_data: Some(key.data.to_vec()),
                fingerprint: MessageField::some(wa::message::AppStateSyncKeyFingerprint {
                    raw_id: Some(1),
                    current_index: Some(0),
                    device_indexes: vec![0, device],
                }),
                timestamp: Some(key.timestamp),
            }),
        }],
    };
    let message = wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::APP_STATE_SYNC_KEY_SHARE),
            app_state_sync_key_share: MessageField::some(share),
            ..Default::default()
        }),
        ..Default::default()
    };
    let plaintext = MessageUtils::pad_message_v2(message.encode_to_vec());
    let ciphertext = message_encrypt(&plaintext, &address, &mut sessions, &mut identities)
        .await
        .map_err(protocol)?;
    Ok(ciphertext.serialize().to_vec())
}

/// The phone's Signal sessions, for the one message it sends.
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

/// The phone's identity, trusting the companion it just linked.
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
