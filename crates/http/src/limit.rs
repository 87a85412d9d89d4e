//! The per-user limit on actions that reach WhatsApp, with a key map that is pruned.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

/// How many checks between two prunings of the key map.
const PRUNE_EVERY: usize = 512;

/// A keyed GCRA limiter (one bucket per user) whose map drops users whose bucket is full
/// again, every [`PRUNE_EVERY`] checks: the map holds the users who acted recently (within
/// one refill of the quota) plus at most `PRUNE_EVERY` others, whatever the number of users
/// over time.
pub(crate) struct UserLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<Uuid, DefaultKeyedStateStore<Uuid>, C, NoOpMiddleware<C::Instant>>,
    checks: AtomicUsize,
}

impl UserLimiter {
    /// `per_minute` actions per user per minute, in a burst at most.
    pub(crate) fn per_minute(per_minute: NonZeroU32) -> Self {
        Self::with_clock(Quota::per_minute(per_minute), DefaultClock::default())
    }
}

impl<C: Clock> UserLimiter<C> {
    pub(crate) fn with_clock(quota: Quota, clock: C) -> Self {
        Self {
            limiter: RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock),
            checks: AtomicUsize::new(0),
        }
    }

    /// Spends one action of `user`'s, or says how long to wait for the next.
    pub(crate) fn check(&self, user: Uuid) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        self.limiter
            .check_key(&user)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Drops the users whose bucket is full again (indistinguishable from a new user).
    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn six_per_minute(clock: &FakeRelativeClock) -> UserLimiter<FakeRelativeClock> {
        UserLimiter::with_clock(
            Quota::per_minute(NonZeroU32::new(6).unwrap()),
            clock.clone(),
        )
    }

    #[test]
    fn the_map_stays_bounded_however_many_users_come_and_go() {
        let clock = FakeRelativeClock::default();
        let limiter = six_per_minute(&clock);
        // 20,000 users, one action each, one every 100 ms: a bucket is full again 10 s
        // after its one action, so about 100 users are recent at any time.
        for _ in 0..20_000 {
            assert!(limiter.check(Uuid::new_v4()).is_ok());
            clock.advance(Duration::from_millis(100));
        }
        let len = limiter.len();
        assert!(
            len <= 300 + PRUNE_EVERY,
            "{len} keys kept for ~100 recent users"
        );
    }

    #[test]
    fn pruning_never_forgets_a_user_who_is_still_limited() {
        let clock = FakeRelativeClock::default();
        let limiter = six_per_minute(&clock);
        let busy = Uuid::new_v4();
        for _ in 0..6 {
            assert!(limiter.check(busy).is_ok());
        }
        // Enough other users to prune several times, within a second.
        for _ in 0..(3 * PRUNE_EVERY) {
            let _ = limiter.check(Uuid::new_v4());
        }
        clock.advance(Duration::from_secs(1));
        let wait = limiter.check(busy).expect_err("still limited");
        assert!(wait > Duration::from_secs(5), "{wait:?}");
        // Once the bucket refills, the user may act again.
        clock.advance(Duration::from_secs(10));
        assert!(limiter.check(busy).is_ok());
    }
}
