//! One terminal tab in the browser: the state its parts share ([`Live`]),
//! starting it, the page's [`TermCmd`]s, and disposal.
//!
//! The parts: [`terminal`] (the xterm.js instance and its handlers),
//! [`connection`] (the tab's side of the shared reconnecting socket: tickets,
//! reattach, how a tab fails or ends), [`output`] (server frames into xterm.js
//! with flow control) and [`input`] (keystrokes and pastes to the server,
//! kept while reconnecting).
//!
//! Borrowing rule: never hold a `RefCell` borrow of [`Live`] while calling into
//! xterm.js or the socket, because xterm may call back synchronously (a write
//! callback right after user input, `onData` during `paste`, `onResize`
//! during `fit`) and the socket calls the connection's hooks.
use std::{
    cell::RefCell,
    rc::{Rc, Weak},
};

use leptos::prelude::*;
use web_sys::HtmlElement;

use super::flow::{Cursor, Watermarks};
use super::paste::{neutralize_markers, sanitize_input};
use super::pending::PendingInput;
use super::{Sink, TermCmd, TermTab};
use crate::components::socket::ReconnectingSocket;
use crate::components::xterm::{read_clipboard, FitAddon, ResizeObserver, SearchAddon, Terminal};
use crate::protocol::term::NoticeLevel;

mod connection;
mod input;
mod output;
mod terminal;

use connection::TabLink;

/// Everything one tab's terminal owns.
struct Live {
    tab: TermTab,
    /// The pane element hosting the terminal.
    pane: HtmlElement,
    term: Terminal,
    fit: FitAddon,
    search: SearchAddon,
    observer: Option<ResizeObserver>,
    /// The terminal socket (reconnects by itself while the session lives).
    socket: ReconnectingSocket<TabLink>,
    /// Handlers registered on xterm.js and the pane.
    term_handlers: Option<terminal::Handlers>,
    /// Next expected stream offset.
    cursor: Cursor,
    /// Unrendered bytes and whether the server was asked to pause.
    flow: Watermarks,
    /// Input typed while the socket is not open, sent once it opens.
    pending: PendingInput,
    /// `tab.unsent` is not 0: the keystroke path then clears it. A plain
    /// copy, so typing into a live shell reads no signal.
    unsent_shown: bool,
    /// Reused buffer a received frame is copied into for decoding.
    frame_buf: Vec<u8>,
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
type WeakShared = Weak<RefCell<Live>>;

/// Creates the terminal inside `el`, opens or reattaches the session, and
/// returns where the page sends [`TermCmd`]s.
pub(super) fn start(tab: TermTab, el: HtmlElement, on_input: Callback<(u64, String)>) -> Sink {
    let parts = terminal::create(&el);
    let live = Rc::new_cyclic(|weak: &WeakShared| {
        RefCell::new(Live {
            tab,
            pane: el.clone(),
            term: parts.term,
            fit: parts.fit,
            search: parts.search,
            observer: None,
            socket: ReconnectingSocket::new(TabLink::new(weak.clone())),
            term_handlers: None,
            cursor: Cursor::default(),
            flow: Watermarks::default(),
            pending: PendingInput::default(),
            unsent_shown: false,
            frame_buf: Vec::new(),
            last_notice: None,
            exited: false,
            disposed: false,
        })
    });
    terminal::wire(&live, &el, on_input, parts.context_loss);
    socket(&live).connect();
    Rc::new(move |cmd| command(&live, cmd))
}

/// The tab's socket handle (cloned out, so no borrow is held while using it).
fn socket(live: &Shared) -> ReconnectingSocket<TabLink> {
    live.borrow().socket.clone()
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
        TermCmd::Input(text) => input::send_input(live, sanitize_input(&text).as_bytes()),
        TermCmd::SendToAll(text) => input::send_to_all(live, sanitize_input(&text).as_bytes()),
        TermCmd::Focus => term.focus(),
        TermCmd::Fit => terminal::fit(live),
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
            let found = terminal::find(&search, &text, forward, incremental);
            tab.search_miss.set(!found);
        }
        TermCmd::ClearFind => {
            search.clear_decorations();
            tab.search_miss.set(false);
        }
        TermCmd::Copy => terminal::copy_selection(live),
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
            if live.borrow().exited {
                return;
            }
            let socket = socket(live);
            socket.forget_failures();
            socket.connect();
        }
        TermCmd::Ended(state) => connection::ended(live, state),
        TermCmd::Dispose => dispose(live),
    }
}

fn dispose(live: &Shared) {
    let (socket, term, observer, pane) = {
        let mut l = live.borrow_mut();
        if l.disposed {
            return;
        }
        l.disposed = true;
        (
            l.socket.clone(),
            l.term.clone(),
            l.observer.take(),
            l.pane.clone(),
        )
    };
    if let Some(h) = live.borrow().term_handlers.as_ref() {
        h.remove_from(&pane);
    }
    socket.stop();
    if let Some(observer) = observer {
        observer.disconnect();
    }
    term.dispose();
    // Nothing can call the handlers any more: free them.
    let handlers = live.borrow_mut().term_handlers.take();
    drop(handlers);
}
