use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// The result of a readiness wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// The condition held.
    Ready {
        /// How long the wait took.
        waited: Duration,
    },
    /// The deadline passed first.
    TimedOut {
        /// How long the wait took (the deadline).
        waited: Duration,
    },
}

impl Readiness {
    /// Whether the condition held in time.
    pub const fn is_ready(&self) -> bool {
        matches!(self, Self::Ready { .. })
    }

    /// How long the wait took, either way.
    pub const fn waited(&self) -> Duration {
        match self {
            Self::Ready { waited } | Self::TimedOut { waited } => *waited,
        }
    }
}

/// Waits until something is ready or a deadline passes.
///
/// The original design waited at most 10 s for the WhatsApp socket by polling its state. Use
/// a notification when the thing you wait for offers one ([`until`](Self::until) for a
/// future, [`watch`](Self::watch) for a `tokio::sync::watch` channel), and polling
/// ([`poll`](Self::poll)) only when it does not.
///
/// # Default
/// A 10 s deadline and a 50 ms polling interval.
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_retry::ReadinessWait;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (tx, mut rx) = tokio::sync::watch::channel(false);
/// tokio::spawn(async move {
///     tokio::time::sleep(Duration::from_millis(300)).await;
///     tx.send(true).unwrap();
/// });
/// let r = ReadinessWait::new(Duration::from_secs(10)).watch(&mut rx, |ready| *ready).await;
/// assert!(r.is_ready());
/// assert_eq!(r.waited(), Duration::from_millis(300));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadinessWait {
    deadline: Duration,
    poll_interval: Duration,
}

impl Default for ReadinessWait {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

impl ReadinessWait {
    /// A wait with this deadline and the default 50 ms polling interval.
    pub const fn new(deadline: Duration) -> Self {
        Self {
            deadline,
            poll_interval: Duration::from_millis(50),
        }
    }

    /// Sets how often [`poll`](Self::poll) and [`poll_async`](Self::poll_async) check.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The deadline.
    pub const fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Waits for `ready` to complete with `true` (a notification-driven check such as
    /// `client.wait_for_socket(..)`). A `false` result or the deadline gives
    /// [`Readiness::TimedOut`].
    pub async fn until<F>(&self, ready: F) -> Readiness
    where
        F: Future<Output = bool>,
    {
        let start = Instant::now();
        match tokio::time::timeout(self.deadline, ready).await {
            Ok(true) => Readiness::Ready {
                waited: start.elapsed(),
            },
            Ok(false) | Err(_) => Readiness::TimedOut {
                waited: start.elapsed(),
            },
        }
    }

    /// Waits until the watched value satisfies `pred`; checks the current value first, so a
    /// value that is already ready returns at once. A closed channel whose last value is not
    /// ready gives [`Readiness::TimedOut`] at once, since nothing can change any more.
    pub async fn watch<T, P>(&self, rx: &mut watch::Receiver<T>, mut pred: P) -> Readiness
    where
        P: FnMut(&T) -> bool,
    {
        let start = Instant::now();
        match tokio::time::timeout(self.deadline, rx.wait_for(|v| pred(v))).await {
            Ok(Ok(_)) => Readiness::Ready {
                waited: start.elapsed(),
            },
            Ok(Err(_)) | Err(_) => Readiness::TimedOut {
                waited: start.elapsed(),
            },
        }
    }

    /// Checks `ready` now and then every polling interval until it holds or the deadline
    /// passes. Returns as soon as a check succeeds.
    pub async fn poll<P>(&self, mut ready: P) -> Readiness
    where
        P: FnMut() -> bool,
    {
        self.poll_async(move || std::future::ready(ready())).await
    }

    /// Like [`poll`](Self::poll) with an asynchronous check.
    pub async fn poll_async<P, Fut>(&self, mut ready: P) -> Readiness
    where
        P: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = Instant::now();
        let end = start + self.deadline;
        loop {
            if tokio::time::timeout_at(end, ready()).await == Ok(true) {
                return Readiness::Ready {
                    waited: start.elapsed(),
                };
            }
            let now = Instant::now();
            if now >= end {
                return Readiness::TimedOut {
                    waited: start.elapsed(),
                };
            }
            tokio::time::sleep_until((now + self.poll_interval).min(end)).await;
        }
    }
}
