//! Server frames into xterm.js: decoding (in a reused buffer; the terminal
//! bytes go to xterm.js as a view of the received frame), stream offsets so
//! nothing is shown twice after a reattach, flow control by write callbacks,
//! exit and notices.
use std::rc::Rc;

use js_sys::{ArrayBuffer, Uint8Array};
use leptos::prelude::Set;
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::MessageEvent;

use super::connection::session_over;
use super::{input, Shared};
use crate::components::term::flow::FlowSignal;
use crate::components::term::{BroadcastState, TabState};
use crate::protocol::term::{span_in, ClientFrame, NoticeLevel, ServerFrameView};

/// Largest decode buffer kept between frames: an output frame (at most
/// `MAX_OUTPUT_CHUNK`, 64 KiB) fits; the buffer of a larger snapshot is freed.
const KEEP_FRAME_BUF: usize = 128 * 1024;

/// Decodes a frame from the socket and acts on it.
pub(super) fn on_message(live: &Shared, ev: &MessageEvent) {
    let Ok(buf) = ev.data().dyn_into::<ArrayBuffer>() else {
        leptos::logging::warn!("terminal socket: ignoring a text frame");
        return;
    };
    let frame = Uint8Array::new(&buf);
    // postcard decodes from Wasm memory: copy the frame into a buffer kept
    // between frames (taken out, so no borrow is held while xterm runs).
    let mut bytes = std::mem::take(&mut live.borrow_mut().frame_buf);
    bytes.clear();
    bytes.resize(frame.length() as usize, 0);
    frame.copy_to(&mut bytes);
    match ServerFrameView::decode(&bytes) {
        Ok(view) => on_frame(live, &frame, &bytes, view),
        Err(e) => leptos::logging::warn!("terminal socket: {e}"),
    }
    if bytes.capacity() <= KEEP_FRAME_BUF {
        live.borrow_mut().frame_buf = bytes;
    }
}

/// `view` was decoded from `bytes`, the Wasm copy of the JS `frame`.
fn on_frame(live: &Shared, frame: &Uint8Array, bytes: &[u8], view: ServerFrameView<'_>) {
    let this_notice = match &view {
        ServerFrameView::Notice { level, text } => Some((*level, printable(text))),
        _ => None,
    };
    let previous_notice = std::mem::replace(&mut live.borrow_mut().last_notice, this_notice);
    match view {
        ServerFrameView::Output { seq, data } => {
            let fresh = live.borrow_mut().cursor.accept(seq, data);
            if !fresh.is_empty() {
                write_tracked(live, &js_view(frame, bytes, fresh));
            }
        }
        ServerFrameView::Snapshot { seq, data } => {
            let term = live.borrow().term.clone();
            term.reset();
            live.borrow_mut().cursor.reset(seq);
            write_tracked(live, &js_view(frame, bytes, data));
        }
        ServerFrameView::Notice { level, text } => notice(live, level, &text),
        ServerFrameView::Watchers(names) => {
            let tab = live.borrow().tab;
            tab.watchers
                .set(names.iter().map(|n| printable(n)).collect());
        }
        // Only watchers follow the owner's size.
        ServerFrameView::Size { .. } => {}
        ServerFrameView::Broadcast { blocked } => {
            let tab = live.borrow().tab;
            tab.broadcast.set(Some(match blocked {
                None => BroadcastState::Sent,
                Some(reason) => BroadcastState::Blocked(printable(&reason)),
            }));
        }
        ServerFrameView::Exit { code, signal } => {
            let (status, line) = match (code, signal) {
                (Some(code), _) => (
                    code.to_string(),
                    format!("[process exited with code {code}]"),
                ),
                (None, Some(signal)) => {
                    let signal = printable(&signal);
                    (
                        format!("signal {signal}"),
                        format!("[process killed by signal {signal}]"),
                    )
                }
                (None, None) => ("ended".to_string(), "[process exited]".to_string()),
            };
            let term = live.borrow().term.clone();
            term.write_text(&format!("\r\n\x1b[1;33m{line}\x1b[0m\r\n"));
            // An error just before the exit is its cause: the connection to
            // the target was lost, the shell did not simply end.
            let state = match previous_notice {
                Some((NoticeLevel::Error, reason)) => TabState::SessionFailed { reason },
                _ => TabState::Exited { status },
            };
            session_over(live, state);
        }
    }
}

/// The part of the received JS `frame` that `part` (a slice of `bytes`, the
/// Wasm copy of the frame) covers: a view on the frame's own buffer, so the
/// terminal bytes go back to JavaScript without another copy. The buffer
/// belongs to the message event and is never written, so xterm.js may keep
/// the view until it has parsed it.
fn js_view(frame: &Uint8Array, bytes: &[u8], part: &[u8]) -> Uint8Array {
    match span_in(bytes, part) {
        Some(span) => frame.subarray(span.start as u32, span.end as u32),
        // Not borrowed from this frame (cannot happen with postcard): copy.
        None => Uint8Array::from(part),
    }
}

/// Writes output to xterm.js and counts it until a write callback says it
/// was processed; pauses and resumes the server by watermarks. Only every
/// `ACK_EVERY` bytes (and the pausing write) carry a callback: a keystroke's
/// echo is a plain `write`.
fn write_tracked(live: &Shared, data: &Uint8Array) {
    let n = data.length() as usize;
    let (term, write) = {
        let mut l = live.borrow_mut();
        (l.term.clone(), l.flow.written(n))
    };
    if let Some(signal) = write.signal {
        send_flow(live, signal);
    }
    let Some(acked) = write.ack else {
        term.write_bytes(data);
        return;
    };
    let weak = Rc::downgrade(live);
    let done = Closure::<dyn FnMut()>::once_into_js(move || {
        if let Some(live) = weak.upgrade() {
            let signal = live.borrow_mut().flow.rendered(acked);
            if let Some(signal) = signal {
                send_flow(&live, signal);
            }
        }
    });
    term.write_bytes_then(data, done.unchecked_ref());
}

fn send_flow(live: &Shared, signal: FlowSignal) {
    let frame = match signal {
        FlowSignal::Pause => ClientFrame::Pause,
        FlowSignal::Resume => ClientFrame::Resume,
    };
    input::send_frame(live, &frame);
}

/// Writes a colored `[termroom] …` line (not part of the session's stream).
pub(super) fn notice(live: &Shared, level: NoticeLevel, text: &str) {
    let color = match level {
        NoticeLevel::Info => "36",
        NoticeLevel::Warning => "33",
        NoticeLevel::Error => "31",
    };
    let term = live.borrow().term.clone();
    term.write_text(&format!(
        "\r\n\x1b[{color}m[termroom] {}\x1b[0m\r\n",
        printable(text)
    ));
}

/// `text` without control characters, so server text cannot inject escapes.
pub(super) fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// `n` bytes as short text for notices.
pub(super) fn bytes_text(n: usize) -> String {
    if n == 1 {
        "1 byte".to_string()
    } else {
        format!("{n} bytes")
    }
}
