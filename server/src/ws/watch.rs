//! `/ws/watch/{id}`: checks Origin, the session-bound watch ticket and that
//! the caller may still watch, then hands the socket to the read-only
//! watcher adapter.
use axum::{
    extract::{ws::WebSocketUpgrade, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use super::{caller, forward_upgrade, owner_node, UpgradeQuery};
use crate::{auth::tickets::Purpose, services::monitoring::may_watch, state::AppState, term};

/// Upgrade handler for a watcher's socket.
pub async fn upgrade(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<UpgradeQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let core = state.core.clone();
    let path = format!("/ws/watch/{id}");
    let who = match caller(
        &core,
        &headers,
        q.otp.as_deref(),
        &Purpose::Watch(id.clone()),
        &path,
    )
    .await
    {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    let not_found = || (StatusCode::NOT_FOUND, "no such terminal session").into_response();
    let Some(session) = core.terms.session(&id) else {
        // Held by another node: it decides who may watch.
        return match owner_node(&core, &headers, &id, None).await {
            Some(url) => forward_upgrade(&core, ws, &url, &path, &who).await,
            None => not_found(),
        };
    };
    match may_watch(&core, &who.user.info(), &session).await {
        Ok(true) => {}
        Ok(false) => return not_found(),
        Err(e) => {
            tracing::warn!("checking watch access: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    let watcher = match session.watch(&who.user.name) {
        Ok(w) => w,
        Err(e) => return (StatusCode::TOO_MANY_REQUESTS, e.to_string()).into_response(),
    };
    crate::services::audit(
        &core.db,
        Some(&who.user.name),
        "session.watch",
        Some(&id),
        Some(&format!(
            "{}@{}",
            session.meta().owner_name,
            session.target_name()
        )),
    )
    .await;
    let registration = core
        .sockets
        .register(who.user.id, who.login_session.clone());
    let keepalive = super::term_keepalive(&core);
    let span = tracing::info_span!("watch_socket", session = %id, user = %who.user.name);
    let db = core.db.clone();
    let name = who.user.name.clone();
    ws.max_message_size(app::protocol::term::MAX_CLIENT_FRAME_BYTES)
        .max_frame_size(app::protocol::term::MAX_CLIENT_FRAME_BYTES)
        .on_upgrade(move |socket| {
            async move {
                let closed = registration.closed.clone();
                term::socket::serve_watcher(socket, watcher, keepalive, closed).await;
                drop(registration);
                crate::services::audit(&db, Some(&name), "session.watch_end", Some(&id), None)
                    .await;
            }
            .instrument(span)
        })
}
