//! WebSocket adapter for the owner of a terminal session (binary postcard frames).
use std::sync::Arc;

use axum::extract::ws::WebSocket;

use super::Session;

/// Serves the owner's socket until either side ends.
pub async fn serve_owner(_socket: WebSocket, _session: Arc<Session>) {}
