//! WebSocket adapter for a session's owner: binary postcard frames in both directions.
//!
//! Thin by design: decode client frames and hand them to the [`Attachment`],
//! encode what the attachment yields. The output half awaits each socket
//! write before asking for the next frame, so output is coalesced by write
//! completion; the input half runs beside it, so Ctrl-C is read even while a
//! write is stuck on a slow browser.
//!
//! Dead peers: the output half pings every [`KeepAlive::ping`]; a socket that
//! sends nothing (not even the pong a live browser answers with) for
//! [`KeepAlive::idle`] is dropped, which detaches it and starts the session's
//! grace period.
use std::{sync::Arc, time::Duration};

use app::protocol::term::{ClientFrame, NoticeLevel, ServerFrame, MAX_CLIENT_FRAME_BYTES};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};

use super::{Attachment, AttachmentSender, Session, Watcher};

/// Local notices (malformed frames) waiting for the output half; more are
/// dropped, a client that floods garbage needs no more than a few warnings.
const LOCAL_NOTICES: usize = 8;
/// How long the goodbye (notice and close frame) of a socket closed by the
/// server may take before the socket is dropped anyway.
const GOODBYE_WAIT: Duration = Duration::from_secs(2);
/// Close code of a socket the server closed because access ended (logout,
/// account disabled): 4000-4999 end the browser's tab instead of reconnecting.
pub const CLOSE_ACCESS_ENDED: u16 = 4001;
/// Longest close reason a close frame carries (RFC 6455: 123 bytes).
const MAX_CLOSE_REASON: usize = 123;

/// Dead-peer detection of an owner socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Interval between server pings.
    pub ping: Duration,
    /// A socket that sends nothing for this long is dropped (detached).
    pub idle: Duration,
}

impl Default for KeepAlive {
    /// Ping every 20 s, drop after 60 s of silence (like the chat socket).
    fn default() -> Self {
        Self {
            ping: Duration::from_secs(20),
            idle: Duration::from_secs(60),
        }
    }
}

/// Serves the owner's socket until either side ends, the peer is silent for
/// `keepalive.idle`, or `closed` becomes `Some(reason)`: then the owner gets
/// the reason as a warning and a [`CLOSE_ACCESS_ENDED`] close. The caller has
/// checked the origin, the ticket, and that the caller may use `session`.
pub async fn serve_owner(
    socket: WebSocket,
    session: Arc<Session>,
    keepalive: KeepAlive,
    closed: watch::Receiver<Option<String>>,
) {
    let mut attachment = session.attach();
    let sender = attachment.sender();
    let (mut sink, mut stream) = socket.split();
    let (notice_tx, mut notice_rx) = mpsc::channel::<ServerFrame>(LOCAL_NOTICES);
    let idle = keepalive.idle;

    let inbound = async move {
        loop {
            let msg = match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => {
                    tracing::info!(?idle, "terminal socket silent: detaching");
                    break;
                }
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(_)) | None) => break,
            };
            if !handle_message(msg, &sender, &notice_tx).await {
                break;
            }
        }
    };
    let mut stop = closed.clone();
    let outbound = async move {
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive.ping, keepalive.ping);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                f = next_frame(&mut attachment) => match f {
                    Some(f) => Message::Binary(f.encode().into()),
                    None => break,
                },
                Some(n) = notice_rx.recv() => Message::Binary(n.encode().into()),
                _ = ping.tick() => Message::Ping(Default::default()),
                reason = wait_closed(&mut stop) => {
                    tracing::info!(%reason, "terminal socket closed by the server");
                    let goodbye = async {
                        let notice = ServerFrame::Notice { level: NoticeLevel::Warning, text: reason.clone() };
                        sink.send(Message::Binary(notice.encode().into())).await?;
                        sink.send(Message::Close(Some(CloseFrame {
                            code: CLOSE_ACCESS_ENDED,
                            reason: Utf8Bytes::from(truncate(&reason, MAX_CLOSE_REASON)),
                        })))
                        .await
                    };
                    let _ = tokio::time::timeout(GOODBYE_WAIT, goodbye).await;
                    return;
                }
            };
            if sink.send(msg).await.is_err() {
                return;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    };
    // Also bounds a goodbye stuck behind a write to a peer that stopped reading.
    let mut forced = closed;
    let forced = async move {
        wait_closed(&mut forced).await;
        tokio::time::sleep(GOODBYE_WAIT * 2).await;
    };
    // Whichever half ends first ends the socket; dropping the attachment detaches.
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
        () = forced => {}
    }
}

/// How long one write to a watcher may take: a watcher that cannot take its
/// frames this fast is disconnected (it never slows the session).
pub const WATCHER_WRITE_WAIT: Duration = Duration::from_secs(5);
/// Text of the notice and close reason of a watcher whose writes stalled.
pub const WATCHER_SLOW_REASON: &str = "stopped watching: this connection is too slow";

/// Serves a read-only watcher's socket until the session ends, the watcher
/// falls behind (its writes stall for [`WATCHER_WRITE_WAIT`] or the output
/// leaves the ring before it was sent), the peer goes silent or away, or
/// `closed` becomes `Some(reason)`. Whatever the watcher sends is dropped.
pub async fn serve_watcher(
    socket: WebSocket,
    mut watcher: Watcher,
    keepalive: KeepAlive,
    closed: watch::Receiver<Option<String>>,
) {
    let (mut sink, mut stream) = socket.split();
    let idle = keepalive.idle;
    let inbound = async move {
        // Input of a watcher is never handed to the session: read and drop.
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(idle, stream.next()).await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    };
    let mut stop = closed;
    let outbound = async move {
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive.ping, keepalive.ping);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let goodbye = loop {
            let msg = tokio::select! {
                f = watcher.recv() => match f {
                    Some(f) => Message::Binary(f.encode().into()),
                    None => break None,
                },
                _ = ping.tick() => Message::Ping(Default::default()),
                reason = wait_closed(&mut stop) => break Some(reason),
            };
            match tokio::time::timeout(WATCHER_WRITE_WAIT, sink.send(msg)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::info!("watcher too slow: disconnecting it");
                    break Some(WATCHER_SLOW_REASON.to_string());
                }
            }
        };
        let close = async {
            if let Some(reason) = &goodbye {
                let notice = ServerFrame::Notice {
                    level: NoticeLevel::Warning,
                    text: reason.clone(),
                };
                sink.send(Message::Binary(notice.encode().into())).await?;
            }
            sink.send(Message::Close(Some(CloseFrame {
                code: CLOSE_ACCESS_ENDED,
                reason: Utf8Bytes::from(truncate(
                    goodbye.as_deref().unwrap_or("watch ended"),
                    MAX_CLOSE_REASON,
                )),
            })))
            .await
        };
        let _ = tokio::time::timeout(GOODBYE_WAIT, close).await;
    };
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
}

/// Resolves with the reason once `closed` holds one (never, if its sender is
/// gone without one).
async fn wait_closed(closed: &mut watch::Receiver<Option<String>>) -> String {
    let reason = closed
        .wait_for(Option::is_some)
        .await
        .map(|r| r.clone().unwrap_or_default());
    match reason {
        Ok(r) => r,
        Err(_) => std::future::pending().await,
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_string()
}

/// The attachment's next frame (cancel-safe).
async fn next_frame(attachment: &mut Attachment) -> Option<ServerFrame> {
    attachment.recv().await
}

/// Handles one client message; `false` ends the socket.
async fn handle_message(
    msg: Message,
    sender: &AttachmentSender,
    notices: &mpsc::Sender<ServerFrame>,
) -> bool {
    let warn = |text: String| {
        tracing::debug!("terminal socket: {text}");
        // Full: the client already has warnings pending; dropping more is fine.
        let _ = notices.try_send(ServerFrame::Notice {
            level: NoticeLevel::Warning,
            text,
        });
    };
    match msg {
        Message::Binary(bytes) => {
            if bytes.len() > MAX_CLIENT_FRAME_BYTES {
                warn(format!(
                    "ignored a frame of {} bytes (limit {MAX_CLIENT_FRAME_BYTES})",
                    bytes.len()
                ));
                return true;
            }
            match ClientFrame::decode(&bytes) {
                Ok(frame) => {
                    // Err(Detached): replaced by another tab; the output half
                    // delivers the notice and ends the socket.
                    let _ = sender.send(frame).await;
                    true
                }
                Err(e) => {
                    warn(format!("ignored a malformed frame: {e}"));
                    true
                }
            }
        }
        Message::Text(_) => {
            warn("ignored a text frame: terminal frames are binary".into());
            true
        }
        Message::Close(_) => false,
        Message::Ping(_) | Message::Pong(_) => true,
    }
}
