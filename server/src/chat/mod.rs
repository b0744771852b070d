//! The chat hub: rooms, presence, history and fan-out, independent of the
//! transport (the WebSocket adapter lives in [`crate::ws::chat`]).
pub mod feed;
pub mod hub;
pub mod store;

pub use hub::{ChatHub, ClientHandle, JoinedRoom, KickReason, Offered, Outbound, Outlet};
