//! Browser glue of a reconnecting socket: asks the client for a ticket, opens
//! the WebSocket, forwards its events while they are current, and waits out
//! the backoff [`Reconnect`] chooses (counting down for the user). All
//! decisions are in `policy`; the client reacts through [`Connector`].
//!
//! Borrowing rule: no `RefCell` borrow of the socket is held while calling
//! the connector or the WebSocket, so a connector may call back into the
//! socket (send, cancel, connect) from any of its methods.
use std::{cell::RefCell, future::Future, pin::Pin, rc::Rc};

use leptos::task::spawn_local;
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use super::policy::{Failure, Next, Reconnect};
use crate::components::browser;

/// A ticket request in flight (server functions are not `Send` in the browser).
pub type TicketFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>>>>;

/// Where to open the socket once a ticket is in hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketTarget {
    /// Path and query on the page's own host (`/ws?otp=…`).
    pub path: String,
    /// Subprotocol to announce, if any.
    pub protocol: Option<&'static str>,
    /// Receive binary frames as `ArrayBuffer`s (not `Blob`s).
    pub binary: bool,
}

/// What a client of [`ReconnectingSocket`] does at each step. Methods are
/// called only for the current attempt, never while the socket is borrowed.
pub trait Connector: 'static {
    /// What a successful ticket request yields.
    type Ticket: 'static;
    /// What a failed ticket request yields.
    type Error: 'static;
    /// An attempt starts (`first`: no failure since the last open): show it.
    fn attempting(&self, first: bool);
    /// Requests a ticket (the values it needs are read now, not later).
    fn fetch_ticket(&self) -> TicketFuture<Self::Ticket, Self::Error>;
    /// The ticket request failed: show why and say whether to retry.
    fn ticket_failed(&self, error: Self::Error) -> Failure;
    /// Where to open the socket with this ticket.
    fn target(&self, ticket: Self::Ticket) -> SocketTarget;
    /// The socket opened.
    fn opened(&self);
    /// A frame arrived.
    fn message(&self, ev: &MessageEvent);
    /// The socket closed: show why and say whether to retry.
    fn closed(&self, ev: &CloseEvent) -> Failure;
    /// The next attempt starts in `in_secs` seconds (called every second).
    fn waiting(&self, in_secs: u32);
}

/// The socket's event handlers, kept alive as long as the socket may call them.
struct Handlers {
    _open: Closure<dyn FnMut(Event)>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

struct Inner<C> {
    /// Generations, backoff and stop.
    policy: Reconnect,
    /// The open (or opening) socket.
    ws: Option<WebSocket>,
    /// Handlers of `ws`; replaced only outside their own calls.
    handlers: Option<Handlers>,
    /// The client.
    connector: Rc<C>,
}

/// A WebSocket that reconnects with a fresh ticket after it drops. Cheap to
/// clone (a shared handle).
pub struct ReconnectingSocket<C: Connector> {
    inner: Rc<RefCell<Inner<C>>>,
}

impl<C: Connector> Clone for ReconnectingSocket<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<C: Connector> ReconnectingSocket<C> {
    /// A socket for `connector`; nothing happens until [`Self::connect`].
    pub fn new(connector: C) -> Self {
        Self {
            inner: Rc::new(RefCell::new(Inner {
                policy: Reconnect::default(),
                ws: None,
                handlers: None,
                connector: Rc::new(connector),
            })),
        }
    }

    /// Starts a new attempt now (closing the current socket, cancelling a
    /// pending retry): ticket, then socket. Does nothing once stopped.
    pub fn connect(&self) {
        let (attempt, old, connector) = {
            let mut i = self.inner.borrow_mut();
            let Some(attempt) = i.policy.begin() else {
                return;
            };
            (attempt, i.ws.take(), Rc::clone(&i.connector))
        };
        if let Some(ws) = old {
            browser::detach_socket(&ws);
        }
        connector.attempting(attempt.first);
        let ticket = connector.fetch_ticket();
        let weak = Rc::downgrade(&self.inner);
        let generation = attempt.generation;
        spawn_local(async move {
            let ticket = ticket.await;
            let Some(inner) = weak.upgrade() else { return };
            let this = Self { inner };
            if !this.is_current(generation) {
                return;
            }
            match ticket {
                Ok(ticket) => {
                    let target = connector.target(ticket);
                    this.open(generation, target);
                }
                Err(e) => {
                    let failure = connector.ticket_failed(e);
                    this.failed(generation, failure);
                }
            }
        });
    }

    /// The user asked to retry: the backoff starts over.
    pub fn forget_failures(&self) {
        self.inner.borrow_mut().policy.forget_failures();
    }

    /// Drops the current socket and any pending retry, without stopping:
    /// [`Self::connect`] works again later.
    pub fn cancel(&self) {
        let ws = {
            let mut i = self.inner.borrow_mut();
            i.policy.cancel();
            i.ws.take()
        };
        if let Some(ws) = ws {
            browser::detach_socket(&ws);
        }
    }

    /// Closes the socket for good and frees its handlers. Call it from
    /// outside the socket's own events (component cleanup, tab disposal).
    pub fn stop(&self) {
        let (ws, handlers) = {
            let mut i = self.inner.borrow_mut();
            i.policy.stop();
            (i.ws.take(), i.handlers.take())
        };
        if let Some(ws) = ws {
            browser::detach_socket(&ws);
        }
        drop(handlers);
    }

    /// The socket, if it is open right now.
    fn open_ws(&self) -> Option<WebSocket> {
        let ws = self.inner.borrow().ws.clone()?;
        (ws.ready_state() == WebSocket::OPEN).then_some(ws)
    }

    /// Whether the socket is open.
    pub fn is_open(&self) -> bool {
        self.open_ws().is_some()
    }

    /// Sends a binary frame; `false` if the socket is not open or refused it.
    pub fn send_bytes(&self, bytes: &[u8]) -> bool {
        self.open_ws()
            .is_some_and(|ws| ws.send_with_u8_array(bytes).is_ok())
    }

    /// Sends a text frame; `false` if the socket is not open or refused it.
    pub fn send_text(&self, text: &str) -> bool {
        self.open_ws()
            .is_some_and(|ws| ws.send_with_str(text).is_ok())
    }

    fn is_current(&self, generation: u64) -> bool {
        self.inner.borrow().policy.is_current(generation)
    }

    fn connector(&self) -> Rc<C> {
        Rc::clone(&self.inner.borrow().connector)
    }

    fn open(&self, generation: u64, target: SocketTarget) {
        let url = browser::ws_url(&target.path);
        let ws = url.map(|url| match target.protocol {
            Some(protocol) => WebSocket::new_with_str(&url, protocol),
            None => WebSocket::new(&url),
        });
        let Some(Ok(ws)) = ws else {
            return self.failed(generation, Failure::Transient);
        };
        if target.binary {
            ws.set_binary_type(BinaryType::Arraybuffer);
        }
        let weak = Rc::downgrade(&self.inner);
        let w = weak.clone();
        let open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            if let Some(inner) = w.upgrade() {
                Self { inner }.on_open(generation);
            }
        });
        let w = weak.clone();
        let message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            if let Some(inner) = w.upgrade() {
                Self { inner }.on_message(generation, &ev);
            }
        });
        let w = weak;
        let close = Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
            if let Some(inner) = w.upgrade() {
                Self { inner }.on_close(generation, &ev);
            }
        });
        ws.set_onopen(Some(open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(close.as_ref().unchecked_ref()));
        // This runs in a task, never inside the old handlers: dropping them is safe.
        let old = {
            let mut i = self.inner.borrow_mut();
            i.handlers = Some(Handlers {
                _open: open,
                _message: message,
                _close: close,
            });
            i.ws.replace(ws)
        };
        if let Some(old) = old {
            browser::detach_socket(&old);
        }
    }

    fn on_open(&self, generation: u64) {
        if self.inner.borrow_mut().policy.opened(generation) {
            self.connector().opened();
        }
    }

    fn on_message(&self, generation: u64, ev: &MessageEvent) {
        if self.is_current(generation) {
            self.connector().message(ev);
        }
    }

    fn on_close(&self, generation: u64, ev: &CloseEvent) {
        if !self.is_current(generation) {
            return;
        }
        self.inner.borrow_mut().ws = None;
        let failure = self.connector().closed(ev);
        self.failed(generation, failure);
    }

    /// Asks the policy what follows a failure; waits and reconnects if it says so.
    fn failed(&self, generation: u64, failure: Failure) {
        let next = {
            let mut i = self.inner.borrow_mut();
            if i.policy.is_current(generation) {
                i.ws = None;
            }
            i.policy.failed(generation, failure, browser::random())
        };
        if let Some(Next::RetryIn { secs }) = next {
            self.retry_in(generation, secs);
        }
    }

    /// Counts `secs` down through the connector, then reconnects, unless the
    /// attempt became stale meanwhile.
    fn retry_in(&self, generation: u64, secs: u32) {
        let weak = Rc::downgrade(&self.inner);
        spawn_local(async move {
            for left in (1..=secs).rev() {
                let Some(inner) = weak.upgrade() else { return };
                let this = Self { inner };
                if !this.is_current(generation) {
                    return;
                }
                this.connector().waiting(left);
                drop(this);
                browser::sleep_ms(1000).await;
            }
            if let Some(inner) = weak.upgrade() {
                let this = Self { inner };
                if this.is_current(generation) {
                    this.connect();
                }
            }
        });
    }
}
