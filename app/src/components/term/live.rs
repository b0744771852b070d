//! The browser side of one terminal tab: an xterm.js instance with its addons,
//! the binary socket to `/ws/term/{id}`, stream offsets (no duplicate output
//! after a reconnect), flow control by xterm's write callbacks, reconnects
//! with backoff while the session lives (input typed meanwhile is kept and
//! sent after reattach), and pastes made safe (`paste`).
//!
//! Borrowing rule: never hold a `RefCell` borrow of [`Live`] while calling into
//! xterm.js or the socket, because xterm may call back synchronously (a write
//! callback right after user input, `onData` during `paste`, `onResize`
//! during `fit`).
use std::{
    cell::RefCell,
    rc::{Rc, Weak},
};

use js_sys::{Object, Reflect, Uint8Array};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use web_sys::{BinaryType, CloseEvent, Event, HtmlElement, KeyboardEvent, MessageEvent, WebSocket};

use super::flow::{Cursor, FlowSignal, Watermarks};
use super::paste::{neutralize_markers, sanitize_input};
use super::pending::{PendingInput, Pushed, MAX_PENDING_BYTES};
use super::{Sink, TabState, TermCmd, TermTab};
use crate::api::{attach_terminal, open_terminal};
use crate::components::xterm::{
    copy_to_clipboard, pasted_text, read_clipboard, FitAddon, PasteEvent, ResizeObserver,
    SearchAddon, Terminal, Unicode11Addon, WebLinksAddon, WebglAddon,
};
use crate::components::{browser, socket::backoff};
use crate::error::ApiError;
use crate::model::TermTicket;
use crate::protocol::term::{ClientFrame, NoticeLevel, ServerFrame, MAX_CLIENT_FRAME_BYTES};

/// Largest input payload per frame (leaves room for the frame's own bytes).
const INPUT_CHUNK: usize = MAX_CLIENT_FRAME_BYTES - 64;

/// Handlers of the current socket.
struct SocketHandlers {
    _open: Closure<dyn FnMut(Event)>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

/// Handlers registered on xterm.js and the page; live as long as the terminal.
struct TermHandlers {
    _data: Closure<dyn FnMut(String)>,
    _resize: Closure<dyn FnMut(JsValue)>,
    _keys: Closure<dyn FnMut(KeyboardEvent) -> bool>,
    _observer: Closure<dyn FnMut()>,
    _context_loss: Option<Closure<dyn FnMut()>>,
    /// Capture-phase `paste` listener on the pane (removed on dispose).
    paste: Closure<dyn FnMut(PasteEvent)>,
}

/// Everything one tab's terminal owns.
struct Live {
    tab: TermTab,
    /// The pane element hosting the terminal.
    pane: HtmlElement,
    term: Terminal,
    fit: FitAddon,
    search: SearchAddon,
    observer: Option<ResizeObserver>,
    ws: Option<WebSocket>,
    socket_handlers: Option<SocketHandlers>,
    term_handlers: Option<TermHandlers>,
    /// Next expected stream offset.
    cursor: Cursor,
    /// Unrendered bytes and whether the server was asked to pause.
    flow: Watermarks,
    /// Connection generation: events of older sockets and timers are ignored.
    generation: u64,
    /// Failed attempts since the last successful open.
    attempt: u32,
    /// Input typed while the socket is not open, sent once it opens.
    pending: PendingInput,
    /// The last frame of this connection was a notice (level, text): when the
    /// server then closes cleanly, the notice says why (session closed,
    /// replaced by another tab, could not connect) and retrying is wrong.
    last_notice: Option<(NoticeLevel, String)>,
    /// The shell ended: never reconnect.
    exited: bool,
    /// The tab closed: do nothing any more.
    disposed: bool,
}

type Shared = Rc<RefCell<Live>>;

/// Creates the terminal inside `el`, opens or reattaches the session, and
/// returns where the page sends [`TermCmd`]s.
pub(super) fn start(tab: TermTab, el: HtmlElement, on_input: Callback<(u64, String)>) -> Sink {
    let term = Terminal::new(&options());
    term.open(&el);
    let fit = FitAddon::new();
    load_addon(&term, &fit, "fit");
    let unicode = Unicode11Addon::new();
    if load_addon(&term, &unicode, "unicode11") {
        let _ = Reflect::set(&term.unicode(), &"activeVersion".into(), &"11".into());
    }
    load_addon(&term, &WebLinksAddon::new(), "web-links");
    let search = SearchAddon::new();
    load_addon(&term, &search, "search");
    let context_loss = load_webgl(&term);
    // Hook for tests and debugging: the pane element knows its terminal.
    let _ = Reflect::set(&el, &"xterm".into(), &term);
    let _ = fit.fit();

    let live = Rc::new(RefCell::new(Live {
        tab,
        pane: el.clone(),
        term,
        fit,
        search,
        observer: None,
        ws: None,
        socket_handlers: None,
        term_handlers: None,
        cursor: Cursor::default(),
        flow: Watermarks::default(),
        generation: 0,
        attempt: 0,
        pending: PendingInput::default(),
        last_notice: None,
        exited: false,
        disposed: false,
    }));
    wire_terminal(&live, &el, on_input, context_loss);
    connect(&live);
    Rc::new(move |cmd| command(&live, cmd))
}

fn options() -> Object {
    let theme = Object::new();
    set(&theme, "background", &"#0d1117".into());
    set(&theme, "foreground", &"#d6dde6".into());
    set(&theme, "cursor", &"#f2c35b".into());
    set(&theme, "selectionBackground", &"#3b5b8c".into());
    let o = Object::new();
    set(&o, "cursorBlink", &true.into());
    set(&o, "fontSize", &14.into());
    set(
        &o,
        "fontFamily",
        &"ui-monospace, 'DejaVu Sans Mono', 'Cascadia Mono', Menlo, Consolas, monospace".into(),
    );
    set(&o, "scrollback", &5000.into());
    // `unicode.activeVersion` is a proposed API.
    set(&o, "allowProposedApi", &true.into());
    set(&o, "macOptionIsMeta", &true.into());
    set(&o, "theme", &theme);
    o
}

fn set(o: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(o, &key.into(), value);
}

fn load_addon(term: &Terminal, addon: &JsValue, name: &str) -> bool {
    match term.load_addon(addon) {
        Ok(()) => true,
        Err(e) => {
            leptos::logging::warn!("xterm addon {name} not loaded: {e:?}");
            false
        }
    }
}

/// Uses the WebGL renderer when the browser can; otherwise (or once the GPU
/// context is lost) xterm keeps its DOM renderer.
fn load_webgl(term: &Terminal) -> Option<Closure<dyn FnMut()>> {
    let addon = WebglAddon::new().ok()?;
    if term.load_addon(&addon).is_err() {
        return None;
    }
    let lost = addon.clone();
    let on_loss = Closure::<dyn FnMut()>::new(move || lost.dispose());
    addon.on_context_loss(on_loss.as_ref().unchecked_ref());
    Some(on_loss)
}

fn wire_terminal(
    live: &Shared,
    el: &HtmlElement,
    on_input: Callback<(u64, String)>,
    context_loss: Option<Closure<dyn FnMut()>>,
) {
    let weak = Rc::downgrade(live);
    let (term, key) = {
        let l = live.borrow();
        (l.term.clone(), l.tab.key)
    };

    let w = weak.clone();
    let data = Closure::<dyn FnMut(String)>::new(move |data: String| {
        let Some(live) = w.upgrade() else { return };
        // A paste arrives here whole; whatever path it took into xterm.js,
        // markers inside it must not end it early.
        let data = sanitize_input(&data).into_owned();
        send_input(&live, data.as_bytes());
        on_input.run((key, data));
    });
    term.on_data(data.as_ref().unchecked_ref());

    // A paste holding a bracketed-paste marker is taken from xterm.js before
    // its own handler (capture phase on the pane) and pasted neutralised, so
    // the marker is gone even when bracketed paste is off. Clean pastes go
    // the usual way.
    let w = weak.clone();
    let paste = Closure::<dyn FnMut(PasteEvent)>::new(move |ev: PasteEvent| {
        let Some(text) = pasted_text(&ev) else { return };
        let std::borrow::Cow::Owned(clean) = neutralize_markers(&text) else {
            return;
        };
        ev.prevent_default();
        ev.stop_propagation();
        if let Some(live) = w.upgrade() {
            let term = live.borrow().term.clone();
            term.paste(&clean);
        }
    });
    let _ =
        el.add_event_listener_with_callback_and_bool("paste", paste.as_ref().unchecked_ref(), true);

    let w = weak.clone();
    let resize = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
        if let Some(live) = w.upgrade() {
            send_size(&live);
        }
    });
    term.on_resize(resize.as_ref().unchecked_ref());

    let w = weak.clone();
    let keys = Closure::<dyn FnMut(KeyboardEvent) -> bool>::new(move |ev: KeyboardEvent| {
        if !(ev.ctrl_key() && ev.shift_key()) {
            return true;
        }
        match ev.code().as_str() {
            // Ctrl+Shift+C copies (the browser would open its inspector).
            "KeyC" => {
                if ev.type_() == "keydown" {
                    ev.prevent_default();
                    if let Some(live) = w.upgrade() {
                        copy_selection(&live);
                    }
                }
                false
            }
            // Ctrl+Shift+V: let the browser paste into xterm's textarea.
            "KeyV" => false,
            _ => true,
        }
    });
    term.attach_custom_key_event_handler(keys.as_ref().unchecked_ref());

    let w = weak;
    let observed = Closure::<dyn FnMut()>::new(move || {
        if let Some(live) = w.upgrade() {
            fit(&live);
        }
    });
    let observer = ResizeObserver::new(observed.as_ref().unchecked_ref()).ok();
    if let Some(o) = &observer {
        o.observe(el);
    }

    let mut l = live.borrow_mut();
    l.observer = observer;
    l.term_handlers = Some(TermHandlers {
        _data: data,
        _resize: resize,
        _keys: keys,
        _observer: observed,
        _context_loss: context_loss,
        paste,
    });
}

fn command(live: &Shared, cmd: TermCmd) {
    let (term, search, tab) = {
        let l = live.borrow();
        if l.disposed {
            return;
        }
        (l.term.clone(), l.search.clone(), l.tab)
    };
    match cmd {
        TermCmd::Input(text) => send_input(live, sanitize_input(&text).as_bytes()),
        TermCmd::Focus => term.focus(),
        TermCmd::Fit => fit(live),
        TermCmd::Find {
            text,
            forward,
            incremental,
        } => {
            if text.is_empty() {
                search.clear_decorations();
                tab.search_miss.set(false);
                return;
            }
            let opts = Object::new();
            set(&opts, "incremental", &incremental.into());
            let found = if forward {
                search.find_next(&text, &opts)
            } else {
                search.find_previous(&text, &opts)
            };
            tab.search_miss.set(!found);
        }
        TermCmd::ClearFind => {
            search.clear_decorations();
            tab.search_miss.set(false);
        }
        TermCmd::Copy => copy_selection(live),
        TermCmd::Paste => {
            let weak = Rc::downgrade(live);
            read_clipboard(move |text| {
                let term = weak.upgrade().map(|l| l.borrow().term.clone());
                if let Some(term) = term {
                    term.paste(&neutralize_markers(&text));
                    term.focus();
                }
            });
        }
        TermCmd::Reconnect => {
            {
                let mut l = live.borrow_mut();
                if l.exited {
                    return;
                }
                l.attempt = 0;
            }
            connect(live);
        }
        TermCmd::Ended(state) => ended(live, state),
        TermCmd::Dispose => dispose(live),
    }
}

fn fit(live: &Shared) {
    let fit = live.borrow().fit.clone();
    let _ = fit.fit();
}

fn copy_selection(live: &Shared) {
    let term = live.borrow().term.clone();
    if term.has_selection() {
        copy_to_clipboard(&term.get_selection());
    }
}

fn is_current(live: &Shared, generation: u64) -> bool {
    let l = live.borrow();
    !l.disposed && l.generation == generation
}

/// Gets a ticket (opening the session the first time, attaching afterwards),
/// then opens the socket.
fn connect(live: &Shared) {
    let (generation, tab, cols, rows, first) = {
        let mut l = live.borrow_mut();
        if l.disposed || l.exited {
            return;
        }
        l.generation += 1;
        let ws = l.ws.take();
        drop(l);
        if let Some(ws) = ws {
            crate::components::browser::detach_socket(&ws);
        }
        let l = live.borrow();
        (
            l.generation,
            l.tab,
            l.term.cols(),
            l.term.rows(),
            l.attempt == 0,
        )
    };
    tab.state.set(if first {
        TabState::Connecting
    } else {
        TabState::Reconnecting { in_secs: 0 }
    });
    let session = tab.session_id.get_untracked();
    let target = tab.target.get_value();
    let weak = Rc::downgrade(live);
    spawn_local(async move {
        let reattach = session.is_some();
        let ticket = match session {
            Some(id) => attach_terminal(id).await,
            None => open_terminal(target, clamp_u16(cols), clamp_u16(rows)).await,
        };
        let Some(live) = weak.upgrade() else { return };
        if !is_current(&live, generation) {
            return;
        }
        match ticket {
            Ok(ticket) => open_socket(&live, generation, ticket),
            Err(e) => ticket_failed(&live, generation, reattach, e),
        }
    });
}

fn clamp_u16(n: u32) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX).max(1)
}

fn ticket_failed(live: &Shared, generation: u64, reattach: bool, err: ApiError) {
    match err {
        ApiError::NotFound(_) if reattach => {
            notice(live, NoticeLevel::Warning, "this session has ended");
            session_over(
                live,
                TabState::Exited {
                    status: "ended".into(),
                },
            );
        }
        ApiError::Unauthorized => {
            notice(
                live,
                NoticeLevel::Error,
                "you are signed out; log in again to reattach",
            );
            stopped(
                live,
                TabState::Failed {
                    reason: "signed out".into(),
                },
            );
        }
        // Opening again could start a second shell: let the user decide.
        e if !reattach
            || matches!(
                e,
                ApiError::Forbidden | ApiError::Invalid(_) | ApiError::NotFound(_)
            ) =>
        {
            notice(live, NoticeLevel::Error, &e.to_string());
            stopped(
                live,
                TabState::Failed {
                    reason: e.to_string(),
                },
            );
        }
        _ => retry_later(live, generation),
    }
}

fn open_socket(live: &Shared, generation: u64, ticket: TermTicket) {
    let tab = live.borrow().tab;
    if tab.session_id.get_untracked().as_deref() != Some(ticket.session_id.as_str()) {
        tab.session_id.set(Some(ticket.session_id.clone()));
    }
    let path = format!(
        "/ws/term/{}?otp={}",
        browser::encode_query_value(&ticket.session_id),
        browser::encode_query_value(&ticket.otp)
    );
    let ws = match browser::ws_url(&path).map(|url| WebSocket::new(&url)) {
        Some(Ok(ws)) => ws,
        _ => return retry_later(live, generation),
    };
    ws.set_binary_type(BinaryType::Arraybuffer);
    let weak = Rc::downgrade(live);
    let w = weak.clone();
    let open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
        if let Some(live) = w.upgrade() {
            on_open(&live, generation);
        }
    });
    let w = weak.clone();
    let message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        if let Some(live) = w.upgrade() {
            on_message(&live, generation, &ev);
        }
    });
    let w = weak;
    let close = Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
        if let Some(live) = w.upgrade() {
            on_close(&live, generation, &ev);
        }
    });
    ws.set_onopen(Some(open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(close.as_ref().unchecked_ref()));
    // Runs in a task, never inside the old handlers: dropping them is safe.
    let old = {
        let mut l = live.borrow_mut();
        l.socket_handlers = Some(SocketHandlers {
            _open: open,
            _message: message,
            _close: close,
        });
        l.ws.replace(ws)
    };
    if let Some(old) = old {
        crate::components::browser::detach_socket(&old);
    }
}

fn on_open(live: &Shared, generation: u64) {
    if !is_current(live, generation) {
        return;
    }
    let (tab, next, paused) = {
        let mut l = live.borrow_mut();
        l.attempt = 0;
        l.last_notice = None;
        (l.tab, l.cursor.next(), l.flow.paused())
    };
    send_frame(live, &ClientFrame::ResumeFrom { seq: next });
    if paused {
        send_frame(live, &ClientFrame::Pause);
    }
    send_size(live);
    // Input typed while disconnected, in order, before anything typed from now on.
    let flushed = live.borrow_mut().pending.take();
    for chunk in flushed.bytes.chunks(INPUT_CHUNK) {
        send_frame(live, &ClientFrame::Input(chunk.to_vec()));
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
    tab.state.set(TabState::Live);
}

fn on_message(live: &Shared, generation: u64, ev: &MessageEvent) {
    if !is_current(live, generation) {
        return;
    }
    let Ok(buf) = ev.data().dyn_into::<js_sys::ArrayBuffer>() else {
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

/// Close codes that refuse this client for good: a policy refusal or an
/// application-defined code.
fn refused(code: u16) -> bool {
    code == 1008 || (4000..=4999).contains(&code)
}

fn on_close(live: &Shared, generation: u64, ev: &CloseEvent) {
    if !is_current(live, generation) {
        return;
    }
    let (exited, last_notice) = {
        let mut l = live.borrow_mut();
        l.ws = None;
        (l.exited, l.last_notice.take())
    };
    if exited {
        return;
    }
    if refused(ev.code()) {
        let reason = printable(&ev.reason());
        let reason = if reason.is_empty() {
            "disconnected by the server".to_string()
        } else {
            reason
        };
        notice(live, NoticeLevel::Warning, &reason);
        stopped(live, TabState::Failed { reason });
        return;
    }
    // A notice followed by a clean close is the server ending this attachment
    // on purpose (session closed, replaced by another tab, could not connect;
    // the notice is on screen already). Only lost connections are retried.
    // Errors are the session's own end (its target could not be reached).
    match last_notice.filter(|_| ev.was_clean()) {
        Some((NoticeLevel::Info, _)) => session_over(
            live,
            TabState::Exited {
                status: "ended".into(),
            },
        ),
        Some((NoticeLevel::Error, reason)) => {
            session_over(live, TabState::SessionFailed { reason })
        }
        Some((_, reason)) => stopped(live, TabState::Failed { reason }),
        None => retry_later(live, generation),
    }
}

/// The session ended for good (`state` says how): never reconnect.
fn session_over(live: &Shared, state: TabState) {
    live.borrow_mut().exited = true;
    stopped(live, state);
}

/// The tab stops trying (for now, or for good): input kept for a reattach
/// that will not come is dropped, and the user is told.
fn stopped(live: &Shared, state: TabState) {
    let (tab, flushed) = {
        let mut l = live.borrow_mut();
        (l.tab, l.pending.take())
    };
    let lost = flushed.bytes.len() + flushed.refused;
    if lost > 0 {
        notice(
            live,
            NoticeLevel::Warning,
            &format!(
                "{} of input typed while disconnected were not sent",
                bytes_text(lost)
            ),
        );
        tab.unsent.update(|n| *n = n.saturating_add(lost));
    }
    tab.state.set(state);
}

/// The page learned from the server's session list that the session ended.
fn ended(live: &Shared, state: TabState) {
    let ws = {
        let mut l = live.borrow_mut();
        if l.exited {
            // Already over (shown as exited): only the cause is news.
            let tab = l.tab;
            drop(l);
            tab.state.set(state);
            return;
        }
        // Cancels a pending retry and ignores the old socket's events.
        l.generation += 1;
        l.ws.take()
    };
    if let Some(ws) = ws {
        browser::detach_socket(&ws);
    }
    notice(live, NoticeLevel::Warning, &state.detail());
    session_over(live, state);
}

/// `n` bytes as short text for notices.
fn bytes_text(n: usize) -> String {
    if n == 1 {
        "1 byte".to_string()
    } else {
        format!("{n} bytes")
    }
}

/// Waits the backoff delay (counting down in the tab title), then reconnects.
fn retry_later(live: &Shared, generation: u64) {
    let (tab, attempt) = {
        let mut l = live.borrow_mut();
        l.ws = None;
        l.attempt += 1;
        (l.tab, l.attempt)
    };
    let delay = backoff::delay_secs(attempt, browser::random());
    let weak = Rc::downgrade(live);
    spawn_local(async move {
        for left in (1..=delay).rev() {
            if !weak.upgrade().is_some_and(|l| is_current(&l, generation)) {
                return;
            }
            tab.state.set(TabState::Reconnecting { in_secs: left });
            browser::sleep_ms(1000).await;
        }
        if let Some(live) = weak.upgrade() {
            if is_current(&live, generation) {
                connect(&live);
            }
        }
    });
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
    let weak: Weak<RefCell<Live>> = Rc::downgrade(live);
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
    send_frame(live, &frame);
}

fn send_size(live: &Shared) {
    let term = live.borrow().term.clone();
    let frame = ClientFrame::Resize {
        cols: clamp_u16(term.cols()),
        rows: clamp_u16(term.rows()),
    };
    send_frame(live, &frame);
}

/// Sends input now if the socket is open; while (re)connecting keeps it (up
/// to [`MAX_PENDING_BYTES`]) for when the socket opens. A tab that failed or
/// ended drops it, as its state already says.
fn send_input(live: &Shared, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if socket_open(live) {
        // Normally sent by `on_open` already; never let new input overtake it.
        let earlier = live.borrow_mut().pending.take().bytes;
        for chunk in earlier.chunks(INPUT_CHUNK).chain(bytes.chunks(INPUT_CHUNK)) {
            send_frame(live, &ClientFrame::Input(chunk.to_vec()));
        }
        let tab = live.borrow().tab;
        // The user is typing into a live shell again: the earlier loss is old news.
        if tab.unsent.get_untracked() != 0 {
            tab.unsent.set(0);
        }
        return;
    }
    let (tab, pushed) = {
        let mut l = live.borrow_mut();
        let waiting = matches!(
            l.tab.state.get_untracked(),
            TabState::Connecting | TabState::Reconnecting { .. }
        );
        if l.disposed || l.exited || !waiting {
            return;
        }
        (l.tab, l.pending.push(bytes))
    };
    if let Pushed::Refused { first } = pushed {
        tab.unsent.update(|n| *n = n.saturating_add(bytes.len()));
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

fn socket_open(live: &Shared) -> bool {
    live.borrow()
        .ws
        .as_ref()
        .is_some_and(|ws| ws.ready_state() == WebSocket::OPEN)
}

/// Sends a frame if the socket is open (callers keep what must not be lost).
fn send_frame(live: &Shared, frame: &ClientFrame) {
    let ws = live.borrow().ws.clone();
    if let Some(ws) = ws {
        if ws.ready_state() == WebSocket::OPEN {
            let _ = ws.send_with_u8_array(&frame.encode());
        }
    }
}

/// Writes a colored `[termroom] …` line (not part of the session's stream).
fn notice(live: &Shared, level: NoticeLevel, text: &str) {
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
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

fn dispose(live: &Shared) {
    let (ws, term, observer, pane) = {
        let mut l = live.borrow_mut();
        if l.disposed {
            return;
        }
        l.disposed = true;
        l.generation += 1;
        (
            l.ws.take(),
            l.term.clone(),
            l.observer.take(),
            l.pane.clone(),
        )
    };
    if let Some(h) = live.borrow().term_handlers.as_ref() {
        let _ = pane.remove_event_listener_with_callback_and_bool(
            "paste",
            h.paste.as_ref().unchecked_ref(),
            true,
        );
    }
    if let Some(ws) = ws {
        crate::components::browser::detach_socket(&ws);
    }
    if let Some(observer) = observer {
        observer.disconnect();
    }
    term.dispose();
    // Nothing can call the handlers any more: free them.
    let handlers = {
        let mut l = live.borrow_mut();
        (l.socket_handlers.take(), l.term_handlers.take())
    };
    drop(handlers);
}
