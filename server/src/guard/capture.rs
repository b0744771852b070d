//! Reading the line a user submitted at a shell prompt from the session's vt100 screen.

/// Where a line started on the screen: taken when the first key of a new line is typed,
/// before the shell echoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Cursor row when the line started.
    row: u16,
    /// Cursor column when the line started: where the typed text begins.
    col: u16,
    /// The row's text left of `col`, exactly (trailing blanks kept): the prompt, used to
    /// find the line again if the screen has scrolled.
    prompt: String,
}

impl Anchor {
    /// Records the cursor position and the prompt text to its left.
    pub fn at_cursor(screen: &vt100::Screen) -> Anchor {
        let (row, col) = screen.cursor_position();
        Anchor {
            row,
            col,
            prompt: row_text(screen, row, 0, col),
        }
    }

    /// The row the line started on (before any scroll).
    pub fn row(&self) -> u16 {
        self.row
    }

    /// The column the typed text starts at.
    pub fn col(&self) -> u16 {
        self.col
    }

    /// The prompt text left of the line.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }
}

/// What the screen says was submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// The submitted line, joined across wrapped rows, trailing blanks and an
    /// autosuggestion removed.
    Line(String),
    /// A full-screen program is running: Enter is not a shell command.
    AlternateScreen,
    /// The prompt is no longer where the line can be found (output or `clear` overwrote it).
    Lost,
}

/// Reads the line started at `anchor`, up to the end of the cursor's logical line.
pub fn submitted_line(screen: &vt100::Screen, anchor: &Anchor) -> Captured {
    if screen.alternate_screen() {
        return Captured::AlternateScreen;
    }
    let Some(start) = find_start(screen, anchor) else {
        return Captured::Lost;
    };
    let (cursor_row, cursor_col) = screen.cursor_position();
    let end = logical_line_end(screen, cursor_row);
    let cells = line_cells(screen, start, anchor.col, end);
    Captured::Line(typed_text(&cells, (cursor_row, cursor_col)))
}

/// The row the line starts on: the nearest row at or above the cursor, on the cursor's
/// logical line (rows joined by wrapping), whose text left of the anchor column is the
/// prompt. The anchor row itself unless output or a long line scrolled the screen.
fn find_start(screen: &vt100::Screen, anchor: &Anchor) -> Option<u16> {
    let (cursor_row, _) = screen.cursor_position();
    let mut top = cursor_row;
    while top > 0 && screen.row_wrapped(top - 1) {
        top -= 1;
    }
    // A blank prompt matches every row; only rows at or above the anchor row can hold
    // the line's start (scrolling moves rows up), so start there.
    let first = if anchor.prompt.trim().is_empty() {
        cursor_row.min(anchor.row)
    } else {
        cursor_row
    };
    (top..=first)
        .rev()
        .find(|&row| row_text(screen, row, 0, anchor.col) == anchor.prompt)
}

/// The last row of the logical line through `row`: follows wrapped rows down.
fn logical_line_end(screen: &vt100::Screen, row: u16) -> u16 {
    let (rows, _) = screen.size();
    let mut end = row;
    while end + 1 < rows && screen.row_wrapped(end) {
        end += 1;
    }
    end
}

/// The text of `row` from column `from` up to (not including) `to`; empty cells read as
/// blanks, the second half of a wide character is skipped.
fn row_text(screen: &vt100::Screen, row: u16, from: u16, to: u16) -> String {
    let mut text = String::new();
    for col in from..to {
        let Some(cell) = screen.cell(row, col) else {
            break;
        };
        if cell.is_wide_continuation() {
            continue;
        }
        if cell.has_contents() {
            text.push_str(cell.contents());
        } else {
            text.push(' ');
        }
    }
    text
}

/// One screen cell of the line, with what the capture needs to know about it.
struct LineCell {
    row: u16,
    col: u16,
    /// The cell's text, a blank for an empty cell.
    text: String,
    /// The cell was written (an erased or untouched cell has no contents).
    written: bool,
    /// Drawn the way shells draw an autosuggestion (grey or dim).
    suggestion_style: bool,
}

/// The cells from (`start`, `col`) through the end of row `end`, in reading order.
fn line_cells(screen: &vt100::Screen, start: u16, col: u16, end: u16) -> Vec<LineCell> {
    let (_, cols) = screen.size();
    let mut cells = Vec::new();
    for row in start..=end {
        let from = if row == start { col } else { 0 };
        for c in from..cols {
            let Some(cell) = screen.cell(row, c) else {
                break;
            };
            if cell.is_wide_continuation() {
                continue;
            }
            cells.push(LineCell {
                row,
                col: c,
                text: if cell.has_contents() {
                    cell.contents().to_string()
                } else {
                    " ".to_string()
                },
                written: cell.has_contents(),
                suggestion_style: is_suggestion_style(cell),
            });
        }
    }
    cells
}

/// The text the user typed: drops the trailing run of empty cells and of
/// suggestion-styled cells at or after the cursor, then trailing blanks. Text before the
/// cursor is kept whatever its colour (syntax highlighting).
fn typed_text(cells: &[LineCell], cursor: (u16, u16)) -> String {
    let cursor_index = cells.iter().take_while(|c| (c.row, c.col) < cursor).count();
    let mut keep = cells.len();
    while keep > 0 {
        let cell = &cells[keep - 1];
        let suggested = keep > cursor_index && cell.suggestion_style;
        if cell.written && !suggested {
            break;
        }
        keep -= 1;
    }
    let text: String = cells[..keep].iter().map(|c| c.text.as_str()).collect();
    text.trim_end().to_string()
}

/// Grey or dim, as fish and zsh-autosuggestions draw a suggestion: palette colour 8
/// (bright black), the mid greys of the 256-colour ramp, an RGB grey, or the dim attribute.
fn is_suggestion_style(cell: &vt100::Cell) -> bool {
    cell.dim()
        || match cell.fgcolor() {
            vt100::Color::Idx(i) => i == 8 || (240..=250).contains(&i),
            vt100::Color::Rgb(r, g, b) => r == g && g == b && r < 200,
            vt100::Color::Default => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &[u8] = b"user@h:~$ ";

    /// A screen showing `before`, then the anchor taken, then `typed` echoed.
    fn session(rows: u16, cols: u16, before: &[u8], typed: &[u8]) -> (vt100::Parser, Anchor) {
        let mut parser = vt100::Parser::new(rows, cols, 0);
        parser.process(before);
        let anchor = Anchor::at_cursor(parser.screen());
        parser.process(typed);
        (parser, anchor)
    }

    fn line(parser: &vt100::Parser, anchor: &Anchor) -> Captured {
        submitted_line(parser.screen(), anchor)
    }

    fn text(s: &str) -> Captured {
        Captured::Line(s.to_string())
    }

    #[test]
    fn anchor_records_cursor_and_exact_prompt() {
        let (parser, anchor) = session(24, 80, b"motd\r\nuser@h:~$ ", b"");
        assert_eq!((anchor.row(), anchor.col()), (1, 10));
        assert_eq!(anchor.prompt(), "user@h:~$ ");
        assert_eq!(line(&parser, &anchor), text(""));
    }

    #[test]
    fn reads_the_typed_line_after_a_coloured_prompt() {
        let (parser, anchor) = session(24, 80, b"\x1b[1;32muser@h\x1b[0m:~$ ", b"ls -l  /tmp ");
        assert_eq!(anchor.prompt(), "user@h:~$ ");
        assert_eq!(line(&parser, &anchor), text("ls -l  /tmp"));
    }

    #[test]
    fn reads_a_line_edited_in_the_middle() {
        // Insert-character style: move left, open a cell, type.
        let (parser, anchor) = session(24, 80, PROMPT, b"echo wrld\x1b[3D\x1b[@o");
        assert_eq!(
            parser.screen().cursor_position(),
            (0, 17),
            "cursor after the inserted o"
        );
        assert_eq!(line(&parser, &anchor), text("echo world"));
        // Reprint style (readline): type, rewrite the tail, move back.
        let (parser, anchor) = session(24, 80, PROMPT, b"echo wrld\x1b[3Dorld\x1b[3D");
        assert_eq!(line(&parser, &anchor), text("echo world"));
    }

    #[test]
    fn joins_a_line_wrapped_over_two_rows() {
        let typed = b"echo 0123456789abcdefghij";
        let (mut parser, anchor) = session(10, 20, b"$ ", typed);
        assert_eq!(parser.screen().cursor_position().0, 1, "the line wrapped");
        assert_eq!(line(&parser, &anchor), text("echo 0123456789abcdefghij"));
        // Cursor moved back up to the first row: the rest of the line still counts.
        parser.process(b"\x1b[1;5H");
        assert_eq!(line(&parser, &anchor), text("echo 0123456789abcdefghij"));
    }

    #[test]
    fn finds_the_prompt_after_a_wrap_scrolled_the_screen() {
        let (parser, anchor) = session(
            5,
            20,
            b"out1\r\nout2\r\nout3\r\nout4\r\n$ ",
            b"echo 0123456789abcdefghij",
        );
        assert_eq!(anchor.row(), 4);
        assert_eq!(parser.screen().cursor_position().0, 4);
        assert_eq!(
            parser.screen().contents().lines().next(),
            Some("out2"),
            "scrolled once"
        );
        assert_eq!(line(&parser, &anchor), text("echo 0123456789abcdefghij"));
    }

    #[test]
    fn finds_the_prompt_redrawn_at_the_top_after_ctrl_l() {
        let (mut parser, anchor) = session(24, 80, b"a\r\nb\r\nc\r\nuser@h:~$ ", b"ls");
        parser.process(b"\x1b[H\x1b[2Juser@h:~$ ls");
        assert_eq!(line(&parser, &anchor), text("ls"));
    }

    #[test]
    fn drops_an_autosuggestion_after_the_cursor() {
        let styles: [&[u8]; 5] = [
            b"\x1b[90m",
            b"\x1b[38;5;8m",
            b"\x1b[38;5;244m",
            b"\x1b[38;2;85;85;85m",
            b"\x1b[2m",
        ];
        for style in styles {
            let mut typed = b"git st".to_vec();
            typed.extend_from_slice(style);
            typed.extend_from_slice(b"atus --short\x1b[0m\x1b[12D");
            let (parser, anchor) = session(24, 80, PROMPT, &typed);
            assert_eq!(
                line(&parser, &anchor),
                text("git st"),
                "style {:?}",
                String::from_utf8_lossy(style)
            );
        }
    }

    #[test]
    fn keeps_grey_text_before_the_cursor_and_plain_text_after_it() {
        // Syntax highlighting greys a typed word; the cursor is at the end.
        let (parser, anchor) = session(24, 80, PROMPT, b"\x1b[90mgit\x1b[0m status");
        assert_eq!(line(&parser, &anchor), text("git status"));
        // Grey at the very end but before the cursor is typed text, not a suggestion.
        let (parser, anchor) = session(24, 80, PROMPT, b"ls \x1b[90m--all\x1b[0m");
        assert_eq!(line(&parser, &anchor), text("ls --all"));
        // Grey typed text, then a grey suggestion after the cursor: only the latter goes.
        let (parser, anchor) = session(24, 80, PROMPT, b"\x1b[90mgit stash pop\x1b[4D");
        assert_eq!(line(&parser, &anchor), text("git stash"));
        // Typed text after the cursor in the default colour is part of the line.
        let (parser, anchor) = session(24, 80, PROMPT, b"rm -rf /tmp/x\x1b[10D");
        assert_eq!(line(&parser, &anchor), text("rm -rf /tmp/x"));
    }

    #[test]
    fn reads_wide_characters_once() {
        let (parser, anchor) = session(24, 80, PROMPT, "echo 日本 ok".as_bytes());
        assert_eq!(line(&parser, &anchor), text("echo 日本 ok"));
    }

    #[test]
    fn alternate_screen_is_not_a_command_line() {
        let (parser, anchor) = session(24, 80, PROMPT, b"vim\r\n\x1b[?1049h~\r\n~");
        assert_eq!(line(&parser, &anchor), Captured::AlternateScreen);
    }

    #[test]
    fn output_over_the_prompt_loses_the_line() {
        let (mut parser, anchor) = session(24, 80, PROMPT, b"ls");
        parser.process(b"\x1b[H\x1b[2Jsome output");
        assert_eq!(line(&parser, &anchor), Captured::Lost);
    }

    #[test]
    fn a_prompt_on_an_unconnected_row_is_not_taken() {
        // The prompt is still on screen, but the cursor is on a later, separate line.
        let (mut parser, anchor) = session(24, 80, PROMPT, b"ls");
        parser.process(b"\r\nfile1\r\n");
        assert_eq!(line(&parser, &anchor), Captured::Lost);
    }

    #[test]
    fn a_blank_prompt_is_found_at_the_anchor_row() {
        let (parser, anchor) = session(24, 80, b"out\r\n", b"rm x");
        assert_eq!((anchor.row(), anchor.col()), (1, 0));
        assert_eq!(line(&parser, &anchor), text("rm x"));
    }
}
