//! The one backoff formula: the delay before attempt `n` (0-based) is
//! `min(cap, base * 2^n)`, the doubling saturating instead of overflowing. The
//! client's reconnect policy draws a full-jitter delay under it
//! (`client::backoff`); the server's queue waits it exactly before each retry
//! (`server::queue`).

use std::time::Duration;

/// `min(cap, base * 2^attempt)`, saturating.
pub fn capped_exponential(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_base_up_to_the_cap_and_saturates() {
        let ms = Duration::from_millis;
        let delays: Vec<u128> = (0..6)
            .map(|n| capped_exponential(ms(100), ms(2000), n).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 2000]);
        assert_eq!(
            capped_exponential(ms(10), Duration::MAX, 40),
            ms(10).saturating_mul(u32::MAX)
        );
        assert_eq!(
            capped_exponential(Duration::MAX, Duration::MAX, 3),
            Duration::MAX
        );
    }
}
