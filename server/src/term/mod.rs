//! Terminal sessions: SSH and local-PTY targets, output ring, screen model, flow control.
//!
//! - [`TermManager`] registers sessions and spawns one actor per session
//!   (`actor`): it connects in the background, then runs a reader task (target
//!   output into the ring) and a writer task (owner input to the target).
//! - [`Session`] holds the ring of recent output addressed by stream offset,
//!   the screen model for snapshots, and the owner's delivery state;
//!   [`Attachment`] is the owner's transport-independent handle to it and
//!   [`socket::serve_owner`] adapts it to a WebSocket.
//! - Flow control: see the constants in `session` ([`RING_BYTES`],
//!   [`HIGH_WATER`], [`HARD_LIMIT`]).
use crate::sync::lock;
mod actor;
mod echo_guard;
mod local;
pub mod recorder;
mod ring;
mod screen;
mod session;
pub mod socket;
mod ssh;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use app::model::TermSessionInfo;
use rand::RngCore;
use tokio::{sync::mpsc, task::JoinSet};
use tracing::Instrument;

pub use recorder::{Policy as RecordingPolicy, Summary as RecordingSummary};
pub use session::{
    Attachment, AttachmentSender, Phase, Session, SessionMeta, SnapshotLimit, Watcher,
    DRAIN_NOTICE_START, HARD_LIMIT, HELD_INPUT_BYTES, HIGH_WATER, MAX_WATCHERS, REPLACED_NOTICE,
    RING_BYTES, SNAPSHOT_LIMIT_NOTICE, UNCHECKED_LINE, WATCHER_BEHIND_NOTICE,
};
pub use ssh::probe_host_key;

use crate::db::{self, Db};
use crate::guard::{Action, Rule, RuleSet};
use crate::recordings::{cast::Header, files::RecordingDir};

/// Commands waiting to be stored; beyond this they are dropped (logged).
const COMMAND_LOG_QUEUE: usize = 1024;
/// How long `close` waits for the session's actor to finish.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// Random bytes in a session id (128 bits: unguessable).
const SESSION_ID_BYTES: usize = 16;

/// Settings of the terminal core.
#[derive(Debug, Clone)]
pub struct TermConfig {
    /// How long a session with nobody attached is kept alive.
    pub grace: Duration,
    /// Shell started for the local target.
    pub local_shell: PathBuf,
    /// How long connecting (TCP + SSH handshake + auth + shell) may take.
    pub connect_timeout: Duration,
    /// Most live (not ended) sessions one user may have; opening one more is refused.
    pub max_sessions_per_user: usize,
    /// Screen snapshots one attachment may ask for.
    pub snapshots: SnapshotLimit,
    /// Where sessions are recorded; `None`: not recorded (benchmarks only).
    pub recordings: Option<RecordingDir>,
    /// Local-target sessions record typed input too (SSH sessions follow
    /// their namespace).
    pub local_record_input: bool,
    /// Owners see who is watching their session.
    pub announce_watchers: bool,
    /// This node's id when several nodes share the database (stored with
    /// each session it opens).
    pub node_id: Option<String>,
}

/// Default [`TermConfig::max_sessions_per_user`]: a busy operator has a dozen
/// tabs; each session may hold a 1 MiB ring and a 500 × 200 screen.
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 32;

impl Default for TermConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(5 * 60),
            local_shell: PathBuf::from("/bin/bash"),
            connect_timeout: Duration::from_secs(15),
            max_sessions_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
            snapshots: SnapshotLimit::default(),
            recordings: None,
            local_record_input: false,
            announce_watchers: true,
            node_id: None,
        }
    }
}

/// How to authenticate to an SSH host.
#[derive(Clone)]
pub enum SshAuth {
    /// Password authentication.
    Password(String),
    /// Public-key authentication with this OpenSSH private key text.
    Key(String),
}

/// An SSH host to connect to.
#[derive(Clone)]
pub struct SshTarget {
    /// Database id of the host.
    pub host_id: i64,
    /// Host name as shown to users.
    pub name: String,
    /// Namespace the host belongs to.
    pub namespace: String,
    /// Address (DNS name or IP).
    pub address: String,
    /// TCP port.
    pub port: u16,
    /// SSH user.
    pub user: String,
    /// Credential.
    pub auth: SshAuth,
    /// Pinned host-key fingerprint, `SHA256:...`.
    pub fingerprint: String,
}

/// What a session runs on.
#[derive(Clone)]
pub enum Target {
    /// A remote shell over SSH.
    Ssh(SshTarget),
    /// A shell on a PTY of this machine.
    Local,
}

/// A request to open a terminal session.
#[derive(Clone)]
pub struct OpenRequest {
    /// Owner's user id.
    pub user_id: i64,
    /// Owner's user name (for audit events).
    pub user_name: String,
    /// What to connect to.
    pub target: Target,
    /// Initial width in columns.
    pub cols: u16,
    /// Initial height in rows.
    pub rows: u16,
    /// Browser's address, recorded.
    pub remote_addr: Option<String>,
    /// Browser's user agent, recorded.
    pub user_agent: Option<String>,
    /// The owner's running sessions other nodes hold: they count against
    /// the per-user cap too (0 with one node).
    pub held_elsewhere: usize,
}

/// Errors of the terminal core.
#[derive(Debug, thiserror::Error)]
pub enum TermError {
    /// No such session.
    #[error("no such terminal session")]
    NotFound,
    /// The host could not be reached (or the connection failed).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The host refused the credential.
    #[error("authentication failed")]
    AuthFailed,
    /// The host presented another key than the pinned one.
    #[error("host key changed: expected {expected}, got {actual}")]
    HostKeyMismatch {
        /// Pinned fingerprint.
        expected: String,
        /// Presented fingerprint.
        actual: String,
    },
    /// Something took too long.
    #[error("timed out")]
    Timeout,
    /// The local shell could not be started.
    #[error("cannot start the shell: {0}")]
    Spawn(String),
    /// The stored private key cannot be decoded.
    #[error("unusable private key: {0}")]
    BadKey(String),
    /// The host refused a PTY or a shell.
    #[error("refused: {0}")]
    Refused(String),
    /// The manager is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The server is draining: live sessions go on, new ones are refused.
    #[error("termroom on this server is shutting down and opens no new terminals; try again in a moment (a load balancer sends you to another node)")]
    Draining,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The attachment was replaced or the session ended.
    #[error("detached from the terminal session")]
    Detached,
    /// The user already has the most live sessions allowed.
    #[error("too many terminal sessions: at most {0} may be open at once; close one first")]
    TooManySessions(usize),
    /// The session has as many watchers as it may have.
    #[error("too many people are watching this session (at most {0})")]
    TooManyWatchers(usize),
    /// The recording could not be started and the namespace requires one.
    #[error("cannot record the session, and every session here must be recorded: {0}")]
    Recording(String),
}

/// The guard rules of `namespace` (none for the local target's ""). A
/// rule that no longer compiles is skipped and logged; a failed query
/// leaves the session without rules (logged).
async fn load_rules(db: &Db, namespace: &str) -> Arc<RuleSet> {
    use db::guard_rules::{RuleAction, RuleKind};
    if namespace.is_empty() {
        return Arc::default();
    }
    let rows = match db::guard_rules::list(db, namespace).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(namespace, "cannot load the guard rules: {e}");
            return Arc::default();
        }
    };
    let rules = rows
        .into_iter()
        .filter_map(|row| {
            let action = match row.action {
                RuleAction::Allow => Action::Allow,
                RuleAction::Deny => Action::Deny,
                RuleAction::Warn => Action::Warn,
            };
            Rule::new(
                row.id,
                row.priority,
                &row.pattern,
                row.kind == RuleKind::Regex,
                action,
            )
            .map_err(|e| tracing::warn!(rule = row.id, "guard rule skipped: {e}"))
            .ok()
        })
        .collect();
    Arc::new(RuleSet::new(rules))
}

/// A new random, url-safe session id.
fn new_session_id() -> String {
    let mut bytes = [0u8; SESSION_ID_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the owner of a session still live when the server stops is told.
pub const STOPPED_NOTICE: &str = "termroom stopped on this server: the terminal session was closed";

/// Owns every live terminal session and its actor task.
pub struct TermManager {
    /// Settings.
    config: TermConfig,
    /// Database.
    db: Db,
    /// Live (and recently ended, not yet seen) sessions by id.
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// One actor task per session; finished ones are reaped on `open`, all joined on `shutdown`.
    actors: Mutex<JoinSet<()>>,
    /// Set by `shutdown`: no new sessions.
    shutting_down: AtomicBool,
    /// Set by `begin_drain` (under the `sessions` lock): no new sessions,
    /// live ones go on.
    draining: AtomicBool,
    /// Commands typed in any session, on their way to the `commands` table.
    commands: mpsc::Sender<db::commands::NewCommand>,
}

impl std::fmt::Debug for TermManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TermManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TermManager {
    /// Creates the manager.
    /// Creates the manager and the task that stores typed commands (call
    /// inside the runtime).
    pub fn new(config: TermConfig, db: Db) -> Arc<Self> {
        let (commands, mut rx) = mpsc::channel::<db::commands::NewCommand>(COMMAND_LOG_QUEUE);
        let store = db.clone();
        tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                if let Err(e) = db::commands::insert(&store, &c).await {
                    tracing::warn!(session = %c.session_id, "cannot store a command: {e}");
                }
            }
        });
        Arc::new(Self {
            config,
            db,
            sessions: Mutex::new(HashMap::new()),
            actors: Mutex::new(JoinSet::new()),
            shutting_down: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            commands,
        })
    }

    /// Loads the guard rules of every namespace with a live session again
    /// (they changed in the database).
    pub async fn reload_rules(&self) {
        let mut namespaces: Vec<String> = self
            .sessions()
            .iter()
            .map(|s| s.meta().namespace.clone())
            .filter(|ns| !ns.is_empty())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        for ns in namespaces {
            let rules = load_rules(&self.db, &ns).await;
            for s in self.sessions().iter().filter(|s| s.meta().namespace == ns) {
                s.set_rules(rules.clone());
            }
        }
    }

    /// Registers a session, records it in `terminal_sessions`, spawns its
    /// actor (which connects in the background) and returns the new session
    /// id at once. Connection errors reach the attached owner as an error
    /// notice, and the session ends as failed.
    pub async fn open(self: &Arc<Self>, req: OpenRequest) -> Result<String, TermError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(TermError::ShuttingDown);
        }
        let id = new_session_id();
        let (target_name, host_id, namespace) = match &req.target {
            Target::Ssh(t) => (t.name.clone(), Some(t.host_id), t.namespace.clone()),
            Target::Local => ("local".to_string(), None, String::new()),
        };
        let (session, input) = Session::with_meta(
            id.clone(),
            SessionMeta {
                owner: req.user_id,
                owner_name: req.user_name.clone(),
                target_name: target_name.clone(),
                namespace: namespace.clone(),
                host_id,
            },
            (req.cols, req.rows),
            self.config.snapshots,
            self.config.announce_watchers,
        );
        {
            // Counted and registered under one lock: concurrent opens cannot
            // overshoot, and none slips past the start of a drain.
            let mut sessions = lock(&self.sessions);
            if self.draining.load(Ordering::Acquire) {
                return Err(TermError::Draining);
            }
            let live = sessions
                .values()
                .filter(|s| s.owner() == req.user_id && s.phase() != Phase::Ended)
                .count();
            if live + req.held_elsewhere >= self.config.max_sessions_per_user {
                return Err(TermError::TooManySessions(
                    self.config.max_sessions_per_user,
                ));
            }
            sessions.insert(id.clone(), session.clone());
        }
        let recording = match self
            .start_recording(&id, &req, &target_name, &namespace)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.unregister(&id);
                return Err(e);
            }
        };
        if let Some((tx, _, record_input)) = &recording {
            session.set_recorder(tx.clone(), *record_input);
        }
        session.set_guard(
            load_rules(&self.db, &namespace).await,
            Some(self.commands.clone()),
        );
        let recorder = recording.map(|(_, task, _)| task);
        if let Err(e) = db::terminal_sessions::insert(
            &self.db,
            &db::terminal_sessions::NewTermSession {
                id: &id,
                user_id: req.user_id,
                host_id,
                target: &target_name,
                namespace: &namespace,
                remote_addr: req.remote_addr.as_deref(),
                user_agent: req.user_agent.as_deref(),
                cols: req.cols,
                rows: req.rows,
                recording_id: recorder.is_some().then_some(id.as_str()),
                node_id: self.config.node_id.as_deref(),
            },
        )
        .await
        {
            self.unregister(&id);
            return Err(e.into());
        }
        let actor = actor::Actor {
            session: session.clone(),
            target: req.target,
            cols: req.cols,
            rows: req.rows,
            input,
            config: self.config.clone(),
            db: self.db.clone(),
            user_name: req.user_name,
            manager: Arc::downgrade(self),
            recorder,
            started: std::time::Instant::now(),
        };
        let span = tracing::info_span!("term", session = %id);
        {
            let mut actors = lock(&self.actors);
            // Checked again under the lock `shutdown` takes, so no actor escapes it.
            if self.shutting_down.load(Ordering::Acquire) {
                drop(actors);
                self.unregister(&id);
                let _ = db::terminal_sessions::finish(
                    &self.db,
                    &id,
                    db::terminal_sessions::Status::Closed,
                    None,
                    Duration::ZERO,
                )
                .await;
                return Err(TermError::ShuttingDown);
            }
            while actors.try_join_next().is_some() {}
            actors.spawn(actor.run().instrument(span));
        }
        Ok(id)
    }

    /// Creates the session's recording (named by the session id) and starts
    /// its writer; says whether the namespace records typed input too.
    /// `None` when recording is off, or when the file cannot be created
    /// under the best-effort policy (logged); under the strict policy that
    /// is an error and the session does not open.
    async fn start_recording(
        &self,
        id: &str,
        req: &OpenRequest,
        target_name: &str,
        namespace: &str,
    ) -> Result<Option<(recorder::RecorderTx, recorder::RecorderTask, bool)>, TermError> {
        let Some(dir) = self.config.recordings.clone() else {
            return Ok(None);
        };
        let settings = db::namespaces::recording_settings(&self.db, namespace).await?;
        let policy = settings.policy;
        let created = {
            let id = id.to_string();
            tokio::task::spawn_blocking(move || dir.create(&id))
                .await
                .map_err(|e| TermError::Recording(e.to_string()))
                .and_then(|r| r.map_err(|e| TermError::Recording(e.to_string())))
        };
        let files = match (created, policy) {
            (Ok(f), _) => f,
            (Err(e), RecordingPolicy::Strict) => return Err(e),
            (Err(e), RecordingPolicy::BestEffort) => {
                tracing::warn!(session = id, "session not recorded (best effort): {e}");
                return Ok(None);
            }
        };
        let header = Header {
            cols: req.cols,
            rows: req.rows,
            term_type: recorder::TERM_TYPE.into(),
            timestamp: db::now_unix(),
            title: format!("{}@{target_name}", req.user_name),
            env: [("TERM".to_string(), recorder::TERM_TYPE.to_string())].into(),
        };
        let (tx, task) = recorder::RecorderTask::start(id, files, &header, policy);
        let input = match req.target {
            Target::Local => self.config.local_record_input,
            Target::Ssh(_) => settings.input,
        };
        Ok(Some((tx, task, input)))
    }

    /// A live (or ended but not yet seen) session by id.
    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).get(id).cloned()
    }

    /// Every live (or ended but not yet seen) session.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }

    /// The sessions of a user, oldest first; `state` is `running`, `exited`
    /// or `failed`.
    pub fn list_for_user(&self, user_id: i64) -> Vec<TermSessionInfo> {
        let mut list: Vec<TermSessionInfo> = lock(&self.sessions)
            .values()
            .filter(|s| s.owner() == user_id)
            .map(|s| TermSessionInfo {
                session_id: s.id().to_string(),
                target: s.target_name().to_string(),
                state: match (s.phase(), s.failed()) {
                    (Phase::Ended, true) => "failed",
                    (Phase::Ended, false) => "exited",
                    _ => "running",
                }
                .to_string(),
                started: s.started().to_string(),
            })
            .collect();
        list.sort_by(|a, b| {
            a.started
                .cmp(&b.started)
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        list
    }

    /// Ends a session and waits (bounded) until its actor has finished.
    pub async fn close(&self, id: &str) -> Result<(), TermError> {
        let session = self.session(id).ok_or(TermError::NotFound)?;
        session.request_close();
        tokio::time::timeout(CLOSE_WAIT, session.wait_done())
            .await
            .map_err(|_| TermError::Timeout)
    }

    /// Asks a session to end, showing `reason` to its owner (returns at
    /// once); `false` if there is no such session or it was already closing.
    pub fn close_because(&self, id: &str, reason: &str) -> bool {
        match self.session(id) {
            Some(s) => s.request_close_because(reason.to_string()),
            None => false,
        }
    }

    /// Ends a session on an admin's order (`by`, with `reason` shown to the
    /// owner) and waits (bounded) until its actor has finished; the row
    /// becomes `terminated`.
    pub async fn terminate(&self, id: &str, by: &str, reason: &str) -> Result<(), TermError> {
        let session = self.session(id).ok_or(TermError::NotFound)?;
        if session.phase() == Phase::Ended {
            return Err(TermError::NotFound);
        }
        session.terminate(by, reason);
        tokio::time::timeout(CLOSE_WAIT, session.wait_done())
            .await
            .map_err(|_| TermError::Timeout)
    }

    /// Holds back (`frozen`) or lets through the owner's input of a live
    /// session; `Ok(false)` if it already was in that state.
    pub async fn set_frozen(&self, id: &str, by: &str, frozen: bool) -> Result<bool, TermError> {
        let session = self
            .session(id)
            .filter(|s| s.phase() != Phase::Ended)
            .ok_or(TermError::NotFound)?;
        Ok(if frozen {
            session.freeze(by)
        } else {
            session.unfreeze(by).await
        })
    }

    /// Asks every session of a user to end (returns at once).
    pub fn close_all_for_user(&self, user_id: i64) {
        for s in lock(&self.sessions)
            .values()
            .filter(|s| s.owner() == user_id)
        {
            s.request_close();
        }
    }

    /// Refuses new sessions from now on and tells the owner of every live one
    /// that it will be closed at `deadline` (live sessions go on until they
    /// end or [`TermManager::shutdown`]).
    pub fn begin_drain(&self, deadline: std::time::Instant) {
        let sessions = lock(&self.sessions);
        self.draining.store(true, Ordering::Release);
        for s in sessions.values().filter(|s| s.phase() != Phase::Ended) {
            s.begin_drain(deadline);
        }
    }

    /// Whether [`TermManager::begin_drain`] was called.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// How many sessions have not ended (attached or in their grace period).
    pub fn live_sessions(&self) -> usize {
        lock(&self.sessions)
            .values()
            .filter(|s| s.phase() != Phase::Ended)
            .count()
    }

    /// Ends every session (the owner is told the server stopped) and waits
    /// for all actors.
    pub async fn shutdown(&self) {
        let mut actors = {
            let mut guard = lock(&self.actors);
            self.shutting_down.store(true, Ordering::Release);
            std::mem::take(&mut *guard)
        };
        for s in lock(&self.sessions).values() {
            s.request_close_because(STOPPED_NOTICE.to_string());
        }
        while actors.join_next().await.is_some() {}
    }

    /// Forgets a session (called by its actor at the end).
    fn unregister(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }
}
