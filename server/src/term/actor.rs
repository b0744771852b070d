//! The session actor: connects, runs the reader and writer tasks, keeps a detached session for the grace period, records the end.
use std::{
    future::Future,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use app::protocol::term::{NoticeLevel, ServerFrame};
use tokio::{sync::mpsc, sync::watch, task::JoinHandle};
use tracing::Instrument;

use super::{
    local,
    recorder::RecorderTask,
    session::{Session, WriteOp},
    ssh::{self, ExitInfo},
    Target, TermConfig, TermError, TermManager,
};
use crate::db::{self, terminal_sessions::Status, Db};

/// How long ending the SSH connection or reaping the local shell may take.
const TEARDOWN_WAIT: Duration = Duration::from_secs(2);
/// How long output is still drained after the local shell exited: a
/// background job may keep the PTY open forever.
const LOCAL_DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Everything the actor of one session needs.
pub(crate) struct Actor {
    /// The session.
    pub(crate) session: Arc<Session>,
    /// What to connect to.
    pub(crate) target: Target,
    /// Initial columns.
    pub(crate) cols: u16,
    /// Initial rows.
    pub(crate) rows: u16,
    /// Owner input and resizes, for the writer task.
    pub(crate) input: mpsc::Receiver<WriteOp>,
    /// Settings.
    pub(crate) config: TermConfig,
    /// Database, for the session row and audit events.
    pub(crate) db: Db,
    /// Owner's name, for audit events.
    pub(crate) user_name: String,
    /// The manager, to unregister the session at the end.
    pub(crate) manager: Weak<TermManager>,
    /// The session's recorder, if it is recorded.
    pub(crate) recorder: Option<RecorderTask>,
    /// When the session was opened.
    pub(crate) started: Instant,
}

/// Why a running session ended.
enum Outcome {
    /// The shell (or connection) ended.
    Exited(ExitInfo),
    /// A close was requested.
    Closed,
    /// Nobody was attached for the grace period.
    Abandoned,
    /// The recording failed under the strict policy.
    RecordingFailed(String),
}

/// Resolves with the reason once a strict recording failed (never without one).
async fn recording_failed(recorder: &mut Option<RecorderTask>) -> String {
    match recorder {
        Some(r) => r.failed().await,
        None => std::future::pending().await,
    }
}

/// Resolves once a close was requested.
async fn close_requested(rx: &mut watch::Receiver<bool>) {
    // Err: the sender (inside the session) is gone, which counts as closing.
    let _ = rx.wait_for(|c| *c).await;
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The notice shown when connecting fails.
fn failure_text(target: &Target, e: &TermError) -> String {
    let (name, user) = match target {
        Target::Ssh(t) => (t.name.as_str(), t.user.as_str()),
        Target::Local => ("the local shell", ""),
    };
    match e {
        TermError::Unreachable(why) => format!("cannot reach host {name}: {why}"),
        TermError::AuthFailed => format!("authentication failed for {user}@{name}"),
        TermError::HostKeyMismatch { expected, actual } => {
            format!("host key changed for {name}: expected {expected}, got {actual} — refusing to connect")
        }
        TermError::Timeout => format!("connecting to {name} timed out"),
        TermError::BadKey(why) => {
            format!("the private key stored for {name} cannot be used: {why}")
        }
        TermError::Refused(why) => format!("{name}: {why}"),
        TermError::Spawn(why) => format!("cannot start the local shell: {why}"),
        other => format!("cannot open a terminal on {name}: {other}"),
    }
}

/// A target connection.
enum Conn {
    /// SSH channel.
    Ssh(ssh::SshConn),
    /// Local PTY.
    Local(local::LocalConn),
}

impl Actor {
    /// Runs the session from connect to unregistration.
    pub(crate) async fn run(mut self) {
        let mut closing = self.session.closing();
        // The input receiver moves into the writer task; a closed one stays behind.
        let input = std::mem::replace(&mut self.input, mpsc::channel(1).1);
        let mut recorder = self.recorder.take();
        let (status, code) = self.drive(&mut closing, input, &mut recorder).await;
        let duration = self.started.elapsed();
        if let Err(e) =
            db::terminal_sessions::finish(&self.db, self.session.id(), status, code, duration).await
        {
            tracing::warn!("cannot record the end of the session: {e}");
        }
        if let Some(r) = recorder {
            // A terminated session gets an exit event without a status.
            let exit = matches!(status, Status::Exited | Status::Terminated).then_some(code);
            let summary = r.finish(exit).await;
            if let Err(e) =
                db::terminal_sessions::finish_recording(&self.db, self.session.id(), &summary).await
            {
                tracing::warn!("cannot record the end of the recording: {e}");
            }
        }
        tracing::info!(status = status.as_str(), "terminal session ended");
        if matches!(status, Status::Exited | Status::Failed) {
            self.linger(&mut closing).await;
        }
        if let Some(manager) = self.manager.upgrade() {
            manager.unregister(self.session.id());
        }
        self.session.mark_done();
    }

    /// Connects and runs; returns how the session ended.
    async fn drive(
        &self,
        closing: &mut watch::Receiver<bool>,
        input: mpsc::Receiver<WriteOp>,
        recorder: &mut Option<RecorderTask>,
    ) -> (Status, Option<u32>) {
        let session = &self.session;
        let connect = async {
            match &self.target {
                Target::Ssh(t) => ssh::connect(t, self.cols, self.rows, session)
                    .await
                    .map(Conn::Ssh),
                Target::Local => {
                    local::spawn(&self.config.local_shell, self.cols, self.rows).map(Conn::Local)
                }
            }
        };
        let connected = tokio::select! {
            r = tokio::time::timeout(self.config.connect_timeout, connect) => r.unwrap_or(Err(TermError::Timeout)),
            () = close_requested(closing) => {
                session.end(vec![closed_notice(session)]);
                return (closed_status(session), None);
            }
        };
        let conn = match connected {
            Ok(c) => c,
            Err(e) => {
                if let (TermError::HostKeyMismatch { expected, actual }, Target::Ssh(t)) =
                    (&e, &self.target)
                {
                    let detail = format!(
                        "expected {expected}, got {actual} ({}:{})",
                        t.address, t.port
                    );
                    if let Err(e) = db::audit::record(
                        &self.db,
                        Some(&self.user_name),
                        "host.key_mismatch",
                        Some(&t.name),
                        Some(&detail),
                    )
                    .await
                    {
                        tracing::warn!("cannot record the host key mismatch: {e}");
                    }
                }
                let text = failure_text(&self.target, &e);
                tracing::info!("connecting failed: {text}");
                session.fail(vec![ServerFrame::Notice {
                    level: NoticeLevel::Error,
                    text,
                }]);
                return (Status::Failed, None);
            }
        };
        session.set_running();
        tracing::info!("terminal session running");
        let outcome = match conn {
            Conn::Ssh(c) => {
                let (reader, writer, control) = c.into_parts();
                let mut reader_task = Some(spawn(reader.run(session.clone())));
                let writer_task = spawn(writer.run(input));
                let outcome = self.supervise(closing, &mut reader_task, recorder).await;
                // Closed or abandoned: the rest of the output is not wanted.
                // Dropping the read half also unblocks russh's session loop
                // if it waits for us, so the disconnect below gets through.
                if let Some(task) = reader_task {
                    finish(task, Duration::ZERO).await;
                }
                finish(writer_task, Duration::ZERO).await;
                if tokio::time::timeout(TEARDOWN_WAIT, control.disconnect())
                    .await
                    .is_err()
                {
                    tracing::debug!("ssh disconnect did not complete in time");
                }
                outcome
            }
            Conn::Local(c) => {
                let local::LocalConn {
                    child,
                    reader,
                    writer,
                    echo_probe,
                } = c;
                if let Some(fd) = echo_probe {
                    session.set_echo_probe(fd);
                }
                let mut reader_task = Some(spawn(run_local(reader, child, session.clone())));
                let writer_task = spawn(writer.run(input));
                let outcome = self.supervise(closing, &mut reader_task, recorder).await;
                // Aborting the reader drops the child (killed on drop) and the
                // PTY's read half; with the writer gone the PTY hangs up.
                if let Some(task) = reader_task {
                    finish(task, Duration::ZERO).await;
                }
                finish(writer_task, Duration::ZERO).await;
                outcome
            }
        };
        match outcome {
            Outcome::Exited(info) if info.lost => {
                let text = format!("the connection to {} was lost", self.session.target_name());
                session.fail(vec![
                    ServerFrame::Notice {
                        level: NoticeLevel::Error,
                        text,
                    },
                    ServerFrame::Exit {
                        code: None,
                        signal: None,
                    },
                ]);
                (Status::Failed, None)
            }
            Outcome::Exited(info) => {
                session.end(vec![ServerFrame::Exit {
                    code: info.code,
                    signal: info.signal,
                }]);
                (Status::Exited, info.code)
            }
            Outcome::Closed => {
                session.end(vec![closed_notice(session)]);
                (closed_status(session), None)
            }
            Outcome::RecordingFailed(reason) => {
                session.end(vec![ServerFrame::Notice {
                    level: NoticeLevel::Error,
                    text: format!(
                        "terminal session ended: {reason}; every session here must be recorded"
                    ),
                }]);
                (Status::Closed, None)
            }
            Outcome::Abandoned => {
                let grace = self.config.grace.as_secs();
                let text = format!("terminal session ended: nobody was attached for {grace} s");
                session.end(vec![ServerFrame::Notice {
                    level: NoticeLevel::Info,
                    text,
                }]);
                (Status::Closed, None)
            }
        }
    }

    /// Waits for the reader to end, a close request, or the grace period to
    /// run out while detached. Takes the reader task out once it has finished.
    async fn supervise(
        &self,
        closing: &mut watch::Receiver<bool>,
        reader: &mut Option<JoinHandle<ExitInfo>>,
        recorder: &mut Option<RecorderTask>,
    ) -> Outcome {
        let Some(task) = reader.as_mut() else {
            return Outcome::Closed;
        };
        loop {
            let deadline = self.session.detached_since().map(|t| t + self.config.grace);
            tokio::select! {
                r = &mut *task => {
                    *reader = None;
                    return Outcome::Exited(r.unwrap_or(ExitInfo { lost: true, ..ExitInfo::default() }));
                }
                () = close_requested(closing) => return Outcome::Closed,
                reason = recording_failed(recorder) => return Outcome::RecordingFailed(reason),
                () = self.session.actor_wake.notified() => {}
                () = sleep_until(deadline) => return Outcome::Abandoned,
            }
        }
    }

    /// After the session ended by itself, keeps it findable until the owner
    /// saw the end, or nobody was attached for the grace period.
    async fn linger(&self, closing: &mut watch::Receiver<bool>) {
        let ended = Instant::now();
        while !self.session.end_seen() {
            let deadline = self
                .session
                .detached_since()
                .map(|t| t.max(ended) + self.config.grace);
            tokio::select! {
                () = close_requested(closing) => return,
                () = self.session.actor_wake.notified() => {}
                () = sleep_until(deadline) => return,
            }
        }
    }
}

/// The notice for a session closed on request: the reason given (access
/// revoked: a warning, so the tab shows it as an end the user did not ask
/// for), else a plain "closed".
fn closed_notice(session: &Session) -> ServerFrame {
    match session.close_reason() {
        Some(text) => ServerFrame::Notice {
            level: NoticeLevel::Warning,
            text,
        },
        None => ServerFrame::Notice {
            level: NoticeLevel::Info,
            text: "terminal session closed".into(),
        },
    }
}

/// How a session closed on request ended: `terminated` if an admin ended it.
fn closed_status(session: &Session) -> Status {
    if session.terminated() {
        Status::Terminated
    } else {
        Status::Closed
    }
}

/// Spawns a task of this session (same span).
fn spawn<F>(f: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(f.instrument(tracing::Span::current()))
}

/// Waits up to `wait` for a task, then aborts it and reaps it.
async fn finish<T>(mut task: JoinHandle<T>, wait: Duration) {
    if !wait.is_zero() && tokio::time::timeout(wait, &mut task).await.is_ok() {
        return;
    }
    task.abort();
    let _ = task.await;
}

/// Runs the local reader and the shell until the PTY closes or the shell
/// exited and its output was drained.
async fn run_local(
    reader: local::LocalReader,
    mut child: tokio::process::Child,
    session: Arc<Session>,
) -> ExitInfo {
    let read = reader.run(session);
    tokio::pin!(read);
    let status = tokio::select! {
        () = &mut read => None,
        st = child.wait() => Some(st),
    };
    let status = match status {
        Some(st) => {
            let _ = tokio::time::timeout(LOCAL_DRAIN_WAIT, &mut read).await;
            st
        }
        None => match tokio::time::timeout(TEARDOWN_WAIT, child.wait()).await {
            Ok(st) => st,
            Err(_) => {
                let _ = child.start_kill();
                child.wait().await
            }
        },
    };
    match status {
        Ok(st) => local::exit_info(st),
        Err(e) => {
            tracing::warn!("cannot read the local shell's exit status: {e}");
            ExitInfo {
                lost: true,
                ..ExitInfo::default()
            }
        }
    }
}
