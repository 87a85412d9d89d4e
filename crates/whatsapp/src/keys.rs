//! The key layout of one device's client state in the auth-state store.
//!
//! Every entry of `whatsapp-rust`'s storage is one key in the device's auth-state namespace
//! (never one blob rewritten on every change). A key is a fixed family prefix followed by its
//! components, joined with `/`. Components that come from the client (addresses, JIDs,
//! message ids, collection names) are escaped so that they never contain `/`: `%` becomes
//! `%25` and `/` becomes `%2F`. The escape is prefix-preserving, so a scan over
//! `family/<escaped component>/` finds exactly the entries of that component. Byte strings
//! (app-state key ids, index MACs) are lower-case hex; pre-key ids are zero-padded to ten
//! digits so that the store's byte order is numeric order.
//!
//! | key | value |
//! |---|---|
//! | `device` | the client's `Device`, JSON (its device props are not serialised; the defaults are restored on load) |
//! | `device-seq` | the last id `create()` allocated, 4 bytes big-endian |
//! | `identity/<address>` | the 32-byte identity key |
//! | `session/<address>` | the Signal session record |
//! | `prekeys/<n:08>` | the one-time pre-keys with ids `n * 256 ..= n * 256 + 255`, packed (a version byte, then per key its id's low byte, flags (uploaded, compact) and its private key when the record is the client's own encoding of a valid key pair, else the record with a 2-byte length); an emptied chunk is deleted |
//! | `prekeys/<n:08>.<seq:020>` | a batch of pre-keys stored, or a removal, without reading (same format; a removal is flagged), overriding the chunk and older fragments; folded into the chunk by the next upload mark, or by a read that finds eight |
//! | `prekey/<id:010>` | (before pre-keys were packed) one byte "uploaded", then the record: read as before, and moved into `prekeys/` by the next fold |
//! | `signed-prekey/<id:010>` | the signed pre-key record |
//! | `sender-key/<address>` | the sender-key record |
//! | `appstate/sync-key/<id-hex>` | an app-state sync key, JSON |
//! | `appstate/latest-sync-key` | the id of the sync key stored last |
//! | `appstate/version/<collection>` | the collection's hash state, JSON |
//! | `appstate/mac/<collection>/<index-mac-hex>` | the value MAC |
//! | `skd/<group>/<device-jid>` | sender-key distribution status: one byte, 1 = has the key |
//! | `lid/<lid>` | a LID-to-phone mapping, JSON |
//! | `pn/<phone>` | the LID of that phone number (the index behind `get_pn_mapping`) |
//! | `base-key/<address>/<message-id>` | a saved base key |
//! | `devices/<user>` | the user's device list, JSON |
//! | `group/<group>` | the client's cached group metadata blob |
//! | `tc/<jid>` | a trusted-contact token, JSON |
//! | `sent/<chat>/<message-id>` | 8-byte big-endian unix seconds, then the sent payload |
//! | `pending/<chat>/<sender>/<id>` | 8-byte big-endian unix seconds, then the buffered message |
//! | `msg-secret/<chat>/<sender>/<message-id>` | the 32-byte secret, then `expires_at` and `message_ts` (8 bytes big-endian each) |
//! | `server` | the WhatsApp server URL this state belongs to (UTF-8): written by wa-pairing when a pairing starts (or, for state stored before it was recorded, on the first login), compared on every open |

use std::fmt::Write as _;

pub(crate) const DEVICE: &str = "device";
pub(crate) const DEVICE_SEQ: &str = "device-seq";
pub(crate) const IDENTITY: &str = "identity/";
pub(crate) const SESSION: &str = "session/";
pub(crate) const PREKEY: &str = "prekey/";
pub(crate) const PREKEY_CHUNK: &str = "prekeys/";
/// The prefix of both pre-key layouts: one scan reads them together.
pub(crate) const PREKEY_FAMILY: &str = "prekey";
pub(crate) const SIGNED_PREKEY: &str = "signed-prekey/";
pub(crate) const SENDER_KEY: &str = "sender-key/";
pub(crate) const SYNC_KEY: &str = "appstate/sync-key/";
pub(crate) const LATEST_SYNC_KEY: &str = "appstate/latest-sync-key";
pub(crate) const VERSION: &str = "appstate/version/";
pub(crate) const MUTATION_MAC: &str = "appstate/mac/";
pub(crate) const SENDER_KEY_DEVICE: &str = "skd/";
pub(crate) const LID: &str = "lid/";
pub(crate) const PN: &str = "pn/";
pub(crate) const BASE_KEY: &str = "base-key/";
pub(crate) const DEVICE_LIST: &str = "devices/";
pub(crate) const GROUP: &str = "group/";
pub(crate) const TC_TOKEN: &str = "tc/";
pub(crate) const SENT: &str = "sent/";
pub(crate) const PENDING: &str = "pending/";
pub(crate) const MSG_SECRET: &str = "msg-secret/";
/// Not the client's: which server the state belongs to.
pub(crate) const SERVER: &str = "server";

/// Escapes one component: `%` -> `%25`, `/` -> `%2F`.
pub(crate) fn escape(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for c in component.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape`]. Unknown escapes are kept as they are.
pub(crate) fn unescape(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    let mut rest = component;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("%25") {
            out.push('%');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%2F") {
            out.push('/');
            rest = after;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A key of `family` with escaped `components` joined by `/`.
pub(crate) fn key(family: &str, components: &[&str]) -> String {
    let mut out = String::from(family);
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&escape(c));
    }
    out
}

/// The scan prefix of all keys of `family` whose leading components are `components`.
pub(crate) fn prefix(family: &str, components: &[&str]) -> String {
    let mut out = key(family, components);
    if !components.is_empty() {
        out.push('/');
    }
    out
}

/// A pre-key or signed pre-key id, zero-padded so that byte order is numeric order.
pub(crate) fn id_key(family: &str, id: u32) -> String {
    format!("{family}{id:010}")
}

/// Parses the id back out of an [`id_key`].
pub(crate) fn parse_id(family: &str, key: &str) -> Option<u32> {
    key.strip_prefix(family)?.parse().ok()
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The escaped components after `family` in `key`, unescaped.
pub(crate) fn components<'a>(family: &str, key: &'a str) -> Option<Vec<String>> {
    let rest: &'a str = key.strip_prefix(family)?;
    Some(rest.split('/').map(unescape).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_examples() {
        assert_eq!(key(SESSION, &["123.0:5"]), "session/123.0:5");
        assert_eq!(
            key(SENDER_KEY_DEVICE, &["g@g.us", "a/b"]),
            "skd/g@g.us/a%2Fb"
        );
        assert_eq!(prefix(SENDER_KEY_DEVICE, &["g@g.us"]), "skd/g@g.us/");
        assert_eq!(id_key(PREKEY, 42), "prekey/0000000042");
        assert_eq!(parse_id(PREKEY, "prekey/0000000042"), Some(42));
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
    }

    proptest! {
        #[test]
        fn escape_round_trips_and_never_yields_a_slash(s in "\\PC{0,40}") {
            let e = escape(&s);
            prop_assert!(!e.contains('/'));
            prop_assert_eq!(unescape(&e), s);
        }

        #[test]
        fn escape_preserves_prefixes_both_ways(a in "[a-c%/]{0,8}", b in "[a-c%/]{0,8}") {
            // A component prefix scan must find exactly the keys whose raw value has that prefix.
            prop_assert_eq!(escape(&b).starts_with(&escape(&a)), b.starts_with(&a));
        }

        #[test]
        fn padded_ids_sort_numerically(a in any::<u32>(), b in any::<u32>()) {
            prop_assert_eq!(id_key(PREKEY, a).cmp(&id_key(PREKEY, b)), a.cmp(&b));
        }

        #[test]
        fn components_round_trip(a in "\\PC{0,20}", b in "\\PC{0,20}") {
            let k = key(MSG_SECRET, &[&a, &b]);
            prop_assert_eq!(components(MSG_SECRET, &k), Some(vec![a, b]));
        }
    }
}
