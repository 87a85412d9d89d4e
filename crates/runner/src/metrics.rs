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
//! | `wa_pairing_leases_lost_total` | counter | | leases this instance lost while it still wanted them: taken over by another instance, renewals failing for a lease period, or lapsed while it paused (alert on this) |
//! | `wa_pairing_session_stops_total` | counter | `reason`: owner_action, deleted, taken_over, renewal_failed, lapsed | held sessions the runner stopped because their lease ended, by why (an owner's refresh, disconnect or unlink is `owner_action`, never a lost lease) |
//! | `wa_pairing_actor_panics_total` | counter | | device actors that panicked (a bug) |
//! | `wa_pairing_devices_unreadable` | gauge | | devices whose auth state this instance's keys cannot open |
//! | `wa_pairing_resumes_waiting` | gauge | | sessions claimed to log in again, waiting for their turn at the resume rate |
//! | `wa_pairing_resume_wait_seconds` | histogram | | from claiming a session to its turn to log in again (the pace of a takeover) |
//! | `wa_pairing_redis_failures_total` | counter | `op` | Redis calls that failed (emitted by `wa-pairing-redis`; pairing carries on without Redis) |
//!
//! The constants below name the histograms, for a recorder that sets their buckets;
//! [`describe`] gives every metric its help text and makes every counter and gauge (each
//! label value above included) exist at 0, so a dashboard or an alert sees them from start.

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
/// `wa_pairing_session_stops_total`, labelled by `reason`.
pub const SESSION_STOPS: &str = "wa_pairing_session_stops_total";
/// `wa_pairing_leases_lost_total`: the alerting metric.
pub const LEASES_LOST: &str = "wa_pairing_leases_lost_total";

/// Every `kind` of [`OUTCOMES`].
pub const OUTCOME_KINDS: &[&str] = &[
    "linked",
    "resumed",
    "invalid_phone",
    "throttled",
    "budget",
    "refused",
    "code_request_failed",
    "expired",
    "pairing_failed",
    "connect_failed",
    "resume_failed",
    "logged_out",
    "replaced",
    "banned",
    "outdated",
    "connection_lost",
    "unreadable",
    "other_server",
    "unlinked",
];

/// Why the runner stopped a session it held because its lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// An owner's refresh, disconnect or unlink released the lease.
    OwnerAction,
    /// The device was deleted.
    Deleted,
    /// Another instance holds the lease.
    TakenOver,
    /// Renewals failed for nearly a lease period.
    RenewalFailed,
    /// This instance's own lease lapsed (it paused) and it claimed the device again.
    Lapsed,
}

impl StopReason {
    const ALL: [Self; 5] = [
        Self::OwnerAction,
        Self::Deleted,
        Self::TakenOver,
        Self::RenewalFailed,
        Self::Lapsed,
    ];

    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::OwnerAction => "owner_action",
            Self::Deleted => "deleted",
            Self::TakenOver => "taken_over",
            Self::RenewalFailed => "renewal_failed",
            Self::Lapsed => "lapsed",
        }
    }

    /// Whether this instance lost a lease it still wanted (what an operator alerts on).
    pub(crate) const fn is_loss(self) -> bool {
        matches!(self, Self::TakenOver | Self::RenewalFailed | Self::Lapsed)
    }
}

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
        LEASES_LOST,
        "Leases lost while still wanted: taken over, renewals failing, or lapsed"
    );
    describe_counter!(
        SESSION_STOPS,
        "Held sessions stopped because their lease ended, by reason"
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
    register_at_zero();
}

/// Makes every counter and gauge of the table exist (at 0, or unchanged when it already has
/// a value), each label value included.
fn register_at_zero() {
    for kind in OUTCOME_KINDS {
        metrics::counter!(OUTCOMES, "kind" => *kind).increment(0);
    }
    for reason in StopReason::ALL {
        metrics::counter!(SESSION_STOPS, "reason" => reason.label()).increment(0);
    }
    for op in ["put", "delete", "budget"] {
        metrics::counter!("wa_pairing_cache_failures_total", "op" => op).increment(0);
    }
    for name in [
        "wa_pairing_code_retries_total",
        "wa_pairing_reconnects_total",
        LEASES_LOST,
        "wa_pairing_actor_panics_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for name in [
        "wa_pairing_sessions",
        "wa_pairing_leases",
        "wa_pairing_devices_unreadable",
        "wa_pairing_resumes_waiting",
    ] {
        metrics::gauge!(name).increment(0.0);
    }
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

pub(crate) fn session_stopped(reason: StopReason) {
    metrics::counter!(SESSION_STOPS, "reason" => reason.label()).increment(1);
    if reason.is_loss() {
        metrics::counter!(LEASES_LOST).increment(1);
    }
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
