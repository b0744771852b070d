//! Keystrokes and pastes to the server: encoded and sent at once while the
//! socket is open (nothing reactive on the way), kept in order while it
//! (re)connects, and control frames (size, flow, resume).
use leptos::prelude::*;

use super::connection::clamp_u16;
use super::output::{bytes_text, notice};
use super::{socket, Shared};
use crate::components::term::pending::{Pushed, MAX_PENDING_BYTES};
use crate::components::term::{BroadcastState, TabState};
use crate::protocol::term::{ClientFrame, NoticeLevel, MAX_CLIENT_FRAME_BYTES};

/// Largest input payload per frame (leaves room for the frame's own bytes).
const INPUT_CHUNK: usize = MAX_CLIENT_FRAME_BYTES - 64;

/// A send-to-all line: one `InputToAll` frame when the socket is open and
/// nothing typed earlier waits (so the recording marks it); otherwise like
/// any other input.
pub(super) fn send_to_all(live: &Shared, bytes: &[u8]) {
    let socket = socket(live);
    let clear = live.borrow().pending.is_empty();
    if socket.is_open() && clear && !bytes.is_empty() && bytes.len() <= INPUT_CHUNK {
        socket.send_bytes(&ClientFrame::InputToAll(bytes.to_vec()).encode());
        return;
    }
    // As plain input the server sends no answer: it went out behind what waited.
    let tab = live.borrow().tab;
    tab.broadcast.set(Some(BroadcastState::Sent));
    send_input(live, bytes);
}

/// Sends input now if the socket is open; while (re)connecting keeps it (up
/// to [`MAX_PENDING_BYTES`]) for when the socket opens. A tab that failed or
/// ended drops it, as its state already says.
pub(super) fn send_input(live: &Shared, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let socket = socket(live);
    if socket.is_open() {
        let (earlier, tab, was_unsent) = {
            let mut l = live.borrow_mut();
            // Normally sent by `flush_pending` already; never let new input overtake it.
            let earlier = (!l.pending.is_empty()).then(|| l.pending.take().bytes);
            (earlier, l.tab, std::mem::take(&mut l.unsent_shown))
        };
        for chunk in earlier.iter().flat_map(|e| e.chunks(INPUT_CHUNK)) {
            socket.send_bytes(&ClientFrame::encode_input(chunk));
        }
        for chunk in bytes.chunks(INPUT_CHUNK) {
            socket.send_bytes(&ClientFrame::encode_input(chunk));
        }
        // The user is typing into a live shell again: the earlier loss is old news.
        if was_unsent {
            tab.unsent.set(0);
        }
        return;
    }
    let pushed = {
        let mut l = live.borrow_mut();
        let waiting = matches!(
            l.tab.state.get_untracked(),
            TabState::Connecting | TabState::Reconnecting { .. }
        );
        if l.disposed || l.exited || !waiting {
            return;
        }
        l.pending.push(bytes)
    };
    if let Pushed::Refused { first } = pushed {
        count_unsent(live, bytes.len());
        if first {
            notice(
                live,
                NoticeLevel::Warning,
                &format!(
                    "not connected: input beyond the first {} KiB is not sent",
                    MAX_PENDING_BYTES / 1024
                ),
            );
        }
    }
}

/// After the socket opened: sends the input typed meanwhile, in order, before
/// anything typed from now on, and says what could not be kept.
pub(super) fn flush_pending(live: &Shared) {
    let flushed = live.borrow_mut().pending.take();
    let socket = socket(live);
    for chunk in flushed.bytes.chunks(INPUT_CHUNK) {
        socket.send_bytes(&ClientFrame::encode_input(chunk));
    }
    if flushed.refused > 0 {
        notice(
            live,
            NoticeLevel::Warning,
            &format!(
                "reconnected: {} of input typed meanwhile were not sent",
                bytes_text(flushed.refused)
            ),
        );
    }
}

/// `n` more bytes typed were not sent (shown on the tab until it is typed into again).
pub(super) fn count_unsent(live: &Shared, n: usize) {
    let tab = {
        let mut l = live.borrow_mut();
        l.unsent_shown = true;
        l.tab
    };
    tab.unsent.update(|u| *u = u.saturating_add(n));
}

/// Tells the server the terminal's size.
pub(super) fn send_size(live: &Shared) {
    let term = live.borrow().term.clone();
    let frame = ClientFrame::Resize {
        cols: clamp_u16(term.cols()),
        rows: clamp_u16(term.rows()),
    };
    send_frame(live, &frame);
}

/// Sends a frame if the socket is open (callers keep what must not be lost).
pub(super) fn send_frame(live: &Shared, frame: &ClientFrame) {
    socket(live).send_bytes(&frame.encode());
}
