//! Retry behaviour on tokio's paused clock: every delay and deadline is exact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use wa_pairing_retry::{Backoff, Classify, Failure, GiveUpReason, RetryPolicy, Verdict};

#[derive(Debug, Clone, PartialEq)]
struct E(Verdict);

impl Classify for E {
    fn verdict(&self) -> Verdict {
        self.0
    }
}

impl std::fmt::Display for E {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "test error ({})", self.0)
    }
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Runs `policy` over an operation that fails with `errors[i]` on attempt i+1 (and succeeds
/// after the list), recording when each attempt started.
async fn record(
    policy: &RetryPolicy,
    errors: Vec<Verdict>,
) -> (Result<u32, wa_pairing_retry::RetryError<E>>, Vec<Duration>) {
    let start = Instant::now();
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = Arc::clone(&times);
    let result = policy
        .run(move |attempt| {
            t.lock().unwrap().push(start.elapsed());
            let outcome = errors.get(attempt as usize - 1).copied();
            async move {
                match outcome {
                    Some(v) => Err(E(v)),
                    None => Ok(attempt),
                }
            }
        })
        .await;
    let times = times.lock().unwrap().clone();
    (result, times)
}

#[tokio::test(start_paused = true)]
async fn fixed_schedule_waits_exactly_0_4_6() {
    let (result, times) = record(&RetryPolicy::legacy_0_4_6(), vec![Verdict::Retry; 5]).await;
    assert_eq!(times, [secs(0), secs(4), secs(10)]);
    let err = result.unwrap_err();
    assert_eq!(err.attempts, 3);
    assert_eq!(err.reason, GiveUpReason::AttemptsExhausted);
    assert_eq!(err.elapsed, secs(10));
    assert_eq!(err.verdict(), Verdict::Exhausted);
    assert_eq!(err.last_verdict(), Verdict::Retry);
}

#[tokio::test(start_paused = true)]
async fn success_after_retries_returns_the_value() {
    let (result, times) = record(
        &RetryPolicy::legacy_0_4_6(),
        vec![Verdict::Retry, Verdict::Retry],
    )
    .await;
    assert_eq!(result.unwrap(), 3);
    assert_eq!(times, [secs(0), secs(4), secs(10)]);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_tried_once() {
    for v in [Verdict::Permanent, Verdict::Exhausted] {
        let (result, times) = record(&RetryPolicy::legacy_0_4_6(), vec![v; 3]).await;
        assert_eq!(times, [secs(0)]);
        let err = result.unwrap_err();
        assert_eq!(err.attempts, 1);
        assert_eq!(err.reason, GiveUpReason::Permanent);
        assert_eq!(err.elapsed, Duration::ZERO);
    }
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_their_caps() {
    let policy = RetryPolicy::default()
        .backoff(Backoff::exponential(secs(1), secs(4)))
        .max_attempts(6)
        .jitter_seed(42);
    let (result, times) = record(&policy, vec![Verdict::Retry; 10]).await;
    assert!(result.is_err());
    assert_eq!(times.len(), 6);
    let caps = [secs(1), secs(2), secs(4), secs(4), secs(4)];
    for (pair, cap) in times.windows(2).zip(caps) {
        let delay = pair[1].checked_sub(pair[0]).unwrap();
        assert!(delay <= cap, "delay {delay:?} above cap {cap:?}");
    }
    // The seeded delays are what the policy says they are.
    let expected: Vec<Duration> = policy.delays().collect();
    let actual: Vec<Duration> = times
        .windows(2)
        .map(|p| p[1].checked_sub(p[0]).unwrap())
        .collect();
    assert_eq!(actual, expected);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_is_respected_to_the_millisecond() {
    let policy = RetryPolicy::default()
        .backoff(Backoff::Schedule(vec![Duration::from_millis(3_000)]))
        .max_attempts(100)
        .deadline(Duration::from_millis(10_000));
    let (result, times) = record(&policy, vec![Verdict::Retry; 100]).await;
    // Attempts at 0, 3, 6, 9 s; a fifth would start at 12 s, past the deadline.
    assert_eq!(times, [secs(0), secs(3), secs(6), secs(9)]);
    let err = result.unwrap_err();
    assert_eq!(err.reason, GiveUpReason::DeadlineExceeded);
    assert_eq!(err.elapsed, secs(9));
    assert!(err.elapsed < Duration::from_millis(10_000));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_running_at_the_deadline_is_abandoned() {
    let policy = RetryPolicy::default().deadline(Duration::from_millis(2_500));
    let start = Instant::now();
    let err = policy
        .run(|_| async {
            tokio::time::sleep(secs(60)).await;
            Ok::<(), E>(())
        })
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(2_500));
    assert_eq!(err.reason, GiveUpReason::DeadlineExceeded);
    assert!(matches!(err.last, Failure::TimedOut { .. }));
}

#[tokio::test(start_paused = true)]
async fn throttled_waits_at_least_the_server_time() {
    let policy = RetryPolicy::legacy_0_4_6();
    let errors = vec![
        Verdict::Throttled {
            retry_after: Some(secs(90)),
        },
        Verdict::Retry,
    ];
    let (result, times) = record(&policy, errors).await;
    assert_eq!(result.unwrap(), 3);
    // 90 s (server) instead of 4 s, then the schedule's 6 s.
    assert_eq!(times, [secs(0), secs(90), secs(96)]);
}

#[tokio::test(start_paused = true)]
async fn throttled_without_server_time_waits_the_policy_throttle_wait() {
    let policy = RetryPolicy::legacy_0_4_6().throttle_wait(secs(45));
    let (result, times) = record(&policy, vec![Verdict::Throttled { retry_after: None }]).await;
    assert_eq!(result.unwrap(), 2);
    assert_eq!(times, [secs(0), secs(45)]);
}

#[tokio::test(start_paused = true)]
async fn throttled_past_the_deadline_gives_up_at_once_with_the_wait() {
    let policy = RetryPolicy::legacy_0_4_6().deadline(secs(60));
    let (result, times) = record(
        &policy,
        vec![
            Verdict::Throttled {
                retry_after: Some(secs(300))
            };
            3
        ],
    )
    .await;
    assert_eq!(times, [secs(0)]);
    let err = result.unwrap_err();
    assert_eq!(
        err.reason,
        GiveUpReason::Throttled {
            retry_after: secs(300)
        }
    );
    assert_eq!(err.retry_after(), Some(secs(300)));
    assert_eq!(err.elapsed, Duration::ZERO);
    assert_eq!(
        err.last_verdict(),
        Verdict::Throttled {
            retry_after: Some(secs(300))
        }
    );
}

#[tokio::test(start_paused = true)]
async fn throttled_on_the_last_attempt_reports_when_to_retry() {
    let policy = RetryPolicy::no_retry();
    let (result, _) = record(
        &policy,
        vec![Verdict::Throttled {
            retry_after: Some(secs(120)),
        }],
    )
    .await;
    assert_eq!(result.unwrap_err().retry_after(), Some(secs(120)));
}

#[tokio::test(start_paused = true)]
async fn attempt_timeouts_retry_only_when_idempotent() {
    let slow = |_| async {
        tokio::time::sleep(secs(30)).await;
        Ok::<(), E>(())
    };
    let not_idempotent = RetryPolicy::legacy_0_4_6().attempt_timeout(secs(5));
    let start = Instant::now();
    let err = not_idempotent.run(slow).await.unwrap_err();
    assert_eq!(err.attempts, 1);
    assert_eq!(err.reason, GiveUpReason::TimeoutNotRetried);
    assert_eq!(start.elapsed(), secs(5));

    let idempotent = not_idempotent.clone().idempotent(true);
    let start = Instant::now();
    let err = idempotent.run(slow).await.unwrap_err();
    assert_eq!(err.attempts, 3);
    assert_eq!(err.reason, GiveUpReason::AttemptsExhausted);
    // 5 s timeout, 4 s wait, 5 s, 6 s wait, 5 s.
    assert_eq!(start.elapsed(), secs(25));
    assert!(matches!(err.last, Failure::TimedOut { after } if after == secs(5)));
}

#[tokio::test(start_paused = true)]
async fn the_notification_hook_is_called_once_per_retry() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = Arc::clone(&events);
    let policy = RetryPolicy::legacy_0_4_6();
    let result = policy
        .run_notify(
            |attempt| async move {
                if attempt < 3 {
                    Err(E(Verdict::Retry))
                } else {
                    Ok(attempt)
                }
            },
            move |event| {
                ev.lock().unwrap().push((
                    event.attempt,
                    event.delay,
                    event.elapsed,
                    event.failure.error().cloned(),
                ));
            },
        )
        .await;
    assert_eq!(result.unwrap(), 3);
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            (1, secs(4), secs(0), Some(E(Verdict::Retry))),
            (2, secs(6), secs(4), Some(E(Verdict::Retry))),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn no_notification_when_nothing_is_retried() {
    let calls = Arc::new(Mutex::new(0));
    let c = Arc::clone(&calls);
    let _ = RetryPolicy::legacy_0_4_6()
        .run_notify(
            |_| async { Err::<(), _>(E(Verdict::Permanent)) },
            move |_| *c.lock().unwrap() += 1,
        )
        .await;
    assert_eq!(*calls.lock().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn error_display_and_source() {
    let (result, _) = record(&RetryPolicy::legacy_0_4_6(), vec![Verdict::Permanent]).await;
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "gave up after 1 attempt in 0 ms (the error is permanent): test error (permanent)"
    );
    assert_eq!(err.into_error(), Some(E(Verdict::Permanent)));
}
