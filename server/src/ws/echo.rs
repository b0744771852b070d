//! `/ws/echo`, served only with `--diagnostics`: echoes every text and binary
//! message back, with the chat socket's size limits, so a protocol
//! conformance suite (Autobahn, `make conformance`) can exercise the
//! WebSocket stack that chat and terminals run on.
use std::time::Duration;

use app::protocol::chat::MAX_FRAME_BYTES;
use axum::{
    extract::{
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
        State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use tracing::{debug, warn};

use crate::state::AppState;

/// Read buffer per socket, as on the chat socket.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Close code for a message over [`MAX_FRAME_BYTES`] (RFC 6455 "message too big").
const CLOSE_TOO_BIG: u16 = 1009;
/// How long the close frame may take to go out before the socket is dropped.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Upgrade handler for `/ws/echo` (the route exists only with diagnostics on).
/// A present Origin must be allowed, as on every socket; no ticket is needed.
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let core = state.core;
    if !core.config.diagnostics {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !origin
            .to_str()
            .is_ok_and(|o| core.config.origin_allowed(o, host))
        {
            warn!(origin = ?origin, "echo socket from a foreign origin refused");
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    let idle = core.config.chat_idle;
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| echo(socket, idle))
}

/// Sends every message back until the peer closes, a read fails, or nothing
/// arrives for `idle`.
async fn echo(mut socket: WebSocket, idle: Duration) {
    loop {
        let msg = match tokio::time::timeout(idle, socket.recv()).await {
            Err(_) => {
                close(&mut socket, 1000, "idle timeout".into()).await;
                return;
            }
            Ok(None) => return,
            Ok(Some(msg)) => msg,
        };
        let reply = match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => m,
            // tungstenite answers pings and close frames itself.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => continue,
            Err(e) => {
                if is_too_big(e) {
                    let reason = format!("message larger than {MAX_FRAME_BYTES} bytes");
                    close(&mut socket, CLOSE_TOO_BIG, reason).await;
                }
                return;
            }
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: String) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }));
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, socket.send(frame)).await;
}

fn is_too_big(e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::{error::CapacityError, Error as WsError};
    match e.into_inner().downcast::<WsError>() {
        Ok(err) => {
            debug!("echo socket read error: {err}");
            matches!(
                *err,
                WsError::Capacity(CapacityError::MessageTooLong { .. })
            )
        }
        Err(other) => {
            debug!("echo socket read error: {other}");
            false
        }
    }
}
