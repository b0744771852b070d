//! `/ws`: the chat socket. One task per connection reads frames, decodes them
//! into [`ClientMsg`] and asks the hub; the hub writes chat frames through the
//! socket's [`SocketOutlet`], and this task writes out what it had to queue.
use std::{
    collections::VecDeque,
    future::{poll_fn, Future},
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::Duration,
};

use app::protocol::chat::{
    decode_client, valid_room_name, ClientMsg, ErrorCode, ServerMsg, DEFAULT_ROOM, HISTORY_ON_JOIN,
    MAX_FRAME_BYTES, MAX_MESSAGE_CHARS, RICH_PROTOCOL,
};
use axum::{
    extract::{
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
        Query, State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use futures::{stream::SplitStream, StreamExt};
use tokio::{
    sync::{oneshot, watch},
    time::Instant,
};
use tracing::{debug, info, warn, Instrument};

use super::{authorize, outlet::SocketOutlet, UpgradeQuery};
use crate::{
    auth::tickets::Purpose,
    chat::{hub::Member, ChatHub, JoinedRoom, KickReason},
    db,
    state::{AppState, Core},
};

/// Interval between server pings.
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Most missed messages sent on reconnect (`since`); more → `complete: false`.
const MAX_BACKFILL: i64 = 1000;
/// Read buffer per socket: small, because most sockets are idle and chat
/// frames are small (tungstenite's default is 128 KiB per connection).
const READ_BUFFER: usize = 4 * 1024;
/// Write buffer per socket: frames fed to the socket gather here until it is
/// flushed (or this fills), so a backlog, or a batch the hub writes, leaves
/// in one write.
const WRITE_BUFFER: usize = 16 * 1024;
/// Messages a socket may have posted and not yet seen answered (stored and
/// broadcast); past it the connection stops reading until one is answered.
const POST_WINDOW: usize = 32;
/// Close code for a frame over [`MAX_FRAME_BYTES`].
const CLOSE_TOO_BIG: u16 = 1009;

/// Upgrade handler for `/ws`.
pub async fn upgrade(
    State(state): State<AppState>,
    Query(q): Query<UpgradeQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let core = state.core.clone();
    let who = match authorize(&core, &headers, q.otp.as_deref(), &Purpose::Chat).await {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    let Some(slot) = core.hub.reserve_socket(who.user.id) else {
        warn!(user = %who.user.name, "chat socket refused: too many open");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many chat sockets open for this user (at most {})",
                core.config.max_chat_sockets_per_user
            ),
        )
            .into_response();
    };
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == RICH_PROTOCOL);
    let rich = offered || q.v.as_deref() == Some("1");
    let member = Member {
        user_id: who.user.id,
        user_name: who.user.name.clone(),
        rich,
        login_session: who.login_session,
    };
    let span = tracing::info_span!("chat_socket", user = %who.user.name, rich);
    ws.protocols([RICH_PROTOCOL])
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| {
            async move {
                // The user's socket place is held as long as the connection runs.
                let _slot = slot;
                run(socket, core, member).await
            }
            .instrument(span)
        })
}

struct Conn {
    frames: SplitStream<WebSocket>,
    outlet: Arc<SocketOutlet>,
    hub: ChatHub,
    core: Arc<Core>,
    client: u64,
    rich: bool,
    kick: watch::Receiver<Option<KickReason>>,
    /// Answers of posted messages, oldest first.
    posted: VecDeque<oneshot::Receiver<Result<(), ErrorCode>>>,
}

/// Why the connection loop ended.
enum End {
    /// The peer went away or the socket failed.
    Gone,
    /// We close it with this code and reason.
    Close(u16, String),
}

async fn run(socket: WebSocket, core: Arc<Core>, member: Member) {
    let hub = core.hub.clone();
    let rich = member.rich;
    let user_name = member.user_name.clone();
    let (sink, frames) = socket.split();
    let outlet = Arc::new(SocketOutlet::new(sink));
    let Ok(handle) = hub.connect(member, outlet.clone()).await else {
        return;
    };
    let mut conn = Conn {
        frames,
        outlet,
        hub: hub.clone(),
        core: core.clone(),
        client: handle.id,
        rich,
        kick: handle.kick,
        posted: VecDeque::new(),
    };
    info!("chat socket open");
    let end = conn.serve(&user_name).await;
    hub.leave(conn.client).await;
    if let End::Close(code, reason) = end {
        debug!(code, %reason, "closing chat socket");
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.outlet.write(frame)).await;
    }
    info!("chat socket closed");
}

impl Conn {
    async fn serve(&mut self, user_name: &str) -> End {
        if self.rich {
            let welcome = ServerMsg::Welcome {
                user: user_name.to_string(),
            };
            if let Err(end) = self.send_msg(&welcome).await {
                return end;
            }
        }
        if let Err(end) = self.join(DEFAULT_ROOM, None, false).await {
            return end;
        }
        let idle = self.core.config.chat_idle;
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval_at(
            Instant::now() + PING_INTERVAL.min(idle / 2),
            PING_INTERVAL.min(idle / 2),
        );
        loop {
            tokio::select! {
                biased;
                _ = self.kick.changed() => return self.kicked(),
                _ = self.outlet.notified() => {
                    if let Err(end) = self.drain().await {
                        return end;
                    }
                }
                answer = oldest_answer(&mut self.posted), if !self.posted.is_empty() => {
                    self.posted.pop_front();
                    if let Err(end) = self.answered(answer).await {
                        return end;
                    }
                }
                msg = self.frames.next(), if self.posted.len() < POST_WINDOW => {
                    last_heard = Instant::now();
                    match msg {
                        None => return End::Gone,
                        Some(Err(e)) => return read_error(e),
                        Some(Ok(Message::Text(text))) => {
                            if let Err(end) = self.handle_text(text.as_str()).await {
                                return end;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            if let Err(end) = self.refuse(ErrorCode::Unsupported, "binary frames are not part of the chat protocol").await {
                                return end;
                            }
                        }
                        Some(Ok(Message::Close(_))) => return End::Gone,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() >= idle {
                        return End::Close(1000, "idle timeout".into());
                    }
                    if let Err(end) = self.send(Message::Ping(Default::default())).await {
                        return end;
                    }
                }
            }
        }
    }

    fn kicked(&self) -> End {
        match self.kick.borrow().clone() {
            Some(r) => End::Close(r.code, r.reason.to_string()),
            None => End::Close(1011, "chat hub stopped".into()),
        }
    }

    /// Sends a frame unless the hub disconnects us first (a peer that stopped
    /// reading must not keep this task blocked forever).
    async fn send(&mut self, msg: Message) -> Result<(), End> {
        tokio::select! {
            r = self.outlet.write(msg) => r.map_err(|_| End::Gone),
            _ = self.kick.changed() => Err(self.kicked()),
        }
    }

    /// Writes out what the hub queued, unless the hub disconnects us first.
    async fn drain(&mut self) -> Result<(), End> {
        tokio::select! {
            r = self.outlet.drain() => r.map_err(|_| End::Gone),
            _ = self.kick.changed() => Err(self.kicked()),
        }
    }

    async fn send_msg(&mut self, msg: &ServerMsg) -> Result<(), End> {
        let text =
            serde_json::to_string(msg).map_err(|_| End::Close(1011, "encoding failed".into()))?;
        self.send(Message::Text(Utf8Bytes::from(text))).await
    }

    /// Answers bad input: a typed error for rich clients, a logged drop for
    /// old ones. Messages posted before are answered first and what the hub
    /// queued is written first, so answers arrive in the order of the
    /// requests (a message's echo before a later refusal).
    async fn refuse(&mut self, code: ErrorCode, message: &str) -> Result<(), End> {
        self.settle().await?;
        self.tell(code, message).await
    }

    /// Waits for the answers of every posted message, in order.
    async fn settle(&mut self) -> Result<(), End> {
        while let Some(rx) = self.posted.pop_front() {
            let answer = tokio::select! {
                a = rx => a,
                _ = self.kick.changed() => return Err(self.kicked()),
            };
            self.answered(answer).await?;
        }
        Ok(())
    }

    /// Acts on the answer to a posted message.
    async fn answered(
        &mut self,
        answer: Result<Result<(), ErrorCode>, oneshot::error::RecvError>,
    ) -> Result<(), End> {
        match answer {
            Err(_) => Err(End::Close(1001, "server shutting down".into())),
            Ok(Ok(())) => Ok(()),
            Ok(Err(ErrorCode::RateLimited)) => {
                self.tell(
                    ErrorCode::RateLimited,
                    "you are sending too fast; wait a moment",
                )
                .await
            }
            Ok(Err(code)) => self.tell(code, "message not delivered").await,
        }
    }

    /// Sends a typed error (rich clients) after what the hub queued, or logs
    /// a drop (old clients).
    async fn tell(&mut self, code: ErrorCode, message: &str) -> Result<(), End> {
        if self.rich {
            self.drain().await?;
            self.send_msg(&ServerMsg::error(code, message)).await
        } else {
            warn!(?code, "dropping frame from classic client: {message}");
            Ok(())
        }
    }

    async fn handle_text(&mut self, text: &str) -> Result<(), End> {
        match decode_client(text) {
            Err((code, message)) => self.refuse(code, &message).await,
            Ok(ClientMsg::SendMessage { message, .. }) => {
                let chars = message.chars().count();
                if message.trim().is_empty() || chars > MAX_MESSAGE_CHARS {
                    return self
                        .refuse(
                            ErrorCode::BadMessage,
                            &format!("messages must have 1 to {MAX_MESSAGE_CHARS} characters"),
                        )
                        .await;
                }
                // Answered later (see `serve`): the next frame is read meanwhile.
                match self.hub.post(self.client, message).await {
                    Err(_) => Err(End::Close(1001, "server shutting down".into())),
                    Ok(answer) => {
                        self.posted.push_back(answer);
                        Ok(())
                    }
                }
            }
            Ok(ClientMsg::ChangeRoom { name, since }) => {
                if !valid_room_name(&name) {
                    return self
                        .refuse(
                            ErrorCode::BadRoom,
                            "room names have 1-64 letters, digits, '_', '-', '.'",
                        )
                        .await;
                }
                self.join(&name, since, true).await
            }
        }
    }

    /// Moves to `room`; rich clients get the history (or what they missed
    /// after `since`). `limited`: counts against the join rate.
    async fn join(&mut self, room: &str, since: Option<i64>, limited: bool) -> Result<(), End> {
        // Messages posted in the old room reach it (and their echo this socket) first.
        self.settle().await?;
        let joined = match self.hub.join(self.client, room, limited).await {
            Err(_) => return Err(End::Close(1001, "server shutting down".into())),
            Ok(Err(ErrorCode::RateLimited)) => {
                return self
                    .refuse(
                        ErrorCode::RateLimited,
                        "you are switching rooms too fast; wait a moment",
                    )
                    .await
            }
            Ok(Err(ErrorCode::TooManyRooms)) => {
                let max = self.core.config.max_rooms;
                return self
                    .refuse(
                        ErrorCode::TooManyRooms,
                        &format!("the server has its limit of {max} rooms: join an existing room"),
                    )
                    .await;
            }
            Ok(Err(code)) => return self.refuse(code, "could not join the room").await,
            Ok(Ok(j)) => j,
        };
        // The hub now holds live messages of the room (those after `upto`)
        // until the history is sent, so none is sent twice or before it.
        let sent = self.send_history(room, &joined, since).await;
        self.outlet.release();
        sent
    }

    /// Rich clients get the room's history (or what they missed after `since`).
    async fn send_history(
        &mut self,
        room: &str,
        joined: &JoinedRoom,
        since: Option<i64>,
    ) -> Result<(), End> {
        if !self.rich {
            return Ok(());
        }
        let (after, limit) = match since {
            Some(s) => (s.max(0), MAX_BACKFILL),
            None => (0, HISTORY_ON_JOIN as i64),
        };
        let (messages, complete) = match db::messages::range(
            &self.core.db,
            joined.room_id,
            room,
            after,
            joined.upto,
            limit,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                warn!("loading history: {e}");
                return self
                    .refuse(ErrorCode::Internal, "could not load the room's history")
                    .await;
            }
        };
        self.send_msg(&ServerMsg::Joined {
            room: room.to_string(),
            messages,
            complete,
        })
        .await
    }
}

/// The answer to the oldest posted message (pending while there is none).
async fn oldest_answer(
    posted: &mut VecDeque<oneshot::Receiver<Result<(), ErrorCode>>>,
) -> Result<Result<(), ErrorCode>, oneshot::error::RecvError> {
    poll_fn(|cx| match posted.front_mut() {
        Some(rx) => Pin::new(rx).poll(cx),
        None => Poll::Pending,
    })
    .await
}

fn read_error(e: axum::Error) -> End {
    use tokio_tungstenite::tungstenite::{error::CapacityError, Error as WsError};
    match e.into_inner().downcast::<WsError>() {
        Ok(err)
            if matches!(
                *err,
                WsError::Capacity(CapacityError::MessageTooLong { .. })
            ) =>
        {
            End::Close(
                CLOSE_TOO_BIG,
                format!("frame larger than {MAX_FRAME_BYTES} bytes"),
            )
        }
        Ok(err) => {
            debug!("chat socket read error: {err}");
            End::Gone
        }
        Err(other) => {
            debug!("chat socket read error: {other}");
            End::Gone
        }
    }
}
