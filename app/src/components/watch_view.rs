//! A watcher's read-only terminal (`hydrate`): one `/ws/watch/{id}` socket
//! into an xterm.js that takes no input. The server sends the size, a
//! snapshot of the screen, then the live output; it never reconnects (the
//! page offers to watch again).
use js_sys::{ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::{prelude::*, JsCast};
use web_sys::{BinaryType, CloseEvent, HtmlElement, MessageEvent, WebSocket};

use crate::components::{browser, xterm::Terminal};
use crate::protocol::term::{NoticeLevel, ServerFrameView};

/// What the page shows about the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchState {
    /// Receiving the session live.
    Live,
    /// The watch ended (the session ended, the server dropped the watcher,
    /// or the connection broke), with the last thing the server said.
    Ended(String),
}

/// An open watch; dropping it closes the socket and the terminal.
pub struct WatchView {
    ws: WebSocket,
    term: Terminal,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for WatchView {
    fn drop(&mut self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
        self.term.dispose();
    }
}

fn set(o: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(o, &key.into(), value);
}

/// An xterm.js without input (`disableStdin`), in the terminals' colours.
fn read_only_terminal(el: &HtmlElement) -> Terminal {
    let theme = Object::new();
    set(&theme, "background", &"#0d1117".into());
    set(&theme, "foreground", &"#d6dde6".into());
    let o = Object::new();
    set(&o, "disableStdin", &true.into());
    set(&o, "cursorBlink", &false.into());
    set(&o, "fontSize", &14.into());
    set(&o, "scrollback", &5000.into());
    set(&o, "theme", &theme);
    let term = Terminal::new(&o);
    term.open(el);
    // Hook for tests: the pane knows its terminal.
    let _ = Reflect::set(el, &"xterm".into(), &term);
    term
}

/// Starts watching session `id` with ticket `otp` inside `el`; `on_state`
/// hears when the watch is live and when (and why) it ended.
pub fn start(
    el: &HtmlElement,
    id: &str,
    otp: &str,
    on_state: impl Fn(WatchState) + 'static,
) -> Result<WatchView, String> {
    let path = format!("/ws/watch/{id}?otp={}", browser::encode_query_value(otp));
    let url = browser::ws_url(&path).ok_or("no page location")?;
    let ws = WebSocket::new(&url).map_err(|e| format!("{e:?}"))?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let term = read_only_terminal(el);
    let on_state = std::rc::Rc::new(on_state);
    let last_notice = std::rc::Rc::new(std::cell::RefCell::new(None::<String>));
    let message = {
        let term = term.clone();
        let on_state = on_state.clone();
        let last_notice = last_notice.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let Ok(buf) = ev.data().dyn_into::<ArrayBuffer>() else {
                return;
            };
            let bytes = Uint8Array::new(&buf).to_vec();
            match ServerFrameView::decode(&bytes) {
                Ok(ServerFrameView::Size { cols, rows }) => {
                    term.resize(u32::from(cols), u32::from(rows));
                    on_state(WatchState::Live);
                }
                Ok(ServerFrameView::Snapshot { data, .. }) => {
                    term.reset();
                    term.write_bytes(&Uint8Array::from(data));
                }
                Ok(ServerFrameView::Output { data, .. }) => {
                    term.write_bytes(&Uint8Array::from(data));
                }
                Ok(ServerFrameView::Notice { level, text }) => {
                    let text: String = text.chars().filter(|c| !c.is_control()).collect();
                    let color = if level == NoticeLevel::Info {
                        "36"
                    } else {
                        "33"
                    };
                    term.write_text(&format!("\r\n\x1b[{color}m[termroom] {text}\x1b[0m\r\n"));
                    *last_notice.borrow_mut() = Some(text);
                }
                Ok(ServerFrameView::Exit { .. }) => {
                    term.write_text("\r\n\x1b[1;33m[the session ended]\x1b[0m\r\n");
                    *last_notice.borrow_mut() = Some("the session ended".into());
                }
                Ok(ServerFrameView::Watchers(_) | ServerFrameView::Broadcast { .. }) => {}
                Err(e) => leptos::logging::warn!("watch socket: {e}"),
            }
        })
    };
    let close = {
        let on_state = on_state.clone();
        Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
            let why = last_notice
                .borrow()
                .clone()
                .or_else(|| Some(ev.reason()).filter(|r| !r.is_empty()))
                .unwrap_or_else(|| "the connection closed".into());
            on_state(WatchState::Ended(why));
        })
    };
    ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(close.as_ref().unchecked_ref()));
    Ok(WatchView {
        ws,
        term,
        _message: message,
        _close: close,
    })
}
