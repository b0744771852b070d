//! The reconnecting WebSocket shared by the chat client and the terminal
//! tabs: [`policy`] decides (generations, backoff, giving up; plain Rust,
//! tested natively), [`backoff`] computes the delays, and
//! [`ReconnectingSocket`] is the thin browser glue (ticket, socket, timers)
//! that calls a client's [`Connector`].
pub mod backoff;
pub mod policy;
mod reconnecting;

pub use policy::Failure;
pub use reconnecting::{Connector, ReconnectingSocket, SocketTarget, TicketFuture};
