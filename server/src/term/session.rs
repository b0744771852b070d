//! A session's shared state and the owner's transport-independent attachment.
//!
//! Output path: the target reader appends to the ring ([`Session::push_output`])
//! and bumps a watch; the attachment's `recv` hands out everything that
//! accumulated since its previous frame (at most one `MAX_OUTPUT_CHUNK`), so
//! output is coalesced by write completion, never by a timer. The reader only
//! reads the target while the owner's lag is under a watermark, and an append
//! never overwrites bytes the attached owner has not received.
use crate::sync::lock;
use std::{
    collections::VecDeque,
    os::fd::{AsFd, OwnedFd},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::Instant,
};

use app::protocol::term::{self, ClientFrame, NoticeLevel, ServerFrame, MAX_OUTPUT_CHUNK};
use tokio::sync::{mpsc, watch, Notify};

use super::{
    echo_guard::{secret_read, EchoGuard},
    recorder::RecorderTx,
    ring::Ring,
    screen::ScreenModel,
    TermError,
};
use crate::auth::ratelimit::TokenBucket;

mod guard;
mod watcher;
pub use guard::UNCHECKED_LINE;
pub use watcher::{Watcher, WATCHER_BEHIND_NOTICE};

/// Most output a keyframe parses to catch the screen model up (the rest of
/// a flood is skipped: this much holds many screens).
const KEYFRAME_PARSE: usize = 128 << 10;
/// Output kept for reattaching (1 MiB: many screens of history, bounded per session).
pub const RING_BYTES: usize = 1 << 20;
/// Owner lag (bytes received from the target but not yet handed to the owner)
/// at which the reader stops reading the target: 64 KiB keeps a full frame
/// in flight on a fast link while a stalled tab costs little, and bounds
/// what still follows a Ctrl-C.
pub const HIGH_WATER: u64 = 64 << 10;
/// Lag allowed while owner input is still on its way to the target. Reading
/// on lets russh's session loop (which stalls when its channel buffer is full)
/// take the input, so Ctrl-C gets through under `yes`: above `HIGH_WATER` by
/// russh's channel buffer (2 × 32 KiB), and no more, since everything read
/// here is drawn before the prompt that follows a Ctrl-C. Appends wait for
/// room in the ring anyway, so no byte is ever overwritten.
pub const HARD_LIMIT: u64 = 128 << 10;
/// Input frames queued for the target's writer (each at most 64 KiB, so at
/// most 2 MiB); a full queue makes `send` wait, which pushes back on the socket.
pub(crate) const INPUT_QUEUE: usize = 32;
/// Notices queued for one attachment; older ones are dropped beyond this.
const MAX_QUEUED_NOTICES: usize = 16;
/// Text of the notice an attachment gets when it asks for screen snapshots
/// faster than its [`SnapshotLimit`] allows.
pub const SNAPSHOT_LIMIT_NOTICE: &str =
    "too many screen refreshes requested: wait a moment, then reattach";
/// Owner input held while the session is frozen; more is dropped with a notice.
pub const HELD_INPUT_BYTES: usize = 64 << 10;
/// People who may watch one session at once.
pub const MAX_WATCHERS: usize = 16;
/// Text of the notice an attachment gets when a newer one takes over.
pub const REPLACED_NOTICE: &str = "replaced by another tab";
/// How the notice to owners of a draining server's sessions starts.
pub const DRAIN_NOTICE_START: &str = "termroom on this server is shutting down";

const _: () = assert!(HIGH_WATER < HARD_LIMIT && (HARD_LIMIT as usize) < RING_BYTES);

/// How many screen snapshots (a `ResumeFrom` for an offset no longer in the
/// ring) one attachment may ask for: rendering one parses up to the whole
/// ring, so a client looping on `ResumeFrom` would burn a core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotLimit {
    /// Snapshots per second, sustained.
    pub per_sec: u32,
    /// Snapshots allowed in a burst (a fresh attachment starts with this many).
    pub burst: u32,
}

impl Default for SnapshotLimit {
    /// One per second, bursts of 4: a browser asks once per (re)attach.
    fn default() -> Self {
        Self {
            per_sec: 1,
            burst: 4,
        }
    }
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting to the target.
    Connecting,
    /// The shell runs.
    Running,
    /// The shell ended, the connection failed, or the session was closed.
    Ended,
}

/// Work for the target's writer task.
#[derive(Debug)]
pub(crate) enum WriteOp {
    /// Bytes typed or pasted by the owner.
    Input(PendingInput),
    /// New terminal size.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
}

/// Owner input on its way to the target; counted as pending until dropped,
/// which the writer does once the target has taken the bytes.
#[derive(Debug)]
pub(crate) struct PendingInput {
    /// The bytes.
    pub(crate) bytes: Vec<u8>,
    /// Gate whose pending count this input holds up.
    gate: Arc<ReadGate>,
}

impl Drop for PendingInput {
    fn drop(&mut self) {
        self.gate.pending_inputs.fetch_sub(1, Ordering::AcqRel);
        // Back to the lower watermark: nothing to wake, the reader re-checks.
    }
}

/// Wakes the target reader when it may read again.
#[derive(Debug, Default)]
pub(crate) struct ReadGate {
    /// Owner inputs not yet taken by the target.
    pending_inputs: AtomicUsize,
    /// Signalled when the owner's lag shrinks, input arrives, or the owner changes.
    wake: Notify,
}

/// The current owner attachment's delivery state.
#[derive(Debug)]
struct Owner {
    /// Which attachment this is (attachments with another number were replaced).
    generation: u64,
    /// Stream offset up to which output was handed out; `None` until `ResumeFrom`.
    delivered: Option<u64>,
    /// Client asked to pause output.
    paused: bool,
    /// Frames to hand out before more output (snapshot, notices).
    queue: VecDeque<ServerFrame>,
    /// Snapshots this attachment may still ask for.
    snapshots: TokenBucket,
}

/// State shared by the session's tasks and attachments (std mutex, never held across `.await`).
#[derive(Debug)]
struct Shared {
    /// Recent output.
    ring: Ring,
    /// Life cycle.
    phase: Phase,
    /// The attached owner, if any.
    owner: Option<Owner>,
    /// Number for the next attachment.
    next_generation: u64,
    /// Since when nobody is attached (`None` while attached).
    detached_since: Option<Instant>,
    /// Frames every attachment receives after all output once the session ended.
    final_frames: Vec<ServerFrame>,
    /// An attachment received every final frame: the user saw the end.
    end_seen: bool,
    /// The session ended because connecting failed or the connection was lost.
    failed: bool,
    /// Why the session is being closed, shown to the owner (revocation).
    close_reason: Option<String>,
    /// An admin ended the session (its row becomes `terminated`).
    terminated: bool,
    /// People watching, in the order they joined.
    watchers: Vec<WatcherEntry>,
    /// Number for the next watcher.
    next_watcher: u64,
    /// Owner input held back while an admin froze the session (`None`: not frozen).
    frozen: Option<Vec<u8>>,
    /// When the draining server will close this session (`None`: not draining).
    drain_deadline: Option<Instant>,
    /// When output last arrived.
    last_output: Instant,
    /// When owner input was last written.
    last_input: Instant,
}

/// One watcher as the session lists it.
#[derive(Debug, Clone)]
struct WatcherEntry {
    /// Which watcher this is.
    id: u64,
    /// The watching user's name.
    name: String,
}

/// Who owns a session and where it runs, for listings and audit.
#[derive(Debug, Clone, Default)]
pub struct SessionMeta {
    /// Owner's user id.
    pub owner: i64,
    /// Owner's user name.
    pub owner_name: String,
    /// Target name (host name or `local`).
    pub target_name: String,
    /// The host's namespace (empty for the local target).
    pub namespace: String,
    /// Database id of the SSH host, `None` for the local target.
    pub host_id: Option<i64>,
}

/// One terminal session: identity, output ring, screen model, and owner state.
pub struct Session {
    /// Random url-safe id.
    id: String,
    /// Owner, target and namespace.
    meta: SessionMeta,
    /// The owner sees who is watching.
    announce_watchers: bool,
    /// The owner posted a watch link: members of the namespace may watch.
    watch_shared: std::sync::atomic::AtomicBool,
    /// Snapshot rate limit of each attachment.
    snapshot_limit: SnapshotLimit,
    /// RFC 3339 start time.
    started: String,
    /// Ring, phase and owner; lock order: `screen` before `shared`.
    shared: Mutex<Shared>,
    /// Screen model for snapshots.
    screen: Mutex<ScreenModel>,
    /// Bumped whenever an attachment may have something new to hand out.
    changed: watch::Sender<u64>,
    /// Reader gating.
    gate: Arc<ReadGate>,
    /// Attach/detach/end-seen events for the actor.
    pub(crate) actor_wake: Notify,
    /// Input and resizes for the writer task.
    input: mpsc::Sender<WriteOp>,
    /// Set to ask the actor to end the session.
    closing: watch::Sender<bool>,
    /// Set by the actor when it is finished.
    done: watch::Sender<bool>,
    /// The recorder's queue, once recording started (never waited on).
    recorder: OnceLock<RecorderTx>,
    /// Set where the namespace records typed input.
    input_recording: OnceLock<Mutex<InputRecording>>,
    /// The command guard: rules, the line being typed, the command log.
    guard: Mutex<guard::GuardState>,
    /// Owner input on its way through the guard (a task of its own, so a
    /// socket that drops mid-line never cuts a line in two).
    owner_input: mpsc::Sender<guard::OwnerInput>,
    /// When the session started (command offsets count from here).
    started_at: Instant,
}

/// What decides whether typed input may be recorded.
#[derive(Debug, Default)]
struct InputRecording {
    guard: EchoGuard,
    /// The local PTY, whose echo flag is read at each input (none over SSH).
    probe: Option<OwnedFd>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("owner", &self.meta.owner)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session in phase `Connecting`, and the receiving end of its input queue.
    #[cfg(test)]
    pub(crate) fn new(
        id: String,
        owner: i64,
        target_name: String,
        cols: u16,
        rows: u16,
    ) -> (Arc<Self>, mpsc::Receiver<WriteOp>) {
        Self::with_meta(
            id,
            SessionMeta {
                owner,
                owner_name: format!("user{owner}"),
                target_name,
                ..SessionMeta::default()
            },
            (cols, rows),
            SnapshotLimit::default(),
            true,
        )
    }

    /// A new session in phase `Connecting` described by `meta`, and the
    /// receiving end of its input queue. With `announce_watchers` the owner
    /// is told who is watching.
    pub(crate) fn with_meta(
        id: String,
        meta: SessionMeta,
        (cols, rows): (u16, u16),
        snapshot_limit: SnapshotLimit,
        announce_watchers: bool,
    ) -> (Arc<Self>, mpsc::Receiver<WriteOp>) {
        let (input, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (owner_input, owner_input_rx) = mpsc::channel(INPUT_QUEUE);
        let session = Arc::new(Self {
            id,
            meta,
            announce_watchers,
            watch_shared: std::sync::atomic::AtomicBool::new(false),
            snapshot_limit,
            started: crate::db::now_rfc3339(),
            shared: Mutex::new(Shared {
                ring: Ring::new(RING_BYTES),
                phase: Phase::Connecting,
                owner: None,
                next_generation: 1,
                detached_since: Some(Instant::now()),
                final_frames: Vec::new(),
                end_seen: false,
                failed: false,
                close_reason: None,
                terminated: false,
                watchers: Vec::new(),
                next_watcher: 1,
                frozen: None,
                drain_deadline: None,
                last_output: Instant::now(),
                last_input: Instant::now(),
            }),
            screen: Mutex::new(ScreenModel::new(rows, cols)),
            changed: watch::Sender::new(0),
            gate: Arc::default(),
            actor_wake: Notify::new(),
            input,
            closing: watch::Sender::new(false),
            done: watch::Sender::new(false),
            recorder: OnceLock::new(),
            input_recording: OnceLock::new(),
            guard: Mutex::default(),
            owner_input,
            started_at: Instant::now(),
        });
        guard::spawn(&session, owner_input_rx);
        (session, input_rx)
    }

    /// Records everything from now on through `tx` (set once, before the
    /// actor runs), typed input too if `input`.
    pub(crate) fn set_recorder(&self, tx: RecorderTx, input: bool) {
        let _ = self.recorder.set(tx);
        if input {
            let _ = self.input_recording.set(Mutex::default());
        }
    }

    /// The local PTY, for the echo flag when input is recorded.
    pub(crate) fn set_echo_probe(&self, fd: OwnedFd) {
        if let Some(r) = self.input_recording.get() {
            lock(r).probe = Some(fd);
        }
    }

    /// Records typed input, unless the namespace does not want it or a
    /// secret is being typed (a local terminal reading without echo, or a
    /// password prompt showing).
    fn record_input(&self, bytes: &[u8]) {
        let (Some(r), Some(input)) = (self.recorder(), self.input_recording.get()) else {
            return;
        };
        let mut input = lock(input);
        let secret = input.probe.as_ref().and_then(|fd| secret_read(fd.as_fd()));
        if input.guard.admit_input(bytes, secret) {
            r.input(bytes);
        }
    }

    /// The recorder, if the session is recorded.
    pub(crate) fn recorder(&self) -> Option<&RecorderTx> {
        self.recorder.get()
    }

    /// Session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Owner's user id.
    pub fn owner(&self) -> i64 {
        self.meta.owner
    }

    /// Owner, target and namespace.
    pub fn meta(&self) -> &SessionMeta {
        &self.meta
    }

    /// Target name (host name or `local`).
    pub fn target_name(&self) -> &str {
        &self.meta.target_name
    }

    /// RFC 3339 start time.
    pub fn started(&self) -> &str {
        &self.started
    }

    /// Database id of the SSH host, `None` for the local target.
    pub fn host_id(&self) -> Option<i64> {
        self.meta.host_id
    }

    /// Whether an owner attachment is attached (the grace period runs while not).
    pub fn attached(&self) -> bool {
        lock(&self.shared).owner.is_some()
    }

    /// Whether the session ended as failed (connecting failed, connection lost).
    pub fn failed(&self) -> bool {
        lock(&self.shared).failed
    }

    /// Size (rows, columns) of the screen model kept for snapshots; 1 × 1
    /// once the session failed (its screen is freed at once).
    pub fn screen_size(&self) -> (u16, u16) {
        lock(&self.screen).size()
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        lock(&self.shared).phase
    }

    /// Offset one past the newest output byte.
    pub fn output_head(&self) -> u64 {
        lock(&self.shared).ring.head()
    }

    /// Attach as the owner: a newer attachment replaces (detaches with a
    /// notice) the older one. Send `ResumeFrom { seq }` first.
    pub fn attach(self: &Arc<Self>) -> Attachment {
        let generation = {
            let mut s = lock(&self.shared);
            let generation = s.next_generation;
            s.next_generation += 1;
            let mut queue = VecDeque::new();
            if self.announce_watchers && !s.watchers.is_empty() {
                queue.push_back(ServerFrame::Watchers(watcher_names(&s.watchers)));
            }
            if s.frozen.is_some() {
                queue.push_back(frozen_notice());
            }
            if let Some(deadline) = s.drain_deadline {
                queue.push_back(drain_notice(deadline));
            }
            s.owner = Some(Owner {
                generation,
                delivered: None,
                paused: false,
                queue,
                snapshots: TokenBucket::new(self.snapshot_limit.per_sec, self.snapshot_limit.burst),
            });
            s.detached_since = None;
            generation
        };
        if generation > 1 {
            if let Some(r) = self.recorder() {
                r.marker("reattached");
            }
        }
        self.bump();
        self.gate.wake.notify_one();
        self.actor_wake.notify_one();
        Attachment {
            sender: AttachmentSender {
                session: self.clone(),
                generation,
            },
            changed: self.changed.subscribe(),
            final_index: 0,
            replaced_notice_sent: false,
            finished: false,
        }
    }

    /// Wakes every attachment waiting in `recv`.
    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Asks the actor to end the session; `false` if that was asked before.
    pub(crate) fn request_close(&self) -> bool {
        !self.closing.send_replace(true)
    }

    /// Asks the actor to end the session, telling the owner `reason` (the
    /// first reason given wins); `false` if the session was already closing.
    pub(crate) fn request_close_because(&self, reason: String) -> bool {
        {
            let mut s = lock(&self.shared);
            if s.close_reason.is_none() {
                s.close_reason = Some(reason);
            }
        }
        self.request_close()
    }

    /// Why the session is being closed, if a reason was given.
    pub(crate) fn close_reason(&self) -> Option<String> {
        lock(&self.shared).close_reason.clone()
    }

    /// A receiver that becomes `true` when a close was requested.
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Marks the actor finished.
    pub(crate) fn mark_done(&self) {
        self.done.send_replace(true);
    }

    /// Waits until the actor is finished.
    pub(crate) async fn wait_done(&self) {
        let mut rx = self.done.subscribe();
        // Err means the sender is gone, which only happens with the session itself.
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Moves from `Connecting` to `Running`.
    pub(crate) fn set_running(&self) {
        let mut s = lock(&self.shared);
        if s.phase == Phase::Connecting {
            s.phase = Phase::Running;
        }
    }

    /// Ends the session: attachments get the remaining output, then `frames`.
    pub(crate) fn end(&self, frames: Vec<ServerFrame>) {
        {
            let mut s = lock(&self.shared);
            if s.phase == Phase::Ended {
                return;
            }
            s.phase = Phase::Ended;
            s.final_frames = frames;
        }
        self.bump();
    }

    /// Ends the session as failed: like [`Session::end`], and the screen
    /// model is freed at once (nothing will change the screen any more).
    pub(crate) fn fail(&self, frames: Vec<ServerFrame>) {
        {
            let mut s = lock(&self.shared);
            if s.phase == Phase::Ended {
                return;
            }
            s.failed = true;
        }
        self.end(frames);
        // A blank 1 × 1 model: snapshots still work and cost nothing.
        *lock(&self.screen) = ScreenModel::new(1, 1);
    }

    /// Whether an attachment has received every final frame.
    pub(crate) fn end_seen(&self) -> bool {
        lock(&self.shared).end_seen
    }

    /// Since when nobody is attached, if nobody is.
    pub(crate) fn detached_since(&self) -> Option<Instant> {
        lock(&self.shared).detached_since
    }

    /// The owner's lag limit now, or `None` when no started owner bounds it.
    fn lag_limit(&self, s: &Shared) -> Option<u64> {
        let delivered = s.owner.as_ref().and_then(|o| o.delivered)?;
        let lag = s.ring.head().saturating_sub(delivered);
        let limit = if self.gate.pending_inputs.load(Ordering::Acquire) > 0 {
            HARD_LIMIT
        } else {
            HIGH_WATER
        };
        Some(limit.saturating_sub(lag))
    }

    /// Waits until the reader may read more from the target.
    pub(crate) async fn wait_read_allowed(&self) {
        loop {
            {
                let s = lock(&self.shared);
                if self.lag_limit(&s) != Some(0) {
                    return;
                }
            }
            // A notify between the check and here leaves a permit: no lost wakeup.
            self.gate.wake.notified().await;
        }
    }

    /// Appends target output to the ring and screen model. Waits (in pieces)
    /// while the attached owner has not received what would be overwritten.
    pub(crate) async fn push_output(&self, mut data: &[u8]) {
        let keyframe_due = self.recorder().is_some_and(|r| r.output(data));
        if let Some(input) = self.input_recording.get() {
            lock(input).guard.observe_output(data);
        }
        while !data.is_empty() {
            let taken = {
                let mut screen = lock(&self.screen);
                let mut s = lock(&self.shared);
                let room = match s.owner.as_ref().and_then(|o| o.delivered) {
                    Some(d) => s
                        .ring
                        .capacity()
                        .saturating_sub(usize::try_from(s.ring.head() - d).unwrap_or(usize::MAX)),
                    None => usize::MAX,
                };
                let n = room.min(data.len());
                if n > 0 {
                    let (now, _) = data.split_at(n);
                    s.ring.push(now);
                    let at = Instant::now();
                    s.last_output = at;
                    let due = screen.due(&s.ring, at);
                    drop(s);
                    // Still under the screen lock, so a snapshot sees ring and screen agree.
                    if let Some(due) = due {
                        screen.process(&due);
                    }
                }
                n
            };
            if taken == 0 {
                self.gate.wake.notified().await;
                continue;
            }
            data = data.get(taken..).unwrap_or_default();
            self.bump();
        }
        if keyframe_due {
            self.record_keyframe();
        }
    }

    /// Hands the recorder the screen as it is now (see [`KEYFRAME_PARSE`]).
    fn record_keyframe(&self) {
        let Some(r) = self.recorder() else {
            return;
        };
        let (screen, (rows, cols)) = {
            let mut screen = lock(&self.screen);
            screen.catch_up_tail(&lock(&self.shared).ring, KEYFRAME_PARSE);
            (screen.render(), screen.size())
        };
        r.keyframe(cols, rows, screen);
    }

    /// Lays out the output so far at the old size, then takes the new one.
    fn resize_screen(&self, rows: u16, cols: u16) {
        let mut screen = lock(&self.screen);
        if lock(&self.shared).failed {
            return;
        }
        let backlog = screen.take_backlog(&lock(&self.shared).ring);
        screen.process(&backlog);
        screen.set_size(rows, cols);
    }

    /// Starts (or restarts) delivery to attachment `generation` at `seq`, or
    /// with a snapshot when `seq` is no longer (or not yet) in the ring. A
    /// `limited` request over the attachment's [`SnapshotLimit`] gets a
    /// notice instead of a snapshot and changes nothing else.
    fn resume_from(&self, generation: u64, seq: u64, limited: bool) -> Result<(), TermError> {
        {
            let mut screen = lock(&self.screen);
            let mut s = lock(&self.shared);
            let (tail, head) = (s.ring.tail(), s.ring.head());
            let ring_ok = (tail..=head).contains(&seq);
            let owner = s
                .owner
                .as_mut()
                .filter(|o| o.generation == generation)
                .ok_or(TermError::Detached)?;
            if !ring_ok && limited && !owner.snapshots.try_take() {
                tracing::debug!("snapshot refused: over the attachment's limit");
                if owner.queue.len() >= MAX_QUEUED_NOTICES {
                    owner.queue.pop_front();
                }
                owner.queue.push_back(ServerFrame::Notice {
                    level: NoticeLevel::Warning,
                    text: SNAPSHOT_LIMIT_NOTICE.into(),
                });
                drop(s);
                self.bump();
                return Ok(());
            }
            if !ring_ok {
                screen.catch_up(&s.ring);
                tracing::debug!(skipped = screen.skipped(), "sending a screen snapshot");
            }
            let Some(owner) = s.owner.as_mut() else {
                return Err(TermError::Detached);
            };
            if ring_ok {
                owner.delivered = Some(seq);
            } else {
                owner
                    .queue
                    .retain(|f| !matches!(f, ServerFrame::Snapshot { .. }));
                owner.queue.push_back(ServerFrame::Snapshot {
                    seq: head,
                    data: screen.render(),
                });
                owner.delivered = Some(head);
            }
        }
        self.bump();
        self.gate.wake.notify_one();
        Ok(())
    }

    /// Applies `f` to the owner's state if `generation` is still the owner.
    fn with_owner<R>(
        &self,
        generation: u64,
        f: impl FnOnce(&mut Owner) -> R,
    ) -> Result<R, TermError> {
        let mut s = lock(&self.shared);
        let owner = s
            .owner
            .as_mut()
            .filter(|o| o.generation == generation)
            .ok_or(TermError::Detached)?;
        Ok(f(owner))
    }

    /// The server is draining and will close this session at `deadline`:
    /// the owner is told now and again on each attach.
    pub(crate) fn begin_drain(&self, deadline: Instant) {
        {
            let mut s = lock(&self.shared);
            s.drain_deadline = Some(deadline);
            self.queue_for_owner(&mut s, drain_notice(deadline));
        }
        self.bump();
    }

    /// Queues a notice for the current owner (dropped if nobody is attached).
    pub(crate) fn notify_owner(&self, level: NoticeLevel, text: String) {
        self.queue_for_owner(&mut lock(&self.shared), ServerFrame::Notice { level, text });
        self.bump();
    }

    /// Queues `frame` for the current owner (dropped if nobody is attached;
    /// the oldest queued frame goes beyond [`MAX_QUEUED_NOTICES`]). The
    /// caller bumps once the lock is released.
    fn queue_for_owner(&self, s: &mut Shared, frame: ServerFrame) {
        let Some(owner) = s.owner.as_mut() else {
            return;
        };
        if owner.queue.len() >= MAX_QUEUED_NOTICES {
            owner.queue.pop_front();
        }
        owner.queue.push_back(frame);
    }

    /// Writes owner input to the target (recorded where the namespace asks).
    async fn write_input(&self, bytes: Vec<u8>) {
        self.record_input(&bytes);
        {
            let mut s = lock(&self.shared);
            s.last_input = Instant::now();
        }
        // Counted before queueing: from now on the reader may read up to
        // HARD_LIMIT so the target's session loop can take this input.
        self.gate.pending_inputs.fetch_add(1, Ordering::AcqRel);
        let pending = PendingInput {
            bytes,
            gate: self.gate.clone(),
        };
        self.gate.wake.notify_one();
        // Err: the writer is gone (session ending); the input is dropped with it.
        let _ = self.input.send(WriteOp::Input(pending)).await;
    }

    /// While frozen, keeps `bytes` for later (up to [`HELD_INPUT_BYTES`];
    /// beyond, they are dropped and the owner is told) and says `true`.
    fn hold_if_frozen(&self, bytes: &[u8]) -> bool {
        let mut s = lock(&self.shared);
        let Some(held) = s.frozen.as_mut() else {
            return false;
        };
        if held.len() + bytes.len() <= HELD_INPUT_BYTES {
            held.extend_from_slice(bytes);
        } else {
            let text = format!(
                "input not sent: the session is frozen and {} KiB are already held",
                HELD_INPUT_BYTES >> 10
            );
            self.queue_for_owner(
                &mut s,
                ServerFrame::Notice {
                    level: NoticeLevel::Warning,
                    text,
                },
            );
            drop(s);
            self.bump();
        }
        true
    }

    /// Holds the owner's input back from now on (`false` if it already was).
    pub(crate) fn freeze(&self, by: &str) -> bool {
        {
            let mut s = lock(&self.shared);
            if s.frozen.is_some() || s.phase == Phase::Ended {
                return false;
            }
            s.frozen = Some(Vec::new());
            self.queue_for_owner(&mut s, frozen_notice());
        }
        if let Some(r) = self.recorder() {
            r.marker(format!("input frozen by {by}"));
        }
        self.bump();
        true
    }

    /// Lets the owner's input through again and sends what was held, in
    /// order (`false` if the session was not frozen).
    pub(crate) async fn unfreeze(&self, by: &str) -> bool {
        let held = {
            let mut s = lock(&self.shared);
            let Some(held) = s.frozen.take() else {
                return false;
            };
            self.queue_for_owner(
                &mut s,
                ServerFrame::Notice {
                    level: NoticeLevel::Info,
                    text: "input unfrozen: what you typed meanwhile is sent now".into(),
                },
            );
            held
        };
        if let Some(r) = self.recorder() {
            r.marker(format!("input unfrozen by {by}"));
        }
        self.bump();
        if !held.is_empty() && self.phase() != Phase::Ended {
            let _ = self
                .owner_input
                .send(guard::OwnerInput {
                    bytes: held,
                    broadcast: false,
                })
                .await;
        }
        true
    }

    /// Lets members of the session's namespace watch it (the owner shared it).
    pub fn share_watch(&self) {
        self.watch_shared.store(true, Ordering::Release);
    }

    /// Whether the owner shared the session for watching.
    pub fn watch_shared(&self) -> bool {
        self.watch_shared.load(Ordering::Acquire)
    }

    /// Whether the owner's input is held back.
    pub fn frozen(&self) -> bool {
        lock(&self.shared).frozen.is_some()
    }

    /// Ends the session on an admin's order, telling the owner who and why
    /// (`false` if it was already ending). Its row becomes `terminated`.
    pub(crate) fn terminate(&self, by: &str, reason: &str) -> bool {
        let text = format!("terminal session terminated by {by}: {reason}");
        {
            let mut s = lock(&self.shared);
            if s.phase == Phase::Ended || *self.closing.borrow() {
                return false;
            }
            s.terminated = true;
        }
        if let Some(r) = self.recorder() {
            r.marker(text.clone());
        }
        self.request_close_because(text)
    }

    /// Whether an admin ended the session.
    pub fn terminated(&self) -> bool {
        lock(&self.shared).terminated
    }

    /// Output bytes so far and time since the last output or owner input.
    pub fn activity(&self) -> (u64, std::time::Duration) {
        let s = lock(&self.shared);
        (s.ring.head(), s.last_output.max(s.last_input).elapsed())
    }

    /// Names of the people watching, in the order they joined.
    pub fn watchers(&self) -> Vec<String> {
        watcher_names(&lock(&self.shared).watchers)
    }

    /// Registers a watcher named `name`: a marker in the recording and, if
    /// announced, the owner's list of watchers. `None` past [`MAX_WATCHERS`].
    fn add_watcher(&self, name: &str) -> Option<u64> {
        let mut s = lock(&self.shared);
        if s.watchers.len() >= MAX_WATCHERS {
            return None;
        }
        let id = s.next_watcher;
        s.next_watcher += 1;
        s.watchers.push(WatcherEntry {
            id,
            name: name.to_string(),
        });
        self.announce(&mut s);
        drop(s);
        if let Some(r) = self.recorder() {
            r.marker(format!("watch: {name} joined"));
        }
        self.bump();
        Some(id)
    }

    /// Forgets watcher `id` (a marker, and the owner's list updated).
    fn remove_watcher(&self, id: u64) {
        let mut s = lock(&self.shared);
        let Some(i) = s.watchers.iter().position(|w| w.id == id) else {
            return;
        };
        let gone = s.watchers.remove(i);
        self.announce(&mut s);
        drop(s);
        if let Some(r) = self.recorder() {
            r.marker(format!("watch: {} left", gone.name));
        }
        self.bump();
    }

    /// Queues the current watcher list for the owner, if announced.
    fn announce(&self, s: &mut Shared) {
        if self.announce_watchers {
            let names = watcher_names(&s.watchers);
            if let Some(owner) = s.owner.as_mut() {
                owner
                    .queue
                    .retain(|f| !matches!(f, ServerFrame::Watchers(_)));
            }
            self.queue_for_owner(s, ServerFrame::Watchers(names));
        }
    }

    /// Detaches attachment `generation` if it is still the owner.
    fn detach(&self, generation: u64) {
        {
            let mut s = lock(&self.shared);
            if s.owner.as_ref().is_none_or(|o| o.generation != generation) {
                return;
            }
            s.owner = None;
            s.detached_since = Some(Instant::now());
        }
        self.gate.wake.notify_one();
        self.actor_wake.notify_one();
    }
}

/// The names of `watchers`, in order.
fn watcher_names(watchers: &[WatcherEntry]) -> Vec<String> {
    watchers.iter().map(|w| w.name.clone()).collect()
}

/// What the owner of a session on a draining server is told (again on each
/// attach): how long the session has left.
fn drain_notice(deadline: Instant) -> ServerFrame {
    let left = deadline.saturating_duration_since(Instant::now());
    let secs = u64::try_from(left.as_millis().div_ceil(1000)).unwrap_or(u64::MAX);
    ServerFrame::Notice {
        level: NoticeLevel::Warning,
        text: format!(
            "{DRAIN_NOTICE_START}: this session will be closed in {secs} s unless it ends sooner; new terminals open once it is back (or on another node)"
        ),
    }
}

/// What the owner of a frozen session is told (again on each attach).
fn frozen_notice() -> ServerFrame {
    ServerFrame::Notice {
        level: NoticeLevel::Warning,
        text: "input frozen by an admin: what you type is held until the session is unfrozen"
            .into(),
    }
}

/// What an attachment can hand out now.
enum Poll {
    /// A frame.
    Frame(ServerFrame),
    /// Nothing more, ever.
    Finished,
    /// Nothing yet.
    Pending,
}

/// The input side of an owner attachment, usable beside a pending `recv`.
#[derive(Debug, Clone)]
pub struct AttachmentSender {
    /// The session.
    session: Arc<Session>,
    /// Which attachment this is.
    generation: u64,
}

impl AttachmentSender {
    /// Queues input for the target's writer (or holds it while frozen);
    /// says why it was not sent, if it was not (frozen, or the guard
    /// blocked a line of it).
    async fn input(&self, bytes: Vec<u8>, broadcast: bool) -> Result<(), TermError> {
        let session = &self.session;
        session.with_owner(self.generation, |_| ())?;
        if bytes.is_empty() || session.phase() == Phase::Ended {
            return Ok(());
        }
        if session.hold_if_frozen(&bytes) {
            if broadcast {
                session.answer_broadcast(Some("held: an admin froze this session's input".into()));
            }
            return Ok(());
        }
        // Err: the guard task is gone (session ending); the input goes with it.
        let _ = session
            .owner_input
            .send(guard::OwnerInput { bytes, broadcast })
            .await;
        Ok(())
    }

    /// Hands a client frame to the session. `Err(Detached)` once replaced.
    pub async fn send(&self, frame: ClientFrame) -> Result<(), TermError> {
        let session = &self.session;
        match frame {
            ClientFrame::Input(bytes) => self.input(bytes, false).await,
            ClientFrame::InputToAll(bytes) => {
                session.with_owner(self.generation, |_| ())?;
                if let Some(r) = session.recorder() {
                    let text = String::from_utf8_lossy(&bytes);
                    r.marker(format!(
                        "send to all: {}",
                        text.trim_end_matches(['\r', '\n'])
                    ));
                }
                self.input(bytes, true).await
            }
            ClientFrame::Resize { cols, rows } => {
                session.with_owner(self.generation, |_| ())?;
                if !term::size_ok(cols, rows) {
                    session.notify_owner(
                        NoticeLevel::Warning,
                        format!("ignored terminal size {cols}x{rows}"),
                    );
                    return Ok(());
                }
                session.resize_screen(rows, cols);
                if let Some(r) = session.recorder() {
                    r.resize(cols, rows);
                }
                let _ = session.input.send(WriteOp::Resize { cols, rows }).await;
                Ok(())
            }
            ClientFrame::Pause => session.with_owner(self.generation, |o| o.paused = true),
            ClientFrame::Resume => {
                session.with_owner(self.generation, |o| o.paused = false)?;
                session.bump();
                Ok(())
            }
            ClientFrame::ResumeFrom { seq } => session.resume_from(self.generation, seq, true),
        }
    }
}

/// The owner's attachment to a session, independent of transport: the socket
/// adapter and tests drive it.
#[derive(Debug)]
pub struct Attachment {
    /// Input side.
    sender: AttachmentSender,
    /// Wakes `recv`.
    changed: watch::Receiver<u64>,
    /// Final frames already handed out.
    final_index: usize,
    /// The replaced notice was handed out.
    replaced_notice_sent: bool,
    /// `recv` returned `None`.
    finished: bool,
}

impl Attachment {
    /// Hands a client frame to the session; the first should be `ResumeFrom { seq }`.
    pub async fn send(&self, frame: ClientFrame) -> Result<(), TermError> {
        self.sender.send(frame).await
    }

    /// A cloneable input handle, for sending while `recv` is pending.
    pub fn sender(&self) -> AttachmentSender {
        self.sender.clone()
    }

    /// The session.
    pub fn session(&self) -> &Arc<Session> {
        &self.sender.session
    }

    /// The next frame for the client: everything that accumulated since the
    /// previous one (up to `MAX_OUTPUT_CHUNK`). `None` once replaced,
    /// or after the session's final frames. Cancel-safe.
    pub async fn recv(&mut self) -> Option<ServerFrame> {
        loop {
            if self.finished {
                return None;
            }
            self.changed.borrow_and_update();
            match self.poll() {
                Poll::Frame(f) => return Some(f),
                Poll::Finished => {
                    self.finished = true;
                    return None;
                }
                Poll::Pending => {}
            }
            if self.changed.changed().await.is_err() {
                self.finished = true;
                return None;
            }
        }
    }

    fn poll(&mut self) -> Poll {
        let session = &self.sender.session;
        let mut guard = lock(&session.shared);
        let s = &mut *guard;
        let Some(owner) = s
            .owner
            .as_mut()
            .filter(|o| o.generation == self.sender.generation)
        else {
            if self.replaced_notice_sent {
                return Poll::Finished;
            }
            self.replaced_notice_sent = true;
            return Poll::Frame(ServerFrame::Notice {
                level: NoticeLevel::Warning,
                text: REPLACED_NOTICE.into(),
            });
        };
        if let Some(f) = owner.queue.pop_front() {
            return Poll::Frame(f);
        }
        let Some(delivered) = owner.delivered else {
            return Poll::Pending;
        };
        if owner.paused {
            return Poll::Pending;
        }
        let head = s.ring.head();
        if delivered < head {
            if let Some(data) = s.ring.read(delivered, MAX_OUTPUT_CHUNK) {
                owner.delivered = Some(delivered + data.len() as u64);
                session.gate.wake.notify_one();
                return Poll::Frame(ServerFrame::Output {
                    seq: delivered,
                    data,
                });
            }
            // Unreachable while attached (appends wait for room); recover with a snapshot.
            owner.delivered = None;
            drop(guard);
            tracing::warn!("owner offset {delivered} fell out of the ring; sending a snapshot");
            return match session.resume_from(self.sender.generation, delivered, false) {
                Ok(()) => Poll::Pending,
                Err(_) => Poll::Finished,
            };
        }
        if s.phase == Phase::Ended {
            if let Some(f) = s.final_frames.get(self.final_index) {
                self.final_index += 1;
                if self.final_index == s.final_frames.len() {
                    s.end_seen = true;
                    session.actor_wake.notify_one();
                }
                return Poll::Frame(f.clone());
            }
            if s.final_frames.is_empty() && !s.end_seen {
                s.end_seen = true;
                session.actor_wake.notify_one();
            }
            return Poll::Finished;
        }
        Poll::Pending
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.sender.session.detach(self.sender.generation);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn session() -> Arc<Session> {
        Session::new("s".into(), 1, "local".into(), 80, 24).0
    }

    fn session_with_input() -> (Arc<Session>, mpsc::Receiver<WriteOp>) {
        Session::new("s".into(), 1, "local".into(), 80, 24)
    }

    async fn next_output(att: &mut Attachment) -> (u64, Vec<u8>) {
        match tokio::time::timeout(Duration::from_secs(5), att.recv())
            .await
            .expect("frame in time")
        {
            Some(ServerFrame::Output { seq, data }) => (seq, data),
            other => panic!("expected output, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn appends_wait_for_the_owner_instead_of_overwriting() {
        let s = session();
        let mut att = s.attach();
        att.send(ClientFrame::ResumeFrom { seq: 0 })
            .await
            .expect("resume");
        let data: Vec<u8> = (0..RING_BYTES * 3 / 2).map(|i| (i % 251) as u8).collect();
        let writer = {
            let (s, data) = (s.clone(), data.clone());
            tokio::spawn(async move { s.push_output(&data).await })
        };
        // The ring fills up to its capacity, then the append waits.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(s.output_head(), RING_BYTES as u64);
        assert!(!writer.is_finished());
        let mut got = Vec::new();
        while got.len() < data.len() {
            let (seq, chunk) = next_output(&mut att).await;
            assert_eq!(seq, got.len() as u64);
            assert!(chunk.len() <= MAX_OUTPUT_CHUNK);
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, data);
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("append finished")
            .expect("task");
    }

    #[tokio::test]
    async fn reading_stops_at_the_watermark_and_input_raises_it() {
        let (s, mut writer) = session_with_input();
        let mut att = s.attach();
        att.send(ClientFrame::ResumeFrom { seq: 0 })
            .await
            .expect("resume");
        s.push_output(&vec![b'y'; HIGH_WATER as usize]).await;
        let blocked = tokio::time::timeout(Duration::from_millis(50), s.wait_read_allowed()).await;
        assert!(blocked.is_err(), "lag at HIGH_WATER stops reading");
        // Pending owner input lets the reader go on up to HARD_LIMIT.
        att.send(ClientFrame::Input(b"\x03".to_vec()))
            .await
            .expect("input");
        tokio::time::timeout(Duration::from_secs(1), s.wait_read_allowed())
            .await
            .expect("raised to HARD_LIMIT");
        s.push_output(&vec![b'y'; (HARD_LIMIT - HIGH_WATER) as usize])
            .await;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.wait_read_allowed())
                .await
                .is_err()
        );
        // The writer took the input: back to HIGH_WATER, still blocked; the
        // owner catching up lets the reader go on.
        let op = writer.recv().await.expect("queued input");
        assert!(matches!(&op, WriteOp::Input(i) if i.bytes == b"\x03"));
        drop(op);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.wait_read_allowed())
                .await
                .is_err()
        );
        let mut delivered = 0;
        while delivered <= HARD_LIMIT - HIGH_WATER {
            delivered += next_output(&mut att).await.1.len() as u64;
        }
        tokio::time::timeout(Duration::from_secs(1), s.wait_read_allowed())
            .await
            .expect("lag below HIGH_WATER");
    }

    #[tokio::test]
    async fn no_owner_means_no_backpressure_and_a_snapshot_on_return() {
        let s = session();
        let att = s.attach();
        drop(att);
        s.push_output(b"hello\r\n").await;
        s.push_output(&vec![b'x'; RING_BYTES * 2]).await;
        s.push_output(b"\r\nbye").await;
        tokio::time::timeout(Duration::from_millis(100), s.wait_read_allowed())
            .await
            .expect("reads freely");
        let mut att = s.attach();
        att.send(ClientFrame::ResumeFrom { seq: 3 })
            .await
            .expect("resume");
        match att.recv().await {
            Some(ServerFrame::Snapshot { seq, data }) => {
                assert_eq!(seq, s.output_head());
                assert!(data.windows(3).any(|w| w == b"bye"));
            }
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn snapshots_beyond_the_limit_get_a_notice() {
        let limit = SnapshotLimit {
            per_sec: 1,
            burst: 2,
        };
        let meta = SessionMeta {
            owner: 1,
            target_name: "local".into(),
            ..SessionMeta::default()
        };
        let (s, _input) = Session::with_meta("s".into(), meta, (80, 24), limit, true);
        s.push_output(b"hello").await;
        let mut att = s.attach();
        // An offset the ring does not hold (yet) needs a snapshot.
        for _ in 0..limit.burst {
            att.send(ClientFrame::ResumeFrom { seq: 1 << 30 })
                .await
                .expect("resume");
            assert!(matches!(
                att.recv().await,
                Some(ServerFrame::Snapshot { .. })
            ));
        }
        att.send(ClientFrame::ResumeFrom { seq: 1 << 30 })
            .await
            .expect("resume");
        assert_eq!(
            att.recv().await,
            Some(ServerFrame::Notice {
                level: NoticeLevel::Warning,
                text: SNAPSHOT_LIMIT_NOTICE.into()
            })
        );
        // Offsets in the ring never count.
        att.send(ClientFrame::ResumeFrom { seq: 0 })
            .await
            .expect("resume");
        assert_eq!(next_output(&mut att).await, (0, b"hello".to_vec()));
        // A new attachment starts with a full bucket.
        drop(att);
        let mut att = s.attach();
        att.send(ClientFrame::ResumeFrom { seq: 1 << 30 })
            .await
            .expect("resume");
        assert!(matches!(
            att.recv().await,
            Some(ServerFrame::Snapshot { .. })
        ));
    }

    #[tokio::test]
    async fn a_failed_session_frees_its_screen_at_once() {
        let s = session();
        assert_eq!(s.screen_size(), (24, 80));
        s.fail(vec![ServerFrame::Notice {
            level: NoticeLevel::Error,
            text: "cannot reach host".into(),
        }]);
        assert!(s.failed());
        assert_eq!(s.phase(), Phase::Ended);
        assert_eq!(s.screen_size(), (1, 1));
        // A resize cannot bring it back.
        let att = s.attach();
        att.send(ClientFrame::Resize {
            cols: 200,
            rows: 100,
        })
        .await
        .expect("resize");
        assert_eq!(s.screen_size(), (1, 1));
    }

    #[tokio::test]
    async fn resizes_beyond_the_size_limit_are_refused() {
        let s = session();
        let mut att = s.attach();
        att.send(ClientFrame::Resize {
            cols: term::MAX_COLS + 1,
            rows: 24,
        })
        .await
        .expect("resize");
        assert!(matches!(
            att.recv().await,
            Some(ServerFrame::Notice {
                level: NoticeLevel::Warning,
                ..
            })
        ));
        assert_eq!(s.screen_size(), (24, 80));
    }

    #[tokio::test]
    async fn pause_holds_output_and_end_frames_come_last() {
        let s = session();
        let mut att = s.attach();
        att.send(ClientFrame::ResumeFrom { seq: 0 })
            .await
            .expect("resume");
        att.send(ClientFrame::Pause).await.expect("pause");
        s.push_output(b"abc").await;
        s.end(vec![ServerFrame::Exit {
            code: Some(0),
            signal: None,
        }]);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), att.recv())
                .await
                .is_err(),
            "paused"
        );
        att.send(ClientFrame::Resume).await.expect("resume");
        assert_eq!(next_output(&mut att).await, (0, b"abc".to_vec()));
        assert_eq!(
            att.recv().await,
            Some(ServerFrame::Exit {
                code: Some(0),
                signal: None
            })
        );
        assert!(s.end_seen());
        assert_eq!(att.recv().await, None);
    }
}
