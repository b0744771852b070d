//! How `termroom serve` stops: on the first Ctrl-C / SIGTERM it drains (refuses new terminal sessions, answers `/healthz` with 503, lets live sessions finish for up to `--drain-secs`), on the second it stops at once.
use std::{sync::Arc, time::Duration};

use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    time::{sleep, sleep_until, Instant},
};
use tracing::info;

use crate::state::Core;

/// How often a draining server looks whether its last session has ended.
const LIVE_CHECK: Duration = Duration::from_millis(250);

/// Ctrl-C (SIGINT) and SIGTERM, as many times as they come.
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Starts listening (before the server serves, so no signal is missed).
    pub fn listen() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next signal.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Why a drain ended.
enum DrainEnd {
    /// Every terminal session ended.
    SessionsEnded,
    /// `--drain-secs` passed; the sessions left are closed.
    TimeUp,
    /// Another signal: stop now.
    SignalledAgain,
}

/// Resolves when the server should stop: after the first signal if there is
/// nothing to drain, else once the live terminal sessions ended, `drain`
/// passed or a second signal came. Meanwhile new sessions are refused and
/// owners of live ones are told when theirs will be closed.
pub async fn until_stopped(core: Arc<Core>, drain: Duration, mut signals: StopSignals) {
    signals.next().await;
    let live = core.terms.live_sessions();
    if drain.is_zero() || live == 0 {
        say(&format!("stopping ({live} live terminal sessions)"));
        return;
    }
    let deadline = Instant::now() + drain;
    core.terms.begin_drain(deadline.into_std());
    say(&format!(
        "draining: {live} live terminal sessions may finish for up to {} s; new ones are refused and /healthz answers 503 (signal again to stop now)",
        drain.as_secs()
    ));
    let end = drain_until(&core, deadline, &mut signals).await;
    let left = core.terms.live_sessions();
    say(&match end {
        DrainEnd::SessionsEnded => "every terminal session ended: stopping".to_string(),
        DrainEnd::TimeUp => format!("drain time is up: closing {left} terminal sessions"),
        DrainEnd::SignalledAgain => {
            format!("signalled again: stopping now, closing {left} terminal sessions")
        }
    });
}

/// Waits for the first of: no live session, `deadline`, another signal.
async fn drain_until(core: &Core, deadline: Instant, signals: &mut StopSignals) -> DrainEnd {
    loop {
        tokio::select! {
            () = signals.next() => return DrainEnd::SignalledAgain,
            () = sleep_until(deadline) => return DrainEnd::TimeUp,
            () = sleep(LIVE_CHECK) => {
                if core.terms.live_sessions() == 0 {
                    return DrainEnd::SessionsEnded;
                }
            }
        }
    }
}

/// Tells the operator (standard output, where the first admin's password
/// and the listening address go) and the log. A closed standard output is
/// not an error worth stopping differently for.
fn say(text: &str) {
    use std::io::Write;
    info!("{text}");
    let _ = writeln!(std::io::stdout(), "termroom: {text}");
}
