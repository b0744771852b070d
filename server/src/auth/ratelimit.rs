//! Rate limits: failed logins per remote address, chat messages per user.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Failures allowed before an address must wait.
const FREE_FAILURES: u32 = 5;
/// Longest wait imposed after repeated failures.
const MAX_LOCKOUT: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(900);
/// Addresses remembered at most (oldest entries are pruned past this).
const MAX_TRACKED_ADDRS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Slows down repeated failed logins from one address: after
/// [`FREE_FAILURES`], each further attempt must wait 2^(n-5) s (capped).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    by_addr: Mutex<HashMap<IpAddr, Failures>>,
}

impl LoginLimiter {
    /// `Err(seconds)` when `addr` must wait before trying again.
    pub fn check(&self, addr: IpAddr) -> Result<(), u64> {
        let map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        let Some(f) = map.get(&addr) else {
            return Ok(());
        };
        if f.count < FREE_FAILURES || f.last.elapsed() > FAILURE_MEMORY {
            return Ok(());
        }
        let wait = lockout(f.count);
        let elapsed = f.last.elapsed();
        if elapsed >= wait {
            Ok(())
        } else {
            Err((wait - elapsed).as_secs().max(1))
        }
    }

    /// Records a failed attempt.
    pub fn failed(&self, addr: IpAddr) {
        let mut map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED_ADDRS {
            map.retain(|_, f| f.last.elapsed() < FAILURE_MEMORY);
        }
        let entry = map.entry(addr).or_insert(Failures {
            count: 0,
            last: Instant::now(),
        });
        if entry.last.elapsed() > FAILURE_MEMORY {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = Instant::now();
    }

    /// Forgets the failures of an address after a successful login.
    pub fn succeeded(&self, addr: IpAddr) {
        self.by_addr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&addr);
    }
}

fn lockout(count: u32) -> Duration {
    let exp = count.saturating_sub(FREE_FAILURES).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_LOCKOUT)
}

/// A token bucket: `rate` per second sustained, bursts up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes one token if available.
    pub fn try_take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_limiter_locks_after_free_failures_and_resets() {
        let l = LoginLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            assert!(l.check(a).is_ok());
            l.failed(a);
        }
        let wait = l.check(a).unwrap_err();
        assert!(wait >= 1);
        // other addresses are unaffected
        assert!(l.check("10.0.0.2".parse().unwrap()).is_ok());
        l.succeeded(a);
        assert!(l.check(a).is_ok());
    }

    #[test]
    fn lockout_grows_and_is_capped() {
        assert_eq!(lockout(5), Duration::from_secs(1));
        assert_eq!(lockout(7), Duration::from_secs(4));
        assert_eq!(lockout(100), MAX_LOCKOUT);
    }

    #[test]
    fn bucket_allows_burst_then_refuses() {
        let mut b = TokenBucket::new(1, 3);
        assert!(b.try_take() && b.try_take() && b.try_take());
        assert!(!b.try_take());
    }
}
