//! When a reconnecting socket tries again: connection generations, backoff
//! with a cap, and when to give up. Plain Rust (no browser API), so the whole
//! policy is tested natively.
use super::backoff;

/// How a connection attempt (ticket or socket) or an open connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Worth another try after the backoff delay: the network dropped, the
    /// server restarted, a request failed on the way.
    Transient,
    /// Trying again cannot help (signed out, refused by policy, the session
    /// is gone); the client has shown why. Nothing happens until the client
    /// asks to connect again.
    Permanent,
}

/// What the socket does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait `secs` seconds (counting down for the user), then try again.
    RetryIn {
        /// Seconds until the next attempt.
        secs: u32,
    },
    /// Stop trying.
    GiveUp,
}

/// One connection attempt: events carrying another generation are stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Identifies this attempt's ticket request, socket and retry timer.
    pub generation: u64,
    /// No attempt failed since the last successful open (or ever): the
    /// client shows "connecting" rather than "reconnecting".
    pub first: bool,
}

/// The reconnect state machine of one socket.
///
/// Every attempt gets a new generation; events of older sockets, ticket
/// answers and retry timers carry their generation and are ignored once it
/// is not the current one. Failures in a row set the backoff delay; an open
/// socket resets them.
#[derive(Debug, Default, Clone)]
pub struct Reconnect {
    /// Generation of the current attempt (0: none yet).
    generation: u64,
    /// Failed attempts since the last successful open.
    failures: u32,
    /// Stopped for good (the component went away).
    stopped: bool,
}

impl Reconnect {
    /// Starts an attempt; everything of earlier attempts becomes stale.
    /// `None` once stopped.
    pub fn begin(&mut self) -> Option<Attempt> {
        if self.stopped {
            return None;
        }
        self.generation += 1;
        Some(Attempt {
            generation: self.generation,
            first: self.failures == 0,
        })
    }

    /// Whether events of `generation` still count.
    pub fn is_current(&self, generation: u64) -> bool {
        !self.stopped && self.generation == generation
    }

    /// The socket of `generation` opened: the failures are forgiven. `false`
    /// (and nothing changes) for a stale generation.
    pub fn opened(&mut self, generation: u64) -> bool {
        if !self.is_current(generation) {
            return false;
        }
        self.failures = 0;
        true
    }

    /// The attempt or connection of `generation` ended with `failure`; `None`
    /// for a stale generation (ignore the event). `jitter` is a random number
    /// in `[0, 1)` spreading the reconnects of many browsers.
    pub fn failed(&mut self, generation: u64, failure: Failure, jitter: f64) -> Option<Next> {
        if !self.is_current(generation) {
            return None;
        }
        Some(match failure {
            Failure::Permanent => Next::GiveUp,
            Failure::Transient => {
                self.failures = self.failures.saturating_add(1);
                Next::RetryIn {
                    secs: backoff::delay_secs(self.failures, jitter),
                }
            }
        })
    }

    /// The user asked to retry: the next failure waits the shortest delay again.
    pub fn forget_failures(&mut self) {
        self.failures = 0;
    }

    /// Makes the current attempt and any pending retry stale without
    /// stopping: the client may connect again later.
    pub fn cancel(&mut self) {
        self.generation += 1;
    }

    /// Stops for good: everything pending becomes stale and [`Self::begin`]
    /// refuses.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.generation += 1;
    }

    /// Failed attempts since the last successful open.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_secs(next: Option<Next>) -> u32 {
        match next {
            Some(Next::RetryIn { secs }) => secs,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn transient_failures_back_off_up_to_the_cap() {
        let mut r = Reconnect::default();
        let mut delays = Vec::new();
        for _ in 0..8 {
            let a = r.begin().expect("not stopped");
            delays.push(retry_secs(r.failed(a.generation, Failure::Transient, 0.0)));
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(r.failures(), 8);
        // Jitter adds at most a quarter and never passes the cap.
        let a = r.begin().expect("not stopped");
        assert_eq!(
            retry_secs(r.failed(a.generation, Failure::Transient, 0.99)),
            backoff::MAX_DELAY_SECS
        );
    }

    #[test]
    fn a_successful_open_resets_the_backoff() {
        let mut r = Reconnect::default();
        for _ in 0..4 {
            let a = r.begin().expect("not stopped");
            r.failed(a.generation, Failure::Transient, 0.0);
        }
        let a = r.begin().expect("not stopped");
        assert!(!a.first, "a retry is not the first attempt");
        assert!(r.opened(a.generation));
        assert_eq!(r.failures(), 0);
        // The connection drops: the first retry waits the shortest delay.
        assert_eq!(
            retry_secs(r.failed(a.generation, Failure::Transient, 0.0)),
            1
        );
        assert!(!r.begin().expect("not stopped").first);
    }

    #[test]
    fn a_permanent_failure_gives_up_without_counting() {
        let mut r = Reconnect::default();
        let a = r.begin().expect("not stopped");
        assert!(a.first);
        assert_eq!(
            r.failed(a.generation, Failure::Permanent, 0.0),
            Some(Next::GiveUp)
        );
        assert_eq!(r.failures(), 0);
        // After a transient one too; the client may still connect again.
        let a = r.begin().expect("not stopped");
        r.failed(a.generation, Failure::Transient, 0.0);
        let a = r.begin().expect("not stopped");
        assert_eq!(
            r.failed(a.generation, Failure::Permanent, 0.0),
            Some(Next::GiveUp)
        );
        assert!(r.begin().is_some());
    }

    #[test]
    fn events_of_older_attempts_are_ignored() {
        let mut r = Reconnect::default();
        let old = r.begin().expect("not stopped");
        let new = r.begin().expect("not stopped");
        assert!(!r.is_current(old.generation));
        assert!(!r.opened(old.generation), "a stale open resets nothing");
        assert_eq!(r.failed(old.generation, Failure::Transient, 0.0), None);
        assert_eq!(r.failures(), 0, "a stale failure is not counted");
        assert!(r.is_current(new.generation));
        // Cancelling makes the current attempt stale too (a pending retry
        // timer checks its generation before connecting).
        r.cancel();
        assert!(!r.is_current(new.generation));
        assert_eq!(r.failed(new.generation, Failure::Transient, 0.0), None);
        assert!(r.begin().is_some(), "cancel is not stop");
    }

    #[test]
    fn stop_is_for_good() {
        let mut r = Reconnect::default();
        let a = r.begin().expect("not stopped");
        r.stop();
        assert!(!r.is_current(a.generation));
        assert!(!r.opened(a.generation));
        assert_eq!(r.failed(a.generation, Failure::Transient, 0.0), None);
        assert_eq!(r.begin(), None);
    }

    #[test]
    fn forgetting_failures_restarts_the_backoff() {
        let mut r = Reconnect::default();
        for _ in 0..5 {
            let a = r.begin().expect("not stopped");
            r.failed(a.generation, Failure::Transient, 0.0);
        }
        r.forget_failures();
        let a = r.begin().expect("not stopped");
        assert!(a.first, "after a manual retry the tab shows connecting");
        assert_eq!(
            retry_secs(r.failed(a.generation, Failure::Transient, 0.0)),
            1
        );
    }
}
