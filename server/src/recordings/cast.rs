//! The asciicast v3 format (asciinema 3.x): one JSON header line, then one
//! JSON array per event, `[interval, code, data]`, the interval being the
//! seconds since the previous event. Written and read here (the `asciicast`
//! crate only knows v2 and is unmaintained); times are whole microseconds.
use std::collections::BTreeMap;

use serde_json::{json, Value};

/// The header of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Terminal width at the start.
    pub cols: u16,
    /// Terminal height at the start.
    pub rows: u16,
    /// `TERM` of the session.
    pub term_type: String,
    /// Start, in seconds since the Unix epoch.
    pub timestamp: i64,
    /// `user@host`.
    pub title: String,
    /// Environment worth keeping (`TERM`, `SHELL`).
    pub env: BTreeMap<String, String>,
}

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Terminal output (`o`).
    Output,
    /// Typed input (`i`).
    Input,
    /// A resize to `COLSxROWS` (`r`).
    Resize,
    /// A marker with a label (`m`).
    Marker,
    /// The shell's exit status (`x`).
    Exit,
}

impl Code {
    /// The code's letter in the file.
    pub fn letter(self) -> &'static str {
        match self {
            Code::Output => "o",
            Code::Input => "i",
            Code::Resize => "r",
            Code::Marker => "m",
            Code::Exit => "x",
        }
    }

    fn from_letter(s: &str) -> Option<Self> {
        Some(match s {
            "o" => Code::Output,
            "i" => Code::Input,
            "r" => Code::Resize,
            "m" => Code::Marker,
            "x" => Code::Exit,
            _ => return None,
        })
    }
}

/// One event: `interval_us` after the previous one (or the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Microseconds since the previous event.
    pub interval_us: u64,
    /// Kind.
    pub code: Code,
    /// Payload: text, `COLSxROWS`, a label or an exit status.
    pub data: String,
}

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CastError {
    /// The first line is not a v3 header.
    #[error("not an asciicast v3 recording: {0}")]
    Header(String),
    /// An event line is malformed.
    #[error("line {line}: {reason}")]
    Event {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Seconds with six decimals, from microseconds (exact, no float rounding).
fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

impl Header {
    /// The header line, newline included.
    pub fn line(&self) -> String {
        let header = json!({
            "version": 3,
            "term": {"cols": self.cols, "rows": self.rows, "type": self.term_type},
            "timestamp": self.timestamp,
            "title": self.title,
            "env": self.env,
        });
        format!("{header}\n")
    }

    /// Reads a header line.
    pub fn parse(line: &str) -> Result<Self, CastError> {
        let v: Value = serde_json::from_str(line).map_err(|e| CastError::Header(e.to_string()))?;
        if v.get("version").and_then(Value::as_u64) != Some(3) {
            return Err(CastError::Header("version is not 3".into()));
        }
        let term = v.get("term").cloned().unwrap_or(Value::Null);
        let dim = |k: &str| {
            term.get(k)
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| CastError::Header(format!("term.{k} missing")))
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let env = v
            .get("env")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Header {
            cols: dim("cols")?,
            rows: dim("rows")?,
            term_type: text(term.get("type")),
            timestamp: v.get("timestamp").and_then(Value::as_i64).unwrap_or(0),
            title: text(v.get("title")),
            env,
        })
    }
}

/// Starts an event line: `[interval, "code", "` (the data's string is open).
pub fn begin_event(out: &mut Vec<u8>, interval_us: u64, code: Code) {
    out.extend_from_slice(b"[");
    out.extend_from_slice(seconds(interval_us).as_bytes());
    out.extend_from_slice(b", \"");
    out.extend_from_slice(code.letter().as_bytes());
    out.extend_from_slice(b"\", \"");
}

/// Bytes a JSON string cannot hold as they are: control characters, `"`, `\\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Index of the first byte of `bytes` that must be escaped. Eight bytes at
/// a time while none does (plain text is most of a terminal's output).
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero (set high bit in the result; exact for the first one).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Bytes below 0x20 (their top three bits clear), '"' and '\\'.
        let control = zero(x & 0xe0e0_e0e0_e0e0_e0e0);
        let quote = zero(x ^ (ONES * u64::from(b'"')));
        let backslash = zero(x ^ (ONES * u64::from(b'\\')));
        if control | quote | backslash != 0 {
            break;
        }
        at += 8;
    }
    let tail = bytes.get(at..).unwrap_or_default();
    tail.iter()
        .position(|&b| NEEDS_ESCAPE[usize::from(b)])
        .map(|i| at + i)
}

/// Appends `text` to an open event's data, escaped for a JSON string. (The
/// writer streams output into an open line; serde_json does not expose
/// escaping a fragment.) Output is mostly plain text: runs between escapes
/// are copied whole.
pub fn escape_into(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len());
    let mut rest = bytes;
    while let Some(i) = first_to_escape(rest) {
        let (run, tail) = rest.split_at(i);
        out.extend_from_slice(run);
        let Some((&b, tail)) = tail.split_first() else {
            break;
        };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        rest = tail;
    }
    out.extend_from_slice(rest);
}

/// Closes an event line opened by [`begin_event`].
pub fn end_event(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\"]\n");
}

impl Event {
    /// The event line, newline included.
    pub fn line(&self) -> String {
        let mut out = Vec::with_capacity(self.data.len() + 32);
        begin_event(&mut out, self.interval_us, self.code);
        escape_into(&mut out, &self.data);
        end_event(&mut out);
        // Only UTF-8 went in.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Reads an event line (`line_no` is for the error).
    pub fn parse(line: &str, line_no: usize) -> Result<Self, CastError> {
        let bad = |reason: String| CastError::Event {
            line: line_no,
            reason,
        };
        let (interval, code, data): (f64, String, String) =
            serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        if !interval.is_finite() || interval < 0.0 {
            return Err(bad(format!("bad interval {interval}")));
        }
        let code = Code::from_letter(&code).ok_or_else(|| bad(format!("unknown code {code:?}")))?;
        // Saturating float-to-int conversion; sub-microsecond digits round.
        let interval_us = (interval * 1_000_000.0).round() as u64;
        Ok(Event {
            interval_us,
            code,
            data,
        })
    }
}

/// A whole recording read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    /// Its header.
    pub header: Header,
    /// Its events, in order.
    pub events: Vec<Event>,
}

impl Cast {
    /// Reads a recording; comment (`#`) and blank lines are skipped.
    pub fn parse(text: &str) -> Result<Self, CastError> {
        let mut lines = text.lines().enumerate();
        let header = loop {
            match lines.next() {
                Some((_, l)) if l.trim().is_empty() || l.starts_with('#') => continue,
                Some((_, l)) => break Header::parse(l)?,
                None => return Err(CastError::Header("empty file".into())),
            }
        };
        let mut events = Vec::new();
        for (i, l) in lines {
            if l.trim().is_empty() || l.starts_with('#') {
                continue;
            }
            events.push(Event::parse(l, i + 1)?);
        }
        Ok(Cast { header, events })
    }

    /// Each event with its time since the start, in microseconds.
    pub fn timed(&self) -> impl Iterator<Item = (u64, &Event)> {
        self.events.iter().scan(0u64, |at, e| {
            *at = at.saturating_add(e.interval_us);
            Some((*at, e))
        })
    }
}

/// Parses `COLSxROWS`.
pub fn parse_size(data: &str) -> Option<(u16, u16)> {
    let (c, r) = data.split_once('x')?;
    Some((c.trim().parse().ok()?, r.trim().parse().ok()?))
}

/// An 80 × 24 header, for tests here and in the modules that write or read recordings.
#[cfg(test)]
pub(crate) fn test_header() -> Header {
    Header {
        cols: 80,
        rows: 24,
        term_type: "xterm-256color".into(),
        timestamp: 1_700_000_000,
        title: "alice@box".into(),
        env: BTreeMap::from([("TERM".into(), "xterm-256color".into())]),
    }
}

/// One event's line, for tests.
#[cfg(test)]
pub(crate) fn event_line(interval_us: u64, code: Code, data: &str) -> String {
    Event {
        interval_us,
        code,
        data: data.into(),
    }
    .line()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        test_header()
    }

    #[test]
    fn lines_round_trip_with_exact_microseconds() {
        let events = vec![
            Event {
                interval_us: 1_234_567,
                code: Code::Output,
                data: "héllo \"w\"\r\n\u{1b}[0m".into(),
            },
            Event {
                interval_us: 0,
                code: Code::Resize,
                data: "100x30".into(),
            },
            Event {
                interval_us: 5,
                code: Code::Marker,
                data: "reattached".into(),
            },
            Event {
                interval_us: 2_000_000,
                code: Code::Exit,
                data: "0".into(),
            },
        ];
        let mut text = header().line();
        for e in &events {
            text.push_str(&e.line());
        }
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("[1.234567, \"o\", "));
        let cast = Cast::parse(&text).unwrap();
        assert_eq!(cast.header, header());
        assert_eq!(cast.events, events);
        let times: Vec<u64> = cast.timed().map(|(t, _)| t).collect();
        assert_eq!(times, vec![1_234_567, 1_234_567, 1_234_572, 3_234_572]);
    }

    #[test]
    fn escaping_matches_serde_json_for_every_control_and_special_character() {
        let text: String = (0u8..0x80)
            .map(char::from)
            .chain("é€😀\u{2028}".chars())
            .collect();
        let mut out = Vec::new();
        escape_into(&mut out, &text);
        let ours = format!("\"{}\"", String::from_utf8(out).unwrap());
        assert_eq!(serde_json::from_str::<String>(&ours).unwrap(), text);
        assert_eq!(ours, serde_json::to_string(&text).unwrap());
    }

    #[test]
    fn the_first_byte_to_escape_is_found_at_every_position() {
        for len in 0..40 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0x00, 0x1b, 0x1f, b'\n'] {
                    let mut bytes = vec![b'a'; len];
                    // Bytes close to the special ones must not count.
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = [b'a', 0x20, b'#', b']', 0x7f, 0xc3][i % 6];
                    }
                    let want = (at < len).then_some(at);
                    if at < len {
                        bytes[at] = special;
                    }
                    assert_eq!(
                        first_to_escape(&bytes),
                        want,
                        "len {len} at {at} byte {special:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn bad_input_names_the_line() {
        let text = format!(
            "{}[0.1, \"o\", \"a\"]\n[0.1, \"z\", \"b\"]\n",
            header().line()
        );
        let e = Cast::parse(&text).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("unknown code"), "{e}");
        assert!(Cast::parse("{\"version\": 2, \"width\": 80, \"height\": 24}\n").is_err());
        assert!(Cast::parse("").is_err());
        assert!(Event::parse("[-1, \"o\", \"x\"]", 1).is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("132x43"), Some((132, 43)));
        assert_eq!(parse_size("x"), None);
    }
}
