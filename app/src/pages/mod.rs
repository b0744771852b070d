//! One module per page: login, chat (`/`), terminals, recordings and their player, live monitoring, audit, admin, the user's account.
pub mod account;
pub mod admin;
pub mod audit;
pub mod chat;
pub mod live;
pub mod login;
pub mod player;
pub mod recordings;
pub mod terminals;

use crate::error::ApiError;

/// A server-function error as a sentence for the page.
pub(crate) fn error_text(err: &ApiError) -> String {
    match err {
        ApiError::Unauthorized => "you are not logged in (or your session ended)".into(),
        ApiError::Forbidden => "you are not allowed to do that".into(),
        ApiError::RateLimited(secs) => format!("too many attempts, try again in {secs} s"),
        other => other.to_string(),
    }
}
