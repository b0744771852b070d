//! Exports of a v3 recording, streamed line by line (recordings may be large):
//! asciicast v2 (absolute times, no exit event) and a plain-text transcript
//! (the output replayed through `avt`, the terminal emulator of asciinema).
use std::io::{self, BufRead, Write};

use serde_json::json;

use super::cast::{parse_size, CastError, Code, Event, Header};

/// What an export can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The original asciicast v3 file.
    V3,
    /// asciicast v2.
    V2,
    /// Plain text.
    Text,
}

impl Format {
    /// `v3`, `v2` or `txt`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "v3" => Format::V3,
            "v2" => Format::V2,
            "txt" => Format::Text,
            _ => return None,
        })
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The recording is malformed.
    #[error(transparent)]
    Cast(#[from] CastError),
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes `input` (a v3 recording) to `out` in `format`.
pub fn export(format: Format, mut input: impl BufRead, out: impl Write) -> Result<(), ExportError> {
    match format {
        Format::V3 => {
            let mut out = out;
            io::copy(&mut input, &mut out)?;
            out.flush()?;
            Ok(())
        }
        Format::V2 => to_v2(input, out),
        Format::Text => to_text(input, out),
    }
}

/// The header and then each event of a recording, read lazily.
struct Lines<R> {
    input: R,
    buf: String,
    line_no: usize,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R) -> Self {
        Self {
            input,
            buf: String::new(),
            line_no: 0,
        }
    }

    /// The next line that is not blank or a comment.
    fn next_line(&mut self) -> Result<Option<&str>, ExportError> {
        loop {
            self.buf.clear();
            if self.input.read_line(&mut self.buf)? == 0 || !self.buf.ends_with('\n') {
                // The end, or a torn last line (a recording still being
                // written): only whole lines count.
                return Ok(None);
            }
            self.line_no += 1;
            let t = self.buf.trim_end_matches(['\n', '\r']);
            if !t.trim().is_empty() && !t.starts_with('#') {
                return Ok(Some(self.buf.trim_end_matches(['\n', '\r'])));
            }
        }
    }

    fn header(&mut self) -> Result<Header, ExportError> {
        match self.next_line()? {
            Some(l) => Ok(Header::parse(l)?),
            None => Err(CastError::Header("empty file".into()).into()),
        }
    }

    fn event(&mut self) -> Result<Option<Event>, ExportError> {
        let no = self.line_no + 1;
        match self.next_line()? {
            Some(l) => Ok(Some(Event::parse(l, no)?)),
            None => Ok(None),
        }
    }
}

fn to_v2(input: impl BufRead, mut out: impl Write) -> Result<(), ExportError> {
    let mut lines = Lines::new(input);
    let h = lines.header()?;
    let header = json!({
        "version": 2,
        "width": h.cols,
        "height": h.rows,
        "timestamp": h.timestamp,
        "title": h.title,
        "env": h.env,
    });
    writeln!(out, "{header}")?;
    let mut at = 0u64;
    while let Some(e) = lines.event()? {
        at = at.saturating_add(e.interval_us);
        if e.code == Code::Exit {
            continue; // v2 has no exit event.
        }
        let data = serde_json::Value::String(e.data);
        writeln!(
            out,
            "[{}.{:06}, \"{}\", {data}]",
            at / 1_000_000,
            at % 1_000_000,
            e.code.letter()
        )?;
    }
    out.flush()?;
    Ok(())
}

fn to_text(input: impl BufRead, mut out: impl Write) -> Result<(), ExportError> {
    let mut lines = Lines::new(input);
    let h = lines.header()?;
    let mut term = avt::Terminal::new(usize::from(h.cols.max(1)), usize::from(h.rows.max(1)))
        .map_err(|e| CastError::Header(format!("bad size {}x{}", e.cols, e.rows)))?;
    let mut transcript = avt::observer::Transcript::new();
    while let Some(e) = lines.event()? {
        let done = match e.code {
            Code::Output => term.feed_with(e.data.as_str(), &mut transcript),
            Code::Resize => match parse_size(&e.data) {
                Some((c, r)) if c > 0 && r > 0 => {
                    term.resize_with(usize::from(c), usize::from(r), &mut transcript)
                }
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        for l in done {
            writeln!(out, "{l}")?;
        }
    }
    for l in transcript.finish(&term) {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sample() -> String {
        let h = Header {
            cols: 20,
            rows: 3,
            term_type: "xterm".into(),
            timestamp: 1,
            title: "t".into(),
            env: BTreeMap::new(),
        };
        let ev = crate::recordings::cast::event_line;
        [
            h.line(),
            ev(500_000, Code::Output, "$ echo hi\r\nhi\r\n"),
            ev(250_000, Code::Marker, "send to all"),
            ev(0, Code::Resize, "30x4"),
            ev(
                1_000_000,
                Code::Output,
                "\u{1b}[31mred\u{1b}[0m line\r\n1\r\n2\r\n3\r\n",
            ),
            ev(10, Code::Exit, "0"),
        ]
        .concat()
    }

    fn run(format: Format) -> String {
        let mut out = Vec::new();
        export(format, sample().as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn v2_has_absolute_times_and_no_exit_event() {
        let v2 = run(Format::V2);
        let lines: Vec<&str> = v2.lines().collect();
        let header: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(header["version"], 2);
        assert_eq!(header["width"], 20);
        assert_eq!(header["height"], 3);
        assert_eq!(lines[1], "[0.500000, \"o\", \"$ echo hi\\r\\nhi\\r\\n\"]");
        assert_eq!(lines[2], "[0.750000, \"m\", \"send to all\"]");
        assert_eq!(lines[3], "[0.750000, \"r\", \"30x4\"]");
        assert!(lines[4].starts_with("[1.750000, \"o\", "));
        assert_eq!(lines.len(), 5, "the exit event has no v2 form: {v2}");
    }

    #[test]
    fn text_holds_every_printed_line_without_escapes() {
        let text = run(Format::Text);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec!["$ echo hi", "hi", "red line", "1", "2", "3"],
            "{text}"
        );
    }

    #[test]
    fn a_torn_last_line_is_left_out() {
        let torn = format!("{}[0.1, \"o\", \"unfinish", sample());
        let mut out = Vec::new();
        export(Format::Text, torn.as_bytes(), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), run(Format::Text));
    }

    #[test]
    fn the_original_is_passed_through_and_garbage_is_refused() {
        assert_eq!(run(Format::V3), sample());
        let mut out = Vec::new();
        let e = export(Format::Text, "{\"version\":2}\n".as_bytes(), &mut out).unwrap_err();
        assert!(e.to_string().contains("v3"), "{e}");
    }
}
