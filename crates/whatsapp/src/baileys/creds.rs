//! Baileys' credentials and keys, checked and converted to the client's state.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeSeed as _;
use wacore::libsignal::protocol::{KeyPair, PrivateKey, PublicKey};
use wacore::store::Device as ClientDevice;
use wacore::store::traits::AppStateSyncKey;
use wacore_binary::Jid;

use super::dir::{self, Folder};
use super::json::{
    self, CREDS, Field, KEY_PAIR, Node, PRE_KEY, SYNC_KEY, SYNC_KEY_DATA, Seed, Shape, malformed,
    position,
};
use super::{
    BaileysAuth, ImportError, ImportErrorKind, ImportSummary, MAX_CREDS_FILE_BYTES,
    MAX_KEY_FILE_BYTES,
};

/// Baileys' key types, longest first (file names are `<type>-<id>.json` and types contain
/// dashes).
const KEY_TYPES: &[&str] = &[
    "app-state-sync-version",
    "app-state-sync-key",
    "sender-key-memory",
    "identity-key",
    "lid-mapping",
    "device-list",
    "sender-key",
    "pre-key",
    "session",
    "tctoken",
];

pub(super) fn from_session_value(value: &serde_json::Value) -> Result<BaileysAuth, ImportError> {
    // A `Value` always reads: it is JSON already.
    let node = Seed(&Shape::Session)
        .deserialize(value)
        .map_err(|_| malformed("session_data", "not readable as JSON"))?;
    from_session_node(&node)
}

pub(super) fn from_session_json(text: &str) -> Result<BaileysAuth, ImportError> {
    let node = json::parse(text.as_bytes(), &Shape::Session)
        .map_err(|e| malformed("session_data", format!("not JSON ({})", position(&e))))?;
    from_session_node(&node)
}

fn from_session_node(node: &Node<'_>) -> Result<BaileysAuth, ImportError> {
    // A JSON string holding the JSON (a text column cast to jsonb, or a double encode).
    if let Node::Str(s) = node {
        let inner = json::parse(s.as_bytes(), &Shape::Session).map_err(|e| {
            malformed(
                "session_data",
                format!("a string that is not JSON ({})", position(&e)),
            )
        })?;
        return from_session_node(&inner);
    }
    let root = Field::root(node, "session_data");
    root.object()?;
    if root.at("creds").is_present() {
        let keys = root.at("keys");
        let keys = if keys.is_present() {
            key_set(&keys)?
        } else {
            KeySet::default()
        };
        convert(&Field::root(root.at("creds").required()?, "creds"), &keys)
    } else {
        // The creds object alone (no keys).
        convert(&Field::root(node, "creds"), &KeySet::default())
    }
}

/// The keys, as far as the import uses them: the carried ones by id, the others counted.
#[derive(Default)]
struct KeySet<'a> {
    pre_keys: BTreeMap<&'a str, &'a Node<'a>>,
    sync_keys: BTreeMap<&'a str, &'a Node<'a>>,
    not_carried: BTreeMap<String, usize>,
}

fn key_set<'a>(keys: &Field<'a>) -> Result<KeySet<'a>, ImportError> {
    let mut set = KeySet::default();
    // A type (or an id) named twice: the last counts, as in any JSON reader.
    let kinds: BTreeMap<&str, &Node<'_>> = keys.object()?.iter().map(|(k, v)| (&**k, v)).collect();
    for (kind, value) in kinds {
        if value.is_null() {
            continue;
        }
        let field = Field {
            value: Some(value),
            path: format!("{}.{kind}", keys.path),
        };
        let carried = match kind {
            PRE_KEY => &mut set.pre_keys,
            SYNC_KEY => &mut set.sync_keys,
            _ => {
                let n = field.count()?;
                if n > 0 {
                    set.not_carried.insert(kind.to_owned(), n);
                }
                continue;
            }
        };
        carried.extend(field.object()?.iter().map(|(id, v)| (&**id, v)));
    }
    Ok(set)
}

/// What the files of a folder hold, for the errors about their size.
const CREDS_FILE: &str = "a Baileys creds file";
const KEY_FILE: &str = "a Baileys key file";

pub(super) fn from_dir(dir: &Path) -> Result<BaileysAuth, ImportError> {
    let mut folder = Folder::new(dir);
    // First what is there, without opening anything: every file the import reads or counts
    // must be a regular file, and what it reads must fit the caps.
    let creds_size = folder.check_size("creds.json", MAX_CREDS_FILE_BYTES, CREDS_FILE)?;
    let mut carried: Vec<(&'static str, String, String)> = Vec::new();
    let mut carried_size = creds_size;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for entry in folder.list()? {
        let entry = entry.map_err(|e| {
            ImportError::new(
                ImportErrorKind::Io,
                format!("listing the folder: {e} (give the folder useMultiFileAuthState wrote)"),
            )
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if stem == "creds" {
            continue;
        }
        let kind_and_id = KEY_TYPES.iter().find_map(|t| {
            stem.strip_prefix(t)
                .and_then(|rest| rest.strip_prefix('-'))
                .map(|id| (*t, id))
        });
        match kind_and_id {
            Some((kind @ (PRE_KEY | SYNC_KEY), id)) => {
                let size = folder.check_size(&name, MAX_KEY_FILE_BYTES, KEY_FILE)?;
                carried_size = carried_size.saturating_add(size);
                // useMultiFileAuthState writes `/` as `__` and `:` as `-` in file names; only
                // the base64 ids of app-state keys can hold `/`.
                let id = if kind == SYNC_KEY {
                    id.replace("__", "/")
                } else {
                    id.to_owned()
                };
                carried.push((kind, id, name));
            }
            // Counted, not carried: never opened (a Signal session, a sender key, ...), but
            // only a regular file counts.
            other => {
                folder.check_entry(&entry, &name)?;
                let kind = other.map_or("other", |(kind, _)| kind);
                *counts.entry(kind.to_owned()).or_default() += 1;
            }
        }
    }
    dir::fits(carried_size)?;
    carried.sort();

    let creds_text = folder.read("creds.json", MAX_CREDS_FILE_BYTES, CREDS_FILE)?;
    let creds = parse_file(&creds_text, "creds.json", &CREDS)?;
    let mut pre_keys = Vec::new();
    let mut sync_keys = Vec::new();
    for (kind, id, name) in carried {
        let (list, shape) = if kind == PRE_KEY {
            (&mut pre_keys, &KEY_PAIR)
        } else {
            (&mut sync_keys, &SYNC_KEY_DATA)
        };
        let text = folder.read(&name, MAX_KEY_FILE_BYTES, KEY_FILE)?;
        let value = parse_file(&text, &name, shape)?.into_owned();
        list.push((Cow::Owned(id), value));
    }
    let mut keys = vec![
        (Cow::Borrowed(PRE_KEY), Node::Object(pre_keys)),
        (Cow::Borrowed(SYNC_KEY), Node::Object(sync_keys)),
    ];
    keys.extend(
        counts
            .into_iter()
            .map(|(kind, n)| (Cow::Owned(kind), Node::Count(n))),
    );
    let keys = Node::Object(keys);
    convert(
        &Field::root(&creds, "creds.json"),
        &key_set(&Field::root(&keys, "keys"))?,
    )
}

/// A file of the folder parsed as JSON of `shape`.
fn parse_file<'a>(text: &'a [u8], name: &str, shape: &Shape) -> Result<Node<'a>, ImportError> {
    json::parse(text, shape).map_err(|e| {
        malformed(
            name,
            format!(
                "not JSON ({}): the file is damaged or was cut short",
                position(&e)
            ),
        )
    })
}

fn key_pair(field: &Field<'_>) -> Result<KeyPair, ImportError> {
    let private: [u8; 32] = field.at("private").bytes_of()?;
    let public: [u8; 32] = field.at("public").bytes_of::<32>().or_else(|e| {
        // Some stores keep the 33-byte form with the key-type byte (0x05) in front.
        let bytes = field.at("public").bytes()?;
        match bytes.split_first() {
            Some((5, rest)) if rest.len() == 32 => Ok(rest.try_into().map_err(|_| e)?),
            _ => Err(e),
        }
    })?;
    let private_key = PrivateKey::deserialize(&private)
        .map_err(|_| malformed(&field.at("private").path, "not a Curve25519 private key"))?;
    let derived = private_key
        .public_key()
        .map_err(|_| malformed(&field.at("private").path, "not a Curve25519 private key"))?;
    if derived.public_key_bytes() != public.as_slice() {
        return Err(ImportError::new(
            ImportErrorKind::Inconsistent,
            format!(
                "{}: the public key is not the private key's: the credentials were edited or mixed from two devices",
                field.path
            ),
        ));
    }
    Ok(KeyPair::new(derived, private_key))
}

fn parse_jid(field: &Field<'_>, server: &str) -> Result<Jid, ImportError> {
    let text = field.str()?;
    let shape = || {
        ImportError::new(
            ImportErrorKind::Malformed,
            format!("{}: expected <number>:<device>@{server}", field.path),
        )
    };
    if !text.ends_with(&format!("@{server}")) {
        return Err(shape());
    }
    text.parse::<Jid>().map_err(|_| shape())
}

#[allow(clippy::too_many_lines)]
fn convert(creds: &Field<'_>, keys: &KeySet<'_>) -> Result<BaileysAuth, ImportError> {
    creds.object()?;
    let noise_key = key_pair(&creds.at("noiseKey"))?;
    let identity_key = key_pair(&creds.at("signedIdentityKey"))?;
    let spk = creds.at("signedPreKey");
    let signed_pre_key = key_pair(&spk.at("keyPair"))?;
    let signature: [u8; 64] = spk.at("signature").bytes_of()?;
    let signed_pre_key_id = spk.at("keyId").u32()?;
    if !identity_key
        .public_key
        .verify_signature(&signed_pre_key.public_key.serialize(), &signature)
    {
        return Err(ImportError::new(
            ImportErrorKind::Inconsistent,
            "creds.signedPreKey.signature: not the identity key's signature of the signed pre-key: the credentials were edited or mixed from two devices",
        ));
    }
    let registration_id = creds.at("registrationId").u32()?;
    let adv = creds.at("advSecretKey");
    let adv_secret_key: [u8; 32] = adv.bytes_of()?;

    // Linked: Baileys writes `me` with the bare number when a code is requested, and the
    // device number and the signed identity only when the pairing succeeds.
    let me = creds.at("me");
    let account = creds.at("account");
    if !me.is_present() || !account.is_present() {
        return Err(ImportError::new(
            ImportErrorKind::NotLinked,
            "these credentials were never linked (no creds.me or creds.account): the pairing did not finish in the original system; link the device again with wa-pairing",
        ));
    }
    let id = me.at("id");
    let pn = parse_jid(&id, "s.whatsapp.net")?;
    if pn.device == 0 {
        return Err(ImportError::new(
            ImportErrorKind::NotLinked,
            "creds.me.id names the account but no companion device: the pairing did not finish in the original system; link the device again with wa-pairing",
        ));
    }
    // The account's number, validated like any other (a JID can hold any digits).
    let phone_number = pn.user.to_string();
    let number = wa_pairing_phone::parse(&format!("+{phone_number}"))
        .ok()
        .filter(|n| n.digits() == phone_number)
        .ok_or_else(|| {
            malformed(
                &id.path,
                "the account's number is not a valid phone number in E.164 form: these are not the credentials of a WhatsApp account",
            )
        })?;
    let lid_field = me.at("lid");
    let lid = if lid_field.is_present() {
        Some(parse_jid(&lid_field, "lid")?)
    } else {
        None
    };
    let details = account.at("details").bytes()?;
    let account_signature: [u8; 64] = account.at("accountSignature").bytes_of()?;
    let device_signature: [u8; 64] = account.at("deviceSignature").bytes_of()?;
    let signature_key = account.at("accountSignatureKey");
    let account_signature_key = if signature_key.is_present() {
        let key: [u8; 32] = signature_key.bytes_of()?;
        // The phone signed [6, 0] ‖ details ‖ this companion's identity key.
        let mut message = vec![6u8, 0];
        message.extend_from_slice(&details);
        message.extend_from_slice(identity_key.public_key.public_key_bytes());
        let valid = PublicKey::from_djb_public_key_bytes(&key)
            .is_ok_and(|k| k.verify_signature(&message, &account_signature));
        if !valid {
            return Err(ImportError::new(
                ImportErrorKind::Inconsistent,
                "creds.account.accountSignature: the account did not sign this identity key: the credentials were edited or mixed from two devices",
            ));
        }
        Some(key.to_vec())
    } else {
        None
    };
    let signed_identity = waproto::whatsapp::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key,
        account_signature: Some(account_signature.to_vec()),
        device_signature: Some(device_signature.to_vec()),
    };
    let push_name = me
        .at("name")
        .as_str()
        .filter(|n| *n != "~")
        .unwrap_or_default()
        .to_owned();

    // Pre-keys: the ones below firstUnuploadedPreKeyId were uploaded.
    let first_unuploaded = creds.at("firstUnuploadedPreKeyId").u32_or(1)?;
    let mut next_pre_key_id = creds.at("nextPreKeyId").u32_or(1)?;
    let mut pre_keys = Vec::new();
    for (id, value) in &keys.pre_keys {
        let path = format!("keys.{PRE_KEY}.{id}");
        let n: u32 = id
            .parse()
            .ok()
            .filter(|n| *n > 0 && *n < 1 << 24)
            .ok_or_else(|| malformed(&path, "not a pre-key id"))?;
        let pair = key_pair(&Field::root(value, &path))?;
        pre_keys.push((n, pair, n < first_unuploaded));
        next_pre_key_id = next_pre_key_id.max(n + 1);
    }
    pre_keys.sort_by_key(|(id, _, _)| *id);

    let mut sync_keys = Vec::new();
    for (id, value) in &keys.sync_keys {
        let path = format!("keys.{SYNC_KEY}.{id}");
        let key_id = STANDARD
            .decode(id)
            .map_err(|_| malformed(&path, "the key id is not base64"))?;
        let field = Field::root(value, &path);
        let key_data = field.at("keyData").bytes()?;
        if key_data.len() != 32 {
            return Err(malformed(
                &field.at("keyData").path,
                format!("expected 32 bytes, found {}", key_data.len()),
            ));
        }
        let fp = field.at("fingerprint");
        let fingerprint = if fp.is_present() {
            let device_indexes = fp.at("deviceIndexes").u32_list()?;
            let fingerprint = waproto::whatsapp::message::AppStateSyncKeyFingerprint {
                raw_id: Some(fp.at("rawId").u32_or(0)?),
                current_index: Some(fp.at("currentIndex").u32_or(0)?),
                device_indexes,
            };
            waproto::codec::app_state_sync_key_fingerprint_to_vec(&fingerprint)
        } else {
            Vec::new()
        };
        let timestamp = field.at("timestamp").i64_or(0)?;
        sync_keys.push((
            key_id,
            AppStateSyncKey {
                key_data,
                fingerprint,
                timestamp,
            },
        ));
    }
    sync_keys.sort_by(|a, b| a.0.cmp(&b.0));
    let mine = creds.at("myAppStateKeyId");
    let latest_sync_key = if mine.is_present() {
        Some(mine.bytes()?).filter(|id| sync_keys.iter().any(|(k, _)| k == id))
    } else {
        None
    }
    .or_else(|| {
        sync_keys
            .iter()
            .max_by_key(|(_, k)| k.timestamp)
            .map(|(id, _)| id.clone())
    });

    let summary = ImportSummary {
        phone: number.redacted().to_string(),
        device: pn.device,
        has_lid: lid.is_some(),
        pre_keys: pre_keys.len(),
        app_state_keys: sync_keys.len(),
        not_carried: keys.not_carried.clone(),
    };

    let mut device = ClientDevice::new();
    device.pn = Some(pn);
    device.lid = lid;
    device.registration_id = registration_id;
    device.noise_key = noise_key;
    device.identity_key = identity_key;
    device.signed_pre_key = signed_pre_key;
    device.signed_pre_key_id = signed_pre_key_id;
    device.signed_pre_key_signature = signature;
    device.adv_secret_key = adv_secret_key;
    device.account = Some(Arc::new(signed_identity));
    device.push_name = push_name;
    device.next_pre_key_id = next_pre_key_id;
    device.first_unupload_pre_key_id = first_unuploaded.min(next_pre_key_id);
    device.server_has_prekeys = first_unuploaded > 1;

    Ok(BaileysAuth {
        device,
        phone: number,
        pre_keys,
        sync_keys,
        latest_sync_key,
        summary,
    })
}
