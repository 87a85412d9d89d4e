//! What a backend knows of its device's trusted-contact tokens.
//!
//! The client reads the recipient's trusted-contact token before every message it sends, to
//! decide which privacy token goes on the stanza. Read from the store each time, that was a
//! database round trip on the send path for every message: one of the four transactions a
//! sent text cost (the messages benchmark, `docs/benchmarks.md`). The lease makes this
//! backend its device's one writer (as for the retention sweeps, see `sweep`), and every
//! token change goes through it, so it keeps what it read and wrote: the next read of a
//! token it knows, stored or absent, answers from memory.
//!
//! - A read that misses loads the token under the device lock, and every change updates the
//!   cache under that lock once the store accepted it, so a load never puts back a value a
//!   change replaced meanwhile. A change the store refused forgets the token (the next read
//!   asks the store). A write after the lease was lost is refused by the store's fence and
//!   answered as done (`WaBackend::written`): the cache then holds what the client wrote,
//!   like the client's own state, until the session ends.
//! - A new backend (a new session, a restart) starts empty: what an earlier holder of the
//!   lease, or a wipe between sessions, left in the store is read again.
//! - Bounded: at [`LIMIT`] tokens (one per contact the account writes to) it starts again
//!   from empty.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use wacore::store::traits::TcTokenEntry;

/// The most tokens one backend keeps (about 100 bytes each).
pub(crate) const LIMIT: usize = 4096;

/// What a backend knows of one contact's token.
#[derive(Debug)]
pub(crate) enum Known {
    /// Nothing: the store must be asked.
    Unknown,
    /// What the store holds (`None`: no token).
    Stored(Option<TcTokenEntry>),
}

/// Trusted-contact tokens by contact, as the store holds them (`None`: no token stored).
#[derive(Debug, Default)]
pub(crate) struct TcCache(Mutex<HashMap<String, Option<TcTokenEntry>>>);

impl TcCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<TcTokenEntry>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the store holds for `jid`, as far as this backend knows.
    pub(crate) fn get(&self, jid: &str) -> Known {
        self.map()
            .get(jid)
            .map_or(Known::Unknown, |e| Known::Stored(e.clone()))
    }

    /// The store holds `entry` for `jid` (`None`: nothing).
    pub(crate) fn set(&self, jid: &str, entry: Option<TcTokenEntry>) {
        let mut map = self.map();
        if map.len() >= LIMIT && !map.contains_key(jid) {
            map.clear();
        }
        map.insert(jid.to_owned(), entry);
    }

    /// What the store holds for `jid` is not known.
    pub(crate) fn forget(&self, jid: &str) {
        self.map().remove(jid);
    }

    /// Nothing is known.
    pub(crate) fn forget_all(&self) {
        self.map().clear();
    }

    /// How many tokens are known.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: i64) -> TcTokenEntry {
        TcTokenEntry {
            token: vec![1, 2, 3],
            token_timestamp: ts,
            sender_timestamp: None,
        }
    }

    #[test]
    fn knows_tokens_and_their_absence_until_forgotten() {
        let cache = TcCache::default();
        assert!(
            matches!(cache.get("a@lid"), Known::Unknown),
            "unknown at first"
        );
        cache.set("a@lid", Some(entry(5)));
        cache.set("b@lid", None);
        assert!(matches!(
            cache.get("a@lid"),
            Known::Stored(Some(TcTokenEntry {
                token_timestamp: 5,
                ..
            }))
        ));
        assert!(
            matches!(cache.get("b@lid"), Known::Stored(None)),
            "known absent"
        );
        cache.forget("a@lid");
        assert!(matches!(cache.get("a@lid"), Known::Unknown));
        cache.forget_all();
        assert!(matches!(cache.get("b@lid"), Known::Unknown));
    }

    #[test]
    fn starts_again_when_full() {
        let cache = TcCache::default();
        for i in 0..LIMIT {
            cache.set(&format!("{i}@lid"), None);
        }
        assert_eq!(cache.len(), LIMIT);
        // A known token is replaced in place; a new one past the limit empties the cache.
        cache.set("0@lid", Some(entry(1)));
        assert_eq!(cache.len(), LIMIT);
        cache.set("new@lid", None);
        assert_eq!(cache.len(), 1);
        assert!(matches!(cache.get("new@lid"), Known::Stored(None)));
    }
}
