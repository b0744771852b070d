//! `GET /healthz` for load balancers and monitoring: 200 while this node can serve (its database answers and it is not draining), 503 when it cannot; the body names the node.
use std::{sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use tracing::warn;

use crate::state::Core;

/// Longest wait for the database's answer: a check that hangs is a failure.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// `ok <node>` with 200, or what is wrong with 503. A draining node answers
/// 503 so that load balancers send new users elsewhere while its live
/// terminals finish. Redis is not checked: a node without it still serves
/// its own clients (see `cluster::broker`).
pub async fn healthz(State(core): State<Arc<Core>>) -> Response {
    let node = core.config.node_id.as_deref().unwrap_or("single");
    let (status, text) = if core.terms.draining() {
        let live = core.terms.live_sessions();
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("draining {node}: terminal sessions left: {live}\n"),
        )
    } else {
        database_health(&core, node).await
    };
    let mut resp = (status, text).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// 200 if the database answers in time, else 503 with what went wrong.
async fn database_health(core: &Core, node: &str) -> (StatusCode, String) {
    match tokio::time::timeout(DATABASE_TIMEOUT, core.db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, format!("ok {node}\n")),
        Ok(Err(e)) => {
            warn!("health check: the database failed: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("unavailable {node}: the database failed\n"),
            )
        }
        Err(_) => {
            warn!("health check: the database did not answer within {DATABASE_TIMEOUT:?}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("unavailable {node}: the database does not answer\n"),
            )
        }
    }
}
