//! WebSocket endpoints: thin adapters that check Origin and ticket before the
//! upgrade, then decode frames into typed messages for the core.
pub mod chat;
pub mod echo;
pub mod forward;
pub mod outlet;
pub mod registry;
pub mod term;
pub mod watch;

use axum::{
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use tracing::warn;

use crate::{
    auth::tickets::{self, Purpose, TicketError},
    db::users::{self, UserRow},
    state::Core,
};

/// Query parameters of an upgrade request.
#[derive(Debug, Default, Deserialize)]
pub struct UpgradeQuery {
    /// The single-use ticket.
    pub otp: Option<String>,
    /// `1` announces the richer chat protocol.
    pub v: Option<String>,
}

/// Who opened a socket.
#[derive(Debug, Clone)]
pub struct SocketUser {
    /// The user.
    pub user: UserRow,
    /// Hash of the login session the ticket was issued under.
    pub login_session: Option<String>,
}

/// Ping interval and idle limit of terminal and watcher sockets, from the settings.
fn term_keepalive(core: &Core) -> crate::term::socket::KeepAlive {
    crate::term::socket::KeepAlive {
        ping: core.config.term_ping,
        idle: core.config.term_idle,
    }
}

/// Who asks for socket `path`: a socket forwarded by another node is judged
/// by its sealed claim alone (401 when it does not hold), any other by
/// [`authorize`].
pub async fn caller(
    core: &Core,
    headers: &HeaderMap,
    otp: Option<&str>,
    purpose: &Purpose,
    path: &str,
) -> Result<SocketUser, Response> {
    if forward::is_forwarded(headers) {
        return forward::forwarded_user(core, headers, path)
            .await
            .ok_or_else(|| (StatusCode::UNAUTHORIZED, "bad forwarding claim").into_response());
    }
    authorize(core, headers, otp, purpose).await
}

/// With several nodes: the base URL of the live node holding terminal
/// session `id` when that is another node (`owner`: only if that user owns
/// it). A forwarded request is never forwarded again.
pub async fn owner_node(
    core: &Core,
    headers: &HeaderMap,
    id: &str,
    owner: Option<i64>,
) -> Option<String> {
    let me = core.config.node_id.as_deref()?;
    if forward::is_forwarded(headers) {
        return None;
    }
    let row = crate::db::terminal_sessions::by_id(&core.db, id)
        .await
        .ok()
        .flatten()?;
    if row.status != "running" || owner.is_some_and(|o| o != row.user_id) {
        return None;
    }
    let node = row.node_id.filter(|n| n != me)?;
    crate::cluster::live_node_url(&core.db, &node)
        .await
        .ok()
        .flatten()
}

/// Upgrades to a socket piped to the same path on the node at `node_url`
/// (502 when that node cannot be reached).
pub async fn forward_upgrade(
    core: &Core,
    ws: axum::extract::WebSocketUpgrade,
    node_url: &str,
    path: &str,
    who: &SocketUser,
) -> Response {
    match forward::connect(&core.secrets, node_url, path, who).await {
        Ok(upstream) => {
            let keepalive = term_keepalive(core);
            ws.max_message_size(app::protocol::term::MAX_CLIENT_FRAME_BYTES)
                .max_frame_size(app::protocol::term::MAX_CLIENT_FRAME_BYTES)
                .on_upgrade(move |socket| {
                    forward::pipe(socket, upstream, keepalive.ping, keepalive.idle)
                })
        }
        Err(e) => {
            warn!("forwarding {path}: {e}");
            (
                StatusCode::BAD_GATEWAY,
                "the node holding this session cannot be reached",
            )
                .into_response()
        }
    }
}

/// Checks Origin (403) and redeems the ticket for `purpose` (401), before any upgrade.
/// A request without Origin is not from a browser page and cannot be a
/// cross-site hijack, so only a present, unlisted Origin is refused.
pub async fn authorize(
    core: &Core,
    headers: &HeaderMap,
    otp: Option<&str>,
    purpose: &Purpose,
) -> Result<SocketUser, Response> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let allowed = origin
            .to_str()
            .is_ok_and(|o| core.config.origin_allowed(o, host));
        if !allowed {
            warn!(origin = ?origin, "websocket upgrade from a foreign origin refused");
            return Err((StatusCode::FORBIDDEN, "origin not allowed").into_response());
        }
    }
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            "missing, unknown, expired or used ticket",
        )
            .into_response()
    };
    let otp = otp.ok_or_else(unauthorized)?;
    let redeemed = match tickets::redeem(&core.db, otp, purpose).await {
        Ok(r) => r,
        Err(TicketError::Invalid) => return Err(unauthorized()),
        Err(TicketError::Db(e)) => {
            warn!("redeeming ticket: {e}");
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    };
    match users::by_id(&core.db, redeemed.user_id).await {
        Ok(Some(user)) if !user.disabled => Ok(SocketUser {
            user,
            login_session: redeemed.login_session,
        }),
        Ok(_) => Err(unauthorized()),
        Err(e) => {
            warn!("loading user: {e}");
            Err(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}
