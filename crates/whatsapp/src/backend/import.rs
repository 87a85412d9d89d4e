//! The entries an import writes: the same layout and framing the client's own writes use.

use wacore::libsignal::protocol::KeyPair;

use super::prekeys::{self, Chunk, PreKey, chunk_of};
use super::prelude::*;

/// The auth-state entries of an imported device: its record (with the device sequence a
/// pairing would have started), its one-time pre-keys (packed) and its app-state sync keys.
pub(crate) fn import_entries(
    device: &Device,
    pre_keys: &[(u32, KeyPair, bool)],
    sync_keys: &[(Vec<u8>, AppStateSyncKey)],
    latest_sync_key: Option<&[u8]>,
) -> Result<Vec<Entry>> {
    let mut entries = Vec::with_capacity(pre_keys.len() + sync_keys.len() + 3);
    entries.push((keys::DEVICE.to_owned(), to_json(device)?));
    entries.push((keys::DEVICE_SEQ.to_owned(), 1i32.to_be_bytes().to_vec()));
    let mut chunks: BTreeMap<u32, Chunk> = BTreeMap::new();
    for (id, pair, uploaded) in pre_keys {
        chunks
            .entry(chunk_of(*id))
            .or_default()
            .insert(*id, PreKey::from_pair(pair, *uploaded));
    }
    entries.extend(prekeys::entries(&chunks)?.0);
    for (id, key) in sync_keys {
        entries.push((
            format!("{}{}", keys::SYNC_KEY, keys::hex(id)),
            to_json(key)?,
        ));
    }
    if let Some(id) = latest_sync_key {
        entries.push((keys::LATEST_SYNC_KEY.to_owned(), id.to_vec()));
    }
    Ok(entries)
}
