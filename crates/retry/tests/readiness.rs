//! Readiness waits on tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use wa_pairing_retry::{Readiness, ReadinessWait};

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn watch_returns_as_soon_as_the_value_is_ready() {
    let (tx, mut rx) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        tokio::time::sleep(ms(1_234)).await;
        tx.send(1).unwrap();
        tokio::time::sleep(ms(10_000)).await;
        drop(tx);
    });
    let r = ReadinessWait::new(Duration::from_secs(10))
        .watch(&mut rx, |v| *v == 1)
        .await;
    assert_eq!(r, Readiness::Ready { waited: ms(1_234) });
}

#[tokio::test(start_paused = true)]
async fn watch_already_ready_takes_no_time() {
    let (_tx, mut rx) = tokio::sync::watch::channel(true);
    let r = ReadinessWait::new(Duration::from_secs(10))
        .watch(&mut rx, |v| *v)
        .await;
    assert_eq!(
        r,
        Readiness::Ready {
            waited: Duration::ZERO
        }
    );
}

#[tokio::test(start_paused = true)]
async fn watch_times_out_at_the_deadline() {
    let (_tx, mut rx) = tokio::sync::watch::channel(false);
    let r = ReadinessWait::new(ms(10_000)).watch(&mut rx, |v| *v).await;
    assert_eq!(r, Readiness::TimedOut { waited: ms(10_000) });
    assert!(!r.is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_closed_channel_that_is_not_ready_gives_up_at_once() {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    drop(tx);
    let r = ReadinessWait::new(ms(10_000)).watch(&mut rx, |v| *v).await;
    assert_eq!(
        r,
        Readiness::TimedOut {
            waited: Duration::ZERO
        }
    );
}

#[tokio::test(start_paused = true)]
async fn until_follows_the_future() {
    let wait = ReadinessWait::new(ms(5_000));
    let r = wait
        .until(async {
            tokio::time::sleep(ms(700)).await;
            true
        })
        .await;
    assert_eq!(r, Readiness::Ready { waited: ms(700) });
    let r = wait
        .until(async {
            tokio::time::sleep(ms(700)).await;
            false
        })
        .await;
    assert_eq!(r, Readiness::TimedOut { waited: ms(700) });
    let r = wait.until(std::future::pending()).await;
    assert_eq!(r, Readiness::TimedOut { waited: ms(5_000) });
}

#[tokio::test(start_paused = true)]
async fn polling_returns_at_the_first_check_that_holds() {
    let start = Instant::now();
    let ready_at = ms(1_030);
    let checks = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&checks);
    let r = ReadinessWait::new(ms(10_000))
        .poll_interval(ms(100))
        .poll(move || {
            c.fetch_add(1, Ordering::SeqCst);
            start.elapsed() >= ready_at
        })
        .await;
    // Checks at 0, 100, ..., 1100 ms: the first that holds is at 1100 ms.
    assert_eq!(r, Readiness::Ready { waited: ms(1_100) });
    assert_eq!(checks.load(Ordering::SeqCst), 12);
}

#[tokio::test(start_paused = true)]
async fn polling_that_never_holds_times_out_exactly_at_the_deadline() {
    let r = ReadinessWait::new(ms(1_050))
        .poll_interval(ms(100))
        .poll(|| false)
        .await;
    assert_eq!(r, Readiness::TimedOut { waited: ms(1_050) });
}

#[tokio::test(start_paused = true)]
async fn async_polling_cuts_a_slow_check_at_the_deadline() {
    let r = ReadinessWait::new(ms(500))
        .poll_async(|| async {
            tokio::time::sleep(ms(10_000)).await;
            true
        })
        .await;
    assert_eq!(r, Readiness::TimedOut { waited: ms(500) });
}

#[test]
fn default_is_ten_seconds() {
    assert_eq!(ReadinessWait::default().deadline(), Duration::from_secs(10));
}
