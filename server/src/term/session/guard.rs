//! The command guard inside a session: owner input is cut at each Enter;
//! the submitted line is read from the screen model once the shell has
//! echoed it, checked against the namespace's rules, logged as a command
//! (and a marker in the recording), and only then does the Enter reach the
//! shell — or the line is cleared and the owner told which rule blocked it.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use app::protocol::term::{NoticeLevel, ServerFrame};
use tokio::sync::mpsc;

use super::{lock, Session};
use crate::{
    db::commands::{NewCommand, Verdict as Logged},
    guard::{keys, submitted_line, Action, Anchor, Captured, Key, RuleSet, TypedLine, Verdict},
    guard::{CLEAR_LINE, PASTE_END, PASTE_START},
};

/// Output must have been quiet this long before the screen is read.
const QUIET: Duration = Duration::from_millis(10);
/// How long to wait for the echo of input when nothing comes back (echo off).
const ECHO_WAIT: Duration = Duration::from_millis(100);
/// The longest the guard holds a key while output keeps coming.
const SETTLE_MAX: Duration = Duration::from_millis(300);
/// How long a key typed before the shell printed anything waits for its
/// first output (the prompt), so the line is not taken to start before it.
const FIRST_OUTPUT_WAIT: Duration = Duration::from_secs(5);
/// Poll interval while settling.
const SETTLE_POLL: Duration = Duration::from_millis(5);
/// What a command row says of a span in a full-screen program.
pub const UNCHECKED_LINE: &str = "(full-screen program: input not checked)";

/// Owner input queued for the guard.
#[derive(Debug)]
pub(super) struct OwnerInput {
    /// The bytes typed or pasted.
    pub(super) bytes: Vec<u8>,
    /// A "send to all" line: the owner is told whether it was run.
    pub(super) broadcast: bool,
}

/// Starts the task that passes `session`'s owner input through the guard,
/// in order; it ends with the session.
pub(super) fn spawn(session: &Arc<Session>, mut rx: mpsc::Receiver<OwnerInput>) {
    let weak = Arc::downgrade(session);
    tokio::spawn(async move {
        while let Some(input) = rx.recv().await {
            let Some(session) = weak.upgrade() else {
                return;
            };
            let blocked = session.submit_input(input.bytes).await;
            if input.broadcast {
                session.answer_broadcast(blocked);
            }
        }
    });
}

/// The guard's state for one session (std mutex, never held across `.await`).
#[derive(Debug, Default)]
pub(super) struct GuardState {
    /// The namespace's rules (empty: lines are logged, never blocked).
    rules: Arc<RuleSet>,
    /// Where commands go to be stored; `None`: not logged (tests, benchmarks).
    log: Option<mpsc::Sender<NewCommand>>,
    /// Where the current line started, once a key of it was typed.
    anchor: Option<Anchor>,
    /// What the keys of the current line spell.
    typed: TypedLine,
    /// Inside a bracketed paste (it may span input frames).
    in_paste: bool,
    /// An Enter was seen in a full-screen program and logged as unchecked.
    unchecked: bool,
}

/// What to do with an Enter.
enum Decision {
    /// Nothing was typed: pass it on, log nothing.
    Pass,
    /// In a full-screen program: pass it on; log the span when it starts.
    Unchecked { first: bool },
    /// A line was submitted.
    Checked { line: String, verdict: Verdict },
}

impl Session {
    /// Checks and logs commands from now on: `rules` of the session's
    /// namespace, commands stored through `log`.
    pub(crate) fn set_guard(&self, rules: Arc<RuleSet>, log: Option<mpsc::Sender<NewCommand>>) {
        let mut g = lock(&self.guard);
        g.rules = rules;
        g.log = log;
    }

    /// Tells the owner what became of a "send to all" line.
    pub(super) fn answer_broadcast(&self, blocked: Option<String>) {
        self.queue_for_owner(&mut lock(&self.shared), ServerFrame::Broadcast { blocked });
        self.bump();
    }

    /// Replaces the rules (they changed in the database).
    pub(crate) fn set_rules(&self, rules: Arc<RuleSet>) {
        lock(&self.guard).rules = rules;
    }

    /// Owner input through the guard: forwarded as it comes, except that
    /// each Enter waits for the line to be read and checked. Returns why a
    /// line was not run, if the guard blocked one.
    pub(super) async fn submit_input(&self, bytes: Vec<u8>) -> Option<String> {
        let mut blocked = None;
        let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
        for key in keys(&bytes) {
            match key {
                Key::PasteStart => {
                    lock(&self.guard).in_paste = true;
                    out.extend_from_slice(PASTE_START);
                }
                Key::PasteEnd => {
                    lock(&self.guard).in_paste = false;
                    out.extend_from_slice(PASTE_END);
                }
                Key::Reset(b) => {
                    self.start_over();
                    out.extend_from_slice(b);
                }
                Key::Text(b) => {
                    // One lock per key on the hot path (the line already started).
                    let started = {
                        let mut g = lock(&self.guard);
                        let started = g.anchor.is_some();
                        if started {
                            g.typed.feed(b);
                        }
                        started
                    };
                    if !started {
                        if !self.full_screen() {
                            // The prompt must be on the screen before its place is taken.
                            self.flush(&mut out).await;
                            self.settle().await;
                            self.take_anchor();
                        }
                        lock(&self.guard).typed.feed(b);
                    }
                    out.extend_from_slice(b);
                }
                Key::Enter(b) => {
                    // A pasted line ends its paste, so the shell sees its Enter.
                    let in_paste = lock(&self.guard).in_paste;
                    if in_paste {
                        out.extend_from_slice(PASTE_END);
                    }
                    self.flush(&mut out).await;
                    if let Some(reason) = self.enter(b).await {
                        blocked = Some(reason);
                    }
                    if in_paste {
                        out.extend_from_slice(PASTE_START);
                    }
                }
            }
        }
        self.flush(&mut out).await;
        blocked
    }

    /// Writes what was collected so far.
    async fn flush(&self, out: &mut Vec<u8>) {
        if !out.is_empty() {
            self.write_input(std::mem::take(out)).await;
        }
    }

    /// Ctrl-C or Ctrl-U: the line is gone, the next key starts a new one.
    fn start_over(&self) {
        let mut g = lock(&self.guard);
        g.anchor = None;
        g.typed.clear();
    }

    /// Waits until the output is quiet and has answered the last input
    /// (bounded by [`SETTLE_MAX`]), so the screen shows what was typed.
    async fn settle(&self) {
        let start = Instant::now();
        loop {
            let (last_output, last_input, any_output) = {
                let s = lock(&self.shared);
                (s.last_output, s.last_input, s.ring.head() > 0)
            };
            let waited = start.elapsed();
            if !any_output {
                if waited >= FIRST_OUTPUT_WAIT || self.phase() == super::Phase::Ended {
                    return;
                }
                tokio::time::sleep(SETTLE_POLL).await;
                continue;
            }
            let quiet = last_output.elapsed() >= QUIET;
            let answered = last_output >= last_input || last_input.elapsed() >= ECHO_WAIT;
            if (quiet && answered) || waited >= SETTLE_MAX {
                return;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// Whether a full-screen program runs (its keys start no shell line).
    fn full_screen(&self) -> bool {
        lock(&self.screen).vt().alternate_screen()
    }

    /// Takes the cursor position as the start of a new line.
    fn take_anchor(&self) {
        let anchor = {
            let mut screen = lock(&self.screen);
            screen.catch_up(&lock(&self.shared).ring);
            Anchor::at_cursor(screen.vt())
        };
        let mut g = lock(&self.guard);
        g.anchor = Some(anchor);
        g.typed.clear();
    }

    /// Reads and checks the submitted line, logs it, and passes the Enter
    /// on, or clears the line and tells the owner why (and returns why).
    async fn enter(&self, key: &[u8]) -> Option<String> {
        self.settle().await;
        match self.decide() {
            Decision::Pass => self.write_input(key.to_vec()).await,
            Decision::Unchecked { first } => {
                if first {
                    self.log_command(UNCHECKED_LINE, Logged::Unchecked, None);
                }
                self.write_input(key.to_vec()).await;
            }
            Decision::Checked { line, verdict } => {
                let logged = match verdict.action {
                    Action::Allow => Logged::Allow,
                    Action::Warn => Logged::Warn,
                    Action::Deny => Logged::Deny,
                };
                self.log_command(&line, logged, Some(&verdict));
                match verdict.action {
                    Action::Allow => self.write_input(key.to_vec()).await,
                    Action::Warn => {
                        self.notify_owner(
                            NoticeLevel::Warning,
                            format!("command flagged: {}", verdict.reason),
                        );
                        self.write_input(key.to_vec()).await;
                    }
                    Action::Deny => {
                        self.notify_owner(
                            NoticeLevel::Error,
                            format!("command not run: {}: {line}", verdict.reason),
                        );
                        // Cleared, then an empty line: the shell prints a fresh prompt.
                        let mut clear = CLEAR_LINE.to_vec();
                        clear.extend_from_slice(key);
                        self.write_input(clear).await;
                        return Some(verdict.reason);
                    }
                }
            }
        }
        None
    }

    /// What the screen says was submitted, and what the rules say of it.
    fn decide(&self) -> Decision {
        let mut screen = lock(&self.screen);
        screen.catch_up(&lock(&self.shared).ring);
        let vt = screen.vt();
        let mut g = lock(&self.guard);
        if vt.alternate_screen() {
            let first = !g.unchecked;
            g.unchecked = true;
            g.anchor = None;
            g.typed.clear();
            return Decision::Unchecked { first };
        }
        let ended_span = std::mem::take(&mut g.unchecked);
        let anchor = g.anchor.take();
        let typed = std::mem::take(&mut g.typed);
        let rules = g.rules.clone();
        drop(g);
        let captured = anchor.map(|a| submitted_line(vt, &a));
        drop(screen);
        if ended_span {
            if let Some(r) = self.recorder() {
                r.marker("full-screen program ended: commands checked again");
            }
        }
        let line = match captured {
            None => return Decision::Pass,
            Some(Captured::Line(line)) => line,
            // The prompt scrolled away or was cleared: the keys are all there is.
            Some(Captured::Lost) => typed.text().trim().to_string(),
            Some(Captured::AlternateScreen) => return Decision::Unchecked { first: false },
        };
        if line.trim().is_empty() {
            // Nothing visible (an empty line, or typing with echo off): not a command.
            return Decision::Pass;
        }
        let mut verdict = rules.check(&line);
        // Second opinion: an explicit deny rule matching the keys themselves.
        if verdict.action != Action::Deny && !typed.text().trim().is_empty() && typed.text() != line
        {
            let by_keys = rules.check(typed.text());
            if by_keys.action == Action::Deny && by_keys.rule.is_some() {
                verdict = by_keys;
            }
        }
        Decision::Checked { line, verdict }
    }

    /// Stores a command (without waiting) and marks it in the recording.
    fn log_command(&self, line: &str, verdict: Logged, decided: Option<&Verdict>) {
        if let Some(r) = self.recorder() {
            let label = match decided {
                Some(v) if v.action != Action::Allow => format!("$ {line}  [{}]", v.reason),
                _ if verdict == Logged::Unchecked => line.to_string(),
                _ => format!("$ {line}"),
            };
            r.marker(label);
        }
        let Some(log) = lock(&self.guard).log.clone() else {
            return;
        };
        let meta = &self.meta;
        let command = NewCommand {
            session_id: self.id.clone(),
            user_id: meta.owner,
            target: meta.target_name.clone(),
            namespace: meta.namespace.clone(),
            offset_ms: i64::try_from(self.started_at.elapsed().as_millis()).unwrap_or(i64::MAX),
            line: line.to_string(),
            verdict,
            rule_id: decided.and_then(|v| v.rule.as_ref().map(|r| r.id)),
            rule: decided
                .filter(|v| v.action != Action::Allow || v.rule.is_some())
                .map(|v| v.reason.clone()),
        };
        if log.try_send(command).is_err() {
            tracing::warn!("command log full: a command was not stored");
        }
    }
}
