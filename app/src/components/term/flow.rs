//! Bookkeeping of one terminal stream, free of any browser API: which output
//! bytes are new (by stream offset) and when to ask the server to pause or
//! resume (watermarks on bytes handed to xterm.js but not yet rendered, as
//! VS Code and ttyd do).

/// Unrendered bytes above which the browser asks the server to pause.
pub const HIGH_WATER: usize = 512 * 1024;
/// Unrendered bytes below which a paused stream is resumed.
pub const LOW_WATER: usize = 128 * 1024;

/// The next stream offset the terminal expects.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    next: u64,
}

impl Cursor {
    /// Offset to ask for (`ResumeFrom`) after a reconnect.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// The part of `Output { seq, data }` not written yet (bytes before the
    /// expected offset were already shown); advances past `data`. After a
    /// gap (`seq` beyond the cursor) everything is new.
    pub fn accept<'a>(&mut self, seq: u64, data: &'a [u8]) -> &'a [u8] {
        let end = seq.saturating_add(data.len() as u64);
        if end <= self.next {
            return &[];
        }
        let skip = usize::try_from(self.next.saturating_sub(seq))
            .unwrap_or(usize::MAX)
            .min(data.len());
        self.next = end;
        &data[skip..]
    }

    /// A snapshot replaced the screen; the stream continues at `seq`.
    pub fn reset(&mut self, seq: u64) {
        self.next = seq;
    }
}

/// A flow-control request for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowSignal {
    /// Stop sending output.
    Pause,
    /// Send again.
    Resume,
}

/// Bytes written to xterm.js whose write callback has not fired yet.
#[derive(Debug, Default, Clone, Copy)]
pub struct Watermarks {
    pending: usize,
    paused: bool,
}

impl Watermarks {
    /// Whether the server was asked to pause.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// `n` bytes were handed to xterm.js; `Pause` once above [`HIGH_WATER`].
    pub fn written(&mut self, n: usize) -> Option<FlowSignal> {
        self.pending = self.pending.saturating_add(n);
        if !self.paused && self.pending > HIGH_WATER {
            self.paused = true;
            return Some(FlowSignal::Pause);
        }
        None
    }

    /// xterm.js rendered `n` bytes; `Resume` once a paused stream drops below [`LOW_WATER`].
    pub fn rendered(&mut self, n: usize) -> Option<FlowSignal> {
        self.pending = self.pending.saturating_sub(n);
        if self.paused && self.pending < LOW_WATER {
            self.paused = false;
            return Some(FlowSignal::Resume);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_skips_what_was_shown() {
        let mut c = Cursor::default();
        assert_eq!(c.accept(0, b"hello"), b"hello");
        assert_eq!(c.next(), 5);
        // Replayed after a reconnect: overlap trimmed, old chunk dropped.
        assert_eq!(c.accept(3, b"lo world"), b" world");
        assert_eq!(c.accept(0, b"hello"), b"");
        assert_eq!(c.next(), 11);
        // A gap: everything is new.
        assert_eq!(c.accept(20, b"x"), b"x");
        assert_eq!(c.next(), 21);
        c.reset(100);
        assert_eq!(c.accept(99, b"ab"), b"b");
    }

    #[test]
    fn pause_and_resume_once_each() {
        let mut w = Watermarks::default();
        assert_eq!(w.written(HIGH_WATER), None);
        assert_eq!(w.written(1), Some(FlowSignal::Pause));
        assert_eq!(w.written(1000), None);
        assert!(w.paused());
        assert_eq!(w.rendered(HIGH_WATER - LOW_WATER), None);
        assert_eq!(w.rendered(1002), Some(FlowSignal::Resume));
        assert_eq!(w.rendered(LOW_WATER), None);
        assert!(!w.paused());
    }
}
