//! Prometheus metrics: the recorder the binary installs, with buckets chosen for what
//! wa-pairing measures. The names are listed once, in
//! [`wa_pairing_runner::metrics`].
//!
//! The recorder of the [`metrics`](https://docs.rs/metrics) facade is process-global. The
//! binary installs this one with [`install_metrics`] and hands the handle to
//! [`Service::with_metrics`](crate::Service::with_metrics), which serves it at `GET /metrics`
//! on the health listener. A program that embeds the service and has its own recorder skips
//! both: the service then serves no `/metrics` and never touches the recorder.

use std::fmt;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use wa_pairing_runner::metrics::{CLAIM, RENEW, RESUME_WAIT, TIME_TO_CODE, TIME_TO_LINK};

/// Buckets of `wa_pairing_time_to_code_seconds`: a code usually takes 0.1-10 s (WhatsApp's
/// answer plus retries); anything past a minute is a failure in all but name.
pub const TIME_TO_CODE_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0,
];

/// Buckets of `wa_pairing_time_to_link_seconds`: the person reads the code and types it on
/// the phone, so links take from a few seconds to several minutes (codes are refreshed).
pub const TIME_TO_LINK_BUCKETS: &[f64] = &[
    2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1200.0,
];

/// Buckets of `wa_pairing_claim_seconds` and `wa_pairing_renew_seconds`: one query on a
/// healthy database takes milliseconds; seconds mean the database is overloaded or far away.
pub const CLAIM_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Buckets of `wa_pairing_resume_wait_seconds`: nothing while no takeover runs; during one,
/// up to twice the claim interval (10 s by default).
pub const RESUME_WAIT_BUCKETS: &[f64] = &[0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0];

/// The Prometheus recorder could not be installed.
#[derive(Debug)]
pub struct MetricsError(String);

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the Prometheus recorder cannot be installed ({}); another `metrics` recorder is probably installed already: serve that one's metrics instead",
            self.0
        )
    }
}

impl std::error::Error for MetricsError {}

/// A Prometheus recorder builder with wa-pairing's histogram buckets; everything else
/// (summaries' quantiles, idle timeouts) is the exporter's default. Use it to install the
/// recorder yourself, or to add buckets for your own metrics.
///
/// # Panics
///
/// Never: the exporter refuses only empty bucket lists.
pub fn prometheus_builder() -> PrometheusBuilder {
    [
        (TIME_TO_CODE, TIME_TO_CODE_BUCKETS),
        (TIME_TO_LINK, TIME_TO_LINK_BUCKETS),
        (CLAIM, CLAIM_BUCKETS),
        (RENEW, CLAIM_BUCKETS),
        (RESUME_WAIT, RESUME_WAIT_BUCKETS),
    ]
    .into_iter()
    .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
        builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .expect("bucket lists are not empty")
    })
}

/// Installs the Prometheus recorder ([`prometheus_builder`]) as the process's `metrics`
/// recorder and describes every wa-pairing metric; returns the handle that renders them
/// (give it to [`Service::with_metrics`](crate::Service::with_metrics)). Call it once,
/// inside a Tokio runtime.
///
/// # Errors
///
/// When a recorder is installed already (by an earlier call, or by the embedding program).
pub fn install_metrics() -> Result<PrometheusHandle, MetricsError> {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| MetricsError(e.to_string()))?;
    wa_pairing_runner::metrics::describe();
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(buckets: &[f64]) -> bool {
        buckets.windows(2).all(|w| w[0] < w[1])
    }

    #[test]
    fn buckets_rise_and_cover_what_they_measure() {
        for b in [TIME_TO_CODE_BUCKETS, TIME_TO_LINK_BUCKETS, CLAIM_BUCKETS] {
            assert!(sorted(b), "{b:?}");
        }
        assert!(TIME_TO_CODE_BUCKETS[0] <= 0.1 && *TIME_TO_CODE_BUCKETS.last().unwrap() >= 10.0);
        assert!(*TIME_TO_LINK_BUCKETS.last().unwrap() >= 600.0);
    }

    #[test]
    fn a_local_recorder_renders_histograms_with_these_buckets() {
        let recorder = prometheus_builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!(TIME_TO_CODE).record(0.7);
            metrics::histogram!(TIME_TO_LINK).record(42.0);
            metrics::histogram!(CLAIM).record(0.003);
        });
        let text = handle.render();
        assert!(
            text.contains("wa_pairing_time_to_code_seconds_bucket{le=\"1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("wa_pairing_time_to_code_seconds_bucket{le=\"0.5\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("wa_pairing_time_to_link_seconds_bucket{le=\"45\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("wa_pairing_claim_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("wa_pairing_time_to_code_seconds_count 1"),
            "{text}"
        );
    }
}
