//! Server frames into xterm.js: decoding, stream offsets so nothing is shown
//! twice after a reattach, flow control by write callbacks, exit and notices.
use std::rc::Rc;

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::MessageEvent;

use super::connection::session_over;
use super::{input, Shared};
use crate::components::term::flow::FlowSignal;
use crate::components::term::TabState;
use crate::protocol::term::{ClientFrame, NoticeLevel, ServerFrame};

/// Decodes a frame from the socket and acts on it.
pub(super) fn on_message(live: &Shared, ev: &MessageEvent) {
    let Ok(buf) = ev.data().dyn_into::<ArrayBuffer>() else {
        leptos::logging::warn!("terminal socket: ignoring a text frame");
        return;
    };
    match ServerFrame::decode(&Uint8Array::new(&buf).to_vec()) {
        Ok(frame) => on_frame(live, frame),
        Err(e) => leptos::logging::warn!("terminal socket: {e}"),
    }
}

fn on_frame(live: &Shared, frame: ServerFrame) {
    let this_notice = match &frame {
        ServerFrame::Notice { level, text } => Some((*level, printable(text))),
        _ => None,
    };
    let previous_notice = std::mem::replace(&mut live.borrow_mut().last_notice, this_notice);
    match frame {
        ServerFrame::Output { seq, data } => {
            let fresh = live.borrow_mut().cursor.accept(seq, &data);
            if !fresh.is_empty() {
                write_tracked(live, fresh);
            }
        }
        ServerFrame::Snapshot { seq, data } => {
            let term = live.borrow().term.clone();
            term.reset();
            live.borrow_mut().cursor.reset(seq);
            write_tracked(live, &data);
        }
        ServerFrame::Notice { level, text } => notice(live, level, &text),
        ServerFrame::Exit { code, signal } => {
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

/// Writes output to xterm.js, counting it until xterm's callback says it was
/// processed; pauses and resumes the server by watermarks.
fn write_tracked(live: &Shared, bytes: &[u8]) {
    let n = bytes.len();
    let (term, signal) = {
        let mut l = live.borrow_mut();
        (l.term.clone(), l.flow.written(n))
    };
    if let Some(signal) = signal {
        send_flow(live, signal);
    }
    let weak = Rc::downgrade(live);
    let done = Closure::<dyn FnMut()>::once_into_js(move || {
        if let Some(live) = weak.upgrade() {
            let signal = live.borrow_mut().flow.rendered(n);
            if let Some(signal) = signal {
                send_flow(&live, signal);
            }
        }
    });
    // xterm keeps the array after `write` returns: hand it its own copy.
    term.write_bytes(&Uint8Array::new_from_slice(bytes), done.unchecked_ref());
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
