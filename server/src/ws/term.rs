//! `/ws/term/{id}`: checks Origin, the session-bound ticket, ownership and
//! access (namespace membership, host still there, local-target policy), then
//! hands the socket to the terminal core's adapter.
use axum::{
    extract::{ws::WebSocketUpgrade, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use super::{caller, forward_upgrade, owner_node, UpgradeQuery};
use crate::{
    auth::tickets::Purpose, services::terminals::session_access_denied, state::AppState, term,
};

/// Upgrade handler for a terminal socket.
pub async fn upgrade(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<UpgradeQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let core = state.core.clone();
    let path = format!("/ws/term/{id}");
    let who = match caller(
        &core,
        &headers,
        q.otp.as_deref(),
        &Purpose::Term(id.clone()),
        &path,
    )
    .await
    {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    let session = match core.terms.session(&id) {
        Some(s) if s.owner() == who.user.id => s,
        Some(_) => return (StatusCode::NOT_FOUND, "no such terminal session").into_response(),
        None => {
            return match owner_node(&core, &headers, &id, Some(who.user.id)).await {
                Some(url) => forward_upgrade(&core, ws, &url, &path, &who).await,
                None => (StatusCode::NOT_FOUND, "no such terminal session").into_response(),
            }
        }
    };
    match session_access_denied(&core, &session).await {
        Ok(None) => {}
        Ok(Some(reason)) => {
            core.terms.close_because(&id, &reason);
            return (StatusCode::FORBIDDEN, reason).into_response();
        }
        Err(e) => {
            tracing::warn!("checking terminal access: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    let registration = core
        .sockets
        .register(who.user.id, who.login_session.clone());
    let keepalive = super::term_keepalive(&core);
    let span = tracing::info_span!("term_socket", session = %id, user = %who.user.name);
    ws.max_message_size(app::protocol::term::MAX_CLIENT_FRAME_BYTES)
        .max_frame_size(app::protocol::term::MAX_CLIENT_FRAME_BYTES)
        .on_upgrade(move |socket| {
            async move {
                let closed = registration.closed.clone();
                term::socket::serve_owner(socket, session, keepalive, closed).await;
                drop(registration);
            }
            .instrument(span)
        })
}
