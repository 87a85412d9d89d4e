//! What a backend knows of the rows the client's retention sweeps delete.
//!
//! About every five minutes each connected client sweeps its sent messages, buffered inbound
//! messages and message secrets for expired rows (`whatsapp-rust`'s keepalive loop). Each
//! sweep is a prefix scan, a database round trip, and a linked device that sends nothing
//! has nothing to sweep: at 10,000 idle sessions those scans were 90 transactions a second.
//! A [`Horizon`] remembers, per family, the earliest time a row stored through this backend
//! can expire, so a sweep before it answers at once. The first sweep of a session scans
//! (what an earlier holder of the lease stored is unknown); after that, only a row stored
//! through this backend, or its expiry, brings the next scan.
//!
//! The lease makes this backend its device's one writer. A row written by another backend
//! for the same device meanwhile (nothing does today) would only be swept later, by the next
//! session's first sweep: retention is delayed, nothing is lost.

use std::sync::atomic::{AtomicI64, Ordering};

/// Nothing is known: the next sweep scans.
const UNKNOWN: i64 = i64::MIN;
/// Nothing is stored that can expire.
const NOTHING: i64 = i64::MAX;

/// The earliest expiry (Unix seconds) in one key family, as far as this backend knows.
#[derive(Debug)]
pub(crate) struct Horizon(AtomicI64);

impl Default for Horizon {
    fn default() -> Self {
        Self(AtomicI64::new(UNKNOWN))
    }
}

impl Horizon {
    /// Whether a sweep with `cutoff` may find a row to delete; if so, the sweep must report
    /// what it left with [`swept`](Self::swept) (or [`failed`](Self::failed)).
    pub(crate) fn begin(&self, cutoff: i64) -> bool {
        let known = self.0.load(Ordering::SeqCst);
        if known != UNKNOWN && known > cutoff {
            return false;
        }
        // Rows stored while the scan runs lower it again (`stored`).
        self.0.store(NOTHING, Ordering::SeqCst);
        true
    }

    /// A row that expires at `at` was stored.
    pub(crate) fn stored(&self, at: i64) {
        self.0.fetch_min(at, Ordering::SeqCst);
    }

    /// The sweep left these rows' expiries (none: the family is empty).
    pub(crate) fn swept(&self, left: impl IntoIterator<Item = i64>) {
        if let Some(earliest) = left.into_iter().min() {
            self.stored(earliest);
        }
    }

    /// The sweep failed: the next one scans again.
    pub(crate) fn failed(&self) {
        self.0.store(UNKNOWN, Ordering::SeqCst);
    }
}

/// The horizons of the families the client sweeps.
#[derive(Debug, Default)]
pub(crate) struct Sweeps {
    /// Sent messages kept for retries, by when they were stored.
    pub(crate) sent: Horizon,
    /// Inbound messages buffered for the durability hook, by when they were stored.
    pub(crate) pending: Horizon,
    /// Message secrets, by their own deadline (0: never expires, so never counted).
    pub(crate) msg_secrets: Horizon,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_sweep_and_sweeps_past_a_stored_rows_expiry_scan() {
        let h = Horizon::default();
        assert!(h.begin(100), "the first sweep scans");
        h.swept([]);
        assert!(!h.begin(200), "nothing stored since: no scan");
        h.stored(300);
        assert!(!h.begin(250), "the row is not due yet");
        assert!(h.begin(300), "due");
        // A row stored during the scan counts even if the scan did not see it.
        h.stored(350);
        h.swept([400]);
        assert!(!h.begin(349));
        assert!(h.begin(350));
        h.failed();
        assert!(h.begin(0), "after a failure, scan again");
    }
}
