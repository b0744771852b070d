//! Every message that crosses the network between browser and server: chat
//! frames (JSON text) and terminal frames (postcard binary). One enum per
//! direction per channel; both sides compile this module.
pub mod chat;
pub mod term;
