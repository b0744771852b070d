//! One poison-tolerant lock helper for the server's short critical sections.
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, recovering the data if a holder panicked: every critical section
/// in the server leaves its data consistent before anything that can panic,
/// so a poisoned lock carries no broken invariant worth stopping the server for.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
