//! Ring buffer of recent terminal output, addressed by stream offset (`seq`).
use std::collections::VecDeque;

/// The last `capacity` bytes of a session's output stream.
///
/// Offsets are absolute: byte `n` of the stream has `seq == n` forever, so a
/// client that has received up to `seq` can ask for exactly what follows.
/// Storage grows on demand up to `capacity`, so idle sessions stay small.
#[derive(Debug)]
pub(crate) struct Ring {
    /// Retained bytes; `buf[0]` is the byte at offset [`Ring::tail`].
    buf: VecDeque<u8>,
    /// Most bytes retained.
    capacity: usize,
    /// Offset one past the newest byte (total bytes ever pushed).
    head: u64,
}

impl Ring {
    /// An empty ring keeping at most `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            buf: VecDeque::new(),
            capacity,
            head: 0,
        }
    }

    /// Offset one past the newest byte.
    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// Offset of the oldest retained byte.
    pub(crate) fn tail(&self) -> u64 {
        self.head - self.buf.len() as u64
    }

    /// Most bytes retained.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `data`, dropping the oldest bytes beyond capacity.
    pub(crate) fn push(&mut self, data: &[u8]) {
        let keep = data.len().min(self.capacity);
        let kept = data.get(data.len() - keep..).unwrap_or_default();
        let overflow = (self.buf.len() + kept.len()).saturating_sub(self.capacity);
        self.buf.drain(..overflow);
        self.buf.extend(kept);
        self.head += data.len() as u64;
    }

    /// The retained bytes from offset `from` (clamped to what is retained) to
    /// the head, as two slices (the ring's storage may wrap).
    pub(crate) fn slices_from(&self, from: u64) -> (&[u8], &[u8]) {
        let skip = usize::try_from(from.saturating_sub(self.tail()))
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        let (a, b) = self.buf.as_slices();
        if skip <= a.len() {
            (a.get(skip..).unwrap_or_default(), b)
        } else {
            (&[], b.get(skip - a.len()..).unwrap_or_default())
        }
    }

    /// Up to `max` bytes starting at offset `from`; `None` if `from` is
    /// no longer retained or lies in the future.
    pub(crate) fn read(&self, from: u64, max: usize) -> Option<Vec<u8>> {
        if from < self.tail() || from > self.head {
            return None;
        }
        let start = usize::try_from(from - self.tail()).ok()?;
        let len = max.min(self.buf.len() - start);
        let (a, b) = self.buf.as_slices();
        let mut out = Vec::with_capacity(len);
        if start < a.len() {
            let end = (start + len).min(a.len());
            out.extend_from_slice(a.get(start..end)?);
            out.extend_from_slice(b.get(..len - (end - start))?);
        } else {
            let s = start - a.len();
            out.extend_from_slice(b.get(s..s + len)?);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_wraparound() {
        let mut r = Ring::new(8);
        r.push(b"abcdef");
        assert_eq!((r.tail(), r.head()), (0, 6));
        r.push(b"ghij");
        assert_eq!((r.tail(), r.head()), (2, 10));
        assert_eq!(r.read(2, 100).as_deref(), Some(&b"cdefghij"[..]));
        assert_eq!(r.read(5, 3).as_deref(), Some(&b"fgh"[..]));
        assert_eq!(r.read(10, 3).as_deref(), Some(&b""[..]));
        assert!(r.read(1, 3).is_none(), "overwritten");
        assert!(r.read(11, 3).is_none(), "future");
    }

    #[test]
    fn slices_from_cover_the_rest_of_the_stream() {
        let mut r = Ring::new(8);
        r.push(b"abcdef");
        r.push(b"ghij"); // wraps: retained "cdefghij" from offset 2
        for from in 0..=11u64 {
            let (a, b) = r.slices_from(from);
            let got = [a, b].concat();
            let start = from.clamp(2, 10) as usize - 2;
            assert_eq!(got, &b"cdefghij"[start..], "from {from}");
        }
    }

    #[test]
    fn oversized_push_keeps_the_newest_bytes() {
        let mut r = Ring::new(4);
        r.push(b"0123456789");
        assert_eq!((r.tail(), r.head()), (6, 10));
        assert_eq!(r.read(6, 10).as_deref(), Some(&b"6789"[..]));
    }

    #[test]
    fn reads_across_the_seam_match_the_stream() {
        let mut r = Ring::new(7);
        let mut stream = Vec::new();
        for i in 0..50u8 {
            let chunk: Vec<u8> = (0..(i % 5))
                .map(|j| i.wrapping_mul(7).wrapping_add(j))
                .collect();
            stream.extend_from_slice(&chunk);
            r.push(&chunk);
            for from in r.tail()..=r.head() {
                for max in 0..9 {
                    let got = r.read(from, max).expect("retained");
                    let s = from as usize;
                    let want = &stream[s..(s + max).min(stream.len())];
                    assert_eq!(got, want);
                }
            }
        }
    }
}
