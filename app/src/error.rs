//! The one error type every server function returns; maps to an HTTP status.
use serde::{Deserialize, Serialize};

/// Errors a caller of a server function can react to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    /// Not logged in, or bad credentials (no detail on purpose).
    #[error("not logged in or bad credentials")]
    Unauthorized,
    /// Logged in but not allowed.
    #[error("not allowed")]
    Forbidden,
    /// No such thing (or not visible to the caller).
    #[error("not found: {0}")]
    NotFound(String),
    /// It existed and ended for a reason the text gives (a terminal session
    /// whose node stopped): nothing to retry.
    #[error("{0}")]
    Gone(String),
    /// Bad input, with what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// Too many attempts; retry after this many seconds.
    #[error("too many attempts, try again in {0} s")]
    RateLimited(u64),
    /// The server is too busy to take this request (e.g. every password
    /// hasher is occupied); retry after this many seconds.
    #[error("the server is busy, try again in {0} s")]
    Busy(u64),
    /// This server cannot do it now for the reason the text gives (it is
    /// shutting down); another node, or this one later, can.
    #[error("{0}")]
    Unavailable(String),
    /// The server failed; details are in its log.
    #[error("server error: {0}")]
    Internal(String),
    /// Transport or encoding failure of the server-function call itself.
    #[error("request failed: {0}")]
    Transport(String),
}

impl leptos::server_fn::error::FromServerFnError for ApiError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        ApiError::Transport(value.to_string())
    }
}

impl ApiError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Unauthorized => 401,
            ApiError::Forbidden => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Gone(_) => 410,
            ApiError::Invalid(_) => 400,
            ApiError::RateLimited(_) => 429,
            ApiError::Busy(_) | ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) | ApiError::Transport(_) => 500,
        }
    }

    /// Seconds for a `Retry-After` header, for errors that say when to retry.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited(secs) | ApiError::Busy(secs) => Some((*secs).max(1)),
            _ => None,
        }
    }
}
