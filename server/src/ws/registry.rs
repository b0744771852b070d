//! Open terminal sockets by user and login session, so logout, disabling a
//! user and revocation close them (chat sockets are tracked by the hub itself).
use crate::sync::lock;
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use tokio::sync::watch;

/// Reason shown when a socket closes because its login session ended.
pub const SIGNED_OUT: &str = "signed out: sign in again to reattach";
/// Reason shown when a socket closes because its user was disabled.
pub const ACCOUNT_DISABLED: &str = "your account was disabled";

#[derive(Debug)]
struct Entry {
    user_id: i64,
    login_session: Option<String>,
    close: watch::Sender<Option<String>>,
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
    /// Becomes `Some(reason)` when the socket must close.
    pub closed: watch::Receiver<Option<String>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.entries).remove(&self.id);
    }
}

impl SocketRegistry {
    /// Registers a socket.
    pub fn register(&self, user_id: i64, login_session: Option<String>) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = watch::channel(None);
        lock(&self.entries).insert(
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

    /// Closes every socket for which `reason_for(user id, login session)`
    /// gives a reason, with that reason (a socket already closing keeps its first one).
    pub fn close_if(&self, reason_for: impl Fn(i64, Option<&str>) -> Option<String>) {
        let map = lock(&self.entries);
        for e in map.values() {
            if let Some(reason) = reason_for(e.user_id, e.login_session.as_deref()) {
                e.close.send_if_modified(|r| {
                    if r.is_some() {
                        return false;
                    }
                    *r = Some(reason);
                    true
                });
            }
        }
    }

    /// Closes every socket opened under a login session.
    pub fn close_session(&self, login_session: &str) {
        self.close_if(|_, s| (s == Some(login_session)).then(|| SIGNED_OUT.to_string()));
    }

    /// Closes every socket of a user.
    pub fn close_user(&self, user_id: i64) {
        self.close_if(|u, _| (u == user_id).then(|| ACCOUNT_DISABLED.to_string()));
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
        assert_eq!(a.closed.borrow().as_deref(), Some(SIGNED_OUT));
        assert!(b.closed.borrow().is_none());
        r.close_user(1);
        assert_eq!(b.closed.borrow().as_deref(), Some(ACCOUNT_DISABLED));
        // The first reason stays.
        assert_eq!(a.closed.borrow().as_deref(), Some(SIGNED_OUT));
        drop(a);
        assert_eq!(r.entries.lock().unwrap().len(), 1);
    }
}
