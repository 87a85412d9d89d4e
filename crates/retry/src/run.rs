use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::Retryable as _;
use tokio::time::Instant;

use crate::{Classify, RetryPolicy, Verdict};

/// One failed attempt: the operation's error, or a per-attempt timeout.
#[derive(Debug)]
pub enum Failure<E> {
    /// The operation returned this error.
    Error(E),
    /// The attempt did not finish within the policy's per-attempt timeout (or the overall
    /// deadline passed while it ran).
    TimedOut {
        /// How long the attempt ran.
        after: Duration,
    },
}

impl<E> Failure<E> {
    /// The operation's error, if the attempt did not time out.
    pub fn error(&self) -> Option<&E> {
        match self {
            Self::Error(e) => Some(e),
            Self::TimedOut { .. } => None,
        }
    }

    /// Takes the operation's error, if the attempt did not time out.
    pub fn into_error(self) -> Option<E> {
        match self {
            Self::Error(e) => Some(e),
            Self::TimedOut { .. } => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Error(e) => e.fmt(f),
            Self::TimedOut { after } => write!(f, "timed out after {} ms", after.as_millis()),
        }
    }
}

/// Why a retried operation stopped without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUpReason {
    /// The error's verdict was [`Verdict::Permanent`] or [`Verdict::Exhausted`].
    Permanent,
    /// An attempt timed out and the policy does not declare the operation idempotent.
    TimeoutNotRetried,
    /// Every allowed attempt failed.
    AttemptsExhausted,
    /// The next wait would reach the overall deadline, or an attempt was still running when it
    /// passed.
    DeadlineExceeded,
    /// The last error was throttling, and waiting as required would pass the deadline or no
    /// attempts were left.
    Throttled {
        /// How long from now before trying again is worth it: the server's wait, or the
        /// policy's throttle wait when the server gave none.
        retry_after: Duration,
    },
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Permanent => f.write_str("the error is permanent"),
            Self::TimeoutNotRetried => {
                f.write_str("an attempt timed out and the step is not safe to repeat")
            }
            Self::AttemptsExhausted => f.write_str("every attempt failed"),
            Self::DeadlineExceeded => f.write_str("the deadline passed"),
            Self::Throttled { retry_after } => {
                write!(f, "throttled; try again in {} s", retry_after.as_secs())
            }
        }
    }
}

/// A retried operation that did not succeed.
///
/// Its [`Classify`] verdict is always [`Verdict::Exhausted`], so nothing above retries again;
/// [`last_verdict`](Self::last_verdict) tells what the last error itself said.
#[derive(Debug)]
pub struct RetryError<E> {
    /// The last failure.
    pub last: Failure<E>,
    /// How many attempts were started.
    pub attempts: u32,
    /// Time from the first attempt to giving up.
    pub elapsed: Duration,
    /// Why it stopped.
    pub reason: GiveUpReason,
}

impl<E: Classify> RetryError<E> {
    /// The verdict of the last failure (a timeout counts as [`Verdict::Retry`]).
    pub fn last_verdict(&self) -> Verdict {
        match &self.last {
            Failure::Error(e) => e.verdict(),
            Failure::TimedOut { .. } => Verdict::Retry,
        }
    }
}

impl<E> RetryError<E> {
    /// When stopped by throttling, how long to wait before trying again.
    pub const fn retry_after(&self) -> Option<Duration> {
        match self.reason {
            GiveUpReason::Throttled { retry_after } => Some(retry_after),
            _ => None,
        }
    }

    /// The last error returned by the operation, unless the last attempt timed out.
    pub fn into_error(self) -> Option<E> {
        self.last.into_error()
    }
}

impl<E> Classify for RetryError<E> {
    fn verdict(&self) -> Verdict {
        Verdict::Exhausted
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up after {} attempt{} in {} ms ({}): {}",
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.elapsed.as_millis(),
            self.reason,
            self.last
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.last {
            Failure::Error(e) => Some(e),
            Failure::TimedOut { .. } => None,
        }
    }
}

/// What the notification hook of [`RetryPolicy::run_notify`] is told before each wait.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a, E> {
    /// The attempt that just failed (1 for the first).
    pub attempt: u32,
    /// How it failed.
    pub failure: &'a Failure<E>,
    /// The wait before the next attempt.
    pub delay: Duration,
    /// Time since the first attempt started.
    pub elapsed: Duration,
}

struct LoopState {
    attempts: u32,
    stop: Option<GiveUpReason>,
}

impl RetryPolicy {
    /// Runs `op` until it succeeds or the policy gives up. `op` receives the attempt number
    /// (1 for the first).
    ///
    /// # Behavior
    /// - An error whose verdict is [`Verdict::Permanent`] or [`Verdict::Exhausted`] ends at
    ///   once, after one attempt.
    /// - [`Verdict::Retry`] waits the policy's next delay; a timeout retries only when the
    ///   policy is [idempotent](Self::idempotent).
    /// - [`Verdict::Throttled`] waits at least the server's `retry_after` (or the policy's
    ///   throttle wait when none was given), and gives up with
    ///   [`GiveUpReason::Throttled`] when that wait would pass the deadline.
    /// - No wait is started that would end at or after the deadline; an attempt still running
    ///   at the deadline is abandoned.
    /// - Uses tokio's clock, so tests on a paused clock are exact.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wa_pairing_retry::{RetryPolicy, Verdict};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let policy = RetryPolicy::legacy_0_4_6();
    /// let result = policy
    ///     .run(|attempt| async move {
    ///         if attempt < 3 { Err(Verdict::Retry) } else { Ok(attempt) }
    ///     })
    ///     .await;
    /// assert_eq!(result.unwrap(), 3);
    /// # }
    /// ```
    pub async fn run<T, E, F, Fut>(&self, op: F) -> Result<T, RetryError<E>>
    where
        E: Classify,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_notify(op, |_| {}).await
    }

    /// Like [`run`](Self::run), and calls `notify` once before every wait, so callers log
    /// and count retries.
    pub async fn run_notify<T, E, F, Fut, N>(
        &self,
        mut op: F,
        mut notify: N,
    ) -> Result<T, RetryError<E>>
    where
        E: Classify,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        N: FnMut(&RetryEvent<'_, E>),
    {
        let start = Instant::now();
        let state = Arc::new(Mutex::new(LoopState {
            attempts: 0,
            stop: None,
        }));
        let attempt_timeout = self.attempt_timeout;
        let idempotent = self.idempotent;
        let deadline = self.deadline;
        let throttle_wait = self.throttle_wait;

        let attempt_state = Arc::clone(&state);
        let attempt = move || {
            let n = {
                let mut st = lock(&attempt_state);
                st.attempts += 1;
                st.attempts
            };
            let fut = op(n);
            async move {
                let began = Instant::now();
                match attempt_timeout {
                    Some(t) => match tokio::time::timeout(t, fut).await {
                        Ok(r) => r.map_err(Failure::Error),
                        Err(_) => Err(Failure::TimedOut {
                            after: began.elapsed(),
                        }),
                    },
                    None => fut.await.map_err(Failure::Error),
                }
            }
        };

        let adjust_state = Arc::clone(&state);
        let notify_state = Arc::clone(&state);
        let retrying = attempt
            .retry(self.delays())
            .sleep(tokio::time::sleep)
            .when(move |f: &Failure<E>| match f {
                Failure::Error(e) => e.verdict().is_retryable(),
                Failure::TimedOut { .. } => idempotent,
            })
            .adjust(move |f: &Failure<E>, next: Option<Duration>| {
                let verdict = match f {
                    Failure::Error(e) => e.verdict(),
                    Failure::TimedOut { .. } => Verdict::Retry,
                };
                let remaining = deadline.map(|d| d.saturating_sub(start.elapsed()));
                match next_wait(verdict, next, remaining, throttle_wait) {
                    Ok(wait) => Some(wait),
                    Err(reason) => {
                        lock(&adjust_state).stop = Some(reason);
                        None
                    }
                }
            })
            .notify(move |f: &Failure<E>, delay: Duration| {
                let attempt = lock(&notify_state).attempts;
                notify(&RetryEvent {
                    attempt,
                    failure: f,
                    delay,
                    elapsed: start.elapsed(),
                });
            });

        let outcome = match deadline {
            Some(d) => tokio::time::timeout_at(start + d, retrying).await,
            None => Ok(retrying.await),
        };
        let attempts = lock(&state).attempts;
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(last)) => {
                let reason = lock(&state).stop.take().unwrap_or(match &last {
                    Failure::Error(_) => GiveUpReason::Permanent,
                    Failure::TimedOut { .. } => GiveUpReason::TimeoutNotRetried,
                });
                Err(RetryError {
                    last,
                    attempts,
                    elapsed: start.elapsed(),
                    reason,
                })
            }
            Err(_) => Err(RetryError {
                last: Failure::TimedOut {
                    after: start.elapsed(),
                },
                attempts,
                elapsed: start.elapsed(),
                reason: GiveUpReason::DeadlineExceeded,
            }),
        }
    }
}

/// The wait before the next attempt after a retryable failure with this `verdict`, or why to
/// stop. `next` is the backoff's next delay (`None`: no attempts left); `remaining` is the
/// time left before the deadline.
fn next_wait(
    verdict: Verdict,
    next: Option<Duration>,
    remaining: Option<Duration>,
    throttle_wait: Duration,
) -> Result<Duration, GiveUpReason> {
    let reaches_deadline = |wait: Duration| remaining.is_some_and(|r| wait >= r);
    let throttled = match verdict {
        Verdict::Throttled { retry_after } => Some(retry_after.unwrap_or(throttle_wait)),
        _ => None,
    };
    match (throttled, next) {
        (Some(required), next) => {
            let wait = next.map_or(required, |n| n.max(required));
            if next.is_none() || reaches_deadline(wait) {
                Err(GiveUpReason::Throttled { retry_after: wait })
            } else {
                Ok(wait)
            }
        }
        (None, None) => Err(GiveUpReason::AttemptsExhausted),
        (None, Some(wait)) if reaches_deadline(wait) => Err(GiveUpReason::DeadlineExceeded),
        (None, Some(wait)) => Ok(wait),
    }
}

fn lock(state: &Mutex<LoopState>) -> std::sync::MutexGuard<'_, LoopState> {
    // The state holds plain counters; a panic elsewhere cannot leave it inconsistent.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
