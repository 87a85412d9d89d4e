//! Every metric wa-pairing emits: this table is the one list (the service's `/metrics`
//! serves all of them in Prometheus' text format; an embedding program gets them from
//! whatever [`metrics`](https://docs.rs/metrics) recorder it installs). Names are stable.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `wa_pairing_outcomes_total` | counter | `kind`: linked, resumed, invalid_phone, throttled, budget, refused, code_request_failed, expired, pairing_failed, connect_failed, resume_failed, logged_out, replaced, banned, outdated, connection_lost, unreadable, unlinked | how each pairing or session ended |
//! | `wa_pairing_time_to_code_seconds` | histogram | | from the code request to the code shown (WhatsApp's answer plus retries) |
//! | `wa_pairing_time_to_link_seconds` | histogram | | from the start of pairing to the link (includes the person typing the code) |
//! | `wa_pairing_sessions` | gauge | | WhatsApp sessions this instance holds open |
//! | `wa_pairing_leases` | gauge | | devices this instance holds a lease on |
//! | `wa_pairing_claim_seconds` | histogram | | one claim of work from the store |
//! | `wa_pairing_renew_seconds` | histogram | | one renewal of every lease this instance holds (one call per heartbeat) |
//! | `wa_pairing_code_retries_total` | counter | | code requests retried |
//! | `wa_pairing_reconnects_total` | counter | | sessions reconnected after a dropped connection |
//! | `wa_pairing_cache_failures_total` | counter | `op`: put, delete, budget | cache or budget calls the runner carried on without |
//! | `wa_pairing_leases_lost_total` | counter | | leases another instance took over (this one paused too long) |
//! | `wa_pairing_actor_panics_total` | counter | | device actors that panicked (a bug) |
//! | `wa_pairing_devices_unreadable` | gauge | | devices whose auth state this instance's keys cannot open |
//! | `wa_pairing_resumes_waiting` | gauge | | sessions claimed to log in again, waiting for their turn at the resume rate |
//! | `wa_pairing_resume_wait_seconds` | histogram | | from claiming a session to its turn to log in again (the pace of a takeover) |
//! | `wa_pairing_redis_failures_total` | counter | `op` | Redis calls that failed (emitted by `wa-pairing-redis`; pairing carries on without Redis) |
//!
//! The constants below name the histograms, for a recorder that sets their buckets;
//! [`describe`] gives every metric its help text.

/// `wa_pairing_outcomes_total`.
pub const OUTCOMES: &str = "wa_pairing_outcomes_total";
/// `wa_pairing_time_to_code_seconds` (histogram, seconds: typically 0.1-10 s).
pub const TIME_TO_CODE: &str = "wa_pairing_time_to_code_seconds";
/// `wa_pairing_time_to_link_seconds` (histogram, seconds: up to minutes).
pub const TIME_TO_LINK: &str = "wa_pairing_time_to_link_seconds";
/// `wa_pairing_claim_seconds` (histogram, seconds: milliseconds on a healthy database).
pub const CLAIM: &str = "wa_pairing_claim_seconds";
/// `wa_pairing_renew_seconds` (histogram, seconds: milliseconds on a healthy database).
pub const RENEW: &str = "wa_pairing_renew_seconds";
/// `wa_pairing_resume_wait_seconds` (histogram, seconds: zero when idle, up to twice the
/// claim interval during a takeover).
pub const RESUME_WAIT: &str = "wa_pairing_resume_wait_seconds";
/// `wa_pairing_redis_failures_total` (emitted by `wa-pairing-redis`).
pub const REDIS_FAILURES: &str = "wa_pairing_redis_failures_total";

/// Registers the help text and unit of every metric in the table with the installed
/// recorder (Prometheus' `# HELP` lines). Call it once after installing a recorder; metrics
/// work without it.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(OUTCOMES, "How each pairing or session ended, by kind");
    describe_histogram!(
        TIME_TO_CODE,
        Unit::Seconds,
        "From the code request to the code shown"
    );
    describe_histogram!(
        TIME_TO_LINK,
        Unit::Seconds,
        "From the start of pairing to the link"
    );
    describe_gauge!("wa_pairing_sessions", "WhatsApp sessions held open");
    describe_gauge!("wa_pairing_leases", "Devices leased by this instance");
    describe_histogram!(CLAIM, Unit::Seconds, "One claim of work from the store");
    describe_histogram!(
        RENEW,
        Unit::Seconds,
        "One renewal of every lease this instance holds"
    );
    describe_counter!("wa_pairing_code_retries_total", "Code requests retried");
    describe_counter!(
        "wa_pairing_reconnects_total",
        "Sessions reconnected after a dropped connection"
    );
    describe_counter!(
        "wa_pairing_cache_failures_total",
        "Cache or budget calls the runner carried on without"
    );
    describe_counter!(
        "wa_pairing_leases_lost_total",
        "Leases taken over by another instance"
    );
    describe_counter!(
        "wa_pairing_actor_panics_total",
        "Device actors that panicked"
    );
    describe_gauge!(
        "wa_pairing_devices_unreadable",
        "Devices whose auth state this instance's keys cannot open"
    );
    describe_gauge!(
        "wa_pairing_resumes_waiting",
        "Sessions claimed to log in again, waiting for their turn"
    );
    describe_histogram!(
        RESUME_WAIT,
        Unit::Seconds,
        "From claiming a session to its turn to log in again"
    );
    describe_counter!(REDIS_FAILURES, "Redis calls that failed");
}

use std::time::Duration;

pub(crate) fn outcome(kind: &'static str) {
    metrics::counter!(OUTCOMES, "kind" => kind).increment(1);
}

pub(crate) fn time_to_code(d: Duration) {
    metrics::histogram!(TIME_TO_CODE).record(d.as_secs_f64());
}

pub(crate) fn time_to_link(d: Duration) {
    metrics::histogram!(TIME_TO_LINK).record(d.as_secs_f64());
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
    metrics::histogram!(CLAIM).record(d.as_secs_f64());
}

pub(crate) fn renew_latency(d: Duration) {
    metrics::histogram!(RENEW).record(d.as_secs_f64());
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

pub(crate) fn resume_queued() {
    metrics::gauge!("wa_pairing_resumes_waiting").increment(1.0);
}

pub(crate) fn resume_started(waited: Duration) {
    metrics::gauge!("wa_pairing_resumes_waiting").decrement(1.0);
    metrics::histogram!(RESUME_WAIT).record(waited.as_secs_f64());
}
