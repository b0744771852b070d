//! The chat client: one `/ws` socket (rich protocol, a fresh ticket for every
//! connect, reconnects by the shared [`ReconnectingSocket`]), per-room message
//! logs, and backfill on rejoin (`change_room { since: last_id }`) so missed messages
//! arrive and none is shown twice. [`use_chat_client`] starts it in an effect
//! (browser only) and closes the socket when the component goes away.
//! The composer's draft stays until the server's echo confirms the message
//! ([`Outbox`]); a refused message keeps its text and shows why.
use std::collections::{HashMap, VecDeque};

use leptos::prelude::*;
use web_sys::{CloseEvent, MessageEvent};

use crate::api::chat_ticket;
use crate::components::{
    browser,
    chat_log::{Line, RoomLog},
    socket::{Connector, Failure, ReconnectingSocket, SocketTarget, TicketFuture},
};
use crate::error::ApiError;
use crate::protocol::chat::{
    valid_room_name, ClientMsg, ServerMsg, DEFAULT_ROOM, MAX_MESSAGE_CHARS, RICH_PROTOCOL,
};

/// Where the chat connection stands, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Getting a ticket or waiting for the socket to open.
    Connecting,
    /// The socket is open.
    Online,
    /// The socket dropped; the next attempt starts in `in_secs` seconds.
    Reconnecting { in_secs: u32 },
    /// The login session ended; the page is going to the login form.
    SignedOut,
}

impl ConnState {
    /// Short text for the status badge.
    pub fn label(&self) -> String {
        match self {
            ConnState::Connecting => "connecting…".into(),
            ConnState::Online => "online".into(),
            ConnState::Reconnecting { in_secs } => format!("reconnecting in {in_secs} s"),
            ConnState::SignedOut => "signed out".into(),
        }
    }

    /// Stable name for CSS classes and `data-state`.
    pub fn key(&self) -> &'static str {
        match self {
            ConnState::Connecting => "connecting",
            ConnState::Online => "online",
            ConnState::Reconnecting { .. } => "reconnecting",
            ConnState::SignedOut => "signed-out",
        }
    }
}

/// Requests sent and not answered yet; kept at most this many (a socket that
/// never answers would otherwise grow it without bound).
const MAX_AWAITING: usize = 64;

/// A request whose answer is awaited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `send_message` with this text.
    Send(String),
    /// `change_room`.
    Join,
}

/// What a frame from the server settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The message with this text was stored (the draft may go).
    Sent(String),
    /// The message with this text was refused (the draft stays).
    Refused(String),
    /// Nothing about a message.
    Nothing,
}

/// Requests in the order sent. The server answers each in that order:
/// `send_message` with the sender's own `new_message` or an `error`,
/// `change_room` with `joined` or an `error`; the first `joined` of a
/// connection is the automatic join, no answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outbox {
    awaiting: VecDeque<Request>,
    /// The automatic first `joined` of this connection has not arrived yet.
    initial_join: bool,
}

impl Outbox {
    /// A new socket opened: earlier requests will never be answered; returns
    /// the texts of messages that were not confirmed.
    pub fn connected(&mut self) -> Vec<String> {
        self.initial_join = true;
        self.forget()
    }

    /// The socket closed: returns the texts of messages not confirmed.
    pub fn forget(&mut self) -> Vec<String> {
        self.awaiting
            .drain(..)
            .filter_map(|r| match r {
                Request::Send(t) => Some(t),
                Request::Join => None,
            })
            .collect()
    }

    /// A request was sent.
    pub fn sent(&mut self, request: Request) {
        if self.awaiting.len() >= MAX_AWAITING {
            self.awaiting.pop_front();
        }
        self.awaiting.push_back(request);
    }

    /// Whether a message with this text is on its way.
    pub fn is_sending(&self, text: &str) -> bool {
        self.awaiting
            .iter()
            .any(|r| matches!(r, Request::Send(t) if t == text))
    }

    /// Messages on their way.
    pub fn sending(&self) -> usize {
        self.awaiting
            .iter()
            .filter(|r| matches!(r, Request::Send(_)))
            .count()
    }

    /// A message of ours arrived (also one sent from another tab).
    pub fn echoed(&mut self, text: &str) -> Settled {
        match self.awaiting.front() {
            Some(Request::Send(t)) if t == text => {
                self.awaiting.pop_front();
                Settled::Sent(text.to_string())
            }
            _ => Settled::Nothing,
        }
    }

    /// A `joined` arrived. Messages sent before the join were accepted (their
    /// echo is dropped when the room changes before it is written).
    pub fn joined(&mut self) -> Vec<String> {
        if std::mem::take(&mut self.initial_join) {
            return Vec::new();
        }
        let mut sent = Vec::new();
        while let Some(r) = self.awaiting.pop_front() {
            match r {
                Request::Send(t) => sent.push(t),
                Request::Join => break,
            }
        }
        sent
    }

    /// An `error` arrived: it answers the oldest request.
    pub fn refused(&mut self) -> Settled {
        match self.awaiting.pop_front() {
            Some(Request::Send(t)) => Settled::Refused(t),
            _ => Settled::Nothing,
        }
    }
}

/// Browser-side state that is not shown directly.
struct Inner {
    /// The `/ws` connection (reconnects by itself; stopped on cleanup).
    socket: ReconnectingSocket<ChatClient>,
    /// Every room seen in this page, by name.
    logs: HashMap<String, RoomLog>,
    /// The room the user wants to be in (re-joined after a reconnect).
    desired: String,
    /// Requests awaiting their answer (the draft's fate).
    outbox: Outbox,
}

impl Inner {
    fn new(client: ChatClient) -> Self {
        Self {
            socket: ReconnectingSocket::new(client),
            logs: HashMap::new(),
            desired: DEFAULT_ROOM.to_string(),
            outbox: Outbox::default(),
        }
    }
}

/// Handle to the chat connection: reactive state for the views plus actions.
#[derive(Clone, Copy)]
pub struct ChatClient {
    state: RwSignal<ConnState>,
    me: RwSignal<Option<String>>,
    rooms: RwSignal<Vec<String>>,
    room: RwSignal<String>,
    lines: RwSignal<Vec<Line>>,
    gap: RwSignal<bool>,
    online: RwSignal<Vec<String>>,
    error: RwSignal<Option<String>>,
    /// The composer's text; cleared when the server confirms it.
    draft: RwSignal<String>,
    /// Messages sent and not confirmed yet.
    sending: RwSignal<usize>,
    /// Browser-only state, created by the effect that connects. The server
    /// renders on worker threads, where a thread-bound value must never exist.
    inner: StoredValue<Option<StoredValue<Inner, LocalStorage>>>,
}

/// Creates the chat client for the current component, connects once the page
/// runs in the browser and disconnects on cleanup.
pub fn use_chat_client() -> ChatClient {
    let client = ChatClient {
        state: RwSignal::new(ConnState::Connecting),
        me: RwSignal::new(None),
        rooms: RwSignal::new(Vec::new()),
        room: RwSignal::new(DEFAULT_ROOM.to_string()),
        lines: RwSignal::new(Vec::new()),
        gap: RwSignal::new(false),
        online: RwSignal::new(Vec::new()),
        error: RwSignal::new(None),
        draft: RwSignal::new(String::new()),
        sending: RwSignal::new(0),
        inner: StoredValue::new(None),
    };
    // Effects run only in the browser: the server renders the empty page.
    Effect::new(move |started: Option<()>| {
        if started.is_none() {
            client
                .inner
                .set_value(Some(StoredValue::new_local(Inner::new(client))));
            // Registered on the effect, so it runs before `Inner` is disposed.
            on_cleanup(move || client.stop());
            if let Some(socket) = client.socket() {
                socket.connect();
            }
        }
    });
    client
}

impl ChatClient {
    /// Reads the browser state (`None` before the effect ran or after cleanup).
    fn with_inner<U>(&self, f: impl FnOnce(&Inner) -> U) -> Option<U> {
        self.inner.try_get_value().flatten()?.try_with_value(f)
    }

    /// Changes the browser state (`None` before the effect ran or after cleanup).
    fn update_inner<U>(&self, f: impl FnOnce(&mut Inner) -> U) -> Option<U> {
        self.inner.try_get_value().flatten()?.try_update_value(f)
    }

    /// The connection (`None` before the effect ran or after cleanup).
    fn socket(&self) -> Option<ReconnectingSocket<ChatClient>> {
        self.with_inner(|i| i.socket.clone())
    }

    /// Connection state.
    pub fn state(&self) -> ReadSignal<ConnState> {
        self.state.read_only()
    }
    /// The user name the server greeted this socket with.
    pub fn me(&self) -> ReadSignal<Option<String>> {
        self.me.read_only()
    }
    /// Every room that exists (from the server).
    pub fn rooms(&self) -> ReadSignal<Vec<String>> {
        self.rooms.read_only()
    }
    /// The room shown.
    pub fn room(&self) -> ReadSignal<String> {
        self.room.read_only()
    }
    /// Messages of the room shown, oldest first.
    pub fn lines(&self) -> ReadSignal<Vec<Line>> {
        self.lines.read_only()
    }
    /// Whether older messages of this room were left out by the server.
    pub fn gap(&self) -> ReadSignal<bool> {
        self.gap.read_only()
    }
    /// Who is connected to the room shown.
    pub fn online(&self) -> ReadSignal<Vec<String>> {
        self.online.read_only()
    }
    /// The last refusal or failure to show inline.
    pub fn error(&self) -> ReadSignal<Option<String>> {
        self.error.read_only()
    }

    /// The composer's text (bind it to the input): it stays until the
    /// server confirms the message, so a refused one is not lost.
    pub fn draft(&self) -> RwSignal<String> {
        self.draft
    }
    /// Messages sent and not confirmed yet.
    pub fn sending(&self) -> ReadSignal<usize> {
        self.sending.read_only()
    }

    /// Hides the inline error.
    pub fn dismiss_error(&self) {
        self.error.set(None);
    }

    /// Posts the draft to the current room; the draft stays until the
    /// server's echo confirms it.
    pub fn send_draft(&self) -> Result<(), String> {
        let text = self.draft.get_untracked();
        if self
            .with_inner(|i| i.outbox.is_sending(&text))
            .unwrap_or(false)
        {
            // Already on its way (a double click): never post it twice.
            return Ok(());
        }
        self.send(&text)?;
        self.update_inner(|i| i.outbox.sent(Request::Send(text)));
        self.update_sending();
        Ok(())
    }

    fn update_sending(&self) {
        if let Some(n) = self.with_inner(|i| i.outbox.sending()) {
            self.sending.set(n);
        }
    }

    /// Applies what a server frame settled to the draft.
    fn settle(&self, settled: Settled, error: Option<String>) {
        match settled {
            Settled::Sent(text) => {
                if self.draft.get_untracked() == text {
                    self.draft.set(String::new());
                }
            }
            Settled::Refused(text) => {
                // Keep the text (give it back if the field was emptied meanwhile).
                if self.draft.get_untracked().is_empty() {
                    self.draft.set(text);
                }
                if let Some(e) = error {
                    self.error.set(Some(format!("not sent: {e}")));
                }
            }
            Settled::Nothing => {
                if let Some(e) = error {
                    self.error.set(Some(e));
                }
            }
        }
        self.update_sending();
    }

    /// Posts `text` to the current room.
    pub fn send(&self, text: &str) -> Result<(), String> {
        if text.trim().is_empty() {
            return Err("type a message first".into());
        }
        if text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(format!(
                "messages have at most {MAX_MESSAGE_CHARS} characters"
            ));
        }
        let msg = ClientMsg::SendMessage {
            message: text.to_string(),
            from: None,
        };
        if self.send_msg(&msg) {
            Ok(())
        } else {
            Err("not connected: the message was not sent".into())
        }
    }

    /// Switches to (or creates) room `name`; only messages after the last one
    /// already held for that room are requested.
    pub fn join(&self, name: &str) -> Result<(), String> {
        let name = name.trim().trim_start_matches('#');
        if !valid_room_name(name) {
            return Err("room names have 1 to 64 letters, digits, '_', '-' or '.'".into());
        }
        let Some((lines, gap, since)) = self.update_inner(|i| {
            i.desired = name.to_string();
            let log = i.logs.entry(name.to_string()).or_default();
            (log.lines().to_vec(), log.gap, log.last_id())
        }) else {
            return Ok(());
        };
        self.room.set(name.to_string());
        self.lines.set(lines);
        self.gap.set(gap);
        self.online.set(Vec::new());
        self.error.set(None);
        // Not connected: the reconnect rejoins `desired`.
        if self.send_msg(&ClientMsg::ChangeRoom {
            name: name.to_string(),
            since,
        }) {
            self.update_inner(|i| i.outbox.sent(Request::Join));
        }
        Ok(())
    }

    /// Skips the rest of the backoff wait.
    pub fn retry_now(&self) {
        if matches!(self.state.get_untracked(), ConnState::Reconnecting { .. }) {
            if let Some(socket) = self.socket() {
                socket.connect();
            }
        }
    }

    fn send_msg(&self, msg: &ClientMsg) -> bool {
        let Some(socket) = self.socket() else {
            return false;
        };
        match serde_json::to_string(msg) {
            Ok(text) => socket.send_text(&text),
            Err(_) => false,
        }
    }

    fn on_text(&self, text: &str) {
        let msg = match serde_json::from_str::<ServerMsg>(text) {
            Ok(m) => m,
            Err(e) => {
                leptos::logging::warn!("ignoring an unknown chat frame: {e}");
                return;
            }
        };
        match msg {
            ServerMsg::Welcome { user } => self.me.set(Some(user)),
            ServerMsg::Rooms { rooms } => self.rooms.set(rooms),
            ServerMsg::RoomAdded { room } => self.rooms.update(|rooms| {
                if !rooms.contains(&room) {
                    rooms.push(room);
                    rooms.sort();
                }
            }),
            ServerMsg::Presence { room, users } => {
                if self.with_inner(|i| i.desired == room).unwrap_or(false) {
                    self.online.set(users);
                }
            }
            ServerMsg::Error { message, .. } => {
                let settled = self
                    .update_inner(|i| i.outbox.refused())
                    .unwrap_or(Settled::Nothing);
                self.settle(settled, Some(message));
            }
            ServerMsg::Joined {
                room,
                messages,
                complete,
            } => {
                let sent = self.update_inner(|i| i.outbox.joined()).unwrap_or_default();
                for text in sent {
                    self.settle(Settled::Sent(text), None);
                }
                let shown = self.update_inner(|i| {
                    let log = i.logs.entry(room.clone()).or_default();
                    for m in messages {
                        log.insert_line(m);
                    }
                    if !complete {
                        log.gap = true;
                    }
                    (i.desired == room).then(|| (log.lines().to_vec(), log.gap))
                });
                if let Some(Some((lines, gap))) = shown {
                    self.room.set(room);
                    self.lines.set(lines);
                    self.gap.set(gap);
                }
            }
            ServerMsg::NewMessage {
                message,
                from,
                sent,
                id,
                room,
            } => {
                let room = room.unwrap_or_else(|| self.room.get_untracked());
                if self
                    .me
                    .with_untracked(|me| me.as_deref() == Some(from.as_str()))
                {
                    let settled = self
                        .update_inner(|i| i.outbox.echoed(&message))
                        .unwrap_or(Settled::Nothing);
                    self.settle(settled, None);
                }
                let shown = self.update_inner(|i| {
                    let log = i.logs.entry(room.clone()).or_default();
                    let added = log.insert(id, from, message, sent);
                    (added && i.desired == room).then(|| log.lines().to_vec())
                });
                if let Some(Some(lines)) = shown {
                    self.lines.set(lines);
                }
            }
        }
    }

    /// Closes the socket for good (component cleanup).
    fn stop(&self) {
        if let Some(socket) = self.socket() {
            socket.stop();
        }
    }
}

/// The chat client reacts to its socket: a fresh ticket for every attempt,
/// the rooms rejoined on open, unconfirmed messages reported on close.
impl Connector for ChatClient {
    type Ticket = String;
    type Error = ApiError;

    fn attempting(&self, _first: bool) {
        self.state.set(ConnState::Connecting);
    }

    fn fetch_ticket(&self) -> TicketFuture<String, ApiError> {
        Box::pin(chat_ticket())
    }

    fn ticket_failed(&self, error: ApiError) -> Failure {
        match error {
            ApiError::Unauthorized => {
                self.state.set(ConnState::SignedOut);
                browser::go("/login");
                Failure::Permanent
            }
            e => {
                self.error
                    .set(Some(format!("could not reach the chat server: {e}")));
                Failure::Transient
            }
        }
    }

    fn target(&self, otp: String) -> SocketTarget {
        SocketTarget {
            path: format!("/ws?otp={}&v=1", browser::encode_query_value(&otp)),
            protocol: Some(RICH_PROTOCOL),
            binary: false,
        }
    }

    fn opened(&self) {
        let Some((desired, since)) = self.update_inner(|i| {
            i.outbox.connected();
            let since = i.logs.get(&i.desired).and_then(RoomLog::last_id);
            (i.desired.clone(), since)
        }) else {
            return;
        };
        self.state.set(ConnState::Online);
        // The server puts every new socket in `general` with recent history;
        // rejoin the wanted room and ask only for what we missed.
        if (desired != DEFAULT_ROOM || since.is_some())
            && self.send_msg(&ClientMsg::ChangeRoom {
                name: desired,
                since,
            })
        {
            self.update_inner(|i| i.outbox.sent(Request::Join));
        }
    }

    fn message(&self, ev: &MessageEvent) {
        if let Some(text) = ev.data().as_string() {
            self.on_text(&text);
        }
    }

    fn closed(&self, _ev: &CloseEvent) -> Failure {
        let lost = self.update_inner(|i| i.outbox.forget()).unwrap_or_default();
        if !lost.is_empty() {
            self.error.set(Some(
                "connection lost before the server confirmed your message; its text is kept".into(),
            ));
        }
        self.update_sending();
        Failure::Transient
    }

    fn waiting(&self, in_secs: u32) {
        self.state.set(ConnState::Reconnecting { in_secs });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_confirms_the_oldest_message() {
        let mut o = Outbox::default();
        assert!(o.connected().is_empty());
        assert!(o.joined().is_empty(), "the automatic join answers nothing");
        o.sent(Request::Send("a".into()));
        o.sent(Request::Send("b".into()));
        assert!(o.is_sending("a") && o.sending() == 2);
        assert_eq!(o.echoed("b"), Settled::Nothing, "answers come in order");
        assert_eq!(o.echoed("a"), Settled::Sent("a".into()));
        assert_eq!(o.echoed("b"), Settled::Sent("b".into()));
        assert_eq!(o.sending(), 0);
    }

    #[test]
    fn an_error_answers_the_oldest_request_and_keeps_the_text() {
        let mut o = Outbox::default();
        o.connected();
        o.joined();
        o.sent(Request::Send("too fast".into()));
        o.sent(Request::Join);
        o.sent(Request::Send("later".into()));
        assert_eq!(o.refused(), Settled::Refused("too fast".into()));
        // The join's refusal is not a message's.
        assert_eq!(o.refused(), Settled::Nothing);
        assert_eq!(o.echoed("later"), Settled::Sent("later".into()));
    }

    #[test]
    fn a_join_confirms_messages_whose_echo_the_room_change_dropped() {
        let mut o = Outbox::default();
        o.connected();
        o.sent(Request::Send("x".into()));
        o.sent(Request::Join);
        assert!(o.joined().is_empty(), "first joined is the automatic one");
        assert_eq!(o.joined(), vec!["x".to_string()]);
        assert_eq!(o.sending(), 0);
    }

    #[test]
    fn a_lost_connection_returns_unconfirmed_texts_and_stays_bounded() {
        let mut o = Outbox::default();
        o.connected();
        for i in 0..MAX_AWAITING + 5 {
            o.sent(Request::Send(format!("m{i}")));
        }
        assert_eq!(o.sending(), MAX_AWAITING);
        let lost = o.forget();
        assert_eq!(lost.len(), MAX_AWAITING);
        assert_eq!(lost[0], "m5");
        assert_eq!(o.sending(), 0);
    }
}
