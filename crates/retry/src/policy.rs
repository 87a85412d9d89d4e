use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

/// How long to wait between attempts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Backoff {
    /// Fixed delays: the n-th entry is the wait before retry n. If more attempts are allowed
    /// than delays are listed, the last delay repeats.
    Schedule(Vec<Duration>),
    /// Exponential growth from `initial` by `factor`, capped at `max`; with `full_jitter`
    /// each wait is drawn uniformly from zero to the capped value (AWS's "full jitter"), which
    /// spreads out clients that failed together.
    Exponential {
        /// The first wait (before jitter).
        initial: Duration,
        /// The growth factor, at least 1.
        factor: f32,
        /// The largest wait (before jitter).
        max: Duration,
        /// Draw each wait uniformly from `[0, capped value]`.
        full_jitter: bool,
    },
}

impl Backoff {
    /// Exponential from `initial`, doubling, capped at `max`, with full jitter.
    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Self::Exponential {
            initial,
            factor: 2.0,
            max,
            full_jitter: true,
        }
    }
}

/// A retry policy: which delays, how many attempts, how long in all, how long each attempt.
///
/// Run an operation under it with [`RetryPolicy::run`] or [`RetryPolicy::run_notify`].
///
/// # Default
/// 3 attempts; exponential backoff from 500 ms doubling to at most 30 s with full jitter; no
/// overall deadline; no per-attempt timeout; timeouts are not retried (steps are not assumed
/// idempotent); a throttled error without a server-given wait waits 60 s.
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_retry::{Backoff, RetryPolicy};
///
/// let policy = RetryPolicy::default()
///     .max_attempts(5)
///     .backoff(Backoff::exponential(Duration::from_secs(1), Duration::from_secs(20)))
///     .deadline(Duration::from_secs(60))
///     .attempt_timeout(Duration::from_secs(10))
///     .idempotent(true);
/// assert_eq!(policy.attempt_limit(), 5);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    pub(crate) backoff: Backoff,
    pub(crate) max_attempts: u32,
    pub(crate) deadline: Option<Duration>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) idempotent: bool,
    pub(crate) throttle_wait: Duration,
    pub(crate) jitter_seed: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            backoff: Backoff::exponential(Duration::from_millis(500), Duration::from_secs(30)),
            max_attempts: 3,
            deadline: None,
            attempt_timeout: None,
            idempotent: false,
            throttle_wait: Duration::from_secs(60),
            jitter_seed: None,
        }
    }
}

impl RetryPolicy {
    /// The original design's schedule: three attempts, the first at once, the second 4 s
    /// after the first failure, the third 6 s after the second ("0/4/6 s"), with a 10 s
    /// per-attempt timeout.
    ///
    /// Kept as a preset for comparison and for plain transient errors. Do not use it for
    /// WhatsApp code requests that were throttled: the classification makes a throttled
    /// verdict wait the server's backoff (minutes), which this short schedule then refuses.
    pub fn legacy_0_4_6() -> Self {
        Self {
            backoff: Backoff::Schedule(vec![Duration::from_secs(4), Duration::from_secs(6)]),
            max_attempts: 3,
            attempt_timeout: Some(Duration::from_secs(10)),
            ..Self::default()
        }
    }

    /// A single attempt, no retries (still applies the timeouts).
    pub fn no_retry() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Sets the delays between attempts.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the total number of attempts, counting the first (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets an overall deadline measured from the first attempt: no wait is started that
    /// would end at or after it, and an attempt still running when it passes is abandoned.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets a timeout for each attempt.
    #[must_use]
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Declares whether the operation is idempotent: only then is an attempt that timed out
    /// retried (it may have taken effect on the other side).
    #[must_use]
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Sets the wait after a throttled error whose server gave no wait of its own.
    #[must_use]
    pub fn throttle_wait(mut self, wait: Duration) -> Self {
        self.throttle_wait = wait;
        self
    }

    /// Seeds the jitter, for reproducible delays in tests.
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// The total number of attempts allowed (set with [`max_attempts`](Self::max_attempts)).
    pub const fn attempt_limit(&self) -> u32 {
        self.max_attempts
    }

    /// The overall deadline, if any (set with [`deadline`](Self::deadline)).
    pub const fn overall_deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// The per-attempt timeout, if any (set with [`attempt_timeout`](Self::attempt_timeout)).
    pub const fn per_attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// Whether timed-out attempts are retried.
    pub const fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// The wait after a throttled error that carries no server wait (set with
    /// [`throttle_wait`](Self::throttle_wait)).
    pub const fn default_throttle_wait(&self) -> Duration {
        self.throttle_wait
    }

    /// The delays this policy would wait between its attempts (at most `max_attempts - 1` of
    /// them), drawing jitter afresh each time it is called.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wa_pairing_retry::RetryPolicy;
    ///
    /// let delays: Vec<_> = RetryPolicy::legacy_0_4_6().delays().collect();
    /// assert_eq!(delays, [Duration::from_secs(4), Duration::from_secs(6)]);
    /// ```
    pub fn delays(&self) -> Delays {
        let retries = self.max_attempts.saturating_sub(1) as usize;
        let kind = match &self.backoff {
            Backoff::Schedule(list) => DelaysKind::Schedule {
                list: list.clone(),
                next: 0,
            },
            Backoff::Exponential {
                initial,
                factor,
                max,
                full_jitter,
            } => DelaysKind::Exponential {
                inner: backon::BackoffBuilder::build(
                    backon::ExponentialBuilder::default()
                        .with_min_delay(*initial)
                        .with_factor(factor.max(1.0))
                        .with_max_delay(*max)
                        .without_max_times(),
                ),
                rng: full_jitter.then(|| {
                    Box::new(match self.jitter_seed {
                        Some(seed) => StdRng::seed_from_u64(seed),
                        None => StdRng::from_rng(&mut rand::rng()),
                    })
                }),
            },
        };
        Delays {
            kind,
            remaining: retries,
        }
    }
}

/// The waits between attempts of a [`RetryPolicy`], from [`RetryPolicy::delays`].
///
/// Also usable directly as a [`backon`] backoff.
#[derive(Debug)]
pub struct Delays {
    kind: DelaysKind,
    remaining: usize,
}

#[derive(Debug)]
enum DelaysKind {
    Schedule {
        list: Vec<Duration>,
        next: usize,
    },
    Exponential {
        inner: backon::ExponentialBackoff,
        rng: Option<Box<StdRng>>,
    },
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match &mut self.kind {
            DelaysKind::Schedule { list, next } => {
                let d = list
                    .get(*next)
                    .or_else(|| list.last())
                    .copied()
                    .unwrap_or(Duration::ZERO);
                *next += 1;
                Some(d)
            }
            DelaysKind::Exponential { inner, rng } => {
                let capped = inner.next()?;
                Some(match rng {
                    // Full jitter: uniform in [0, capped], in whole milliseconds (the
                    // resolution of tokio's timers).
                    Some(rng) => {
                        let ms = u64::try_from(capped.as_millis()).unwrap_or(u64::MAX);
                        Duration::from_millis(rng.random_range(0..=ms))
                    }
                    None => capped,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_repeats_its_last_delay() {
        let p = RetryPolicy::default()
            .backoff(Backoff::Schedule(vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
            ]))
            .max_attempts(5);
        let d: Vec<_> = p.delays().map(|d| d.as_secs()).collect();
        assert_eq!(d, [1, 2, 2, 2]);
    }

    #[test]
    fn exponential_without_jitter_doubles_and_caps() {
        let p = RetryPolicy::default()
            .backoff(Backoff::Exponential {
                initial: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(10),
                full_jitter: false,
            })
            .max_attempts(7);
        let d: Vec<_> = p.delays().map(|d| d.as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn full_jitter_stays_within_bounds_and_varies() {
        let p = RetryPolicy::default()
            .backoff(Backoff::exponential(
                Duration::from_secs(1),
                Duration::from_secs(8),
            ))
            .max_attempts(200);
        let caps = std::iter::successors(Some(1u64), |c| Some((c * 2).min(8)));
        let delays: Vec<_> = p.delays().collect();
        assert_eq!(delays.len(), 199);
        for (d, cap) in delays.iter().zip(caps) {
            assert!(*d <= Duration::from_secs(cap), "{d:?} > {cap}s");
        }
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "jitter does not vary");
        // Full jitter, not "cap plus some": a good share falls below half the cap.
        let below_half = delays[4..]
            .iter()
            .filter(|d| **d < Duration::from_secs(4))
            .count();
        assert!(below_half > 40, "{below_half}");
    }

    #[test]
    fn seeded_jitter_is_reproducible() {
        let p = RetryPolicy::default().max_attempts(10).jitter_seed(7);
        assert_eq!(
            p.delays().collect::<Vec<_>>(),
            p.delays().collect::<Vec<_>>()
        );
    }

    #[test]
    fn max_attempts_is_at_least_one() {
        assert_eq!(RetryPolicy::default().max_attempts(0).attempt_limit(), 1);
        assert_eq!(RetryPolicy::no_retry().delays().count(), 0);
    }
}
