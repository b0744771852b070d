//! The session recorder: output, resizes, markers, keyframes and the exit
//! status go through a bounded queue to a task of its own that writes the
//! asciicast v3 file and its index (whole lines, written in groups of
//! [`WRITE_BYTES`] or everything queued, synced [`SYNC_EVERY`] after the
//! first unsynced byte and on close). The session never waits on the disk: a
//! full queue or a failed write is a recording failure, which ends the
//! session under the strict policy and marks the recording incomplete under
//! best effort. (A failed index only costs the player its windows.)
use std::{
    fs::File,
    io::Write,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use sha2::{Digest, Sha256};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};

use crate::recordings::{
    cast::{begin_event, end_event, escape_into, Code, Header},
    index::{Entry, Keyframe},
    utf8::Utf8Stream,
};

/// `TERM` of every session (SSH and local), as the recording's header says.
pub const TERM_TYPE: &str = "xterm-256color";

/// Events queued between the session and the writer (each a read of at most
/// 64 KiB); past this the writer is too slow and the recording fails.
const QUEUE: usize = 1024;
/// Whole lines are handed to the file once this much is buffered.
const WRITE_BYTES: usize = 64 * 1024;
/// What was written is synced this long after the first unsynced byte: at
/// most five syncs a second, however much output there is.
const SYNC_EVERY: Duration = Duration::from_millis(200);
/// Output arriving within this time of a pending output event joins it.
const COALESCE: Duration = Duration::from_millis(10);
/// A pending output event is written once it holds this much text.
const COALESCE_BYTES: usize = 64 * 1024;
/// Output between two keyframes (screen snapshots a player can start from).
pub const KEYFRAME_BYTES: u64 = 4 << 20;

/// What to do when the recording cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// End the session with a clear message.
    Strict,
    /// Go on; the recording is marked incomplete.
    BestEffort,
}

impl Policy {
    /// The namespace setting's value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "strict" => Some(Policy::Strict),
            "best_effort" => Some(Policy::BestEffort),
            _ => None,
        }
    }

    /// The value stored in the namespace row.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Strict => "strict",
            Policy::BestEffort => "best_effort",
        }
    }
}

/// How a recording ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Bytes in the file.
    pub size: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Every event reached the file.
    pub complete: bool,
    /// How many times the file was synced.
    pub syncs: u64,
}

enum Item {
    Output(Vec<u8>, Instant),
    Resize(u16, u16, Instant),
    Marker(String, Instant),
    Input(Vec<u8>, Instant),
    Keyframe {
        cols: u16,
        rows: u16,
        screen: Vec<u8>,
    },
    Exit(Option<u32>, Instant),
    Close,
}

/// The session's side: queues events without ever waiting.
#[derive(Debug, Clone)]
pub struct RecorderTx {
    tx: mpsc::Sender<Item>,
    /// Output queued since the last keyframe was due.
    since_keyframe: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
    failure: Arc<watch::Sender<Option<String>>>,
    policy: Policy,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("recorder item")
    }
}

impl RecorderTx {
    fn queue(&self, item: Item) {
        if self.lost.load(Ordering::Acquire) {
            return;
        }
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lost.store(true, Ordering::Release);
                fail(
                    &self.failure,
                    self.policy,
                    "the recording could not keep up with the output".into(),
                );
            }
            // The writer ended (closed or failed): nothing more is recorded.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Records terminal output; `true` when a keyframe is due (every
    /// [`KEYFRAME_BYTES`]): the session then sends [`RecorderTx::keyframe`].
    pub fn output(&self, data: &[u8]) -> bool {
        if data.is_empty() {
            return false;
        }
        self.queue(Item::Output(data.to_vec(), Instant::now()));
        let n = data.len() as u64;
        let before = self.since_keyframe.fetch_add(n, Ordering::Relaxed);
        if before + n >= KEYFRAME_BYTES {
            self.since_keyframe.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Records a keyframe: `screen` draws the screen (`cols` × `rows`) as it
    /// is after the output recorded so far.
    pub fn keyframe(&self, cols: u16, rows: u16, screen: Vec<u8>) {
        self.queue(Item::Keyframe { cols, rows, screen });
    }

    /// Records a resize.
    pub fn resize(&self, cols: u16, rows: u16) {
        self.queue(Item::Resize(cols, rows, Instant::now()));
    }

    /// Records typed input (the session decides whether it may be).
    pub fn input(&self, data: &[u8]) {
        if !data.is_empty() {
            self.queue(Item::Input(data.to_vec(), Instant::now()));
        }
    }

    /// Records a marker.
    pub fn marker(&self, label: impl Into<String>) {
        self.queue(Item::Marker(label.into(), Instant::now()));
    }
}

/// Reports a failure once; under the strict policy the actor ends the session.
fn fail(failure: &watch::Sender<Option<String>>, policy: Policy, reason: String) {
    tracing::warn!(policy = policy.as_str(), "recording failed: {reason}");
    failure.send_if_modified(|f| {
        if f.is_some() {
            return false;
        }
        *f = Some(reason);
        true
    });
}

/// The actor's side: the failure signal and the end of the recording.
#[derive(Debug)]
pub struct RecorderTask {
    tx: RecorderTx,
    failure: watch::Receiver<Option<String>>,
    task: JoinHandle<Summary>,
}

impl RecorderTask {
    /// Starts writing recording `id` into `file` and its index into `index`
    /// (both already created) with `header`.
    pub fn start(
        id: &str,
        (file, index): (File, File),
        header: &Header,
        policy: Policy,
    ) -> (RecorderTx, RecorderTask) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (failure, failure_rx) = watch::channel(None);
        let tx = RecorderTx {
            tx,
            since_keyframe: Arc::default(),
            lost: Arc::default(),
            failure: Arc::new(failure),
            policy,
        };
        let writer = Writer::new(file, index, header.line(), tx.clone(), id.to_string());
        let task = tokio::spawn(writer.run(rx));
        (
            tx.clone(),
            RecorderTask {
                tx,
                failure: failure_rx,
                task,
            },
        )
    }

    /// Resolves with the reason once the recording failed under the strict
    /// policy (never under best effort).
    pub async fn failed(&mut self) -> String {
        if self.tx.policy == Policy::BestEffort {
            return std::future::pending().await;
        }
        let reason = match self.failure.wait_for(Option::is_some).await {
            Ok(r) => r.clone(),
            Err(_) => None,
        };
        match reason {
            Some(r) => r,
            None => std::future::pending().await,
        }
    }

    /// Records the exit status (if the shell exited), closes the file and
    /// says how the recording ended.
    pub async fn finish(self, exit: Option<Option<u32>>) -> Summary {
        let now = Instant::now();
        if let Some(code) = exit {
            let _ = self.tx.tx.send(Item::Exit(code, now)).await;
        }
        let _ = self.tx.tx.send(Item::Close).await;
        let lost = self.tx.lost.clone();
        match self.task.await {
            Ok(mut s) => {
                s.complete &= !lost.load(Ordering::Acquire);
                s
            }
            Err(e) => {
                tracing::warn!("recorder task failed: {e}");
                Summary {
                    size: 0,
                    sha256: String::new(),
                    complete: false,
                    syncs: 0,
                }
            }
        }
    }
}

/// The output event being written: its line is open in the buffer.
struct OpenOutput {
    /// When its first read arrived.
    since: Instant,
    /// Bytes of output in it so far.
    bytes: usize,
}

/// The writing task's state.
struct Writer {
    file: Option<File>,
    /// Lines not yet handed to the file (the last one open while output
    /// coalesces into it).
    buf: Vec<u8>,
    /// The index (dropped if writing it fails).
    index: Option<File>,
    /// Index lines not yet written (after `buf`, which they point into).
    index_buf: Vec<u8>,
    /// Microseconds from the start to the last event begun.
    elapsed_us: u64,
    /// Bytes written but not synced.
    unsynced: usize,
    hash: Sha256,
    size: u64,
    /// Time of the last event begun (the first interval counts from the start).
    last: Instant,
    utf8: Utf8Stream,
    open: Option<OpenOutput>,
    broken: bool,
    /// Syncs done so far.
    syncs: u64,
    /// Recording id, for the log.
    id: String,
    tx: RecorderTx,
}

impl Writer {
    fn new(file: File, index: File, header: String, tx: RecorderTx, id: String) -> Self {
        Self {
            file: Some(file),
            buf: header.into_bytes(),
            index: Some(index),
            index_buf: Vec::new(),
            elapsed_us: 0,
            unsynced: 0,
            hash: Sha256::new(),
            size: 0,
            last: Instant::now(),
            utf8: Utf8Stream::default(),
            open: None,
            broken: false,
            syncs: 0,
            id,
            tx,
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Item>) -> Summary {
        let opened = Instant::now();
        // The header reaches the disk before any output.
        self.write_out(true).await;
        let mut sync_at: Option<Instant> = None;
        loop {
            let item = tokio::select! {
                item = rx.recv() => item,
                () = async {
                    match sync_at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.close_output();
                    self.write_out(true).await;
                    sync_at = None;
                    continue;
                }
            };
            // Everything already queued joins this group: a writer that fell
            // behind (a slow disk) catches up in one write.
            let mut open = self.take(item);
            while open {
                match rx.try_recv() {
                    Ok(item) => open = self.take(Some(item)),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                }
            }
            if !open {
                break;
            }
            if self.buf.len() >= WRITE_BYTES {
                self.close_output();
                self.write_out(false).await;
            }
            if self.unsynced > 0 || !self.buf.is_empty() {
                sync_at.get_or_insert_with(|| Instant::now() + SYNC_EVERY);
            }
        }
        if self.utf8.is_carrying() {
            let mut rest = String::new();
            self.utf8.finish(&mut rest);
            if self.open.is_none() {
                self.begin(Instant::now(), Code::Output);
                self.open = Some(OpenOutput {
                    since: Instant::now(),
                    bytes: 0,
                });
            }
            escape_into(&mut self.buf, &rest);
        }
        self.close_output();
        self.index_entry(Entry::End {
            time_us: self.elapsed_us,
            offset: self.offset(),
        });
        self.write_out(true).await;
        tracing::info!(
            recording = %self.id,
            size = self.size,
            syncs = self.syncs,
            secs = format!("{:.1}", opened.elapsed().as_secs_f64()),
            complete = !self.broken,
            "recording closed"
        );
        Summary {
            size: self.size,
            sha256: hex::encode(self.hash.finalize()),
            complete: !self.broken,
            syncs: self.syncs,
        }
    }

    /// Adds one queued item to the buffer; `false` once the recording is to close.
    fn take(&mut self, item: Option<Item>) -> bool {
        match item {
            Some(Item::Close) | None => return false,
            Some(Item::Output(bytes, at)) => {
                let joins = self.open.as_ref().is_some_and(|o| {
                    at.saturating_duration_since(o.since) < COALESCE && o.bytes < COALESCE_BYTES
                });
                if !joins {
                    self.close_output();
                    self.begin(at, Code::Output);
                    self.open = Some(OpenOutput {
                        since: at,
                        bytes: 0,
                    });
                }
                let buf = &mut self.buf;
                self.utf8.decode_each(&bytes, |text| escape_into(buf, text));
                if let Some(o) = self.open.as_mut() {
                    o.bytes += bytes.len();
                }
            }
            Some(Item::Resize(c, r, at)) => self.event(at, Code::Resize, &format!("{c}x{r}")),
            Some(Item::Input(bytes, at)) => {
                self.event(at, Code::Input, &String::from_utf8_lossy(&bytes));
            }
            Some(Item::Marker(label, at)) => {
                self.close_output();
                let offset = self.offset();
                self.event(at, Code::Marker, &label);
                self.index_entry(Entry::Marker {
                    time_us: self.elapsed_us,
                    offset,
                    label,
                });
            }
            Some(Item::Keyframe { cols, rows, screen }) => {
                // The next event starts a line of its own, where a window can start.
                self.close_output();
                self.index_entry(Entry::Keyframe(Keyframe {
                    time_us: self.elapsed_us,
                    offset: self.offset(),
                    cols,
                    rows,
                    screen: String::from_utf8_lossy(&screen).into_owned(),
                }));
            }
            Some(Item::Exit(code, at)) => {
                let status = code.map_or_else(|| "-1".to_string(), |c| c.to_string());
                self.event(at, Code::Exit, &status);
            }
        }
        true
    }

    /// Opens the line of an event at `at`.
    fn begin(&mut self, at: Instant, code: Code) {
        // Events are queued in order; a clock step backwards counts as zero.
        let interval = at.saturating_duration_since(self.last);
        self.last = self.last.max(at);
        let us = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
        self.elapsed_us = self.elapsed_us.saturating_add(us);
        begin_event(&mut self.buf, us, code);
    }

    /// File offset where the next line starts (once the open one is closed).
    fn offset(&self) -> u64 {
        self.size + self.buf.len() as u64
    }

    /// Queues an index line (written after the lines it points into).
    fn index_entry(&mut self, entry: Entry) {
        if self.index.is_some() {
            self.index_buf.extend_from_slice(entry.line().as_bytes());
        }
    }

    /// Closes the open output event's line, if any.
    fn close_output(&mut self) {
        if self.open.take().is_some() {
            end_event(&mut self.buf);
        }
    }

    /// Writes a whole event (after closing any open output).
    fn event(&mut self, at: Instant, code: Code, data: &str) {
        self.close_output();
        self.begin(at, code);
        escape_into(&mut self.buf, data);
        end_event(&mut self.buf);
    }

    /// Hands the buffered lines (all whole) to the file, and syncs it if
    /// asked (on a blocking thread: the disk may be slow). A failure stops
    /// the recording.
    async fn write_out(&mut self, sync: bool) {
        if self.broken {
            self.buf.clear();
            return;
        }
        let Some(mut file) = self.file.take() else {
            return;
        };
        let data = std::mem::take(&mut self.buf);
        let unsynced = self.unsynced + data.len();
        let need_sync = sync && unsynced > 0;
        let index_lines = std::mem::take(&mut self.index_buf);
        let index = self.index.take();
        let result =
            tokio::task::spawn_blocking(move || {
                let r = file.write_all(&data).and_then(|()| {
                    if need_sync {
                        file.sync_data()
                    } else {
                        Ok(())
                    }
                });
                // The index only after what it points into.
                let index = match (&r, index) {
                    (Ok(()), Some(mut f)) => {
                        write_index(&mut f, &index_lines, need_sync).map(|()| Some(f))
                    }
                    (_, index) => Ok(index),
                };
                (file, data, r, index)
            })
            .await;
        let (file, mut data, written, index) = match result {
            Ok(done) => done,
            Err(e) => return self.broken(format!("the recording writer stopped: {e}")),
        };
        self.index = index.unwrap_or_else(|e| {
            tracing::warn!(recording = %self.id, "the recording's index is not written: {e}");
            None
        });
        match written {
            Ok(()) => {
                self.hash.update(&data);
                self.size += data.len() as u64;
                self.unsynced = if need_sync { 0 } else { unsynced };
                self.syncs += u64::from(need_sync);
                self.file = Some(file);
                // Reuse the allocation for the next group.
                data.clear();
                self.buf = data;
            }
            Err(e) => self.broken(format!("writing the recording failed: {e}")),
        }
    }

    fn broken(&mut self, reason: String) {
        self.index = None;
        self.broken = true;
        self.tx.lost.store(true, Ordering::Release);
        fail(&self.tx.failure, self.tx.policy, reason);
    }
}

/// Appends index lines (and syncs them with the recording).
fn write_index(f: &mut File, lines: &[u8], sync: bool) -> std::io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    f.write_all(lines)?;
    if sync {
        f.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recordings::cast::Cast;

    fn header() -> Header {
        crate::recordings::cast::test_header()
    }

    /// `r.cast` and `r.idx` in `tmp`.
    fn files(tmp: &tempfile::TempDir) -> (File, File) {
        (
            File::create(tmp.path().join("r.cast")).unwrap(),
            File::create(tmp.path().join("r.idx")).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_index_points_at_line_starts_with_the_times_of_the_recording() {
        let tmp = tempfile::tempdir().unwrap();
        let (tx, task) = RecorderTask::start("t", files(&tmp), &header(), Policy::Strict);
        tx.output(b"first screen\r\n");
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.keyframe(80, 24, b"\x1bcfirst screen".to_vec());
        tx.output(b"more");
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.marker("send to all: ls");
        tx.output(b"after");
        let summary = task.finish(Some(Some(0))).await;
        let text = std::fs::read_to_string(tmp.path().join("r.cast")).unwrap();
        let index = std::fs::read_to_string(tmp.path().join("r.idx")).unwrap();
        assert_eq!(summary.size, text.len() as u64);
        let cast = Cast::parse(&text).unwrap();
        let times: Vec<u64> = cast.timed().map(|(t, _)| t).collect();
        let entries: Vec<Entry> = index
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(entries.len(), 3, "{index}");
        let line_at = |offset: u64| {
            let rest = &text[usize::try_from(offset).unwrap()..];
            assert!(text[..usize::try_from(offset).unwrap()].ends_with('\n'));
            rest.lines().next().unwrap_or_default().to_string()
        };
        match &entries[0] {
            Entry::Keyframe(k) => {
                assert_eq!(k.screen, "\u{1b}cfirst screen");
                assert_eq!((k.cols, k.rows), (80, 24));
                assert_eq!(k.time_us, times[0], "the time of the event before it");
                assert!(
                    line_at(k.offset).contains("\"more\""),
                    "{}",
                    line_at(k.offset)
                );
            }
            other => panic!("{other:?}"),
        }
        match &entries[1] {
            Entry::Marker {
                time_us,
                offset,
                label,
            } => {
                assert_eq!(label, "send to all: ls");
                assert_eq!(*time_us, times[2]);
                assert!(line_at(*offset).contains("send to all: ls"));
            }
            other => panic!("{other:?}"),
        }
        match &entries[2] {
            Entry::End { time_us, offset } => {
                assert_eq!(*time_us, *times.last().unwrap());
                assert_eq!(*offset, summary.size);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_keyframe_is_due_every_few_megabytes_of_output() {
        let (tx, _rx) = mpsc::channel(QUEUE);
        let (failure, _) = watch::channel(None);
        let tx = RecorderTx {
            tx,
            since_keyframe: Arc::default(),
            lost: Arc::default(),
            failure: Arc::new(failure),
            policy: Policy::BestEffort,
        };
        let chunk = vec![b'x'; 16 << 10];
        let due = (0..(3 * KEYFRAME_BYTES as usize / chunk.len()))
            .filter(|_| tx.output(&chunk))
            .count();
        assert_eq!(due, 3);
    }

    #[tokio::test]
    async fn events_reach_the_file_in_order_with_split_characters_joined() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("r.cast");
        let (tx, task) = RecorderTask::start("t", files(&tmp), &header(), Policy::Strict);
        let euro = "€".as_bytes();
        tx.output(b"price: ");
        tx.output(&euro[..1]);
        tx.output(&euro[1..]);
        tokio::time::sleep(Duration::from_millis(30)).await;
        tx.resize(100, 30);
        tx.marker("reattached");
        tx.output(b"bye\r\n");
        let summary = task.finish(Some(Some(3))).await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(summary.complete);
        assert_eq!(summary.size, text.len() as u64);
        assert_eq!(summary.sha256, hex::encode(Sha256::digest(text.as_bytes())));
        let cast = Cast::parse(&text).unwrap();
        let got: Vec<(Code, &str)> = cast
            .events
            .iter()
            .map(|e| (e.code, e.data.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Code::Output, "price: €"),
                (Code::Resize, "100x30"),
                (Code::Marker, "reattached"),
                (Code::Output, "bye\r\n"),
                (Code::Exit, "3"),
            ]
        );
        assert!(
            cast.events[1].interval_us >= 30_000,
            "times come from the clock"
        );
    }

    #[tokio::test]
    async fn heavy_output_is_synced_a_few_times_a_second_and_kept_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("r.cast");
        let (tx, task) = RecorderTask::start("t", files(&tmp), &header(), Policy::Strict);
        let chunk = vec![b'y'; 16 * 1024];
        let start = std::time::Instant::now();
        let mut sent = 0usize;
        while start.elapsed() < Duration::from_millis(1200) {
            tx.output(&chunk);
            sent += chunk.len();
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let summary = task.finish(None).await;
        assert!(summary.complete, "the writer kept up");
        // The header sync, at most ~5 a second, and the one at close.
        assert!(summary.syncs <= 10, "{} syncs", summary.syncs);
        let cast = Cast::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let printed: usize = cast.events.iter().map(|e| e.data.len()).sum();
        assert_eq!(printed, sent, "every byte recorded");
    }

    #[tokio::test]
    async fn a_failing_disk_fails_a_strict_recording_and_not_a_best_effort_one() {
        let tmp = tempfile::tempdir().unwrap();
        for policy in [Policy::Strict, Policy::BestEffort] {
            // /dev/full takes opens and refuses every write (ENOSPC).
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap();
            let index = File::create(tmp.path().join("r.idx")).unwrap();
            let (tx, mut task) = RecorderTask::start("t", (file, index), &header(), policy);
            tx.output(b"x");
            let failed = tokio::time::timeout(Duration::from_millis(500), task.failed()).await;
            match policy {
                Policy::Strict => {
                    let reason = failed.expect("strict recordings report the failure");
                    assert!(reason.contains("writing the recording failed"), "{reason}");
                }
                Policy::BestEffort => assert!(failed.is_err(), "best effort goes on"),
            }
            let summary = task.finish(None).await;
            assert!(!summary.complete);
        }
    }
}
