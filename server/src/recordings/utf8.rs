//! Decodes terminal output as one UTF-8 stream across reads: a character
//! split between two reads is joined, invalid bytes become U+FFFD.

/// The bytes of an unfinished character carried to the next read.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    carry: Vec<u8>,
}

impl Utf8Stream {
    /// Appends the text of `bytes` (after what the last call carried) to `out`.
    pub fn decode(&mut self, bytes: &[u8], out: &mut String) {
        self.decode_each(bytes, |text| out.push_str(text));
    }

    /// Hands the text of `bytes` (after what the last call carried) to
    /// `emit`, in pieces, without copying the valid runs.
    pub fn decode_each(&mut self, bytes: &[u8], mut emit: impl FnMut(&str)) {
        let joined;
        let mut rest: &[u8] = if self.carry.is_empty() {
            bytes
        } else {
            self.carry.extend_from_slice(bytes);
            joined = std::mem::take(&mut self.carry);
            &joined
        };
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    emit(s);
                    return;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    // Safe by construction: `valid_up_to` bytes are valid UTF-8.
                    emit(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            emit("\u{fffd}");
                            rest = bad.get(n..).unwrap_or_default();
                        }
                        None => {
                            // A character's start whose end is in the next read.
                            self.carry.extend_from_slice(bad);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Text for what is still carried when the stream ends (U+FFFD if any).
    pub fn finish(&mut self, out: &mut String) {
        if !std::mem::take(&mut self.carry).is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }

    /// Whether an unfinished character is carried.
    pub fn is_carrying(&self) -> bool {
        !self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(bytes: &[u8], at: &[usize]) -> String {
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        let mut from = 0;
        for &cut in at.iter().chain(std::iter::once(&bytes.len())) {
            s.decode(&bytes[from..cut], &mut out);
            from = cut;
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn characters_split_between_reads_are_joined_at_every_cut() {
        let text = "aé€😀z";
        let bytes = text.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                assert_eq!(decode_split(bytes, &[i, j]), text, "cut at {i}, {j}");
            }
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_and_decoding_goes_on() {
        assert_eq!(decode_split(b"a\xffb\xc3", &[]), "a\u{fffd}b\u{fffd}");
        assert_eq!(decode_split(b"\xe2\x82x", &[1]), "\u{fffd}x");
        assert_eq!(
            decode_split(b"ok\xed\xa0\x80!", &[3]),
            "ok\u{fffd}\u{fffd}\u{fffd}!"
        );
    }
}
