//! Input typed while a tab has no open socket (connecting, reconnecting): kept
//! in order up to a byte limit and sent after the socket opens. Free of any
//! browser API so it is tested natively.

/// Most bytes of input kept while disconnected: 64 KiB is far more than anyone
/// types during a reconnect, and a paste larger than that is better refused
/// (and said so) than replayed half into a shell minutes later.
pub const MAX_PENDING_BYTES: usize = 64 * 1024;

/// What happened to one piece of input given to [`PendingInput::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Kept; it will be sent after the socket opens.
    Kept,
    /// Not kept (the buffer is full); `first` when this is the first piece
    /// refused since the buffer was last emptied (the moment to tell the user).
    Refused {
        /// Whether this is the first refusal since the last [`PendingInput::take`].
        first: bool,
    },
}

/// What [`PendingInput::take`] hands back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flushed {
    /// The kept input, oldest first, ready to send.
    pub bytes: Vec<u8>,
    /// Bytes refused because the buffer was full (not sent, ever).
    pub refused: usize,
}

/// Input waiting for the socket.
///
/// Once a piece is refused, every later piece is refused too until the buffer
/// is taken: what reaches the shell is always a prefix of what was typed, never
/// a sequence with holes in it (a command missing its middle could do harm).
/// Pieces are kept or refused whole, so an escape sequence or a UTF-8
/// character is never cut.
#[derive(Debug)]
pub struct PendingInput {
    /// Kept bytes, oldest first.
    bytes: Vec<u8>,
    /// Refused bytes since the last take.
    refused: usize,
    /// The limit in bytes (a parameter so tests can use small values).
    limit: usize,
}

impl Default for PendingInput {
    fn default() -> Self {
        Self::with_limit(MAX_PENDING_BYTES)
    }
}

impl PendingInput {
    /// An empty buffer holding at most `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            bytes: Vec::new(),
            refused: 0,
            limit,
        }
    }

    /// Keeps `data` for later if it fits (and nothing was refused before it).
    pub fn push(&mut self, data: &[u8]) -> Pushed {
        if data.is_empty() {
            return Pushed::Kept;
        }
        let fits = self.bytes.len().saturating_add(data.len()) <= self.limit;
        if self.refused == 0 && fits {
            self.bytes.extend_from_slice(data);
            return Pushed::Kept;
        }
        let first = self.refused == 0;
        self.refused = self.refused.saturating_add(data.len());
        Pushed::Refused { first }
    }

    /// Whether nothing is kept and nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.refused == 0
    }

    /// Bytes kept so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes refused since the last take.
    pub fn refused(&self) -> usize {
        self.refused
    }

    /// Empties the buffer: what to send now and how much was lost.
    pub fn take(&mut self) -> Flushed {
        Flushed {
            bytes: std::mem::take(&mut self.bytes),
            refused: std::mem::replace(&mut self.refused, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_input_in_order() {
        let mut p = PendingInput::default();
        assert!(p.is_empty());
        assert_eq!(p.push(b"echo "), Pushed::Kept);
        assert_eq!(p.push(b""), Pushed::Kept);
        assert_eq!(p.push("héllo\r".as_bytes()), Pushed::Kept);
        assert_eq!(p.len(), 12);
        let f = p.take();
        assert_eq!(f.bytes, "echo héllo\r".as_bytes());
        assert_eq!(f.refused, 0);
        assert!(p.is_empty());
        assert_eq!(p.take(), Flushed::default());
    }

    #[test]
    fn the_limit_is_inclusive_and_applies_to_the_default() {
        let mut p = PendingInput::default();
        assert_eq!(p.push(&vec![b'a'; MAX_PENDING_BYTES]), Pushed::Kept);
        assert_eq!(p.push(b"b"), Pushed::Refused { first: true });
        let f = p.take();
        assert_eq!(f.bytes.len(), MAX_PENDING_BYTES);
        assert_eq!(f.refused, 1);
    }

    #[test]
    fn after_a_refusal_everything_is_refused_until_taken() {
        let mut p = PendingInput::with_limit(8);
        assert_eq!(p.push(b"abcde"), Pushed::Kept);
        // Too big to fit: refused whole, never cut.
        assert_eq!(p.push(b"\x1b[A\x1b[A"), Pushed::Refused { first: true });
        // Would fit on its own, but sending it would leave a hole.
        assert_eq!(p.push(b"x"), Pushed::Refused { first: false });
        assert_eq!(p.refused(), 7);
        assert!(!p.is_empty());
        let f = p.take();
        assert_eq!(f.bytes, b"abcde");
        assert_eq!(f.refused, 7);
        // A fresh start after the take.
        assert_eq!(p.push(b"12345678"), Pushed::Kept);
        assert_eq!(p.push(b"9"), Pushed::Refused { first: true });
    }

    #[test]
    fn a_piece_larger_than_the_limit_is_refused_at_once() {
        let mut p = PendingInput::with_limit(4);
        assert_eq!(p.push(b"hello"), Pushed::Refused { first: true });
        assert_eq!(p.len(), 0);
        assert!(!p.is_empty());
        assert_eq!(
            p.take(),
            Flushed {
                bytes: Vec::new(),
                refused: 5
            }
        );
    }
}
