//! The reconnect policy: exponential backoff with full jitter ("Exponential Backoff
//! and Jitter", AWS Architecture Blog): attempt `n` waits a uniformly random time in
//! `[0, min(cap, base * 2^n)]` (the formula of `crate::backoff`). An iterator, so it
//! is tested without sleeping.

use std::time::Duration;

use rand::RngExt;

use crate::backoff::capped_exponential;

/// Settings of the reconnect policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Attempts before giving up; `None` retries forever.
    pub max_attempts: Option<u32>,
}

impl Backoff {
    /// The ceiling of the delay before attempt `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        capped_exponential(self.base, self.cap, attempt)
    }

    /// The delays, drawn from `rng`.
    pub fn delays<R: rand::Rng>(self, rng: R) -> Delays<R> {
        Delays {
            policy: self,
            attempt: 0,
            rng,
        }
    }
}

/// The successive delays of a [`Backoff`]; ends after `max_attempts`.
pub struct Delays<R> {
    policy: Backoff,
    attempt: u32,
    rng: R,
}

impl<R> Delays<R> {
    /// Starts counting again (after a connection that worked).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

impl<R: rand::Rng> Iterator for Delays<R> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.attempt >= max)
        {
            return None;
        }
        let ceiling = self.policy.ceiling(self.attempt);
        self.attempt += 1;
        let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
        Some(Duration::from_nanos(self.rng.random_range(0..=nanos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn policy(max: Option<u32>) -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_attempts: max,
        }
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let p = policy(None);
        let ceilings: Vec<u128> = (0..7).map(|n| p.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(p.ceiling(500), Duration::from_secs(2));
    }

    #[test]
    fn delays_are_jittered_within_their_ceiling_and_stop_at_the_limit() {
        let rng = rand::rngs::StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = policy(Some(6)).delays(rng).collect();
        assert_eq!(delays.len(), 6);
        for (n, d) in delays.iter().enumerate() {
            assert!(*d <= policy(None).ceiling(n as u32), "attempt {n}: {d:?}");
        }
        // Full jitter: the delays are not simply the ceilings.
        assert!(
            delays
                .iter()
                .enumerate()
                .any(|(n, d)| *d != policy(None).ceiling(n as u32))
        );
    }

    #[test]
    fn reset_starts_from_the_base_again() {
        let rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut delays = policy(Some(3)).delays(rng);
        delays.next();
        delays.next();
        assert_eq!(delays.attempts(), 2);
        delays.reset();
        assert_eq!(delays.attempts(), 0);
        assert_eq!(delays.by_ref().count(), 3);
    }
}
