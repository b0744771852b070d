//! The session's screen model for snapshots: a vt100 parser that follows the
//! output ring. It parses eagerly while output is light and falls behind under
//! a flood (parsing every byte of a 60 MB/s `cat` would cost more CPU than the
//! SSH decryption); a snapshot or resize first catches up from the ring.
//! Bytes that left the ring unparsed are skipped: the ring holds many screens,
//! so the catch-up still ends on the right screen.
use std::time::Instant;

use super::ring::Ring;

/// Output parsed eagerly per second; beyond it the model lags behind the ring.
const EAGER_BYTES_PER_SEC: f64 = 4.0 * 1024.0 * 1024.0;
/// Most eager budget saved up while output is quiet.
const EAGER_BURST: f64 = 1024.0 * 1024.0;
/// Lines of scrollback the model keeps (snapshots show only the screen).
const SCROLLBACK: usize = 0;

/// A vt100 screen that has seen the output stream up to [`ScreenModel::parsed`].
pub(crate) struct ScreenModel {
    parser: vt100::Parser,
    /// Stream offset up to which output was parsed (or skipped).
    parsed: u64,
    /// Bytes that left the ring before they were parsed.
    skipped: u64,
    /// Bytes that may still be parsed eagerly.
    budget: f64,
    /// When the budget was last refilled.
    refilled: Instant,
}

impl std::fmt::Debug for ScreenModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenModel")
            .field("parsed", &self.parsed)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl ScreenModel {
    /// A blank screen of `rows` × `cols` at stream offset 0.
    pub(crate) fn new(rows: u16, cols: u16) -> Self {
        Self {
            parser: vt100::Parser::new(rows.max(1), cols.max(1), SCROLLBACK),
            parsed: 0,
            skipped: 0,
            budget: EAGER_BURST,
            refilled: Instant::now(),
        }
    }

    /// After the ring grew: the unparsed output to parse now if it fits the
    /// eager budget at `now`, else `None` (the model stays behind for now).
    pub(crate) fn due(&mut self, ring: &Ring, now: Instant) -> Option<Vec<u8>> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.budget = (self.budget + elapsed * EAGER_BYTES_PER_SEC).min(EAGER_BURST);
        self.refilled = now;
        let lag = ring.head().saturating_sub(self.parsed.max(ring.tail()));
        if lag == 0 || lag as f64 > self.budget {
            return None;
        }
        self.budget -= lag as f64;
        Some(self.take_backlog(ring))
    }

    /// Everything the ring holds past what was parsed; marks it parsed (the
    /// caller feeds it to [`ScreenModel::process`]). Output the ring no longer
    /// holds is counted as skipped.
    pub(crate) fn take_backlog(&mut self, ring: &Ring) -> Vec<u8> {
        if self.parsed < ring.tail() {
            self.skipped += ring.tail() - self.parsed;
            self.parsed = ring.tail();
        }
        let (a, b) = ring.slices_from(self.parsed);
        self.parsed = ring.head();
        [a, b].concat()
    }

    /// Parses output handed out by [`ScreenModel::due`] or [`ScreenModel::take_backlog`].
    pub(crate) fn process(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
    }

    /// Catches up with `ring`: needed before a snapshot or a size change.
    pub(crate) fn catch_up(&mut self, ring: &Ring) {
        let backlog = self.take_backlog(ring);
        self.process(&backlog);
    }

    /// Catches up with `ring` parsing at most its last `max` bytes (the
    /// rest counts as skipped): a keyframe in a flood costs little. It
    /// spends the eager budget, so that a flood, once caught up with, is not
    /// then parsed eagerly until the budget refilled.
    pub(crate) fn catch_up_tail(&mut self, ring: &Ring, max: usize) {
        let from = ring.head().saturating_sub(max as u64);
        if self.parsed < from {
            self.skipped += from - self.parsed;
            self.parsed = from;
        }
        self.budget = 0.0;
        self.catch_up(ring);
    }

    /// New screen size (after [`ScreenModel::catch_up`], so earlier output is
    /// laid out at the size it was written for).
    pub(crate) fn set_size(&mut self, rows: u16, cols: u16) {
        self.parser.screen_mut().set_size(rows, cols);
    }

    /// The screen as parsed so far (catch up first to see the latest).
    pub(crate) fn vt(&self) -> &vt100::Screen {
        self.parser.screen()
    }

    /// Screen size as (rows, columns).
    pub(crate) fn size(&self) -> (u16, u16) {
        self.parser.screen().size()
    }

    /// Bytes that left the ring before they were parsed.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// A rendering of the screen (call [`ScreenModel::catch_up`] first) that
    /// resets a client terminal and redraws it: contents, cursor, attributes.
    pub(crate) fn render(&self) -> Vec<u8> {
        let scr = self.parser.screen();
        let mut out = Vec::new();
        // Full reset of the client terminal, then the alternate screen if in use.
        out.extend_from_slice(b"\x1bc");
        if scr.alternate_screen() {
            out.extend_from_slice(b"\x1b[?1049h");
        }
        out.extend_from_slice(&scr.state_formatted());
        let (row, col) = scr.cursor_position();
        out.extend_from_slice(
            format!("\x1b[{};{}H", u32::from(row) + 1, u32::from(col) + 1).as_bytes(),
        );
        out.extend_from_slice(&scr.attributes_formatted());
        out
    }

    /// The screen's text (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn text(&self) -> String {
        self.parser.screen().contents()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn feed(model: &mut ScreenModel, ring: &mut Ring, bytes: &[u8], now: Instant) -> bool {
        ring.push(bytes);
        match model.due(ring, now) {
            Some(due) => {
                model.process(&due);
                true
            }
            None => false,
        }
    }

    #[test]
    fn light_output_is_parsed_as_it_arrives() {
        let mut ring = Ring::new(1 << 20);
        let mut model = ScreenModel::new(24, 80);
        let t0 = Instant::now();
        for i in 0..100u32 {
            let line = format!("line {i}\r\n");
            let now = t0 + Duration::from_millis(u64::from(i) * 10);
            assert!(
                feed(&mut model, &mut ring, line.as_bytes(), now),
                "line {i}"
            );
        }
        assert!(model.text().contains("line 99"));
        assert_eq!(model.skipped(), 0);
    }

    #[test]
    fn a_flood_is_not_parsed_eagerly_and_a_catch_up_ends_on_the_newest_screen() {
        let mut ring = Ring::new(256 << 10);
        let mut model = ScreenModel::new(24, 80);
        let now = Instant::now();
        let mut eager = 0usize;
        let mut sent = 0usize;
        let mut i = 0u32;
        // 4 MiB at one instant: far beyond the eager budget and the ring.
        while sent < 4 << 20 {
            let line = format!("flood line {i:08}\r\n");
            sent += line.len();
            eager += usize::from(feed(&mut model, &mut ring, line.as_bytes(), now));
            i += 1;
        }
        let burst_lines = (EAGER_BURST as usize) / "flood line 00000000\r\n".len();
        assert!(
            eager <= burst_lines + 1,
            "parsed {eager} chunks eagerly, budget allows {burst_lines}"
        );
        assert!(!model.text().contains(&format!("flood line {:08}", i - 1)));
        model.catch_up(&ring);
        let text = model.text();
        assert!(text.contains(&format!("flood line {:08}", i - 1)), "{text}");
        assert!(
            text.contains(&format!("flood line {:08}", i - 23)),
            "{text}"
        );
        assert!(
            model.skipped() > 0,
            "the ring overflowed, so bytes were skipped"
        );
        assert_eq!(model.parsed, ring.head());
    }

    #[test]
    fn the_budget_refills_with_time() {
        let mut ring = Ring::new(4 << 20);
        let mut model = ScreenModel::new(24, 80);
        let t0 = Instant::now();
        let big = vec![b'x'; (EAGER_BURST as usize) + 1];
        assert!(!feed(&mut model, &mut ring, &big, t0), "over the burst");
        // A second later the budget (capped at the burst) still can't cover the lag...
        assert!(!feed(
            &mut model,
            &mut ring,
            b"y",
            t0 + Duration::from_secs(1)
        ));
        // ...but an explicit catch-up does, and light output is eager again.
        model.catch_up(&ring);
        assert!(feed(
            &mut model,
            &mut ring,
            b"z",
            t0 + Duration::from_secs(2)
        ));
        assert_eq!(model.skipped(), 0);
    }

    #[test]
    fn a_tail_catch_up_parses_only_the_newest_output() {
        let mut ring = Ring::new(1 << 20);
        let mut model = ScreenModel::new(24, 80);
        let mut i = 0u32;
        while ring.head() < 512 << 10 {
            ring.push(format!("tail line {i:08}\r\n").as_bytes());
            i += 1;
        }
        model.catch_up_tail(&ring, 16 << 10);
        assert_eq!(model.parsed, ring.head());
        assert_eq!(model.budget, 0.0, "the eager budget is spent");
        assert!(model.skipped() >= (512 - 16) << 10, "{}", model.skipped());
        let text = model.text();
        assert!(text.contains(&format!("tail line {:08}", i - 1)), "{text}");
        assert!(text.contains(&format!("tail line {:08}", i - 23)), "{text}");
    }

    #[test]
    fn render_resets_the_client_and_restores_the_alternate_screen() {
        let mut ring = Ring::new(1 << 20);
        let mut model = ScreenModel::new(24, 80);
        ring.push(b"\x1b[?1049hfull screen app");
        model.catch_up(&ring);
        let out = model.render();
        assert!(out.starts_with(b"\x1bc\x1b[?1049h"));
        assert!(String::from_utf8_lossy(&out).contains("full screen app"));
    }
}
