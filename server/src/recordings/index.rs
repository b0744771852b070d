//! A recording's index, kept beside it (`<id>.idx`, one JSON object per
//! line): keyframes (the screen at a moment, with that moment's time, size
//! and the file offset of the next event) and markers. With it a long
//! recording opens at any moment without reading the whole file: the player
//! gets a window that starts from a keyframe.
use std::{
    fs::File,
    io::{self, BufRead, Read, Seek, SeekFrom, Write},
};

use app::model::{RecordingMarker, RecordingWindow};
use serde::{Deserialize, Serialize};

use super::cast::{Code, Event, Header};

/// A window spans at least this much of the file (it ends at the first
/// keyframe past it): what the player loads to open at a moment.
pub const WINDOW_BYTES: u64 = 8 << 20;

/// One line of the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Entry {
    /// The screen as it was after the event that ends before `offset`.
    Keyframe(Keyframe),
    /// A marker event that starts at `offset`.
    Marker {
        /// Microseconds from the start.
        time_us: u64,
        /// Where its line starts in the recording.
        offset: u64,
        /// Its label.
        label: String,
    },
    /// The recording was closed here: the index is whole.
    End {
        /// The recording's length in microseconds.
        time_us: u64,
        /// The recording's size.
        offset: u64,
    },
}

/// A screen snapshot that a window of the recording starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyframe {
    /// Microseconds from the start (the time of the event before it).
    pub time_us: u64,
    /// Where the next event's line starts in the recording.
    pub offset: u64,
    /// Terminal width then.
    pub cols: u16,
    /// Terminal height then.
    pub rows: u16,
    /// Output that draws the screen on a blank terminal.
    pub screen: String,
}

impl Entry {
    /// Where in the recording the entry points.
    pub fn offset(&self) -> u64 {
        match self {
            Entry::Keyframe(k) => k.offset,
            Entry::Marker { offset, .. } | Entry::End { offset, .. } => *offset,
        }
    }

    /// The entry's line, newline included.
    pub fn line(&self) -> String {
        // Serializing plain numbers and strings cannot fail.
        let mut line = serde_json::to_string(self).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// An index read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Index {
    /// Keyframes in file order.
    pub keyframes: Vec<Keyframe>,
    /// Markers in file order.
    pub markers: Vec<RecordingMarker>,
    /// The recording's length in seconds, once it was closed (until then
    /// the markers may be incomplete).
    pub end: Option<f64>,
}

/// Reads the entries of an index that point into the first `file_len`
/// bytes of the recording; a torn or malformed line ends it (the recorder
/// may be writing it).
pub fn read(input: impl BufRead, file_len: u64) -> Index {
    let mut index = Index::default();
    for line in input.lines().map_while(Result::ok) {
        let Ok(entry) = serde_json::from_str::<Entry>(&line) else {
            break;
        };
        if entry.offset() > file_len {
            break;
        }
        match entry {
            Entry::Keyframe(k) => index.keyframes.push(k),
            Entry::Marker { time_us, label, .. } => index.markers.push(RecordingMarker {
                time: seconds(time_us),
                label,
            }),
            Entry::End { time_us, .. } => index.end = Some(seconds(time_us)),
        }
    }
    index
}

/// Keeps the entries that point into the first `len` bytes (after a crash
/// cut the recording back), as index text.
pub fn cut(input: impl BufRead, len: u64) -> String {
    input
        .lines()
        .map_while(Result::ok)
        .map_while(|l| serde_json::from_str::<Entry>(&l).ok())
        .take_while(|e| e.offset() <= len && !matches!(e, Entry::End { .. }))
        .map(|e| e.line())
        .collect()
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1_000_000.0
}

/// The windows a recording of `file_len` bytes (its header `header_len`)
/// is played in: one (the whole file) unless keyframes split it into
/// windows of at least [`WINDOW_BYTES`]. Window `i > 0` starts at a keyframe.
pub fn windows(keyframes: &[Keyframe], header_len: u64, file_len: u64) -> Vec<Span> {
    let mut spans = vec![Span {
        keyframe: None,
        from: header_len,
        start_us: 0,
    }];
    for (i, k) in keyframes.iter().enumerate() {
        let last = spans.last().map_or(header_len, |s| s.from);
        // A window is never shorter than half of one, the last one included.
        if k.offset >= last + WINDOW_BYTES && file_len >= k.offset + WINDOW_BYTES / 2 {
            spans.push(Span {
                keyframe: Some(i),
                from: k.offset,
                start_us: k.time_us,
            });
        }
    }
    spans
}

/// Where a window starts: its keyframe (none for the first), file offset
/// and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index of its keyframe in [`Index::keyframes`].
    pub keyframe: Option<usize>,
    /// File offset of its first event.
    pub from: u64,
    /// Microseconds from the start of the recording.
    pub start_us: u64,
}

/// The windows as the player page sees them (times in seconds).
pub fn public_windows(spans: &[Span], duration: f64) -> Vec<RecordingWindow> {
    spans
        .iter()
        .enumerate()
        .map(|(i, s)| RecordingWindow {
            start: seconds(s.start_us),
            end: spans
                .get(i + 1)
                .map_or(duration, |next| seconds(next.start_us)),
        })
        .collect()
}

/// What the player page needs besides the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    /// Markers with their times.
    pub markers: Vec<RecordingMarker>,
    /// Length in seconds.
    pub duration: f64,
    /// The windows it is played in.
    pub windows: Vec<RecordingWindow>,
}

/// Markers, length and windows of a recording: markers and length from its
/// index once that is whole (closed), else read from the recording itself
/// (one pass; a recording still being written).
pub fn overview(mut file: File, index: Option<File>) -> io::Result<Overview> {
    let file_len = file.metadata()?.len();
    let header_len = header_len(&mut file)?;
    let index = index
        .map(|f| read(io::BufReader::new(f), file_len))
        .unwrap_or_default();
    let (markers, duration) = match index.end {
        Some(end) => (index.markers, end),
        None => {
            file.seek(SeekFrom::Start(0))?;
            super::timeline::markers(io::BufReader::with_capacity(64 * 1024, file))
        }
    };
    let spans = windows(&index.keyframes, header_len, file_len);
    Ok(Overview {
        markers,
        duration,
        windows: public_windows(&spans, duration),
    })
}

/// The windows of a recording of `file_len` bytes with `index`.
pub fn spans(file: &mut File, index: &Index, file_len: u64) -> io::Result<Vec<Span>> {
    Ok(windows(&index.keyframes, header_len(file)?, file_len))
}

/// Length of the header line (at most 64 KiB is looked at).
fn header_len(file: &mut File) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut line = Vec::new();
    io::BufReader::new(file.take(64 * 1024)).read_until(b'\n', &mut line)?;
    Ok(line.len() as u64)
}

/// Why a window cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// No such window.
    #[error("no window {0}")]
    NoWindow(usize),
    /// The recording's header is unreadable.
    #[error("{0}")]
    Header(#[from] super::cast::CastError),
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Writes window `n` of a recording as a recording of its own: the header
/// (with the size at the window's start), the keyframe's screen as the
/// first output, then the events up to the next window (or the last whole
/// line, when this is the last one). Times start at the window's start.
pub fn write_window(
    mut file: impl Read + Seek,
    index: &Index,
    file_len: u64,
    n: usize,
    mut out: impl Write,
) -> Result<(), WindowError> {
    file.seek(SeekFrom::Start(0))?;
    let mut header_line = String::new();
    io::BufReader::new((&mut file).take(64 * 1024)).read_line(&mut header_line)?;
    let header_len = header_line.len() as u64;
    let mut header = Header::parse(header_line.trim_end())?;
    let spans = windows(&index.keyframes, header_len, file_len);
    let span = *spans.get(n).ok_or(WindowError::NoWindow(n))?;
    let end = spans.get(n + 1).map_or(file_len, |s| s.from);
    let keyframe = span.keyframe.and_then(|k| index.keyframes.get(k));
    if let Some(k) = keyframe {
        header.cols = k.cols;
        header.rows = k.rows;
    }
    out.write_all(header.line().as_bytes())?;
    if let Some(k) = keyframe {
        let first = Event {
            interval_us: 0,
            code: Code::Output,
            data: k.screen.clone(),
        };
        out.write_all(first.line().as_bytes())?;
    }
    file.seek(SeekFrom::Start(span.from))?;
    copy_whole_lines(file.take(end.saturating_sub(span.from)), out)?;
    Ok(())
}

/// Copies `input` up to its last newline (a recording being written may
/// end in a torn line).
fn copy_whole_lines(mut input: impl Read, mut out: impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let chunk = buf.get(..n).unwrap_or_default();
        match chunk.iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                out.write_all(&carry)?;
                carry.clear();
                let (whole, rest) = chunk.split_at(i + 1);
                out.write_all(whole)?;
                carry.extend_from_slice(rest);
            }
            None => carry.extend_from_slice(chunk),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recordings::cast::{event_line, test_header, Cast};

    fn keyframe(time_us: u64, offset: u64) -> Keyframe {
        Keyframe {
            time_us,
            offset,
            cols: 100,
            rows: 30,
            screen: format!("\u{1b}cscreen at {time_us}"),
        }
    }

    #[test]
    fn entries_round_trip_and_a_torn_line_ends_the_index() {
        let k = Entry::Keyframe(keyframe(5, 10));
        let m = Entry::Marker {
            time_us: 1_500_000,
            offset: 20,
            label: "send to all: ls".into(),
        };
        let text = format!("{}{}{{\"kind\":\"keyfr", k.line(), m.line());
        let index = read(text.as_bytes(), 100);
        assert_eq!(index.end, None, "not closed");
        assert_eq!(index.keyframes, vec![keyframe(5, 10)]);
        assert_eq!(index.markers.len(), 1);
        assert_eq!(index.markers[0].time, 1.5);
        assert_eq!(index.markers[0].label, "send to all: ls");
        // Entries past the recording's end (it was cut back) are not read.
        assert_eq!(read(text.as_bytes(), 15).markers.len(), 0);
        assert_eq!(cut(text.as_bytes(), 15), k.line());
        let end = Entry::End {
            time_us: 2_000_000,
            offset: 30,
        };
        let closed = format!("{}{}{}", k.line(), m.line(), end.line());
        assert_eq!(read(closed.as_bytes(), 30).end, Some(2.0));
        assert_eq!(
            cut(closed.as_bytes(), 30),
            format!("{}{}", k.line(), m.line())
        );
    }

    #[test]
    fn small_recordings_are_one_window_and_large_ones_start_at_keyframes() {
        let mb = 1 << 20;
        let keys: Vec<Keyframe> = (1..=10).map(|i| keyframe(i * 1000, i * 4 * mb)).collect();
        assert_eq!(windows(&keys[..1], 100, 6 * mb).len(), 1);
        let spans = windows(&keys, 100, 42 * mb);
        let starts: Vec<u64> = spans.iter().map(|s| s.from / mb).collect();
        // 8 MiB at least; the last one at least half of that.
        assert_eq!(starts, vec![0, 12, 20, 28, 36]);
        assert_eq!(spans[1].keyframe, Some(2));
        let public = public_windows(&spans, 11.0);
        assert_eq!(public[0].start, 0.0);
        assert_eq!(public[0].end, public[1].start);
        assert_eq!(public.last().map(|w| w.end), Some(11.0));
    }

    /// A recording with a keyframe (after event 2) big enough for two windows.
    fn recording() -> (Vec<u8>, Index) {
        let mut file = test_header().line().into_bytes();
        let filler = "x".repeat(1 << 20);
        for _ in 0..9 {
            file.extend_from_slice(event_line(1_000_000, Code::Output, &filler).as_bytes());
        }
        let k = keyframe(9_000_000, file.len() as u64);
        for _ in 0..5 {
            file.extend_from_slice(event_line(500_000, Code::Output, "tail").as_bytes());
        }
        file.extend_from_slice(event_line(0, Code::Output, &filler).as_bytes());
        file.extend_from_slice(event_line(0, Code::Output, &filler).as_bytes());
        file.extend_from_slice(event_line(0, Code::Output, &filler).as_bytes());
        file.extend_from_slice(event_line(0, Code::Output, &filler).as_bytes());
        file.extend_from_slice(b"[0.1, \"o\", \"tor");
        (
            file,
            Index {
                keyframes: vec![k],
                markers: vec![],
                end: None,
            },
        )
    }

    #[test]
    fn a_window_starts_from_its_keyframe_and_ends_on_a_whole_line() {
        let (file, index) = recording();
        let len = file.len() as u64;
        let mut out = Vec::new();
        write_window(io::Cursor::new(&file), &index, len, 1, &mut out).unwrap();
        let cast = Cast::parse(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!((cast.header.cols, cast.header.rows), (100, 30));
        assert_eq!(cast.events[0].data, "\u{1b}cscreen at 9000000");
        assert_eq!(cast.events[0].interval_us, 0);
        assert_eq!(cast.events[1].data, "tail");
        assert_eq!(cast.events[1].interval_us, 500_000);
        assert_eq!(cast.events.len(), 1 + 5 + 4, "the torn line is left out");

        let mut first = Vec::new();
        write_window(io::Cursor::new(&file), &index, len, 0, &mut first).unwrap();
        let cast = Cast::parse(std::str::from_utf8(&first).unwrap()).unwrap();
        assert_eq!(cast.header, test_header());
        assert_eq!(cast.events.len(), 9);
        assert!(matches!(
            write_window(io::Cursor::new(&file), &index, len, 2, Vec::new()),
            Err(WindowError::NoWindow(2))
        ));
    }
}
