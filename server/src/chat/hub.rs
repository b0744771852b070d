//! The hub actor: one task owns every room and client, so joins, messages and
//! presence are applied in one order. A message is stored (by the store
//! stage, [`super::store`], beside this loop: a slow store never stalls the
//! hub), then serialized once per protocol flavour, then offered to every
//! member's [`Outlet`], a stored batch at a time so that a socket gets the
//! whole batch in one write; a member that cannot keep up is disconnected
//! instead of slowing the room.
use crate::sync::lock;
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
};

use app::protocol::chat::{ErrorCode, ServerMsg};
use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn, Instrument};

use super::store::{Pending, PostReply, Store, Stored};
use crate::auth::ratelimit::TokenBucket;
use crate::cluster::broker::RoomLine;
use crate::config::Config;
use crate::db::{self, messages::NewMessage, Db};

/// Commands queued to the hub; senders wait when it is full (backpressure on
/// clients, never on the fan-out).
const HUB_QUEUE: usize = 1024;
/// Burst of chat messages a user may send at once (times the per-second rate).
const BURST_FACTOR: u32 = 3;

/// Identifies one connected socket.
pub type ClientId = u64;

/// The sender of an announcement, which has no socket (socket ids start at 1).
const NO_CLIENT: ClientId = 0;

/// A frame for one client.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A chat message of room `room_id` with id `id` (the connection drops it
    /// if it has left the room or already sent that id).
    Message {
        room_id: i64,
        id: i64,
        frame: Utf8Bytes,
    },
    /// Any other frame (presence, rooms).
    Frame(Utf8Bytes),
}

/// What became of a frame offered to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Written, queued, or filtered out (another room, already sent).
    Delivered,
    /// The client's queue is full: it cannot keep up.
    Full,
    /// The client's socket is gone.
    Closed,
}

/// Where the hub delivers one client's frames (the socket adapter implements
/// it). Called from the hub task only; must not block.
pub trait Outlet: Send + Sync {
    /// Writes or queues `outs` for the client, in order: in one write when
    /// the socket takes them at once.
    fn offer_all(&self, outs: &[Outbound]) -> Offered;
    /// Writes or queues `out` for the client.
    fn offer(&self, out: Outbound) -> Offered {
        self.offer_all(std::slice::from_ref(&out))
    }
    /// The client moved to room `room_id`: live messages after `upto` are
    /// for it, and wait until the client has sent the room's history.
    fn enter_room(&self, room_id: i64, upto: i64);
}

/// Why the hub disconnects a client: a WebSocket close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KickReason {
    pub code: u16,
    pub reason: &'static str,
}

impl KickReason {
    /// The client could not keep up with its room.
    pub const TOO_SLOW: KickReason = KickReason {
        code: 1008,
        reason: "too slow: send queue full",
    };
    /// The login session ended (logout) or the user was disabled.
    pub const LOGGED_OUT: KickReason = KickReason {
        code: 1008,
        reason: "logged out",
    };
    /// The server is shutting down.
    pub const SHUTDOWN: KickReason = KickReason {
        code: 1001,
        reason: "server shutting down",
    };
}

/// What a connection receives when it registers.
pub struct ClientHandle {
    /// Its id, for later commands.
    pub id: ClientId,
    /// Set when the hub disconnects it.
    pub kick: watch::Receiver<Option<KickReason>>,
}

/// The result of joining a room: messages up to `upto` come from history,
/// later ones arrive through the outbox.
#[derive(Debug, Clone)]
pub struct JoinedRoom {
    pub room_id: i64,
    pub upto: i64,
}

/// Who a client is.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: i64,
    pub user_name: String,
    /// Announced the richer protocol.
    pub rich: bool,
    /// Hash of the login session the socket was opened under.
    pub login_session: Option<String>,
}

enum Cmd {
    Connect {
        member: Member,
        outlet: Arc<dyn Outlet>,
        reply: oneshot::Sender<ClientHandle>,
    },
    Join {
        client: ClientId,
        room: String,
        /// Counts against the user's join rate (every join but the automatic first one).
        limited: bool,
        reply: oneshot::Sender<Result<JoinedRoom, ErrorCode>>,
    },
    Send {
        client: ClientId,
        text: String,
        reply: PostReply,
    },
    /// A message from a user who may have no socket (a server function):
    /// into an existing room, under the user's message rate.
    Announce {
        user_id: i64,
        user_name: String,
        room: String,
        text: String,
        reply: PostReply,
    },
    Leave {
        client: ClientId,
    },
    KickSession {
        login_session: String,
    },
    KickUser {
        user_id: i64,
    },
    /// Disconnects every socket whose user is not in `users` or whose login
    /// session is not in `sessions` (the database's current rows).
    KeepOnly {
        users: HashSet<i64>,
        sessions: HashSet<String>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Cheap handle to the hub task.
#[derive(Clone)]
pub struct ChatHub {
    tx: mpsc::Sender<Cmd>,
    /// Open chat sockets per user id (see [`ChatHub::reserve_socket`]).
    sockets: Arc<Mutex<HashMap<i64, usize>>>,
    /// Most chat sockets one user may hold.
    max_sockets_per_user: usize,
}

/// One of a user's chat socket places; given back when dropped.
pub struct SocketSlot {
    sockets: Arc<Mutex<HashMap<i64, usize>>>,
    user_id: i64,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut map = lock(&self.sockets);
        if let Some(n) = map.get_mut(&self.user_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.user_id);
            }
        }
    }
}

/// The hub has stopped (server shutting down).
#[derive(Debug, thiserror::Error)]
#[error("chat hub stopped")]
pub struct HubGone;

impl ChatHub {
    /// Starts the hub task (rate and limits from `config`); it runs until [`ChatHub::shutdown`].
    /// With several nodes, `cluster` links the hub to the broker.
    pub fn spawn(
        db: Db,
        config: &Config,
        cluster: Option<HubCluster>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(HUB_QUEUE);
        let state = Hub {
            store: Store::new(db.clone()),
            db,
            rate: config.chat_rate,
            max_rooms: config.max_rooms,
            clients: HashMap::new(),
            rooms: HashMap::new(),
            room_names: None,
            buckets: HashMap::new(),
            join_buckets: HashMap::new(),
            next_id: 1,
            cluster: cluster.map(cluster::ClusterChat::new),
        };
        let task = tokio::spawn(state.run(rx).instrument(tracing::info_span!("chat_hub")));
        let hub = Self {
            tx,
            sockets: Arc::default(),
            max_sockets_per_user: config.max_chat_sockets_per_user,
        };
        (hub, task)
    }

    /// Takes one of `user_id`'s chat socket places, `None` when all are in
    /// use; the place is free again when the slot is dropped.
    pub fn reserve_socket(&self, user_id: i64) -> Option<SocketSlot> {
        let mut map = lock(&self.sockets);
        let n = map.entry(user_id).or_insert(0);
        if *n >= self.max_sockets_per_user {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            sockets: self.sockets.clone(),
            user_id,
        })
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, HubGone> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| HubGone)?;
        rx.await.map_err(|_| HubGone)
    }

    /// Registers a socket, whose frames go to `outlet`; it is in no room
    /// until it joins one.
    pub async fn connect(
        &self,
        member: Member,
        outlet: Arc<dyn Outlet>,
    ) -> Result<ClientHandle, HubGone> {
        self.ask(|reply| Cmd::Connect {
            member,
            outlet,
            reply,
        })
        .await
    }

    /// Moves a client to `room` (created on first join, unless the room
    /// limit is reached). `limited`: the join counts against the user's rate.
    pub async fn join(
        &self,
        client: ClientId,
        room: &str,
        limited: bool,
    ) -> Result<Result<JoinedRoom, ErrorCode>, HubGone> {
        self.ask(|reply| Cmd::Join {
            client,
            room: room.to_string(),
            limited,
            reply,
        })
        .await
    }

    /// Hands a message for the client's room to the hub, which stores and
    /// then broadcasts it; the receiver answers when that is done (`Ok`, also
    /// after a store failure the hub reported on the socket) or why the
    /// message was refused. Several may be in flight: they are answered, and
    /// broadcast, in the order they were posted.
    pub async fn post(
        &self,
        client: ClientId,
        text: String,
    ) -> Result<oneshot::Receiver<Result<(), ErrorCode>>, HubGone> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Send {
                client,
                text,
                reply,
            })
            .await
            .map_err(|_| HubGone)?;
        Ok(rx)
    }

    /// Stores and broadcasts a message to the client's room (see [`ChatHub::post`]).
    pub async fn send(
        &self,
        client: ClientId,
        text: String,
    ) -> Result<Result<(), ErrorCode>, HubGone> {
        self.post(client, text).await?.await.map_err(|_| HubGone)
    }

    /// Stores and broadcasts `text` from `user_name` in the existing room
    /// `room` (no socket needed); `BadRoom` if there is no such room.
    pub async fn announce(
        &self,
        user_id: i64,
        user_name: &str,
        room: &str,
        text: String,
    ) -> Result<Result<(), ErrorCode>, HubGone> {
        self.ask(|reply| Cmd::Announce {
            user_id,
            user_name: user_name.to_string(),
            room: room.to_string(),
            text,
            reply,
        })
        .await
    }

    /// Unregisters a socket.
    pub async fn leave(&self, client: ClientId) {
        let _ = self.tx.send(Cmd::Leave { client }).await;
    }

    /// Disconnects every socket opened under a login session.
    pub async fn kick_session(&self, login_session: &str) {
        let _ = self
            .tx
            .send(Cmd::KickSession {
                login_session: login_session.to_string(),
            })
            .await;
    }

    /// Disconnects every socket of a user.
    pub async fn kick_user(&self, user_id: i64) {
        let _ = self.tx.send(Cmd::KickUser { user_id }).await;
    }

    /// Disconnects every socket of a user not in `users` (enabled users)
    /// or opened under a login session not in `sessions`: what the
    /// revocation watcher read from the database, whoever changed it.
    pub async fn keep_only(&self, users: HashSet<i64>, sessions: HashSet<String>) {
        let _ = self.tx.send(Cmd::KeepOnly { users, sessions }).await;
    }

    /// Disconnects everyone and stops the hub.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Cmd::Shutdown { reply }).await;
    }
}

struct Client {
    member: Member,
    room: Option<String>,
    outlet: Arc<dyn Outlet>,
    kick: watch::Sender<Option<KickReason>>,
}

struct Room {
    id: i64,
    members: HashSet<ClientId>,
}

struct Hub {
    db: Db,
    /// Messages accepted and not yet broadcast.
    store: Store,
    rate: u32,
    max_rooms: usize,
    clients: HashMap<ClientId, Client>,
    /// Rooms with members since the start (loaded on first join).
    rooms: HashMap<String, Room>,
    /// Every room that exists, loaded from the database on first use.
    room_names: Option<BTreeSet<String>>,
    /// Message rate per user.
    buckets: HashMap<i64, TokenBucket>,
    /// Join rate per user (same rate and burst as messages, counted apart so
    /// that chatting never blocks switching rooms).
    join_buckets: HashMap<i64, TokenBucket>,
    next_id: ClientId,
    /// The link to the other nodes, with several.
    cluster: Option<cluster::ClusterChat>,
}

/// One room's share of a stored batch, serialized once per flavour.
struct RoomFrames {
    room: String,
    room_id: i64,
    rich: Vec<Outbound>,
    classic: Vec<Outbound>,
}

fn encode(msg: &ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(msg).unwrap_or_default())
}

impl Hub {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            if self.take_waiting(&mut rx).await.is_break() {
                break;
            }
            self.store.start();
            tokio::select! {
                biased;
                stored = self.store.finished() => {
                    // Messages that arrived during the last fan-out join
                    // the next batch, stored while this one is broadcast.
                    if self.take_waiting(&mut rx).await.is_break() {
                        break;
                    }
                    self.store.start();
                    self.deliver(stored).await;
                }
                cmd = rx.recv(), if !self.store.is_full() => {
                    let Some(cmd) = cmd else { break };
                    if self.handle(cmd).await.is_break() {
                        break;
                    }
                }
                wake = cluster::next_wake(&mut self.cluster) => self.on_cluster(wake).await,
            }
        }
    }

    /// Handles the commands already waiting (at most a queue's worth), so
    /// that messages sent while the hub was busy are stored as one batch
    /// and reach each socket in one write: a hub that fell behind catches up.
    async fn take_waiting(&mut self, rx: &mut mpsc::Receiver<Cmd>) -> std::ops::ControlFlow<()> {
        for _ in 0..HUB_QUEUE {
            if self.store.is_full() {
                break;
            }
            match rx.try_recv() {
                Ok(cmd) => self.handle(cmd).await?,
                Err(_) => break,
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    async fn handle(&mut self, cmd: Cmd) -> std::ops::ControlFlow<()> {
        match cmd {
            Cmd::Connect {
                member,
                outlet,
                reply,
            } => {
                let handle = self.connect(member, outlet);
                let id = handle.id;
                if reply.send(handle).is_err() {
                    self.remove(id);
                } else {
                    self.send_rooms_to(id).await;
                }
            }
            Cmd::Join {
                client,
                room,
                limited,
                reply,
            } => {
                let r = self.join(client, &room, limited).await;
                let _ = reply.send(r);
            }
            Cmd::Announce {
                user_id,
                user_name,
                room,
                text,
                reply,
            } => match self
                .accept_announcement(user_id, user_name, &room, text)
                .await
            {
                Ok(row) => self.store.push(Pending {
                    client: NO_CLIENT,
                    row,
                    reply,
                }),
                Err(code) => {
                    let _ = reply.send(Err(code));
                }
            },
            Cmd::Send {
                client,
                text,
                reply,
            } => match self.accept(client, text) {
                Ok(row) => self.store.push(Pending { client, row, reply }),
                Err(code) => {
                    let _ = reply.send(Err(code));
                }
            },
            Cmd::Leave { client } => self.remove(client),
            Cmd::KickSession { login_session } => {
                let ids: Vec<_> = self
                    .clients
                    .iter()
                    .filter(|(_, c)| c.member.login_session.as_deref() == Some(&login_session))
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.kick(id, KickReason::LOGGED_OUT);
                }
            }
            Cmd::KickUser { user_id } => {
                let ids: Vec<_> = self
                    .clients
                    .iter()
                    .filter(|(_, c)| c.member.user_id == user_id)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.kick(id, KickReason::LOGGED_OUT);
                }
            }
            Cmd::KeepOnly { users, sessions } => {
                let ids: Vec<_> = self
                    .clients
                    .iter()
                    .filter(|(_, c)| {
                        !users.contains(&c.member.user_id)
                            || c.member
                                .login_session
                                .as_ref()
                                .is_some_and(|s| !sessions.contains(s))
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.kick(id, KickReason::LOGGED_OUT);
                }
            }
            Cmd::Shutdown { reply } => {
                let ids: Vec<_> = self.clients.keys().copied().collect();
                for id in ids {
                    self.kick(id, KickReason::SHUTDOWN);
                }
                let _ = reply.send(());
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn connect(&mut self, member: Member, outlet: Arc<dyn Outlet>) -> ClientHandle {
        let id = self.next_id;
        self.next_id += 1;
        let (kick_tx, kick) = watch::channel(None);
        self.clients.insert(
            id,
            Client {
                member,
                room: None,
                outlet,
                kick: kick_tx,
            },
        );
        ClientHandle { id, kick }
    }

    /// Offers a frame to a client; one that cannot keep up is disconnected.
    fn offer(&mut self, id: ClientId, item: Outbound) {
        self.offer_all(id, std::slice::from_ref(&item));
    }

    /// Offers frames to a client, in order; one that cannot keep up is disconnected.
    fn offer_all(&mut self, id: ClientId, items: &[Outbound]) {
        let offered = match self.clients.get(&id) {
            Some(c) => c.outlet.offer_all(items),
            None => return,
        };
        match offered {
            Offered::Delivered => {}
            Offered::Full => {
                warn!(client = id, "chat client too slow, disconnecting");
                self.kick(id, KickReason::TOO_SLOW);
            }
            Offered::Closed => self.remove(id),
        }
    }

    fn kick(&mut self, id: ClientId, reason: KickReason) {
        if let Some(c) = self.clients.get(&id) {
            c.kick.send_replace(Some(reason));
        }
        self.remove(id);
    }

    fn remove(&mut self, id: ClientId) {
        let Some(client) = self.clients.remove(&id) else {
            return;
        };
        if let Some(room) = client.room {
            if let Some(r) = self.rooms.get_mut(&room) {
                r.members.remove(&id);
            }
            self.send_presence(&room);
        }
    }

    /// Every room that exists (from memory after the first call).
    async fn room_names(&mut self) -> Result<&mut BTreeSet<String>, db::DbError> {
        if self.room_names.is_none() {
            let names = db::messages::rooms(&self.db).await?;
            self.room_names = Some(names.into_iter().collect());
        }
        Ok(self.room_names.get_or_insert_with(BTreeSet::new))
    }

    async fn send_rooms_to(&mut self, id: ClientId) {
        if !self.clients.get(&id).is_some_and(|c| c.member.rich) {
            return;
        }
        match self.room_names().await {
            Ok(names) => {
                let rooms = names.iter().cloned().collect();
                self.offer(id, Outbound::Frame(encode(&ServerMsg::Rooms { rooms })));
            }
            Err(e) => warn!("listing rooms: {e}"),
        }
    }

    /// The users of `room` changed here: tells the other nodes (with
    /// several) and the room's members.
    fn send_presence(&mut self, room: &str) {
        self.publish_presence(room);
        self.broadcast_presence(room);
    }

    /// The users this node has in `room`.
    fn local_users(&self, room: &str) -> BTreeSet<String> {
        self.rooms
            .get(room)
            .map(|r| {
                r.members
                    .iter()
                    .filter_map(|id| self.clients.get(id))
                    .map(|c| c.member.user_name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Tells the rich members of `room` who is in it (on every node).
    fn broadcast_presence(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let mut users = self.local_users(room);
        users.extend(self.remote_users(room));
        let frame = encode(&ServerMsg::Presence {
            room: room.to_string(),
            users: users.into_iter().collect(),
        });
        let rich: Vec<ClientId> = r
            .members
            .iter()
            .copied()
            .filter(|id| self.clients.get(id).is_some_and(|c| c.member.rich))
            .collect();
        for id in rich {
            self.offer(id, Outbound::Frame(frame.clone()));
        }
    }

    /// The id of `room`, loading it into the hub (created first when
    /// `create` allows it and the room limit is not reached).
    async fn open_room(&mut self, room: &str, create: bool) -> Result<i64, ErrorCode> {
        if !self.rooms.contains_key(room) {
            let max_rooms = self.max_rooms;
            let names = self.room_names().await.map_err(|e| {
                warn!("listing rooms: {e}");
                ErrorCode::Internal
            })?;
            if !names.contains(room) && !create {
                return Err(ErrorCode::BadRoom);
            }
            if !names.contains(room) && names.len() >= max_rooms {
                return Err(ErrorCode::TooManyRooms);
            }
            let (room_id, created) =
                db::messages::ensure_room(&self.db, room)
                    .await
                    .map_err(|e| {
                        warn!("creating room {room}: {e}");
                        ErrorCode::Internal
                    })?;
            self.rooms.insert(
                room.to_string(),
                Room {
                    id: room_id,
                    members: HashSet::new(),
                },
            );
            if created {
                info!(room, "room created");
                self.publish_room_added(room);
            }
            // Created now, or by another process since the names were loaded.
            self.note_room(room);
        }
        self.rooms
            .get(room)
            .map(|r| r.id)
            .ok_or(ErrorCode::Internal)
    }

    async fn join(
        &mut self,
        id: ClientId,
        room: &str,
        limited: bool,
    ) -> Result<JoinedRoom, ErrorCode> {
        let Some((user_id, user_name)) = self
            .clients
            .get(&id)
            .map(|c| (c.member.user_id, c.member.user_name.clone()))
        else {
            return Err(ErrorCode::Internal);
        };
        if limited {
            let rate = self.rate;
            let share = self.nodes_with(&user_name);
            let bucket = self
                .join_buckets
                .entry(user_id)
                .or_insert_with(|| TokenBucket::new(rate, rate.saturating_mul(BURST_FACTOR)));
            if !bucket.try_take_n(share) {
                return Err(ErrorCode::RateLimited);
            }
        }
        let room_id = self.open_room(room, true).await?;
        // The hub stores every message of the room, so the database's last id
        // is exactly the last one broadcast: later ones reach the outbox.
        let upto = db::messages::last_id(&self.db, room_id)
            .await
            .map_err(|e| {
                warn!("reading room {room}: {e}");
                ErrorCode::Internal
            })?;
        let old = match self.clients.get_mut(&id) {
            Some(c) => {
                c.outlet.enter_room(room_id, upto);
                c.room.replace(room.to_string())
            }
            None => return Err(ErrorCode::Internal),
        };
        if let Some(old) = old.filter(|o| o != room) {
            if let Some(r) = self.rooms.get_mut(&old) {
                r.members.remove(&id);
            }
            self.send_presence(&old);
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.members.insert(id);
        }
        self.send_presence(room);
        Ok(JoinedRoom { room_id, upto })
    }

    /// Tells every rich client that `room` now exists (only the change: the
    /// full list goes to each socket once, on connect).
    fn broadcast_room_added(&mut self, room: &str) {
        let frame = encode(&ServerMsg::RoomAdded {
            room: room.to_string(),
        });
        let rich: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.member.rich)
            .map(|(id, _)| *id)
            .collect();
        for id in rich {
            self.offer(id, Outbound::Frame(frame.clone()));
        }
    }

    /// Checks a message of client `id` (room, rate) and returns the row to
    /// store for it.
    /// Checks an announcement like a message from a socket: the user's
    /// rate, and the room must exist.
    async fn accept_announcement(
        &mut self,
        user_id: i64,
        user: String,
        room: &str,
        text: String,
    ) -> Result<NewMessage, ErrorCode> {
        if !self.take_message_token(user_id, &user) {
            return Err(ErrorCode::RateLimited);
        }
        let room_id = self.open_room(room, false).await?;
        Ok(NewMessage {
            room_id,
            room: room.to_string(),
            user_id,
            user,
            body: text,
        })
    }

    /// Takes one message from the user's token bucket (their share of it
    /// with several nodes); `false` when empty.
    fn take_message_token(&mut self, user_id: i64, user_name: &str) -> bool {
        let rate = self.rate;
        let share = self.nodes_with(user_name);
        self.buckets
            .entry(user_id)
            .or_insert_with(|| TokenBucket::new(rate, rate.saturating_mul(BURST_FACTOR)))
            .try_take_n(share)
    }

    fn accept(&mut self, id: ClientId, text: String) -> Result<NewMessage, ErrorCode> {
        let (user_id, user_name, room) = match self.clients.get(&id) {
            Some(c) => (c.member.user_id, c.member.user_name.clone(), c.room.clone()),
            None => return Err(ErrorCode::Internal),
        };
        let room = room.ok_or(ErrorCode::BadRoom)?;
        if !self.take_message_token(user_id, &user_name) {
            return Err(ErrorCode::RateLimited);
        }
        let room_id = self
            .rooms
            .get(&room)
            .map(|r| r.id)
            .ok_or(ErrorCode::Internal)?;
        Ok(NewMessage {
            room_id,
            room,
            user_id,
            user: user_name,
            body: text,
        })
    }

    /// Broadcasts a stored batch (stored before it is broadcast: a message
    /// nobody could reload is never shown), then answers its senders. Each
    /// member of a room gets the room's messages of the batch in one offer.
    /// With several nodes the batch goes through the cluster feed first.
    async fn deliver(&mut self, stored: Stored) {
        let Stored { batch, result } = stored;
        let stored = match result {
            Ok(stored) => stored,
            Err(e) => {
                warn!(messages = batch.len(), "storing messages: {e}");
                self.report_not_stored(batch);
                return;
            }
        };
        let lines: Vec<RoomLine> = batch
            .iter()
            .zip(stored.lines)
            .map(|(p, line)| RoomLine {
                room_id: p.row.room_id,
                line,
            })
            .collect();
        if let (Some(after), true) = (stored.after, self.cluster.is_some()) {
            self.deliver_in_cluster(after, lines, batch).await;
            return;
        }
        self.fan_out(lines).await;
        for p in batch {
            let _ = p.reply.send(Ok(()));
        }
    }

    /// Offers `lines` (ids ascending) to the members of their rooms: per
    /// room, each member gets the room's share in one offer, serialized once
    /// per protocol flavour.
    async fn fan_out(&mut self, lines: Vec<RoomLine>) {
        // Per room, in order (ids ascend): the frames of each flavour.
        let mut rooms: Vec<RoomFrames> = Vec::new();
        for RoomLine { room_id, line } in lines {
            let at = match rooms.iter().position(|r| r.room_id == room_id) {
                Some(at) => at,
                None => {
                    rooms.push(RoomFrames {
                        room: line.room.clone(),
                        room_id,
                        rich: Vec::new(),
                        classic: Vec::new(),
                    });
                    rooms.len() - 1
                }
            };
            let Some(r) = rooms.get_mut(at) else { continue };
            let rich = encode(&ServerMsg::NewMessage {
                message: line.message.clone(),
                from: line.from.clone(),
                sent: line.sent.clone(),
                id: Some(line.id),
                room: Some(line.room.clone()),
            });
            let classic = encode(&ServerMsg::NewMessage {
                message: line.message,
                from: line.from,
                sent: line.sent,
                id: None,
                room: None,
            });
            r.rich.push(Outbound::Message {
                room_id: r.room_id,
                id: line.id,
                frame: rich,
            });
            r.classic.push(Outbound::Message {
                room_id: r.room_id,
                id: line.id,
                frame: classic,
            });
        }
        for r in &rooms {
            let members: Vec<(ClientId, bool)> = self
                .rooms
                .get(&r.room)
                .map(|room| {
                    room.members
                        .iter()
                        .filter_map(|m| self.clients.get(m).map(|c| (*m, c.member.rich)))
                        .collect()
                })
                .unwrap_or_default();
            for (member, is_rich) in members {
                // Direct writes keep the hub busy for the whole fan-out: let other
                // tasks on this worker run in between.
                tokio::task::consume_budget().await;
                let frames = if is_rich { &r.rich } else { &r.classic };
                self.offer_all(member, frames);
            }
        }
    }

    /// A batch could not be stored: nothing of it is broadcast; rich senders
    /// get a typed error on their socket, in order with what they receive.
    fn report_not_stored(&mut self, batch: Vec<Pending>) {
        let frame = encode(&ServerMsg::error(
            ErrorCode::Internal,
            "message not delivered",
        ));
        for p in batch {
            if self.clients.get(&p.client).is_some_and(|c| c.member.rich) {
                self.offer(p.client, Outbound::Frame(frame.clone()));
            }
            let _ = p.reply.send(Ok(()));
        }
    }
}

mod cluster;
pub use cluster::HubCluster;

#[cfg(test)]
mod tests;
