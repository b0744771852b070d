//! Read-only watchers of a session: the current screen first, then the live
//! output. A watcher never slows the session: it reads the output ring
//! behind the owner, and one that falls out of the ring is dropped.
use std::sync::Arc;

use app::protocol::term::{NoticeLevel, ServerFrame, MAX_OUTPUT_CHUNK};
use tokio::sync::watch;

use super::{lock, Phase, Session, MAX_WATCHERS};
use crate::term::TermError;

/// Text of the notice a watcher gets when the output outran it.
pub const WATCHER_BEHIND_NOTICE: &str =
    "stopped watching: this connection fell too far behind the session's output";

/// A read-only view of a session; dropping it ends the watch (a marker in
/// the recording, and the owner's list of watchers updated).
#[derive(Debug)]
pub struct Watcher {
    /// The session watched.
    session: Arc<Session>,
    /// Which watcher this is in the session's list.
    id: u64,
    /// Wakes `recv`.
    changed: watch::Receiver<u64>,
    /// Stream offset up to which output was handed out.
    delivered: u64,
    /// Terminal size last handed out.
    size: (u16, u16),
    /// Frames to hand out before more output (size, snapshot).
    queue: std::collections::VecDeque<ServerFrame>,
    /// Final frames already handed out.
    final_index: usize,
    /// `recv` returned `None`.
    finished: bool,
}

impl Session {
    /// Starts watching as `name`: the first frames are the size and a
    /// snapshot of the screen. `Err(TooManyWatchers)` past the limit.
    pub fn watch(self: &Arc<Self>, name: &str) -> Result<Watcher, TermError> {
        let changed = self.changed.subscribe();
        let (size, delivered, screen) = {
            let mut screen = lock(&self.screen);
            let s = lock(&self.shared);
            screen.catch_up(&s.ring);
            let (rows, cols) = screen.size();
            ((cols, rows), s.ring.head(), screen.render())
        };
        let snapshot = ServerFrame::Snapshot {
            seq: delivered,
            data: screen,
        };
        let id = self
            .add_watcher(name)
            .ok_or(TermError::TooManyWatchers(MAX_WATCHERS))?;
        Ok(Watcher {
            session: self.clone(),
            id,
            changed,
            delivered,
            size,
            queue: [
                ServerFrame::Size {
                    cols: size.0,
                    rows: size.1,
                },
                snapshot,
            ]
            .into(),
            final_index: 0,
            finished: false,
        })
    }
}

impl Watcher {
    /// The session watched.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The next frame: size changes, then output as it comes, then the
    /// session's final frames. `None` when the session ended or the watcher
    /// fell out of the ring (after a notice saying so). Cancel-safe.
    pub async fn recv(&mut self) -> Option<ServerFrame> {
        loop {
            if self.finished {
                return None;
            }
            self.changed.borrow_and_update();
            if let Some(f) = self.poll() {
                return Some(f);
            }
            if self.finished {
                return None;
            }
            if self.changed.changed().await.is_err() {
                self.finished = true;
                return None;
            }
        }
    }

    /// What can be handed out now; sets `finished` at the end.
    fn poll(&mut self) -> Option<ServerFrame> {
        if let Some(f) = self.queue.pop_front() {
            return Some(f);
        }
        let session = &self.session;
        // Lock order: screen before shared.
        let (rows, cols) = session.screen_size();
        let s = lock(&session.shared);
        if (cols, rows) != self.size && !s.failed {
            self.size = (cols, rows);
            return Some(ServerFrame::Size { cols, rows });
        }
        if self.delivered < s.ring.tail() {
            self.finished = true;
            return Some(ServerFrame::Notice {
                level: NoticeLevel::Warning,
                text: WATCHER_BEHIND_NOTICE.into(),
            });
        }
        if self.delivered < s.ring.head() {
            let data = s.ring.read(self.delivered, MAX_OUTPUT_CHUNK)?;
            let seq = self.delivered;
            self.delivered += data.len() as u64;
            return Some(ServerFrame::Output { seq, data });
        }
        if s.phase == Phase::Ended {
            if let Some(f) = s.final_frames.get(self.final_index) {
                self.final_index += 1;
                return Some(f.clone());
            }
            self.finished = true;
        }
        None
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.session.remove_watcher(self.id);
    }
}
