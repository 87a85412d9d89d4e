//! The pace of resumes: each session a runner logs in again is a login to WhatsApp, and a
//! burst of them from a few addresses (every session of a dead instance, taken over at once)
//! is what WhatsApp's servers throttle. The pacer hands each resume a start time, at most
//! `rate` per second with some jitter, and says how many resumes to claim so that none waits
//! longer than the horizon (a lease period at most) for its turn.
//!
//! This is a schedule rather than a rate limiter: the claim must know, before it asks the
//! store, how many logins fit in the horizon, which a token bucket does not answer.

use std::time::Duration;

use tokio::time::Instant;

/// Start times for resumes, `gap` apart or more.
#[derive(Debug)]
pub(crate) struct Pacer {
    gap: Duration,
    jitter: f64,
    horizon: Duration,
    next: Instant,
}

impl Pacer {
    /// `rate` logins per second (finite, more than zero), each gap stretched by up to
    /// `jitter` (a fraction, 0 to 1) of itself, claiming no further ahead than `horizon`.
    pub(crate) fn new(rate: f64, jitter: f64, horizon: Duration) -> Self {
        Self {
            gap: Duration::from_secs_f64(1.0 / rate),
            jitter,
            horizon,
            next: Instant::now(),
        }
    }

    /// How many resumes to claim at `now`: the slots left before `now + horizon`.
    pub(crate) fn room(&self, now: Instant) -> usize {
        let start = self.next.max(now);
        let end = now + self.horizon;
        if start >= end {
            return 0;
        }
        let slots = (end - start).as_secs_f64() / self.gap.as_secs_f64();
        // At least one slot starts at `start`. (A float cast saturates, and `slots` is
        // positive: no truncation or sign to lose.)
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = slots.ceil() as usize;
        n.max(1)
    }

    /// The next start time (never before `now`), and the one after moves on by a gap and its
    /// jitter. Gaps only ever stretch, so the pace never exceeds the rate.
    pub(crate) fn slot(&mut self, now: Instant) -> Instant {
        let at = self.next.max(now);
        let stretch = if self.jitter > 0.0 {
            rand::random::<f64>() * self.jitter
        } else {
            0.0
        };
        self.next = at + self.gap.mul_f64(1.0 + stretch);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_keep_the_rate_and_room_covers_the_horizon() {
        let mut p = Pacer::new(4.0, 0.0, Duration::from_secs(2));
        let now = Instant::now();
        // 2 s at 4 per second: 8 slots.
        assert_eq!(p.room(now), 8);
        let slots: Vec<Instant> = (0..8).map(|_| p.slot(now)).collect();
        for pair in slots.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(250));
        }
        assert_eq!(slots[0], now);
        assert_eq!(p.room(now), 0, "the horizon is full");
        // A second on, four slots have passed and four more fit.
        assert_eq!(p.room(now + Duration::from_secs(1)), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_only_ever_slows() {
        let mut p = Pacer::new(10.0, 0.5, Duration::from_secs(30));
        let now = Instant::now();
        let slots: Vec<Instant> = (0..200).map(|_| p.slot(now)).collect();
        let gaps: Vec<Duration> = slots.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g >= Duration::from_millis(100)));
        assert!(gaps.iter().all(|g| *g <= Duration::from_millis(150)));
        assert!(
            gaps.iter().any(|g| *g > Duration::from_millis(101)),
            "jitter stretches some gaps"
        );
        // An idle pacer starts at once again.
        let later = now + Duration::from_secs(60);
        assert_eq!(p.slot(later), later);
    }
}
