//! Crash recovery at start-up: a session a previous run left `running` has
//! its recording cut back to the last whole line and closed with a marker,
//! and becomes `interrupted`. Nothing is dropped silently: the row says
//! `recovered` (or `incomplete` when the file is gone).
use std::{
    fs::OpenOptions,
    io::{self, BufRead, Read, Seek, SeekFrom, Write},
};

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{
    cast::{Code, Event, Header},
    files::RecordingDir,
    index::{self, Entry},
};
use crate::db::{self, terminal_sessions::TermSessionRow, Db, DbError};

/// The marker that closes a recovered recording.
pub const INTERRUPTED_MARKER: &str = "interrupted: the server stopped before the session ended";

/// Recovers every session a previous run of this node (`node`: `None` for
/// a single node) left `running`; returns how many.
pub async fn recover_stale(
    db: &Db,
    dir: Option<&RecordingDir>,
    node: Option<&str>,
) -> Result<usize, DbError> {
    let stale = db::terminal_sessions::stale(db, node).await?;
    for row in &stale {
        if let (Some(dir), Some(rec)) = (dir, row.recording_id.as_deref()) {
            let (dir, rec_id, row2) = (dir.clone(), rec.to_string(), row.clone());
            let result = tokio::task::spawn_blocking(move || recover_file(&dir, &rec_id, &row2))
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e)));
            match result {
                Ok(r) => {
                    db::terminal_sessions::set_recording(
                        db,
                        &row.id,
                        r.size,
                        &r.sha256,
                        "recovered",
                    )
                    .await?;
                    db::terminal_sessions::set_duration(db, &row.id, r.duration_ms).await?;
                    info!(session = %row.id, size = r.size, "recording of an interrupted session recovered");
                }
                Err(e) => {
                    warn!(session = %row.id, "recording of an interrupted session cannot be recovered: {e}");
                    db::terminal_sessions::set_recording(db, &row.id, 0, "", "incomplete").await?;
                }
            }
        }
        db::terminal_sessions::mark_interrupted(db, &row.id).await?;
    }
    Ok(stale.len())
}

/// A recovered recording.
#[derive(Debug)]
struct Recovered {
    size: u64,
    sha256: String,
    duration_ms: i64,
}

/// Cuts the file back to its last whole line, appends the interrupted
/// marker (after a header if not even that survived), syncs it, closes its
/// index the same way (if it has one), and says what is left.
fn recover_file(dir: &RecordingDir, id: &str, row: &TermSessionRow) -> io::Result<Recovered> {
    let path = dir
        .file(id)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let whole = last_line_end(&mut file)?;
    file.set_len(whole)?;
    file.seek(SeekFrom::End(0))?;
    if whole == 0 {
        let header = Header {
            cols: u16::try_from(row.cols).unwrap_or(80),
            rows: u16::try_from(row.rows).unwrap_or(24),
            term_type: crate::term::recorder::TERM_TYPE.into(),
            timestamp: chrono::DateTime::parse_from_rfc3339(&row.started_at)
                .map(|t| t.timestamp())
                .unwrap_or(0),
            title: row.target.clone(),
            env: Default::default(),
        };
        file.write_all(header.line().as_bytes())?;
    }
    let marker_at = file.stream_position()?;
    let marker = Event {
        interval_us: 0,
        code: Code::Marker,
        data: INTERRUPTED_MARKER.into(),
    };
    file.write_all(marker.line().as_bytes())?;
    file.sync_all()?;
    file.seek(SeekFrom::Start(0))?;
    let (size, sha256, time_us) = digest_and_length(io::BufReader::with_capacity(1 << 20, file))?;
    close_index(dir, id, marker_at, time_us, size)?;
    Ok(Recovered {
        size,
        sha256,
        duration_ms: i64::try_from(time_us / 1000).unwrap_or(i64::MAX),
    })
}

/// Size, SHA-256 and length in microseconds (the sum of the intervals) of
/// a recording, in one pass.
fn digest_and_length(mut input: impl BufRead) -> io::Result<(u64, String, u64)> {
    let mut hash = Sha256::new();
    let (mut size, mut time_us) = (0u64, 0u64);
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        hash.update(&line);
        size += line.len() as u64;
        if !std::mem::take(&mut first) {
            time_us = time_us.saturating_add(interval_us(&line).unwrap_or(0));
        }
    }
    Ok((size, hex::encode(hash.finalize()), time_us))
}

/// The interval of an event line `[1.25, "o", ...]`, without parsing the rest.
fn interval_us(line: &[u8]) -> Option<u64> {
    let line = std::str::from_utf8(line.get(..line.len().min(40))?).ok()?;
    let number = line.trim_start().strip_prefix('[')?.split(',').next()?;
    let secs: f64 = number.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1_000_000.0).round() as u64)
}

/// Keeps the index entries that point into what is left, then adds the
/// interrupted marker and the end. A recording without an index keeps none.
fn close_index(
    dir: &RecordingDir,
    id: &str,
    marker_at: u64,
    time_us: u64,
    size: u64,
) -> io::Result<()> {
    let Ok(old) = dir.open_index(id) else {
        return Ok(());
    };
    let mut text = index::cut(io::BufReader::new(old), marker_at);
    for entry in [
        Entry::Marker {
            time_us,
            offset: marker_at,
            label: INTERRUPTED_MARKER.into(),
        },
        Entry::End {
            time_us,
            offset: size,
        },
    ] {
        text.push_str(&entry.line());
    }
    let path = dir
        .index_file(id)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Offset just past the file's last newline (0 if it has none).
fn last_line_end(file: &mut std::fs::File) -> io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = file.seek(SeekFrom::End(0))?;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let len = usize::try_from(end - start).unwrap_or(0);
        let chunk = buf.get_mut(..len).unwrap_or_default();
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recordings::cast::Cast;

    fn row() -> TermSessionRow {
        TermSessionRow {
            id: "s".into(),
            user_id: 1,
            host_id: None,
            target: "local".into(),
            namespace: String::new(),
            remote_addr: None,
            user_agent: None,
            cols: 80,
            rows: 24,
            started_at: "2026-12-01T00:00:00.000Z".into(),
            ended_at: None,
            status: "running".into(),
            exit_code: None,
            duration_ms: None,
            recording_id: None,
            recording_size: None,
            recording_digest: None,
            recording_state: None,
            node_id: None,
        }
    }

    #[test]
    fn a_torn_last_line_is_cut_and_the_file_closed_with_a_marker() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RecordingDir::new(tmp.path().to_path_buf());
        let id = "0123456789abcdef0123456789abcdef";
        let (mut f, mut idx) = dir.create(id).unwrap();
        let header = "{\"version\": 3, \"term\": {\"cols\": 80, \"rows\": 24}}\n";
        let whole = "[0.5, \"o\", \"hello\\r\\n\"]\n";
        f.write_all(format!("{header}{whole}[0.1, \"o\", \"tor").as_bytes())
            .unwrap();
        let kept = Entry::Marker {
            time_us: 0,
            offset: header.len() as u64,
            label: "kept".into(),
        };
        let past = Entry::Marker {
            time_us: 600_000,
            offset: (header.len() + whole.len()) as u64 + 1,
            label: "past the cut".into(),
        };
        idx.write_all(format!("{}{}", kept.line(), past.line()).as_bytes())
            .unwrap();
        let r = recover_file(&dir, id, &row()).unwrap();
        let text = std::fs::read_to_string(dir.file(id).unwrap()).unwrap();
        assert_eq!(r.size, text.len() as u64);
        assert_eq!(r.sha256, hex::encode(Sha256::digest(text.as_bytes())));
        assert_eq!(r.duration_ms, 500);
        let index = index::read(
            std::fs::read_to_string(dir.index_file(id).unwrap())
                .unwrap()
                .as_bytes(),
            r.size,
        );
        let labels: Vec<&str> = index.markers.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, vec!["kept", INTERRUPTED_MARKER]);
        assert_eq!(index.markers[1].time, 0.5);
        assert_eq!(index.end, Some(0.5), "the index is whole again");
        let cast = Cast::parse(&text).unwrap();
        assert_eq!(cast.events.len(), 2);
        assert_eq!(cast.events[0].data, "hello\r\n");
        assert_eq!(cast.events[1].code, Code::Marker);
        assert_eq!(cast.events[1].data, INTERRUPTED_MARKER);
    }

    #[test]
    fn a_file_without_a_whole_line_gets_a_header_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RecordingDir::new(tmp.path().to_path_buf());
        let id = "0123456789abcdef0123456789abcde0";
        let (mut f, _) = dir.create(id).unwrap();
        f.write_all(b"{\"version\": 3, \"te").unwrap();
        recover_file(&dir, id, &row()).unwrap();
        let cast = Cast::parse(&std::fs::read_to_string(dir.file(id).unwrap()).unwrap()).unwrap();
        assert_eq!((cast.header.cols, cast.header.rows), (80, 24));
        assert_eq!(cast.events.len(), 1);
    }
}
