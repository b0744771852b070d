//! Chat WebSocket (`/ws`) messages: JSON text frames `{"type": ..., "payload": ...}`,
//! compatible with the classic Go chat client (`send_message`, `change_room`,
//! `new_message`) and extended for clients that announce [`RICH_PROTOCOL`].
use serde::{Deserialize, Serialize};

/// `Sec-WebSocket-Protocol` value (or query `v=1`) announcing the richer protocol.
pub const RICH_PROTOCOL: &str = "termroom.v1";
/// Room every socket starts in.
pub const DEFAULT_ROOM: &str = "general";
/// Longest chat message accepted, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Longest room name accepted, in characters.
pub const MAX_ROOM_CHARS: usize = 64;
/// Largest WebSocket frame accepted on `/ws`; larger frames close with 1009.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;
/// Messages sent on joining a room without a `since` cursor.
pub const HISTORY_ON_JOIN: usize = 100;

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Post a message to the socket's current room. `from` is ignored by the
    /// server (the authenticated user is the sender); kept for old clients.
    SendMessage {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// Move the socket to another room (created on first join). `since`: the
    /// last message id the client saw there, to receive only what it missed.
    ChangeRoom {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<i64>,
    },
}

/// One stored chat message as rich clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    /// Database id, increasing within a room; the reconnect cursor.
    pub id: i64,
    /// Room the message was posted in.
    pub room: String,
    /// Sender's user name.
    pub from: String,
    /// Message text (rendered as text, never HTML).
    pub message: String,
    /// Server time of storage, RFC 3339.
    pub sent: String,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "snake_case")]
pub enum ServerMsg {
    /// A message posted in the socket's room (the sender receives it too).
    /// Old clients get only `message`, `from`, `sent`; rich clients also `id` and `room`.
    NewMessage {
        message: String,
        from: String,
        sent: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Rich only: who the socket is (sent once after the upgrade).
    Welcome { user: String },
    /// Rich only: the socket is now in `room`; `messages` are the last ones
    /// (or all after the `since` cursor, oldest first). `complete` is false
    /// when older missed messages were left out.
    Joined {
        room: String,
        messages: Vec<ChatLine>,
        complete: bool,
    },
    /// Rich only: every room that exists (sent once, after connecting).
    Rooms { rooms: Vec<String> },
    /// Rich only: a room was created since the `rooms` list was sent.
    RoomAdded { room: String },
    /// Rich only: users connected to `room`.
    Presence { room: String, users: Vec<String> },
    /// Rich only: a request was refused; the socket stays open.
    Error { code: ErrorCode, message: String },
}

/// Why a chat request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON of the expected shape.
    BadJson,
    /// The `type` is not one this server knows.
    UnknownType,
    /// The message is empty or longer than [`MAX_MESSAGE_CHARS`].
    BadMessage,
    /// The room name is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    BadRoom,
    /// The user sends faster than the per-user limit.
    RateLimited,
    /// Binary frames are not part of the chat protocol.
    Unsupported,
    /// The server could not store the message; it was not delivered.
    Internal,
    /// The room does not exist and the server's limit of rooms is reached.
    TooManyRooms,
}

impl ServerMsg {
    /// A typed error frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
        }
    }
}

/// Checks a room name: 1..=64 characters of `[A-Za-z0-9_.-]`.
pub fn valid_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_ROOM_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Decodes a client text frame, telling a malformed frame from an unknown type.
pub fn decode_client(text: &str) -> Result<ClientMsg, (ErrorCode, String)> {
    match serde_json::from_str::<ClientMsg>(text) {
        Ok(msg) => Ok(msg),
        Err(err) => {
            let known = ["send_message", "change_room"];
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v) => match v.get("type").and_then(|t| t.as_str()) {
                    Some(t) if !known.contains(&t) => Err((
                        ErrorCode::UnknownType,
                        format!("unknown message type {t:?}"),
                    )),
                    _ => Err((ErrorCode::BadJson, format!("invalid message: {err}"))),
                },
                Err(err) => Err((ErrorCode::BadJson, format!("malformed JSON: {err}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_client_frames_decode() {
        let m = decode_client(r#"{"type":"send_message","payload":{"message":"hi","from":"x"}}"#);
        assert_eq!(
            m,
            Ok(ClientMsg::SendMessage {
                message: "hi".into(),
                from: Some("x".into())
            })
        );
        let m = decode_client(r#"{"type":"change_room","payload":{"name":"ops"}}"#);
        assert_eq!(
            m,
            Ok(ClientMsg::ChangeRoom {
                name: "ops".into(),
                since: None
            })
        );
    }

    #[test]
    fn classic_new_message_has_exactly_three_fields() {
        let msg = ServerMsg::NewMessage {
            message: "hi".into(),
            from: "alice".into(),
            sent: "2026-01-01T00:00:00Z".into(),
            id: None,
            room: None,
        };
        let v: serde_json::Value = serde_json::to_value(&msg).unwrap();
        assert_eq!(v["type"], "new_message");
        let payload = v["payload"].as_object().unwrap();
        let mut keys: Vec<_> = payload.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["from", "message", "sent"]);
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(decode_client("{nope").unwrap_err().0, ErrorCode::BadJson);
        assert_eq!(
            decode_client(r#"{"type":"dance","payload":{}}"#)
                .unwrap_err()
                .0,
            ErrorCode::UnknownType
        );
        assert_eq!(
            decode_client(r#"{"type":"send_message","payload":{}}"#)
                .unwrap_err()
                .0,
            ErrorCode::BadJson
        );
    }

    #[test]
    fn server_messages_round_trip() {
        let msgs = vec![
            ServerMsg::Rooms {
                rooms: vec!["general".into()],
            },
            ServerMsg::RoomAdded { room: "ops".into() },
            ServerMsg::error(ErrorCode::TooManyRooms, "full"),
            ServerMsg::Presence {
                room: "general".into(),
                users: vec!["a".into()],
            },
            ServerMsg::error(ErrorCode::RateLimited, "slow down"),
            ServerMsg::Joined {
                room: "ops".into(),
                messages: vec![],
                complete: true,
            },
        ];
        for m in msgs {
            let text = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<ServerMsg>(&text).unwrap(), m);
        }
    }

    #[test]
    fn room_names() {
        assert!(valid_room_name("ops-eu.1"));
        assert!(!valid_room_name(""));
        assert!(!valid_room_name("a b"));
        assert!(!valid_room_name(&"x".repeat(65)));
    }
}
