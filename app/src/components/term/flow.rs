//! Bookkeeping of one terminal stream, free of any browser API: which output
//! bytes are new (by stream offset) and when to ask the server to pause or
//! resume (watermarks on bytes handed to xterm.js but not yet rendered, as
//! VS Code and ttyd do; like them, xterm.js is asked for a write callback
//! once per [`ACK_EVERY`] bytes, not per frame).

/// Unrendered bytes above which the browser asks the server to pause.
pub const HIGH_WATER: usize = 64 * 1024;
/// Unrendered bytes below which a paused stream is resumed.
pub const LOW_WATER: usize = 16 * 1024;
/// Bytes written between two write callbacks. A keystroke's echo (a few
/// bytes) then costs no callback at all; xterm.js processes writes in order,
/// so one callback acknowledges every byte written before it. Below
/// [`LOW_WATER`], so the unacknowledged tail can never keep a stream paused.
pub const ACK_EVERY: usize = 8 * 1024;

// A tail of unacknowledged bytes at least LOW_WATER would keep a paused
// stream paused for ever (seen in the browser benchmark when LOW_WATER was
// lowered below ACK_EVERY).
const _: () = assert!(ACK_EVERY < LOW_WATER && LOW_WATER < HIGH_WATER);

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

/// What to do with one write to xterm.js.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// Ask xterm.js for a callback with this write; once it fires, pass this
    /// many bytes to [`Watermarks::rendered`]. `None`: write without one.
    pub ack: Option<usize>,
    /// Tell the server to pause.
    pub signal: Option<FlowSignal>,
}

/// Bytes written to xterm.js whose write callback has not fired yet.
#[derive(Debug, Default, Clone, Copy)]
pub struct Watermarks {
    /// Written and not acknowledged by a callback (the unacknowledged tail included).
    pending: usize,
    /// Written since the last write that carried a callback.
    unacked: usize,
    paused: bool,
}

impl Watermarks {
    /// Whether the server was asked to pause.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// `n` bytes are handed to xterm.js: whether this write carries a
    /// callback (every [`ACK_EVERY`] bytes, and always the one that pauses,
    /// so a paused stream is fully acknowledged), and `Pause` once above
    /// [`HIGH_WATER`].
    pub fn written(&mut self, n: usize) -> Write {
        self.pending = self.pending.saturating_add(n);
        self.unacked = self.unacked.saturating_add(n);
        let signal = (!self.paused && self.pending > HIGH_WATER).then(|| {
            self.paused = true;
            FlowSignal::Pause
        });
        let ack = (self.unacked >= ACK_EVERY || signal.is_some())
            .then(|| std::mem::take(&mut self.unacked));
        Write { ack, signal }
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
        let first = w.written(HIGH_WATER);
        assert_eq!(first.signal, None);
        assert_eq!(first.ack, Some(HIGH_WATER));
        assert_eq!(
            w.written(1),
            Write {
                ack: Some(1),
                signal: Some(FlowSignal::Pause)
            },
            "the pausing write carries a callback"
        );
        assert_eq!(w.written(1000).signal, None);
        assert!(w.paused());
        assert_eq!(w.rendered(HIGH_WATER - LOW_WATER), None);
        assert_eq!(w.rendered(1002), Some(FlowSignal::Resume));
        assert_eq!(w.rendered(LOW_WATER), None);
        assert!(!w.paused());
    }

    #[test]
    fn small_writes_share_one_callback() {
        let mut w = Watermarks::default();
        // Keystroke echoes: no callback per write.
        for _ in 0..100 {
            assert_eq!(w.written(3), Write::default());
        }
        // The write that reaches ACK_EVERY acknowledges everything before it.
        let big = w.written(ACK_EVERY);
        assert_eq!(big.ack, Some(ACK_EVERY + 300));
        assert_eq!(big.signal, None);
        assert_eq!(w.written(5).ack, None);
    }

    #[test]
    fn a_paused_stream_resumes_once_its_callbacks_fired() {
        let mut w = Watermarks::default();
        let mut acks = Vec::new();
        let mut paused = false;
        // 1000-byte frames until the pause, a few more in flight after it.
        for _ in 0..(HIGH_WATER / 1000 + 20) {
            let write = w.written(1000);
            paused |= write.signal == Some(FlowSignal::Pause);
            acks.extend(write.ack);
        }
        assert!(paused && w.paused());
        // xterm.js calls back in order; the tail without a callback is
        // smaller than LOW_WATER, so the last callback resumes at the latest.
        let mut resumed = 0;
        for n in acks {
            resumed += usize::from(w.rendered(n) == Some(FlowSignal::Resume));
        }
        assert_eq!(resumed, 1);
        assert!(!w.paused());
    }
}
