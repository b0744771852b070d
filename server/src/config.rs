//! Settings every part of the server reads, resolved once at start.
use std::{path::PathBuf, time::Duration};

use crate::cli::LocalTarget;

/// The resolved server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory (database, secret key, recordings).
    pub data_dir: PathBuf,
    /// Origins allowed to open WebSockets, exact match (scheme://host[:port]).
    /// The server's own origin (from the request's Host) is always allowed too.
    pub allowed_origins: Vec<String>,
    /// Who may open the local shell target.
    pub local_target: LocalTarget,
    /// Shell for the local target.
    pub local_shell: PathBuf,
    /// How long a detached terminal session is kept.
    pub term_grace: Duration,
    /// Sustained chat messages per second per user.
    pub chat_rate: u32,
    /// A chat socket silent this long is closed.
    pub chat_idle: Duration,
    /// Interval between pings on a terminal socket.
    pub term_ping: Duration,
    /// A terminal socket silent this long is dropped (detached; the grace period starts).
    pub term_idle: Duration,
    /// Most live terminal sessions per user.
    pub max_sessions_per_user: usize,
    /// How often the database's change counter is polled (revocation by the command line).
    pub revocation_poll: Duration,
    /// How often expired login sessions and tickets are deleted.
    pub purge_interval: Duration,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Serve the diagnostic endpoints (`/ws/echo` for protocol conformance runs).
    pub diagnostics: bool,
    /// Most chat rooms that may exist; joining a new room past it is refused.
    pub max_rooms: usize,
    /// Most chat sockets one user may have open at once.
    pub max_chat_sockets_per_user: usize,
    /// Where terminal sessions are recorded; `None`: not recorded (benchmarks).
    pub recordings: Option<crate::recordings::files::RecordingDir>,
    /// This node's id when several nodes share the database.
    pub node_id: Option<String>,
}

impl Config {
    /// A configuration with defaults for unit tests, allowing `origins`.
    #[cfg(test)]
    pub(crate) fn for_tests(origins: &[&str]) -> Config {
        Config {
            data_dir: PathBuf::from("."),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            local_target: LocalTarget::Off,
            local_shell: PathBuf::from("/bin/sh"),
            term_grace: Duration::from_secs(1),
            chat_rate: 5,
            chat_idle: Duration::from_secs(60),
            term_ping: Duration::from_secs(20),
            term_idle: Duration::from_secs(60),
            max_sessions_per_user: 32,
            revocation_poll: Duration::from_secs(2),
            purge_interval: Duration::from_secs(60),
            trusted_proxies: Vec::new(),
            diagnostics: false,
            max_rooms: 1000,
            max_chat_sockets_per_user: 16,
            recordings: None,
            node_id: None,
        }
    }

    /// Whether `origin` is on the allow-list, or is the server's own origin for `host`.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/');
        if self
            .allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/') == origin)
        {
            return true;
        }
        match host {
            Some(h) => origin == format!("http://{h}") || origin == format!("https://{h}"),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(origins: &[&str]) -> Config {
        Config::for_tests(origins)
    }

    #[test]
    fn own_origin_and_allow_list_are_exact() {
        let c = cfg(&["https://ops.example.com"]);
        assert!(c.origin_allowed("http://127.0.0.1:3000", Some("127.0.0.1:3000")));
        assert!(c.origin_allowed("https://ops.example.com", Some("x")));
        assert!(!c.origin_allowed("https://ops.example.com.evil.net", Some("x")));
        assert!(!c.origin_allowed("http://127.0.0.1:3001", Some("127.0.0.1:3000")));
        assert!(!c.origin_allowed("null", None));
    }
}
