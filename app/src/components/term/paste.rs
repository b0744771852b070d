//! Pasted text must stay pasted: a paste containing the bracketed-paste end
//! marker `ESC [ 2 0 1 ~` would end the paste early in the shell, and what
//! follows would run as if typed (advisory GHSA-h62m-39wp-xq3w against
//! xterm.js). These pure functions neutralise the start and end markers in
//! every text termroom pastes or sends on the user's behalf.
use std::borrow::Cow;

/// Sent by the terminal before pasted text when the application asked for
/// bracketed paste (DEC mode 2004).
pub const PASTE_START: &str = "\x1b[200~";
/// Sent by the terminal after pasted text in bracketed paste mode.
pub const PASTE_END: &str = "\x1b[201~";

/// The two introducers of a control sequence: ESC `[` (7-bit) and the C1
/// CSI character (8-bit), which some applications also accept.
const ESC: char = '\x1b';
const C1_CSI: char = '\u{9b}';
/// Every form of the two markers.
const MARKERS: [&str; 4] = [PASTE_START, PASTE_END, "\u{9b}200~", "\u{9b}201~"];

/// `text` without the introducer (ESC, or the C1 CSI) of any bracketed-paste
/// start or end marker: `ESC[201~` becomes the plain text `[201~`, as xterm,
/// Alacritty and termite do. Plain ASCII is left, so the result reads the same
/// in any locale (a replacement character such as U+241B would be taken for
/// Meta keys by readline in a non-UTF-8 locale). Everything else is kept,
/// other escape sequences included.
///
/// Linear: a marker can only appear in the output when its last character
/// (`~`) is added, so only the tail is checked then. Dropping an introducer
/// can join what precedes it into a new marker ending at the same place
/// (`ESC ESC[201~`), so that check repeats until no marker ends there; each
/// round removes a character.
pub fn neutralize_markers(text: &str) -> Cow<'_, str> {
    if !text.contains([ESC, C1_CSI]) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        out.push(c);
        if c != '~' {
            continue;
        }
        while let Some(marker) = MARKERS.iter().find(|m| out.ends_with(**m)) {
            // The marker starts with its introducer, a whole character.
            out.remove(out.len() - marker.len());
        }
    }
    Cow::Owned(out)
}

/// Input from the terminal (xterm.js `onData`) with any paste inside made
/// safe: in bracketed paste mode xterm.js sends a paste as one piece,
/// `PASTE_START` + text + `PASTE_END`; markers inside the text are
/// neutralised, the outer pair is kept. Typed input (which never starts with
/// `PASTE_START`) passes unchanged.
pub fn sanitize_input(data: &str) -> Cow<'_, str> {
    let inner = data
        .strip_prefix(PASTE_START)
        .and_then(|rest| rest.strip_suffix(PASTE_END));
    let Some(inner) = inner else {
        return Cow::Borrowed(data);
    };
    match neutralize_markers(inner) {
        Cow::Borrowed(_) => Cow::Borrowed(data),
        Cow::Owned(clean) => Cow::Owned(format!("{PASTE_START}{clean}{PASTE_END}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has_marker(s: &str) -> bool {
        ["\x1b[200~", "\x1b[201~", "\u{9b}200~", "\u{9b}201~"]
            .iter()
            .any(|m| s.contains(m))
    }

    /// `s` without any introducer: what must survive neutralising.
    fn printable(s: &str) -> String {
        s.chars().filter(|c| *c != ESC && *c != C1_CSI).collect()
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["ls -l\r", "", "café ~/[201~ x", "\x1b[A\x1b[B"] {
            let out = neutralize_markers(text);
            assert!(matches!(out, Cow::Borrowed(_)) || text.contains('\x1b'));
            assert_eq!(out, text);
        }
    }

    #[test]
    fn end_and_start_markers_are_neutralised() {
        let attack = "echo safe\x1b[201~touch /tmp/pwned\r";
        assert_eq!(
            neutralize_markers(attack),
            "echo safe[201~touch /tmp/pwned\r"
        );
        assert_eq!(neutralize_markers("a\x1b[200~b\x1b[201~c"), "a[200~b[201~c");
        // The C1 (8-bit) CSI form too.
        assert_eq!(neutralize_markers("a\u{9b}201~b\u{9b}200~"), "a201~b200~");
        // Other escape sequences and near misses are kept.
        assert_eq!(
            neutralize_markers("\x1b[A\x1b[202~\x1b[20~\x1b[2001~"),
            "\x1b[A\x1b[202~\x1b[20~\x1b[2001~"
        );
    }

    #[test]
    fn nested_markers_do_not_reassemble() {
        for attack in [
            "\x1b\x1b[201~[201~id\r",
            "\x1b[20\x1b[201~1~id\r",
            "\x1b\x1b\x1b[201~[201~[201~",
            "\x1b[201\x1b[201~~",
            "\u{9b}\x1b[201~201~",
            "\x1b\u{9b}201~[201~",
        ] {
            let out = neutralize_markers(attack);
            assert!(!has_marker(&out), "{attack:?} became {out:?}");
            // Only introducers go: the rest is all there, in order.
            assert_eq!(printable(&out), printable(attack));
        }
        assert_eq!(
            neutralize_markers("\x1b\x1b[201~[201~id\r"),
            "[201~[201~id\r"
        );
    }

    #[test]
    fn no_marker_survives_any_mix_of_the_pieces() {
        // Every string of up to 7 pieces drawn from the characters markers are
        // made of: exhaustive, so no arrangement is missed.
        let alphabet = ['\x1b', '\u{9b}', '[', '2', '0', '1', '~'];
        let mut stack = vec![String::new()];
        while let Some(s) = stack.pop() {
            let out = neutralize_markers(&s);
            assert!(!has_marker(&out), "{s:?} became {out:?}");
            assert_eq!(printable(&out), printable(&s));
            if s.chars().count() < 7 {
                for c in alphabet {
                    let mut next = s.clone();
                    next.push(c);
                    stack.push(next);
                }
            }
        }
    }

    #[test]
    fn bracketed_paste_input_is_cleaned_inside() {
        // What xterm.js sends for a paste of `echo safe ESC[201~ touch x CR`.
        let data = "\x1b[200~echo safe\x1b[201~touch x\r\x1b[201~";
        assert_eq!(
            sanitize_input(data),
            "\x1b[200~echo safe[201~touch x\r\x1b[201~"
        );
        // A clean paste and typed input are passed through as they are.
        let clean = "\x1b[200~ls\r\x1b[201~";
        assert!(matches!(sanitize_input(clean), Cow::Borrowed(s) if s == clean));
        for typed in ["a", "\r", "\x1b[A", "\x1b[201~", "\x1b[200~unterminated"] {
            assert_eq!(sanitize_input(typed), typed);
        }
        // Empty paste.
        assert_eq!(sanitize_input("\x1b[200~\x1b[201~"), "\x1b[200~\x1b[201~");
        // A paste that is only an end marker.
        assert_eq!(
            sanitize_input("\x1b[200~\x1b[201~\x1b[201~"),
            "\x1b[200~[201~\x1b[201~"
        );
    }
}
