//! One-time pre-keys packed 256 to a value: a linked device keeps hundreds of them (812 after
//! a pairing), and one row each was most of a device's rows and bytes at rest.
//!
//! A chunk holds the ids `n * 256 ..= n * 256 + 255` under `prekeys/<n:08>`:
//!
//! ```text
//! [1]                                   format version
//! then per pre-key, in id order:
//!   [id & 0xff] [flags]                 flags: bit 0 uploaded, bit 1 compact, bit 2 removed
//!   compact: [private key, 32 bytes]    the client's own record, rebuilt on read
//!   removed: nothing                    (in fragments only: the key was consumed)
//!   else:    [length u16 BE] [record]   any other record, byte for byte
//! ```
//!
//! A record is stored compact only when rebuilding it from its private key gives back
//! exactly the bytes the client stored (the client's own encoding of a valid key pair), so
//! the client always reads what it wrote.
//!
//! Storing and removing pre-keys reads nothing: each batch (or removal) goes to a fragment of
//! its chunk, `prekeys/<n:08>.<seq:020>` (same format), whose keys override the chunk's and
//! older fragments'. The next change that reads the pre-keys (marking them uploaded) folds
//! every fragment into its chunk, so a device keeps about one row per chunk.

use std::collections::BTreeMap;

use wacore::libsignal::protocol::{KeyPair, PrivateKey};
use wacore::libsignal::store::record_helpers::encode_pre_key_record_to;

use super::prelude::*;

const VERSION: u8 = 1;
const UPLOADED: u8 = 1;
const COMPACT: u8 = 2;
const REMOVED: u8 = 4;

/// A read that finds this many fragments in a chunk folds them.
const FOLD_AT: usize = 8;

/// What one pre-key slot holds.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Slot {
    /// The client's record for a valid key pair: its private key.
    Compact([u8; 32]),
    /// Any other record, as given.
    Raw(Vec<u8>),
    /// Removed (consumed): written to a fragment so that removing needs no read; folding
    /// drops the key.
    Removed,
}

/// One pre-key: whether the server has it, and its record.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct PreKey {
    pub(super) uploaded: bool,
    pub(super) slot: Slot,
}

impl PreKey {
    /// The slot for `record` of `id`: compact when that loses nothing.
    pub(super) fn new(id: u32, record: &[u8], uploaded: bool) -> Self {
        let slot = compact(id, record).map_or_else(|| Slot::Raw(record.to_vec()), Slot::Compact);
        Self { uploaded, slot }
    }

    /// A removal.
    pub(super) const fn removed() -> Self {
        Self {
            uploaded: false,
            slot: Slot::Removed,
        }
    }

    /// Whether this is a removal.
    pub(super) const fn is_removed(&self) -> bool {
        matches!(self.slot, Slot::Removed)
    }

    /// The slot of a key pair the caller holds (an import).
    pub(super) fn from_pair(pair: &KeyPair, uploaded: bool) -> Self {
        Self {
            uploaded,
            slot: Slot::Compact(*pair.private_key.serialize()),
        }
    }

    /// The record the client stored.
    pub(super) fn record(&self, id: u32) -> Result<Vec<u8>> {
        match &self.slot {
            Slot::Raw(r) => Ok(r.clone()),
            Slot::Removed => Err(corrupt("pre-key (removed)")),
            Slot::Compact(private) => {
                let private = PrivateKey::deserialize(private).map_err(|_| corrupt("pre-key"))?;
                let public = private.public_key().map_err(|_| corrupt("pre-key"))?;
                let mut out = Vec::with_capacity(74);
                encode_pre_key_record_to(id, &KeyPair::new(public, private), &mut out);
                Ok(out)
            }
        }
    }
}

/// The private key of `record` when rebuilding the record from it gives the same bytes.
fn compact(id: u32, record: &[u8]) -> Option<[u8; 32]> {
    let decoded = waproto::codec::pre_key_record_decode(record).ok()?;
    if decoded.id != Some(id) {
        return None;
    }
    let private: [u8; 32] = decoded.private_key.as_deref()?.try_into().ok()?;
    let rebuilt = PreKey {
        uploaded: false,
        slot: Slot::Compact(private),
    }
    .record(id)
    .ok()?;
    (rebuilt == record).then_some(private)
}

/// The chunk number of `id`.
pub(super) const fn chunk_of(id: u32) -> u32 {
    id >> 8
}

/// The key of chunk `n`.
pub(super) fn chunk_key(n: u32) -> String {
    format!("{}{n:08}", keys::PREKEY_CHUNK)
}

/// The key of a fragment of chunk `n`.
fn fragment_key(n: u32, seq: u64) -> String {
    format!("{}{n:08}.{seq:020}", keys::PREKEY_CHUNK)
}

/// The chunk number in a chunk or fragment key, and the fragment's sequence number.
pub(super) fn parse_chunk_key(key: &str) -> Option<(u32, Option<u64>)> {
    let rest = key.strip_prefix(keys::PREKEY_CHUNK)?;
    match rest.split_once('.') {
        None => Some((rest.parse().ok()?, None)),
        Some((n, seq)) => Some((n.parse().ok()?, Some(seq.parse().ok()?))),
    }
}

/// A fragment sequence number: increasing within the process, and with the clock across
/// processes (one lease holder writes at a time; the next fold ends any overlap).
fn next_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::SeqCst);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// The fragments that store `keys` without reading: one per chunk they fall in.
pub(super) fn fragments(keys: impl IntoIterator<Item = (u32, PreKey)>) -> Result<Vec<Entry>> {
    let mut chunks: BTreeMap<u32, Chunk> = BTreeMap::new();
    for (id, key) in keys {
        chunks.entry(chunk_of(id)).or_default().insert(id, key);
    }
    let seq = next_seq();
    chunks
        .iter()
        .map(|(n, c)| Ok((fragment_key(*n, seq), encode(c)?)))
        .collect()
}

/// The pre-keys of one chunk, by id.
pub(super) type Chunk = BTreeMap<u32, PreKey>;

pub(super) fn decode(n: u32, value: &[u8]) -> Result<Chunk> {
    let bad = || corrupt("pre-key chunk");
    let (&version, mut rest) = value.split_first().ok_or_else(bad)?;
    if version != VERSION {
        return Err(bad());
    }
    let mut out = Chunk::new();
    while let [offset, flags, tail @ ..] = rest {
        let id = (n << 8) | u32::from(*offset);
        let (slot, after) = if flags & REMOVED != 0 {
            (Slot::Removed, tail)
        } else if flags & COMPACT != 0 {
            if tail.len() < 32 {
                return Err(bad());
            }
            let (private, after) = tail.split_at(32);
            (Slot::Compact(private.try_into().map_err(|_| bad())?), after)
        } else {
            let [hi, lo, body @ ..] = tail else {
                return Err(bad());
            };
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            if body.len() < len {
                return Err(bad());
            }
            let (record, after) = body.split_at(len);
            (Slot::Raw(record.to_vec()), after)
        };
        out.insert(
            id,
            PreKey {
                uploaded: flags & UPLOADED != 0,
                slot,
            },
        );
        rest = after;
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

pub(super) fn encode(chunk: &Chunk) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1 + chunk.len() * 34);
    out.push(VERSION);
    for (id, key) in chunk {
        #[allow(clippy::cast_possible_truncation)]
        out.push((id & 0xff) as u8);
        let uploaded = if key.uploaded { UPLOADED } else { 0 };
        match &key.slot {
            Slot::Compact(private) => {
                out.push(uploaded | COMPACT);
                out.extend_from_slice(private);
            }
            Slot::Removed => out.push(REMOVED),
            Slot::Raw(record) => {
                let len = u16::try_from(record.len()).map_err(|_| corrupt("pre-key (too long)"))?;
                out.push(uploaded);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(record);
            }
        }
    }
    Ok(out)
}

/// Writes `chunks` (an empty one is deleted).
pub(super) fn entries(chunks: &BTreeMap<u32, Chunk>) -> Result<(Vec<Entry>, Vec<String>)> {
    let mut puts = Vec::new();
    let mut deletes = Vec::new();
    for (n, chunk) in chunks {
        if chunk.is_empty() {
            deletes.push(chunk_key(*n));
        } else {
            puts.push((chunk_key(*n), encode(chunk)?));
        }
    }
    Ok((puts, deletes))
}

/// Pre-keys as read for a change: chunks by number, and the rows folded into them
/// (fragments, and rows of the earlier one-per-key layout), deleted when the chunks are
/// written.
pub(super) struct Loaded {
    pub(super) chunks: BTreeMap<u32, Chunk>,
    folded: Vec<String>,
}

impl Loaded {
    /// Whether rows were folded in: then every chunk must be written.
    pub(super) fn folds(&self) -> bool {
        !self.folded.is_empty()
    }

    pub(super) fn get(&self, id: u32) -> Option<&PreKey> {
        self.chunks.get(&chunk_of(id)).and_then(|c| c.get(&id))
    }
}

impl WaBackend {
    /// The chunks with these numbers (missing ones empty; `None`: all), in one round trip:
    /// the prefix `prekey` covers the chunks and their fragments (`prekeys/`) and the rows
    /// pre-keys had before they were packed (`prekey/<id>`). Fragments and such rows are
    /// folded in, with every chunk, so the caller's write leaves one row per chunk.
    pub(super) async fn read_chunks(&self, numbers: Option<&[u32]>) -> Result<Loaded> {
        let wanted: Option<std::collections::BTreeSet<u32>> =
            numbers.map(|n| n.iter().copied().collect());
        let mut mains = Vec::new();
        let mut frags = Vec::new();
        let mut legacy = Vec::new();
        // In key order: a chunk, then its fragments, oldest first.
        for (k, v) in self.scan(keys::PREKEY_FAMILY).await? {
            match parse_chunk_key(&k) {
                Some((n, None)) => mains.push((n, v)),
                Some((n, Some(_))) => frags.push((n, k, v)),
                None => {
                    let id =
                        keys::parse_id(keys::PREKEY, &k).ok_or_else(|| corrupt("pre-key key"))?;
                    let record = prekey_record(&v)?;
                    let key = PreKey::new(id, record, v[0] == 1);
                    legacy.push((k, id, key));
                }
            }
        }
        let all = wanted.is_none() || !frags.is_empty() || !legacy.is_empty();
        let mut chunks: BTreeMap<u32, Chunk> = wanted
            .iter()
            .flatten()
            .map(|n| (*n, Chunk::new()))
            .collect();
        for (n, v) in mains {
            if all || wanted.as_ref().is_some_and(|w| w.contains(&n)) {
                chunks.insert(n, decode(n, &v)?);
            }
        }
        let mut folded = Vec::with_capacity(frags.len() + legacy.len());
        for (n, k, v) in frags {
            chunks.entry(n).or_default().extend(decode(n, &v)?);
            folded.push(k);
        }
        for (k, id, key) in legacy {
            // A key already packed (or removed since) is newer than its old row.
            chunks
                .entry(chunk_of(id))
                .or_default()
                .entry(id)
                .or_insert(key);
            folded.push(k);
        }
        for chunk in chunks.values_mut() {
            chunk.retain(|_, k| !k.is_removed());
        }
        Ok(Loaded { chunks, folded })
    }

    /// One pre-key, in one round trip when it is packed (its chunk and the chunk's
    /// fragments); the row of the earlier layout is looked at only when it is not.
    pub(super) async fn read_one(&self, id: u32) -> Result<Option<PreKey>> {
        let n = chunk_of(id);
        let mut found = None;
        let mut fragments = 0;
        for (k, v) in self.scan(&chunk_key(n)).await? {
            let Some((m, seq)) = parse_chunk_key(&k).filter(|(m, _)| *m == n) else {
                continue;
            };
            fragments += usize::from(seq.is_some());
            if let Some(key) = decode(m, &v)?.remove(&id) {
                found = Some(key);
            }
        }
        if fragments >= FOLD_AT {
            // Removals between uploads add a fragment each: fold them here, where they were
            // read anyway (a key is read before it is consumed), so they never pile up.
            if let Err(e) = self.fold().await {
                tracing::debug!(device = %self.device, error = %e, "pre-key fragments left for the next change");
            }
        }
        if let Some(key) = found {
            return Ok((!key.is_removed()).then_some(key));
        }
        self.get(&keys::id_key(keys::PREKEY, id))
            .await?
            .map(|v| prekey_record(&v).map(|r| PreKey::new(id, r, v[0] == 1)))
            .transpose()
    }

    /// Folds every fragment (and row of the earlier layout) into its chunk.
    async fn fold(&self) -> Result<()> {
        let _guard = self.locked().await;
        let loaded = self.read_chunks(Some(&[])).await?;
        if loaded.folds() {
            self.write_chunks(&loaded).await?;
        }
        Ok(())
    }

    /// Writes the chunks (an emptied one is deleted) and deletes the rows folded into them.
    pub(super) async fn write_chunks(&self, loaded: &Loaded) -> Result<()> {
        let (puts, mut deletes) = entries(&loaded.chunks)?;
        deletes.extend(loaded.folded.iter().cloned());
        self.put_many(&puts).await?;
        self.delete_many(&deletes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(seed: u8) -> KeyPair {
        let private = PrivateKey::deserialize(&[seed; 32]).unwrap();
        KeyPair::new(private.public_key().unwrap(), private)
    }

    #[test]
    fn the_clients_records_are_packed_to_their_private_key_and_read_back_exactly() {
        let mut record = Vec::new();
        encode_pre_key_record_to(300, &pair(7), &mut record);
        let key = PreKey::new(300, &record, true);
        assert!(matches!(key.slot, Slot::Compact(_)));
        assert_eq!(key.record(300).unwrap(), record);
        // Under another id the record would not rebuild: kept as it is.
        assert!(matches!(PreKey::new(301, &record, true).slot, Slot::Raw(_)));
        // Anything else is kept byte for byte.
        assert!(matches!(PreKey::new(1, b"pk", false).slot, Slot::Raw(_)));
        assert!(PreKey::removed().is_removed());
    }

    #[test]
    fn chunks_round_trip_and_refuse_damage() {
        let mut record = Vec::new();
        encode_pre_key_record_to(513, &pair(9), &mut record);
        let chunk: Chunk = [
            (512, PreKey::new(512, b"raw", false)),
            (513, PreKey::new(513, &record, true)),
            (767, PreKey::new(767, &[], true)),
            (600, PreKey::removed()),
        ]
        .into_iter()
        .collect();
        let bytes = encode(&chunk).unwrap();
        assert!(decode(2, &bytes).unwrap() == chunk);
        assert_eq!(chunk_of(767), 2);
        assert_eq!(parse_chunk_key(&chunk_key(2)), Some((2, None)));
        assert_eq!(parse_chunk_key(&fragment_key(2, 7)), Some((2, Some(7))));
        assert!(
            fragment_key(2, 7) < fragment_key(2, 10),
            "fragments sort oldest first"
        );
        assert!(
            chunk_key(2) < fragment_key(2, 0),
            "a chunk sorts before its fragments"
        );
        assert!(fragment_key(2, u64::MAX) < chunk_key(3));
        assert!(next_seq() < next_seq());
        for cut in 1..bytes.len() {
            // Cut inside an entry: refused; at an entry's end: fewer keys, never these.
            assert!(
                decode(2, &bytes[..cut]).map_or(true, |c| c != chunk),
                "cut at {cut}"
            );
        }
        assert!(decode(2, &[2]).is_err(), "unknown version");
    }
}
