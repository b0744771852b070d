//! `/ws/term/{id}`: checks Origin, the session-bound ticket and ownership, then
//! hands the socket to the terminal core's adapter.
use axum::{
    extract::{ws::WebSocketUpgrade, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use super::{authorize, UpgradeQuery};
use crate::{services::terminals::term_purpose, state::AppState, term};

/// Upgrade handler for a terminal socket.
pub async fn upgrade(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<UpgradeQuery>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let core = state.core.clone();
    let who = match authorize(&core, &headers, q.otp.as_deref(), &term_purpose(&id)).await {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    let session = match core.terms.session(&id) {
        Some(s) if s.owner() == who.user.id => s,
        _ => return (StatusCode::NOT_FOUND, "no such terminal session").into_response(),
    };
    let registration = core
        .sockets
        .register(who.user.id, who.login_session.clone());
    let span = tracing::info_span!("term_socket", session = %id, user = %who.user.name);
    ws.max_message_size(app::protocol::term::MAX_CLIENT_FRAME_BYTES)
        .max_frame_size(app::protocol::term::MAX_CLIENT_FRAME_BYTES)
        .on_upgrade(move |socket| {
            async move {
                let mut registration = registration;
                tokio::select! {
                    _ = term::socket::serve_owner(socket, session) => {}
                    _ = registration.closed.wait_for(|closed| *closed) => {
                        tracing::info!("terminal socket closed by logout");
                    }
                }
            }
            .instrument(span)
        })
}
