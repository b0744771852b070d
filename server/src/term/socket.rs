//! WebSocket adapter for a session's owner: binary postcard frames in both directions.
//!
//! Thin by design: decode client frames and hand them to the [`Attachment`],
//! encode what the attachment yields. The output half awaits each socket
//! write before asking for the next frame, so output is coalesced by write
//! completion; the input half runs beside it, so Ctrl-C is read even while a
//! write is stuck on a slow browser.
use std::sync::Arc;

use app::protocol::term::{ClientFrame, NoticeLevel, ServerFrame, MAX_CLIENT_FRAME_BYTES};
use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::{Attachment, AttachmentSender, Session};

/// Local notices (malformed frames) waiting for the output half; more are
/// dropped, a client that floods garbage needs no more than a few warnings.
const LOCAL_NOTICES: usize = 8;

/// Serves the owner's socket until either side ends. The caller has checked
/// the origin, the ticket, and that the caller owns `session`.
pub async fn serve_owner(socket: WebSocket, session: Arc<Session>) {
    let mut attachment = session.attach();
    let sender = attachment.sender();
    let (mut sink, mut stream) = socket.split();
    let (notice_tx, mut notice_rx) = mpsc::channel::<ServerFrame>(LOCAL_NOTICES);

    let inbound = async move {
        while let Some(msg) = stream.next().await {
            let Ok(msg) = msg else { break };
            if !handle_message(msg, &sender, &notice_tx).await {
                break;
            }
        }
    };
    let outbound = async move {
        loop {
            let frame = tokio::select! {
                f = next_frame(&mut attachment) => match f {
                    Some(f) => f,
                    None => break,
                },
                Some(n) = notice_rx.recv() => n,
            };
            if sink
                .send(Message::Binary(frame.encode().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = sink.send(Message::Close(None)).await;
    };
    // Whichever half ends first ends the socket; dropping the attachment detaches.
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
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
