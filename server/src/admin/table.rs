//! Listing output: one row per line, tab-separated fields, text escaped so that no value can break a row.
use std::{borrow::Cow, fmt::Write};

/// A field as printed: an empty value is `-`; a backslash is doubled and a
/// tab, newline, carriage return or other control character is written as
/// `\t`, `\n`, `\r` or `\xNN`, so that a row stays one line of tab-separated
/// fields and the value can be read back.
pub(super) fn field(value: &str) -> Cow<'_, str> {
    if value.is_empty() {
        return Cow::Borrowed("-");
    }
    if !value.chars().any(|c| c == '\\' || c.is_control()) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            // Every control character is at most U+009F: two hex digits.
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// An optional text field (`-` when absent).
pub(super) fn opt(value: Option<&str>) -> Cow<'_, str> {
    field(value.unwrap_or_default())
}

/// Prints one row: the fields (already passed through [`field`] where they
/// are text) joined by tabs.
pub(super) fn print_row(fields: &[&str]) {
    println!("{}", fields.join("\t"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_value_can_break_a_row() {
        assert_eq!(field("ls -l"), "ls -l");
        assert!(matches!(field("ls -l"), Cow::Borrowed(_)));
        assert_eq!(field(""), "-");
        assert_eq!(opt(None), "-");
        assert_eq!(field("a\tb\nc\rd"), "a\\tb\\nc\\rd");
        assert_eq!(
            field(r"rm\s+"),
            r"rm\\s+",
            "reversible: backslashes doubled"
        );
        assert_eq!(field("\u{1b}[31m"), "\\x1b[31m", "no terminal escapes");
        assert_eq!(field("\u{9b}"), "\\x9b");
        assert_eq!(field("\u{7f}"), "\\x7f");
        for nasty in ["x\ty", "x\ny", "x\r\ny", "\u{0}"] {
            let f = field(nasty);
            assert!(!f.chars().any(|c| c.is_control()), "{nasty:?} -> {f:?}");
        }
    }
}
