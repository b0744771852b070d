//! HTTP plumbing around the router: cross-site request checks, response compression and static files, recording downloads, the health check, TCP socket options.
pub mod compress;
pub mod csrf;
pub mod health;
pub mod recordings;
pub mod tcp;
