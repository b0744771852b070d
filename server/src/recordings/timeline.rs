//! What a player needs besides the file, read from a recording in one pass:
//! its markers with their times, its length, and where a text was printed
//! (escape sequences parsed away with `vte`, across event boundaries).
use std::io::BufRead;

use app::model::{RecordingMarker, SearchHit};

use super::cast::{Code, Event, Header};

/// Most hits a search returns.
pub const MAX_HITS: usize = 200;
/// Longest line shown with a hit.
const MAX_LINE_CHARS: usize = 160;

/// A recording's markers and length in seconds.
pub fn markers(input: impl BufRead) -> (Vec<RecordingMarker>, f64) {
    let mut markers = Vec::new();
    let mut at = 0u64;
    for e in events(input) {
        at = at.saturating_add(e.interval_us);
        if e.code == Code::Marker {
            markers.push(RecordingMarker {
                time: seconds(at),
                label: e.data,
            });
        }
    }
    (markers, seconds(at))
}

fn seconds(us: u64) -> f64 {
    us as f64 / 1_000_000.0
}

/// The whole event lines of a recording after its header; a malformed or
/// torn line ends it (a recording may still be written).
fn events(input: impl BufRead) -> impl Iterator<Item = Event> {
    let mut lines = input.lines().map_while(Result::ok).enumerate();
    let header_ok = lines
        .by_ref()
        .find(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .is_some_and(|(_, l)| Header::parse(&l).is_ok());
    lines
        .filter(move |_| header_ok)
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map_while(|(i, l)| Event::parse(&l, i + 1).ok())
}

/// The printed text of the current line and when each part was printed.
#[derive(Default)]
struct Printed {
    line: String,
    /// (byte offset in `line`, time) for every event that printed into it.
    times: Vec<(usize, u64)>,
    now: u64,
    lines: Vec<(String, Vec<(usize, u64)>)>,
}

impl vte::Perform for Printed {
    fn print(&mut self, c: char) {
        if self.times.last().is_none_or(|&(_, t)| t != self.now) {
            self.times.push((self.line.len(), self.now));
        }
        self.line.push(c);
    }

    fn execute(&mut self, byte: u8) {
        if byte == b'\n' {
            let line = std::mem::take(&mut self.line);
            let times = std::mem::take(&mut self.times);
            self.lines.push((line, times));
        }
    }
}

/// Where `needle` (case-insensitive) was printed, with the time of the
/// event that printed its first character; at most [`MAX_HITS`].
pub fn search(input: impl BufRead, needle: &str) -> Vec<SearchHit> {
    let needle = needle.to_lowercase();
    let mut hits = Vec::new();
    if needle.is_empty() {
        return hits;
    }
    let mut parser = vte::Parser::new();
    let mut printed = Printed::default();
    let scan = |lines: &mut Vec<(String, Vec<(usize, u64)>)>, hits: &mut Vec<SearchHit>| {
        for (line, times) in lines.drain(..) {
            let lower = line.to_lowercase();
            // Lower-casing can change byte lengths; only map offsets when it did not.
            let same_len = lower.len() == line.len();
            for (at, _) in lower.match_indices(&needle) {
                if hits.len() >= MAX_HITS {
                    return;
                }
                let at = if same_len { at } else { 0 };
                let time = times
                    .iter()
                    .take_while(|(off, _)| *off <= at)
                    .last()
                    .or(times.first())
                    .map_or(0, |&(_, t)| t);
                hits.push(SearchHit {
                    time: seconds(time),
                    line: line.chars().take(MAX_LINE_CHARS).collect(),
                });
            }
        }
    };
    for e in events(input) {
        printed.now = printed.now.saturating_add(e.interval_us);
        if e.code != Code::Output {
            continue;
        }
        parser.advance(&mut printed, e.data.as_bytes());
        scan(&mut printed.lines, &mut hits);
        if hits.len() >= MAX_HITS {
            return hits;
        }
    }
    let last = (
        std::mem::take(&mut printed.line),
        std::mem::take(&mut printed.times),
    );
    printed.lines.push(last);
    scan(&mut printed.lines, &mut hits);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        let ev = crate::recordings::cast::event_line;
        [
            "{\"version\": 3, \"term\": {\"cols\": 80, \"rows\": 24}}\n".to_string(),
            ev(1_000_000, Code::Output, "$ make deplo"),
            ev(
                500_000,
                Code::Output,
                "\u{1b}[1my\u{1b}[0m\r\nDeploying...\r\n",
            ),
            ev(250_000, Code::Marker, "send to all: uptime"),
            ev(2_000_000, Code::Output, "error: DEPLOY failed\r\n"),
            ev(0, Code::Exit, "1"),
        ]
        .concat()
    }

    #[test]
    fn markers_carry_their_time_and_the_length_is_the_last_event() {
        let (markers, duration) = markers(sample().as_bytes());
        assert_eq!(
            markers,
            vec![RecordingMarker {
                time: 1.75,
                label: "send to all: uptime".into()
            }]
        );
        assert!((duration - 3.75).abs() < 1e-9);
    }

    #[test]
    fn search_finds_text_split_across_events_and_escapes_case_insensitively() {
        let hits = search(sample().as_bytes(), "deploy");
        let got: Vec<(f64, &str)> = hits.iter().map(|h| (h.time, h.line.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (1.0, "$ make deploy"),
                (1.5, "Deploying..."),
                (3.75, "error: DEPLOY failed"),
            ]
        );
        assert!(search(sample().as_bytes(), "").is_empty());
        assert!(search(sample().as_bytes(), "absent").is_empty());
    }
}
