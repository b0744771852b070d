//! Owner input as the guard sees it: keys that submit a line (Enter), keys
//! that start it over (Ctrl-C, Ctrl-U), bracketed-paste markers, and
//! everything else; plus a rough reconstruction of what was typed.

/// Start of a bracketed paste (what xterm.js sends when the shell asked for it).
pub const PASTE_START: &[u8] = b"\x1b[200~";
/// End of a bracketed paste.
pub const PASTE_END: &[u8] = b"\x1b[201~";
/// What clears a shell's line: end of line (Ctrl-E), then kill to its start
/// (Ctrl-U). Readline, zsh's line editor and fish all understand it.
pub const CLEAR_LINE: &[u8] = b"\x05\x15";

/// One piece of owner input, borrowing the input's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// Enter (`\r`, or `\n` as Ctrl-J and in pasted text): submits the line.
    Enter(&'a [u8]),
    /// Ctrl-C or Ctrl-U: the shell drops the line; a new one starts.
    Reset(&'a [u8]),
    /// The start of a bracketed paste.
    PasteStart,
    /// The end of a bracketed paste.
    PasteEnd,
    /// Anything else (text, editing keys, escape sequences), in runs.
    Text(&'a [u8]),
}

/// Splits `input` into [`Key`]s; consecutive other bytes stay one `Text`.
pub fn keys(input: &[u8]) -> Vec<Key<'_>> {
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < input.len() {
        let rest = input.get(i..).unwrap_or_default();
        let (key, len) = if rest.starts_with(PASTE_START) {
            (Some(Key::PasteStart), PASTE_START.len())
        } else if rest.starts_with(PASTE_END) {
            (Some(Key::PasteEnd), PASTE_END.len())
        } else {
            match rest.first() {
                Some(b'\r' | b'\n') => (Some(Key::Enter(input.get(i..=i).unwrap_or_default())), 1),
                Some(0x03 | 0x15) => (Some(Key::Reset(input.get(i..=i).unwrap_or_default())), 1),
                _ => (None, 1),
            }
        };
        if let Some(key) = key {
            if text_start < i {
                out.push(Key::Text(input.get(text_start..i).unwrap_or_default()));
            }
            out.push(key);
            text_start = i + len;
        }
        i += len;
    }
    if text_start < input.len() {
        out.push(Key::Text(input.get(text_start..).unwrap_or_default()));
    }
    out
}

/// What the keystrokes of a line spell, read without the screen: printable
/// text appended, Backspace and Ctrl-W applied, escape sequences (arrows,
/// function keys) and other control keys skipped. Cursor movement is not
/// followed, so after editing it can differ from the line; the guard uses
/// it only as a second opinion on deny rules, never stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypedLine {
    text: String,
    /// Inside an escape sequence: bytes to skip until its final byte.
    escape: Escape,
}

/// Where the reader is within an escape sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Escape {
    /// Not in one.
    #[default]
    None,
    /// After ESC.
    Start,
    /// After `ESC [` or `ESC O`: parameters until a final byte.
    Params,
}

/// Most text kept (a paste may be long; checks need no more).
const MAX_TYPED: usize = 64 << 10;

impl TypedLine {
    /// Applies typed bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        for ch in String::from_utf8_lossy(bytes).chars() {
            match (self.escape, ch) {
                (Escape::Start, '[' | 'O') => self.escape = Escape::Params,
                (Escape::Start, _) => self.escape = Escape::None,
                (Escape::Params, c) => {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        self.escape = Escape::None;
                    }
                }
                (Escape::None, '\u{1b}') => self.escape = Escape::Start,
                (Escape::None, '\u{7f}' | '\u{8}') => {
                    self.text.pop();
                }
                (Escape::None, '\u{17}') => {
                    let kept = self.text.trim_end().rfind(' ').map_or(0, |i| i + 1);
                    self.text.truncate(kept);
                }
                (Escape::None, '\t') => self.text.push(' '),
                (Escape::None, c) if !c.is_control() && self.text.len() < MAX_TYPED => {
                    self.text.push(c)
                }
                (Escape::None, _) => {}
            }
        }
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Starts over (Enter, Ctrl-C, Ctrl-U).
    pub fn clear(&mut self) {
        self.text.clear();
        self.escape = Escape::None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_enter_resets_and_paste_markers() {
        let input = b"ls -l\rrm\x03x\x1b[200~a\nb\x1b[201~\x15";
        assert_eq!(
            keys(input),
            vec![
                Key::Text(b"ls -l"),
                Key::Enter(b"\r"),
                Key::Text(b"rm"),
                Key::Reset(b"\x03"),
                Key::Text(b"x"),
                Key::PasteStart,
                Key::Text(b"a"),
                Key::Enter(b"\n"),
                Key::Text(b"b"),
                Key::PasteEnd,
                Key::Reset(b"\x15"),
            ]
        );
        assert_eq!(keys(b"\x1b[A"), vec![Key::Text(b"\x1b[A")]);
        assert!(keys(b"").is_empty());
    }

    #[test]
    fn typed_text_follows_backspace_and_skips_escapes() {
        let mut t = TypedLine::default();
        t.feed(b"rmx\x7f -rf\x1b[D\x1b[D /");
        assert_eq!(t.text(), "rm -rf /");
        t.feed(b"\x17\x17");
        assert_eq!(t.text(), "rm ");
        t.clear();
        t.feed("écho\tok\x1bOA".as_bytes());
        assert_eq!(t.text(), "écho ok");
    }
}
