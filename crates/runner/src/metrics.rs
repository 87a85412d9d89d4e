//! The runner's metrics (names are stable; exported by whatever `metrics` recorder the
//! application installs).
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `wa_pairing_outcomes_total` | counter | `kind`: linked, resumed, invalid_phone, throttled, budget, refused, code_request_failed, expired, pairing_failed, connect_failed, resume_failed, logged_out, replaced, banned, outdated, connection_lost, unreadable, unlinked |
//! | `wa_pairing_time_to_code_seconds` | histogram | |
//! | `wa_pairing_time_to_link_seconds` | histogram | |
//! | `wa_pairing_sessions` | gauge | |
//! | `wa_pairing_leases` | gauge | |
//! | `wa_pairing_claim_seconds` | histogram | |
//! | `wa_pairing_code_retries_total` | counter | |
//! | `wa_pairing_reconnects_total` | counter | |
//! | `wa_pairing_cache_failures_total` | counter | `op` |
//! | `wa_pairing_leases_lost_total` | counter | |
//! | `wa_pairing_actor_panics_total` | counter | |
//! | `wa_pairing_devices_unreadable` | gauge | |

use std::time::Duration;

pub(crate) fn outcome(kind: &'static str) {
    metrics::counter!("wa_pairing_outcomes_total", "kind" => kind).increment(1);
}

pub(crate) fn time_to_code(d: Duration) {
    metrics::histogram!("wa_pairing_time_to_code_seconds").record(d.as_secs_f64());
}

pub(crate) fn time_to_link(d: Duration) {
    metrics::histogram!("wa_pairing_time_to_link_seconds").record(d.as_secs_f64());
}

pub(crate) fn session_opened() {
    metrics::gauge!("wa_pairing_sessions").increment(1.0);
}

pub(crate) fn session_closed() {
    metrics::gauge!("wa_pairing_sessions").decrement(1.0);
}

#[allow(clippy::cast_precision_loss)]
pub(crate) fn leases(n: usize) {
    metrics::gauge!("wa_pairing_leases").set(n as f64);
}

pub(crate) fn claim_latency(d: Duration) {
    metrics::histogram!("wa_pairing_claim_seconds").record(d.as_secs_f64());
}

pub(crate) fn code_retry() {
    metrics::counter!("wa_pairing_code_retries_total").increment(1);
}

pub(crate) fn reconnect() {
    metrics::counter!("wa_pairing_reconnects_total").increment(1);
}

pub(crate) fn cache_failure(op: &'static str) {
    metrics::counter!("wa_pairing_cache_failures_total", "op" => op).increment(1);
}

pub(crate) fn lease_lost() {
    metrics::counter!("wa_pairing_leases_lost_total").increment(1);
}

pub(crate) fn actor_panicked() {
    metrics::counter!("wa_pairing_actor_panics_total").increment(1);
}

#[allow(clippy::cast_precision_loss)]
pub(crate) fn unreadable(n: usize) {
    metrics::gauge!("wa_pairing_devices_unreadable").set(n as f64);
}
