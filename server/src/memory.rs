//! What the process asks of its allocator: large buffers straight from the
//! system, and free memory handed back after a burst.
//!
//! glibc raises its mmap threshold each time a large block is freed, so
//! after the first argon2 hash (19 MiB) such buffers come from a thread's
//! heap; freed, they merge into that heap's top, which `malloc_trim` does not
//! shrink for non-main arenas. A login flood then left a buffer's worth of
//! RSS behind about half the time. A fixed threshold keeps large buffers in
//! their own mappings (returned on free), and [`return_free_memory`] gives
//! back free pages the connections of a burst leave in every arena. Other
//! allocators (musl, macOS) do both by themselves: these are no-ops there.
#![allow(unsafe_code)]

/// Allocations at least this large get their own mapping.
const MMAP_THRESHOLD_BYTES: i32 = 1024 * 1024;

/// Called once at start, before the server allocates large buffers.
pub fn keep_large_buffers_returnable() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it has no memory-safety
    // preconditions and glibc serialises it against allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

/// Asks glibc to give free pages of every arena back to the system.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has
    // no preconditions and may be called from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
