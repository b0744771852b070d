//! Sockets for a terminal session held by another node: this node checked the ticket, then opens the same path on the owner node with a sealed claim of who is asking, and pipes frames both ways.
//!
//! The claim is sealed with the secret key every node shares (AEAD: only a
//! node can make one), names the path it is for and expires within
//! [`CLAIM_TTL_SECS`]; the owner node runs its own checks (ownership,
//! access, watching rights) as for a socket of its own. The browser leg is
//! pinged here, so a vanished browser ends the forwarded socket and the
//! owner node's grace period starts.
use std::time::Duration;

use axum::{
    extract::ws::{CloseFrame as AxCloseFrame, Message as AxMessage, WebSocket},
    http::HeaderMap,
};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, Message as UpMessage};
use tracing::{debug, warn};

use super::SocketUser;
use crate::{
    db::{self, users},
    secrets::SecretBox,
    state::Core,
};

/// The header a forwarding node sends its claim in.
pub const CLAIM_HEADER: &str = "x-termroom-forward";
/// How long a claim may be used after it was made.
const CLAIM_TTL_SECS: i64 = 30;
/// What the claim's seal is bound to.
const CLAIM_CONTEXT: &[u8] = b"termroom forwarded socket";
/// How long connecting to the owner node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a forwarded socket is for, as the forwarding node checked it.
#[derive(Debug, Serialize, Deserialize)]
struct Claim {
    path: String,
    user_id: i64,
    login_session: Option<String>,
    expires: i64,
}

/// Forwarding failures.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("sealing the claim: {0}")]
    Seal(#[from] crate::secrets::SecretError),
    #[error("owner node {url}: {source}")]
    Connect {
        url: String,
        source: tungstenite::Error,
    },
    #[error("owner node {0}: timed out")]
    Timeout(String),
    #[error("owner node url {0:?} is not http://")]
    BadUrl(String),
}

/// The claim header's value for `who` on `path`.
fn seal_claim(secrets: &SecretBox, path: &str, who: &SocketUser) -> Result<String, ForwardError> {
    let claim = Claim {
        path: path.to_string(),
        user_id: who.user.id,
        login_session: who.login_session.clone(),
        expires: db::now_unix() + CLAIM_TTL_SECS,
    };
    let json = serde_json::to_vec(&claim).unwrap_or_default();
    let (nonce, ct) = secrets.seal_with(&json, CLAIM_CONTEXT)?;
    Ok(format!("{}.{}", hex::encode(nonce), hex::encode(ct)))
}

/// The claim in `headers` for `path`, if there is one, it opens with this
/// node's key and has not expired.
fn open_claim(secrets: &SecretBox, headers: &HeaderMap, path: &str) -> Option<Claim> {
    let value = headers.get(CLAIM_HEADER)?.to_str().ok()?;
    let (nonce, ct) = value.split_once('.')?;
    let json = secrets
        .open_with(
            &hex::decode(nonce).ok()?,
            &hex::decode(ct).ok()?,
            CLAIM_CONTEXT,
        )
        .ok()?;
    let claim: Claim = serde_json::from_slice(&json).ok()?;
    (claim.path == path && claim.expires >= db::now_unix()).then_some(claim)
}

/// Whether the request carries a forwarding claim at all (then it is
/// judged by the claim alone: no ticket, no Origin).
pub fn is_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(CLAIM_HEADER)
}

/// The user a forwarded request is for, or `None` (refuse it) when its
/// claim does not hold or the user is disabled.
pub async fn forwarded_user(core: &Core, headers: &HeaderMap, path: &str) -> Option<SocketUser> {
    let claim = open_claim(&core.secrets, headers, path)?;
    match users::by_id(&core.db, claim.user_id).await {
        Ok(Some(user)) if !user.disabled => Some(SocketUser {
            user,
            login_session: claim.login_session,
        }),
        Ok(_) => None,
        Err(e) => {
            warn!("loading the user of a forwarded socket: {e}");
            None
        }
    }
}

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `path` on the node at `node_url` for `who`.
pub async fn connect(
    secrets: &SecretBox,
    node_url: &str,
    path: &str,
    who: &SocketUser,
) -> Result<Upstream, ForwardError> {
    let base = node_url
        .strip_prefix("http://")
        .ok_or_else(|| ForwardError::BadUrl(node_url.to_string()))?
        .trim_end_matches('/');
    let url = format!("ws://{base}{path}");
    let mut request =
        url.as_str()
            .into_client_request()
            .map_err(|source| ForwardError::Connect {
                url: url.clone(),
                source,
            })?;
    let claim = seal_claim(secrets, path, who)?;
    if let Ok(v) = claim.parse() {
        request.headers_mut().insert(CLAIM_HEADER, v);
    }
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20));
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(source)) => Err(ForwardError::Connect { url, source }),
        Err(_) => Err(ForwardError::Timeout(url)),
    }
}

/// Pipes frames between the browser's socket and the owner node's until
/// either side closes; pings the browser every `ping` and gives up on it
/// after `idle` without a frame.
pub async fn pipe(client: WebSocket, upstream: Upstream, ping: Duration, idle: Duration) {
    let (mut to_client, mut from_client) = client.split();
    let (mut to_up, mut from_up) = upstream.split();
    let mut pinger = tokio::time::interval(ping);
    pinger.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            msg = from_client.next() => {
                let Some(Ok(msg)) = msg else { break };
                last_heard = tokio::time::Instant::now();
                let up = match msg {
                    AxMessage::Binary(b) => UpMessage::Binary(b),
                    AxMessage::Text(t) => UpMessage::text(t.as_str()),
                    AxMessage::Close(_) => break,
                    AxMessage::Ping(_) | AxMessage::Pong(_) => continue,
                };
                if to_up.send(up).await.is_err() {
                    break;
                }
            }
            msg = from_up.next() => {
                let Some(Ok(msg)) = msg else { break };
                let down = match msg {
                    UpMessage::Binary(b) => AxMessage::Binary(b),
                    UpMessage::Text(t) => AxMessage::Text(t.as_str().into()),
                    UpMessage::Close(frame) => {
                        let frame = frame.map(|f| AxCloseFrame {
                            code: f.code.into(),
                            reason: f.reason.as_str().into(),
                        });
                        let _ = to_client.send(AxMessage::Close(frame)).await;
                        break;
                    }
                    UpMessage::Ping(_) | UpMessage::Pong(_) | UpMessage::Frame(_) => continue,
                };
                if to_client.send(down).await.is_err() {
                    break;
                }
            }
            _ = pinger.tick() => {
                if last_heard.elapsed() > idle {
                    debug!("forwarded socket: the browser went silent");
                    break;
                }
                if to_client.send(AxMessage::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to_up.send(UpMessage::Close(None)).await;
    let _ = to_up.close().await;
    let _ = to_client.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::users::UserRow;

    fn who() -> SocketUser {
        SocketUser {
            user: UserRow {
                id: 7,
                name: "alice".into(),
                password_hash: String::new(),
                role: app::model::Role::Member,
                disabled: false,
            },
            login_session: Some("h".into()),
        }
    }

    #[test]
    fn a_claim_opens_only_for_its_path_with_the_same_key() {
        let key = SecretBox::from_hex(&"11".repeat(32)).unwrap();
        let other = SecretBox::from_hex(&"22".repeat(32)).unwrap();
        let mut headers = HeaderMap::new();
        let claim = seal_claim(&key, "/ws/term/abc", &who()).unwrap();
        headers.insert(CLAIM_HEADER, claim.parse().unwrap());
        let opened = open_claim(&key, &headers, "/ws/term/abc").expect("opens");
        assert_eq!(
            (opened.user_id, opened.login_session.as_deref()),
            (7, Some("h"))
        );
        assert!(
            open_claim(&key, &headers, "/ws/term/other").is_none(),
            "bound to its path"
        );
        assert!(
            open_claim(&other, &headers, "/ws/term/abc").is_none(),
            "needs the same key"
        );
        headers.insert(CLAIM_HEADER, "00.00".parse().unwrap());
        assert!(open_claim(&key, &headers, "/ws/term/abc").is_none());
    }
}
