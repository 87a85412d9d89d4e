//! Runner configuration.

use std::time::Duration;

use wa_pairing_retry::{Backoff, RetryPolicy};
use wa_pairing_store::BudgetConfig;

/// How a [`Runner`](crate::Runner) behaves.
///
/// # Default
/// | setting | default |
/// |---|---|
/// | `instance_id` | `runner-<random>` |
/// | `claim_interval` (safety sweep when a change feed exists, the poll otherwise) | 5 s |
/// | `lease_for` | 30 s |
/// | `heartbeat` (lease renewal) | 10 s |
/// | `max_sessions` | 1,000 |
/// | `claim_batch` (devices taken per claim; a full batch claims again at once) | 25 |
/// | `ready_timeout` | 10 s |
/// | `connect_attempts` (open + ready) | 3 |
/// | `code_retry` | 3 attempts, exponential 2 s to 10 s with full jitter, 60 s deadline |
/// | `code_refreshes` (automatic, after expiry) | 2 |
/// | `code_lifetime` (how long a code is shown) | WhatsApp's validity (3 minutes) |
/// | `shutdown_grace` | 25 s |
/// | `budget` (code requests per number) | 3 in a burst, one more every 200 s |
/// | `unreadable_retry` (how long a device whose auth state this instance cannot open is left to others) | 10 minutes |
/// | `unlink_timeout` (how long an unlink waits to log in before it wipes without telling WhatsApp) | 30 s |
/// | `resume_rate` (sessions logged in again per second, per instance) | 5 |
/// | `resume_jitter` (each gap between two resumes stretched by up to this fraction) | 0.25 |
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_runner::RunnerConfig;
///
/// let config = RunnerConfig::default()
///     .instance_id("runner-a")
///     .lease_for(Duration::from_secs(20))
///     .heartbeat(Duration::from_secs(5))
///     .code_refreshes(3);
/// assert!(config.validate().is_ok());
/// ```
///
/// Plain data: it deserialises from a configuration file, every field optional, with the
/// names above (durations as `"30s"`; `budget` as `{ capacity = 3, refill_every = "200s" }`;
/// `code_retry` is set in code only). [`Runner::new`](crate::Runner::new) refuses what
/// [`validate`](Self::validate) refuses.
///
/// ```
/// use wa_pairing_runner::RunnerConfig;
///
/// let config: RunnerConfig =
///     serde_json::from_str(r#"{"lease_for": "20s", "heartbeat": "5s", "resume_rate": 2}"#)?;
/// assert!(config.validate().is_ok());
/// let zero: RunnerConfig = serde_json::from_str(r#"{"resume_rate": 0}"#)?;
/// assert!(zero.validate().unwrap_err().to_string().contains("resume_rate"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RunnerConfig {
    pub(crate) instance_id: String,
    #[serde(with = "humantime_serde")]
    pub(crate) claim_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub(crate) lease_for: Duration,
    #[serde(with = "humantime_serde")]
    pub(crate) heartbeat: Duration,
    pub(crate) max_sessions: usize,
    pub(crate) claim_batch: usize,
    #[serde(with = "humantime_serde")]
    pub(crate) ready_timeout: Duration,
    pub(crate) connect_attempts: u32,
    #[serde(skip)]
    pub(crate) code_retry: RetryPolicy,
    pub(crate) code_refreshes: u32,
    #[serde(with = "humantime_serde")]
    pub(crate) code_lifetime: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub(crate) shutdown_grace: Duration,
    pub(crate) budget: BudgetConfig,
    #[serde(with = "humantime_serde")]
    pub(crate) unreadable_retry: Duration,
    #[serde(with = "humantime_serde")]
    pub(crate) unlink_timeout: Duration,
    pub(crate) resume_rate: f64,
    pub(crate) resume_jitter: f64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            instance_id: format!("runner-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            claim_interval: Duration::from_secs(5),
            lease_for: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            max_sessions: 1_000,
            claim_batch: 25,
            ready_timeout: Duration::from_secs(10),
            connect_attempts: 3,
            code_retry: RetryPolicy::default()
                .max_attempts(3)
                .backoff(Backoff::exponential(
                    Duration::from_secs(2),
                    Duration::from_secs(10),
                ))
                .deadline(Duration::from_secs(60)),
            code_refreshes: 2,
            code_lifetime: None,
            shutdown_grace: Duration::from_secs(25),
            budget: BudgetConfig::default(),
            unreadable_retry: Duration::from_secs(600),
            unlink_timeout: Duration::from_secs(30),
            resume_rate: 5.0,
            resume_jitter: 0.25,
        }
    }
}

/// A configuration the runner cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid runner configuration: {0}")]
pub struct ConfigError(String);

impl RunnerConfig {
    /// Names this instance in leases (unique per process across the fleet).
    #[must_use]
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = id.into();
        self
    }

    /// How often to claim work when nothing pushed a change.
    #[must_use]
    pub fn claim_interval(mut self, every: Duration) -> Self {
        self.claim_interval = every;
        self
    }

    /// How long a claimed lease lasts without renewal (another instance takes over after it).
    #[must_use]
    pub fn lease_for(mut self, d: Duration) -> Self {
        self.lease_for = d;
        self
    }

    /// How often leases are renewed (well under `lease_for`).
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// At most this many devices held at once.
    #[must_use]
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }

    /// At most this many devices taken by one claim. A claim that fills its batch is followed
    /// at once by another, so one instance still drains a backlog quickly, while a burst of
    /// new devices spreads over every instance that shares the store instead of going to the
    /// first one to claim.
    #[must_use]
    pub fn claim_batch(mut self, n: usize) -> Self {
        self.claim_batch = n;
        self
    }

    /// How long to wait for the socket to be ready before a code request.
    #[must_use]
    pub fn ready_timeout(mut self, d: Duration) -> Self {
        self.ready_timeout = d;
        self
    }

    /// How many times to open the socket and wait for it before giving up (at least once:
    /// [`validate`](Self::validate) refuses 0).
    #[must_use]
    pub fn connect_attempts(mut self, n: u32) -> Self {
        self.connect_attempts = n;
        self
    }

    /// The retry policy of code requests (throttling gives up with the server's wait).
    #[must_use]
    pub fn code_retry(mut self, policy: RetryPolicy) -> Self {
        self.code_retry = policy;
        self
    }

    /// How many times an expired code is replaced automatically before the device fails.
    #[must_use]
    pub fn code_refreshes(mut self, n: u32) -> Self {
        self.code_refreshes = n;
        self
    }

    /// Replaces a code that was not typed after `d`, sooner than WhatsApp's own validity (3
    /// minutes), for a stricter policy or a quicker demo. Longer has no effect: a code is
    /// never shown past what the server allows.
    #[must_use]
    pub fn code_lifetime(mut self, d: Duration) -> Self {
        self.code_lifetime = Some(d);
        self
    }

    /// How long shutdown waits for sessions to close before abandoning them (their leases
    /// then lapse instead of being released). Keep it above the connector's worst close (the
    /// WhatsApp connector: twice its close timeout, 20 s by default) and below the platform's
    /// own grace before it kills the process (Kubernetes: 30 s).
    #[must_use]
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }

    /// The per-number budget of code requests, applied by every configured
    /// [`PairingBudget`](wa_pairing_store::PairingBudget) of the stores.
    #[must_use]
    pub fn budget(mut self, budget: BudgetConfig) -> Self {
        self.budget = budget;
        self
    }

    /// How long this instance leaves a device alone after finding its auth state sealed with
    /// a key it does not have, before trying again (another instance, configured with the
    /// key, takes it meanwhile).
    #[must_use]
    pub fn unreadable_retry(mut self, d: Duration) -> Self {
        self.unreadable_retry = d;
        self
    }

    /// How long an unlink waits for the session to log in, so the companion can be removed
    /// from the account, before it wipes the auth state anyway and tells the owner to remove
    /// the device on the phone too.
    #[must_use]
    pub fn unlink_timeout(mut self, d: Duration) -> Self {
        self.unlink_timeout = d;
        self
    }

    /// At most this many sessions logged in again per second by this instance (resumes after
    /// a restart or a takeover; pairings are not paced). Each resume is a login to WhatsApp,
    /// and a burst of thousands from a few addresses, such as every session of a dead
    /// instance taken over at once, is what WhatsApp throttles. An instance claims only the
    /// resumes it can start within twice the claim interval (never more than a lease
    /// period), so the rest stay claimable by the other instances.
    ///
    /// Must be finite and more than zero. With `n` instances left, a dead instance's `s`
    /// sessions are back in about `s / (n × rate)` seconds after their leases lapse.
    #[must_use]
    pub fn resume_rate(mut self, per_second: f64) -> Self {
        self.resume_rate = per_second;
        self
    }

    /// Stretches each gap between two resumes by a random fraction up to `fraction` (0 to
    /// 1), so instances that start together do not log in in lockstep. Gaps only stretch: the
    /// pace never exceeds [`resume_rate`](Self::resume_rate).
    #[must_use]
    pub fn resume_jitter(mut self, fraction: f64) -> Self {
        self.resume_jitter = fraction;
        self
    }

    /// How far ahead resumes are claimed: twice the claim interval, at most a lease period.
    pub(crate) fn resume_horizon(&self) -> Duration {
        (self.claim_interval * 2).min(self.lease_for)
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance_id
    }

    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.instance_id.trim().is_empty() {
            return Err(ConfigError(
                "instance_id is empty: give each runner instance a unique name".into(),
            ));
        }
        if self.lease_for.is_zero() || self.heartbeat.is_zero() || self.claim_interval.is_zero() {
            return Err(ConfigError(
                "lease_for, heartbeat and claim_interval must be more than zero".into(),
            ));
        }
        if self.heartbeat * 2 > self.lease_for {
            return Err(ConfigError(format!(
                "heartbeat ({} ms) must be at most half of lease_for ({} ms), or leases lapse between renewals",
                self.heartbeat.as_millis(),
                self.lease_for.as_millis()
            )));
        }
        if self.max_sessions == 0 {
            return Err(ConfigError(
                "max_sessions is 0: allow at least one session".into(),
            ));
        }
        if self
            .code_lifetime
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            return Err(ConfigError(
                "code_lifetime is under a second: give the owner time to type the code".into(),
            ));
        }
        if !(self.resume_rate.is_finite() && self.resume_rate > 0.0) {
            return Err(ConfigError(format!(
                "resume_rate is {}: give a number of logins per second above zero, such as 5",
                self.resume_rate
            )));
        }
        if !(0.0..=1.0).contains(&self.resume_jitter) {
            return Err(ConfigError(format!(
                "resume_jitter is {}: give a fraction from 0 to 1, such as 0.25",
                self.resume_jitter
            )));
        }
        if self.claim_batch == 0 {
            return Err(ConfigError(
                "claim_batch is 0: let each claim take at least one device".into(),
            ));
        }
        if self.connect_attempts == 0 {
            return Err(ConfigError(
                "connect_attempts is 0: open the socket at least once (the default is 3)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_explain_themselves() {
        assert!(RunnerConfig::default().validate().is_ok());
        let e = RunnerConfig::default()
            .lease_for(Duration::from_secs(10))
            .heartbeat(Duration::from_secs(8))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("at most half"), "{e}");
        assert!(RunnerConfig::default().instance_id(" ").validate().is_err());
        assert!(RunnerConfig::default().max_sessions(0).validate().is_err());
        let e = RunnerConfig::default()
            .claim_batch(0)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("claim_batch"), "{e}");
        let e = RunnerConfig::default()
            .connect_attempts(0)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("connect_attempts is 0"), "{e}");
        assert!(
            RunnerConfig::default()
                .code_lifetime(Duration::ZERO)
                .validate()
                .is_err()
        );
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = RunnerConfig::default()
                .resume_rate(rate)
                .validate()
                .unwrap_err();
            assert!(e.to_string().contains("resume_rate"), "{e}");
        }
        let e = RunnerConfig::default()
            .resume_jitter(1.5)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("resume_jitter"), "{e}");
        assert!(RunnerConfig::default().resume_rate(0.5).validate().is_ok());
        assert_ne!(RunnerConfig::default().instance_id, "");
    }
}
