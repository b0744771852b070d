//! Reconnect delays: exponential backoff with a cap and a little jitter, so a
//! restarted server is not hit by every browser in the same second.

/// Longest wait between two reconnect attempts, in seconds.
pub const MAX_DELAY_SECS: u32 = 30;

/// Seconds to wait before reconnect attempt number `attempt` (1 for the first
/// retry): 1, 2, 4, 8, 16, 30, 30, … plus up to 25 % jitter. `jitter` is a
/// random number in `[0, 1)` (from `Math.random()` in the browser).
pub fn delay_secs(attempt: u32, jitter: f64) -> u32 {
    let base = 1u32
        .checked_shl(attempt.saturating_sub(1).min(5))
        .unwrap_or(MAX_DELAY_SECS)
        .min(MAX_DELAY_SECS);
    let extra = (f64::from(base) * 0.25 * jitter.clamp(0.0, 1.0)).floor() as u32;
    (base + extra).clamp(1, MAX_DELAY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        let seq: Vec<u32> = (1..=8).map(|a| delay_secs(a, 0.0)).collect();
        assert_eq!(seq, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(delay_secs(0, 0.0), 1);
        assert_eq!(delay_secs(u32::MAX, 0.99), MAX_DELAY_SECS);
    }

    #[test]
    fn jitter_is_bounded() {
        assert_eq!(delay_secs(4, 0.99), 9);
        assert_eq!(delay_secs(4, 5.0), 10);
        assert_eq!(delay_secs(4, -1.0), 8);
    }
}
