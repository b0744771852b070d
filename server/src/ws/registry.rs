//! Open terminal sockets by user and login session, so logout and disabling a
//! user close them (chat sockets are tracked by the hub itself).
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use tokio::sync::watch;

#[derive(Debug)]
struct Entry {
    user_id: i64,
    login_session: Option<String>,
    close: watch::Sender<bool>,
}

/// The registry; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SocketRegistry {
    entries: Arc<Mutex<HashMap<u64, Entry>>>,
    next: Arc<AtomicU64>,
}

/// Removes its socket from the registry when dropped.
#[derive(Debug)]
pub struct Registration {
    id: u64,
    entries: Arc<Mutex<HashMap<u64, Entry>>>,
    /// Becomes `true` when the socket must close.
    pub closed: watch::Receiver<bool>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl SocketRegistry {
    /// Registers a socket.
    pub fn register(&self, user_id: i64, login_session: Option<String>) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = watch::channel(false);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Entry {
                    user_id,
                    login_session,
                    close,
                },
            );
        Registration {
            id,
            entries: self.entries.clone(),
            closed,
        }
    }

    fn close_where(&self, pred: impl Fn(&Entry) -> bool) {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for e in map.values().filter(|e| pred(e)) {
            e.close.send_replace(true);
        }
    }

    /// Closes every socket opened under a login session.
    pub fn close_session(&self, login_session: &str) {
        self.close_where(|e| e.login_session.as_deref() == Some(login_session));
    }

    /// Closes every socket of a user.
    pub fn close_user(&self, user_id: i64) {
        self.close_where(|e| e.user_id == user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_session_signals_only_matching_sockets() {
        let r = SocketRegistry::default();
        let a = r.register(1, Some("s1".into()));
        let b = r.register(1, Some("s2".into()));
        r.close_session("s1");
        assert!(*a.closed.borrow());
        assert!(!*b.closed.borrow());
        r.close_user(1);
        assert!(*b.closed.borrow());
        drop(a);
        assert_eq!(r.entries.lock().unwrap().len(), 1);
    }
}
