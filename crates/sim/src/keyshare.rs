//! The phone's first message to a freshly linked companion: the account's app-state sync keys,
//! end-to-end encrypted as a Signal pre-key message over the pre-keys the companion uploaded.
//!
//! WhatsApp's primary device sends this right after linking; a client that does not receive
//! it waits a grace period (10 s for whatsapp-rust 0.7) before it asks for the keys itself and
//! announces that it is connected.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use wacore_libsignal::protocol::{IdentityKey, PreKeyBundle, PublicKey};
use waproto::buffa::MessageField;
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

    /// The server's digest of what it holds (`<iq xmlns="encrypt" type="get"><digest/>`): the
    /// keys, the ids of the one-time pre-keys left, and a SHA-1 over the public keys, which the
    /// client compares with its own.
    pub(crate) fn digest(&self) -> Node {
        let (_, signed_key, signature) = &self.signed;
        let left: Vec<&[u8]> = self.one_time.iter().map(|(_, k)| k.as_slice()).collect();
        let hash = wacore::prekeys::compute_key_bundle_digest(
            &self.identity,
            signed_key,
            signature,
            &left,
        );
        let mut children = key_nodes(self.registration_id, &self.identity, &self.signed);
        children.push(
            NodeBuilder::new("list")
                .children(
                    self.one_time
                        .iter()
                        .map(|(n, _)| NodeBuilder::new("id").bytes(key_id(*n)).build()),
                )
                .build(),
        );
        children.push(NodeBuilder::new("hash").bytes(hash).build());
        NodeBuilder::new("digest").children(children).build()
    }

    /// The bundle the server hands out, consuming one one-time pre-key as the server does.
    pub(crate) fn take(&mut self) -> BundleParts {
        BundleParts {
            registration_id: self.registration_id,
            identity: self.identity,
            one_time: (!self.one_time.is_empty()).then(|| self.one_time.remove(0)),
            signed: self.signed.clone(),
        }
    }

    /// [`take`](Self::take), as a bundle to start a session with.
    pub(crate) fn take_bundle(&mut self, device: u32) -> Result<PreKeyBundle, SimError> {
        self.take().to_bundle(device)
    }
}

/// A pre-key bundle as the server hands it out (a companion's from its upload, or a phone's).
pub(crate) struct BundleParts {
    pub(crate) registration_id: u32,
    pub(crate) identity: [u8; 32],
    pub(crate) one_time: Option<(u32, [u8; 32])>,
    pub(crate) signed: (u32, [u8; 32], Vec<u8>),
}

impl BundleParts {
    /// The bundle for device `device`, to start a session with.
    pub(crate) fn to_bundle(&self, device: u32) -> Result<PreKeyBundle, SimError> {
        let one_time = match self.one_time {
            Some((id, key)) => Some((id.into(), public(&key)?)),
            None => None,
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

    /// The one-time pre-key as `<key><id/><value/></key>`, when the bundle has one.
    fn one_time_node(&self) -> Option<Node> {
        self.one_time.map(|(id, key)| {
            NodeBuilder::new("key")
                .children([
                    NodeBuilder::new("id").bytes(key_id(id)).build(),
                    NodeBuilder::new("value").bytes(key.to_vec()).build(),
                ])
                .build()
        })
    }

    /// What a phone's retry receipt carries besides `<retry>`: its `<registration>` and, in
    /// `<keys>`, the key type, identity, a one-time pre-key and the signed pre-key, so that
    /// the sender can start a new session.
    pub(crate) fn to_retry_nodes(&self) -> [Node; 2] {
        let mut keys = key_nodes(self.registration_id, &self.identity, &self.signed);
        // `key_nodes` starts with the registration id, which goes beside `<keys>`.
        let registration = keys.remove(0);
        keys.extend(self.one_time_node());
        [
            registration,
            NodeBuilder::new("keys").children(keys).build(),
        ]
    }

    /// The `<user jid>` of a pre-key fetch's answer: ids as 3 bytes, keys without the `0x05`
    /// type prefix, and the companion's signed device identity when it has one.
    pub(crate) fn to_node(&self, jid: &str, device_identity: Option<&[u8]>) -> Node {
        let mut children = key_nodes(self.registration_id, &self.identity, &self.signed);
        children.extend(self.one_time_node());
        if let Some(di) = device_identity {
            children.push(
                NodeBuilder::new("device-identity")
                    .bytes(di.to_vec())
                    .build(),
            );
        }
        NodeBuilder::new("user")
            .attr("jid", jid.to_owned())
            .children(children)
            .build()
    }
}

/// A pre-key id as the server writes it: 3 bytes, big-endian.
fn key_id(n: u32) -> Vec<u8> {
    n.to_be_bytes()[1..].to_vec()
}

/// What a bundle and a digest both carry: the registration id, the key type, the identity
/// (without the `0x05` type prefix) and the signed pre-key with its signature.
fn key_nodes(
    registration_id: u32,
    identity: &[u8; 32],
    signed: &(u32, [u8; 32], Vec<u8>),
) -> Vec<Node> {
    let (signed_id, signed_key, signature) = signed;
    vec![
        NodeBuilder::new("registration")
            .bytes(registration_id.to_be_bytes().to_vec())
            .build(),
        NodeBuilder::new("type").bytes(vec![5u8]).build(),
        NodeBuilder::new("identity")
            .bytes(identity.to_vec())
            .build(),
        NodeBuilder::new("skey")
            .children([
                NodeBuilder::new("id").bytes(key_id(*signed_id)).build(),
                NodeBuilder::new("value").bytes(signed_key.to_vec()).build(),
                NodeBuilder::new("signature")
                    .bytes(signature.clone())
                    .build(),
            ])
            .build(),
    ]
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

/// The key share for companion `device`: a protocol message carrying the account's
/// app-state sync key, which the phone encrypts over a session it starts with the companion.
pub(crate) fn message(device: u32, key: &AppStateKey) -> wa::Message {
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
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::APP_STATE_SYNC_KEY_SHARE),
            app_state_sync_key_share: MessageField::some(share),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The phone's second message to a freshly linked companion, right after the key share: the
/// initial history-sync notification (`INITIAL_BOOTSTRAP`), as WhatsApp's primary device
/// sends it. The history rides inline (`initialHistBootstrapInlinePayload`, a zlib-compressed
/// `HistorySync`) as it does for the initial bootstrap, so there is no blob to download: a
/// simulated account has no chats, so it carries the account's own number-to-LID mapping, the
/// account's push name (clients take their own name from it) and no conversations. Clients that wait for this notice before they hand events over (Baileys
/// flushes its event buffer after the app-state sync it starts) see it in the same order as
/// from a real phone: key share first.
pub(crate) fn history_bootstrap(
    phone: &str,
    lid: &str,
    push_name: &str,
    message_id: &str,
) -> wa::Message {
    use waproto::buffa::Message as _;
    let history = wa::HistorySync {
        sync_type: wa::history_sync::HistorySyncType::INITIAL_BOOTSTRAP,
        chunk_order: Some(1),
        progress: Some(100),
        phone_number_to_lid_mappings: vec![wa::PhoneNumberToLIDMapping {
            pn_jid: Some(format!("{phone}@s.whatsapp.net")),
            lid_jid: Some(format!("{lid}@lid")),
        }],
        pushnames: vec![wa::Pushname {
            id: Some(format!("{phone}@s.whatsapp.net")),
            pushname: Some(push_name.to_owned()),
        }],
        ..Default::default()
    };
    let payload = zlib(&history.encode_to_vec());
    let notification = wa::message::HistorySyncNotification {
        file_length: Some(payload.len() as u64),
        sync_type: Some(wa::message::HistorySyncType::INITIAL_BOOTSTRAP),
        chunk_order: Some(1),
        original_message_id: Some(message_id.to_owned()),
        progress: Some(100),
        initial_hist_bootstrap_inline_payload: Some(payload),
        ..Default::default()
    };
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::HISTORY_SYNC_NOTIFICATION),
            history_sync_notification: MessageField::some(notification),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `data` in zlib's format (RFC 1950), as history-sync payloads are compressed.
fn zlib(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0; zlib_rs::compress_bound(data.len())];
    let (written, rc) = zlib_rs::compress_slice(&mut out, data, zlib_rs::DeflateConfig::default());
    assert_eq!(rc, zlib_rs::ReturnCode::Ok, "the buffer holds the bound");
    let len = written.len();
    out.truncate(len);
    out
}
