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

impl Event {
    /// The event line, newline included.
    pub fn line(&self) -> String {
        let data = Value::String(self.data.clone());
        format!(
            "[{}, \"{}\", {data}]\n",
            seconds(self.interval_us),
            self.code.letter()
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            cols: 80,
            rows: 24,
            term_type: "xterm-256color".into(),
            timestamp: 1_700_000_000,
            title: "alice@box".into(),
            env: BTreeMap::from([("TERM".into(), "xterm-256color".into())]),
        }
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
