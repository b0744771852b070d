//! Whether typed input may go into a recording: never while the target has echo off or asks for a secret.

use std::{
    collections::VecDeque,
    fmt,
    os::fd::{AsRawFd, BorrowedFd},
};

/// Characters of the current output line kept for the prompt check (a
/// prompt is judged by how the line ends, so older characters are dropped).
const MAX_LINE_CHARS: usize = 256;

/// The character a secret prompt ends with, before trailing whitespace.
const PROMPT_END: char = ':';

/// Words (lower case) that make a line ending in [`PROMPT_END`] a secret
/// prompt; each must stand as a whole word (not inside a longer word).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passphrase",
    "passcode",
    "pin",
    "otp",
    "one-time",
    "token",
    "verification code",
    "secret",
    "2fa",
];

/// Backspace: terminals move the cursor back; shells erase with "\x08 \x08".
const BACKSPACE: u8 = 0x08;
/// Horizontal tab, kept as a space so that it still separates words.
const TAB: u8 = b'\t';
/// Vertical tab and form feed: terminals treat both as a line feed.
const VERTICAL_TAB: u8 = 0x0b;
/// See [`VERTICAL_TAB`].
const FORM_FEED: u8 = 0x0c;

/// Follows a session's output and input to tell when a secret is being typed.
///
/// Output feeds the current last line (escape sequences parsed away with
/// `vte`); when a chunk of output leaves a line that looks like a secret
/// prompt ([`is_secret_prompt`]), input is hidden up to and including the
/// chunk that submits it (Enter). Output in between never lifts that, so a
/// redraw keeps the secret hidden. A known echo-off terminal hides input
/// regardless of the prompt.
#[derive(Debug, Default)]
pub(crate) struct EchoGuard {
    /// Escape-sequence and UTF-8 state, carried across output chunks.
    parser: Parser,
    /// What the current last line of output shows.
    line: LastLine,
    /// A secret prompt was shown and Enter has not been typed since.
    secret_pending: bool,
}

impl EchoGuard {
    /// Follows a chunk of terminal output (any split, escape sequences and
    /// partial UTF-8 included).
    pub(crate) fn observe_output(&mut self, data: &[u8]) {
        // Only the last line matters: a flood costs a scan for the newline.
        let data = match data.iter().rposition(|&b| b == b'\n') {
            Some(i) => {
                self.parser = Parser::default();
                self.line.clear();
                data.get(i + 1..).unwrap_or_default()
            }
            None => data,
        };
        self.parser.0.advance(&mut self.line, data);
        if self.line.take_changed() && is_secret_prompt(&self.line.text()) {
            self.secret_pending = true;
        }
    }

    /// Whether a chunk of typed input may be recorded. `secret_read` says
    /// whether the terminal reads a secret now (see [`secret_read`]) when
    /// that is known (local PTY), `None` when not (SSH).
    pub(crate) fn admit_input(&mut self, data: &[u8], secret_read: Option<bool>) -> bool {
        let hidden = secret_read == Some(true) || self.secret_pending;
        if submits(data) {
            self.secret_pending = false;
        }
        !hidden
    }
}

/// Whether the terminal behind `fd` (a PTY master or slave) reads a secret
/// right now: line mode with echo off (`ICANON` without `ECHO`), as
/// getpass, sudo, passwd, ssh and `read -s` set it. (A line editor such as
/// readline, or a full-screen program, turns off both and echoes itself:
/// that is not a secret.) `None` if tcgetattr fails (not a terminal).
///
/// On Linux a PTY master answers with its slave's settings.
#[allow(unsafe_code)] // termios is only reachable through libc
pub(crate) fn secret_read(fd: BorrowedFd<'_>) -> Option<bool> {
    let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: `fd` is a valid open descriptor for the borrow's lifetime and
    // `termios` points to writable memory of the right type.
    let rc = unsafe { libc::tcgetattr(fd.as_raw_fd(), termios.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: tcgetattr returned 0, so it filled in the whole struct.
    let termios = unsafe { termios.assume_init() };
    let flags = termios.c_lflag;
    Some(flags & libc::ECHO == 0 && flags & libc::ICANON != 0)
}

/// Whether typed input submits a line (contains Enter).
fn submits(data: &[u8]) -> bool {
    data.iter().any(|&b| b == b'\r' || b == b'\n')
}

/// Whether a line of output asks for a secret: it ends with [`PROMPT_END`]
/// (trailing whitespace aside) and names one of [`SECRET_WORDS`].
fn is_secret_prompt(line: &str) -> bool {
    let line = line.trim_end();
    if !line.ends_with(PROMPT_END) {
        return false;
    }
    let lower = line.to_lowercase();
    SECRET_WORDS.iter().any(|word| contains_word(&lower, word))
}

/// Whether `word` occurs in `text` with no letter or digit right before or after it.
fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text.get(..at).and_then(|s| s.chars().next_back());
        let after = text.get(at + word.len()..).and_then(|s| s.chars().next());
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// The `vte` parser, which has no `Debug` of its own.
#[derive(Default)]
struct Parser(vte::Parser);

impl fmt::Debug for Parser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Parser")
    }
}

/// The printed text of the current last line of output, at most
/// [`MAX_LINE_CHARS`] of its end.
#[derive(Debug, Default)]
struct LastLine {
    /// The line's characters, oldest first.
    chars: VecDeque<char>,
    /// A carriage return came: the next printed character starts the line over.
    carriage_return: bool,
    /// The text changed since the last [`LastLine::take_changed`].
    changed: bool,
}

impl LastLine {
    /// The line as a string.
    fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Whether the text changed since the last call.
    fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Starts a new, empty line.
    fn clear(&mut self) {
        self.chars.clear();
        self.carriage_return = false;
        self.changed = true;
    }

    /// Appends a printed character, dropping the oldest beyond the bound.
    fn push(&mut self, c: char) {
        if self.carriage_return {
            self.clear();
        }
        if self.chars.len() >= MAX_LINE_CHARS {
            self.chars.pop_front();
        }
        self.chars.push_back(c);
        self.changed = true;
    }

    /// Erases the last character (the usual backspace echo).
    fn back(&mut self) {
        if !self.carriage_return && self.chars.pop_back().is_some() {
            self.changed = true;
        }
    }
}

impl vte::Perform for LastLine {
    fn print(&mut self, c: char) {
        self.push(c);
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' | VERTICAL_TAB | FORM_FEED => self.clear(),
            b'\r' => self.carriage_return = true,
            BACKSPACE => self.back(),
            TAB => self.push(' '),
            _ => {}
        }
    }

    fn csi_dispatch(&mut self, _: &vte::Params, _: &[u8], _: bool, action: char) {
        // Cursor positioned absolutely: whatever comes next is on another line.
        if matches!(action, 'H' | 'f') {
            self.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    /// A typed character, as a user types a password one key at a time.
    const KEY: &[u8] = b"x";

    /// A guard that has seen `chunks` of output.
    fn after(chunks: &[&[u8]]) -> EchoGuard {
        let mut guard = EchoGuard::default();
        for chunk in chunks {
            guard.observe_output(chunk);
        }
        guard
    }

    /// Whether input typed after `output` is hidden (echo state unknown).
    fn hides(output: &str) -> bool {
        !after(&[output.as_bytes()]).admit_input(KEY, None)
    }

    #[test]
    fn secret_prompts_hide_input() {
        for prompt in [
            "Password: ",
            "[sudo] password for alice: ",
            "Enter passphrase for key '/home/a/.ssh/id_ed25519': ",
            "Enter PIN for 'token':",
            "Verification code:",
            "alice@host's password: ",
            "Enter password: ",
            "New password: ",
            "Retype new password: ",
            "Passcode:",
            "OTP:   ",
            "Enter one-time code:",
            "Token:",
            "Client secret:",
            "2FA code:",
            "PASSWORD:",
        ] {
            assert!(hides(prompt), "{prompt:?} should hide input");
        }
    }

    #[test]
    fn ordinary_lines_record_input() {
        for line in [
            "alice@host:~$ ",
            "root@box:/etc# ",
            "Continue? [y/N] ",
            "Name: ",
            "password reset done\r\n$ ",
            "Change your password? ",
            "",
        ] {
            assert!(!hides(line), "{line:?} should not hide input");
        }
    }

    #[test]
    fn secret_words_match_whole_words_only() {
        assert!(!hides("spinning:"));
        assert!(!hides("Pinned items:"));
        assert!(!hides("Tokens left:"));
        assert!(!hides("Hotplug devices:"));
        assert!(hides("PIN:"));
        assert!(hides("Enter\tPIN:"));
        assert!(hides("(2FA):"));
    }

    #[test]
    fn prompt_split_across_chunks_and_coloured() {
        let mut guard = after(&[b"\x1b[1mPass", b"word:\x1b[0m "]);
        assert!(!guard.admit_input(KEY, None));

        let mut guard = after(&[
            b"\x1b[", b"1;3", b"2mPass", b"wor", b"d", b":", b"\x1b[0", b"m", b" ",
        ]);
        assert!(!guard.admit_input(KEY, None));

        let mut guard = after(&[
            b"\x1b]0;alice@host\x07[sudo] pass",
            b"word for alice: \x1b[?25h",
        ]);
        assert!(!guard.admit_input(KEY, None));
    }

    #[test]
    fn prompt_split_inside_a_utf8_character() {
        let prompt = "Contraseña del PIN: ".as_bytes();
        let split = prompt.iter().position(|&b| b >= 0x80).unwrap() + 1;
        let mut guard = after(&[&prompt[..split], &prompt[split..]]);
        assert!(!guard.admit_input(KEY, None));
    }

    #[test]
    fn enter_chunk_hidden_and_next_input_recorded() {
        let mut guard = after(&[b"Password: "]);
        assert!(!guard.admit_input(b"hunter2\r", None));
        assert!(guard.admit_input(b"ls\r", None));

        let mut guard = after(&[b"Password: "]);
        assert!(!guard.admit_input(b"hunter2\n", None));
        guard.observe_output(b"\r\n");
        guard.observe_output(b"alice@host:~$ ");
        assert!(guard.admit_input(b"ls", None));
    }

    #[test]
    fn typed_char_by_char_password_hidden() {
        let mut guard = after(&[b"alice@host's password: "]);
        for key in b"correct horse" {
            assert!(!guard.admit_input(std::slice::from_ref(key), None));
        }
        assert!(!guard.admit_input(b"\r", None));
        guard.observe_output(b"\r\nWelcome\r\nalice@host:~$ ");
        assert!(guard.admit_input(b"l", None));
        assert!(guard.admit_input(b"s", None));
    }

    #[test]
    fn repeated_prompt_after_wrong_password_hidden_again() {
        let mut guard = after(&[b"[sudo] password for alice: "]);
        assert!(!guard.admit_input(b"wrong\r", None));
        guard.observe_output(b"\r\nSorry, try again.\r\n");
        guard.observe_output(b"[sudo] password for alice: ");
        assert!(!guard.admit_input(b"right", None));
        assert!(!guard.admit_input(b"\r", None));
        guard.observe_output(b"\r\n");
        assert!(guard.admit_input(b"ls\r", None));
    }

    #[test]
    fn output_before_enter_keeps_the_secret_hidden() {
        let mut guard = after(&[b"Password: "]);
        assert!(!guard.admit_input(b"hun", None));
        guard.observe_output(b"\x1b[?25l\x1b[K");
        assert!(!guard.admit_input(b"ter", None));
        guard.observe_output(b"\r(redrawn) ");
        assert!(!guard.admit_input(b"2", None));
        assert!(!guard.admit_input(b"\r", None));
        assert!(guard.admit_input(b"ls\r", None));
    }

    #[test]
    fn escape_only_output_after_enter_does_not_rehide() {
        let mut guard = after(&[b"Password: "]);
        assert!(!guard.admit_input(b"pw\r", None));
        guard.observe_output(b"\x1b[?25h\x07");
        assert!(guard.admit_input(b"ls\r", None));
    }

    #[test]
    fn carriage_return_starts_the_line_over() {
        assert!(hides("Downloading 50%\rPassword: "));
        assert!(!hides("Password: \ralice@host:~$ "));
        assert!(hides("Passwd\x08\x08word: "));
        assert!(hides("\x1b[2J\x1b[1;1HPassword:"));
    }

    #[test]
    fn echo_off_always_hides() {
        let mut guard = after(&[b"alice@host:~$ "]);
        assert!(!guard.admit_input(b"ls", Some(true)));
        assert!(!guard.admit_input(b"\r", Some(true)));
        assert!(guard.admit_input(b"ls", Some(false)));
        assert!(guard.admit_input(b"ls", None));

        let mut guard = after(&[b"Password: "]);
        assert!(!guard.admit_input(b"pw", Some(false)));
    }

    #[test]
    fn long_lines_are_bounded_and_still_judged() {
        let mut guard = EchoGuard::default();
        guard.observe_output(&[b'a'; 10_000]);
        assert!(guard.line.chars.len() <= MAX_LINE_CHARS);
        guard.observe_output(b" Password: ");
        assert!(!guard.admit_input(KEY, None));
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        let mut guard = EchoGuard::default();
        let mut state: u32 = 0x9e37_79b9;
        let mut chunk = Vec::new();
        for round in 0..2_000 {
            chunk.clear();
            for _ in 0..(round % 97) {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                chunk.push(state.to_le_bytes()[0]);
            }
            guard.observe_output(&chunk);
            let _ = guard.admit_input(&chunk, None);
        }
        let all: Vec<u8> = (0..=u8::MAX).collect();
        guard.observe_output(&all);
        let _ = guard.admit_input(&all, Some(false));
    }

    /// Sets ECHO and ICANON on the terminal behind `fd`.
    #[allow(unsafe_code)] // termios is only reachable through libc
    fn set_modes(fd: BorrowedFd<'_>, echo: bool, canonical: bool) {
        let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: valid fd, writable termios.
        assert_eq!(
            unsafe { libc::tcgetattr(fd.as_raw_fd(), termios.as_mut_ptr()) },
            0
        );
        // SAFETY: tcgetattr succeeded and filled it in.
        let mut termios = unsafe { termios.assume_init() };
        for (flag, on) in [(libc::ECHO, echo), (libc::ICANON, canonical)] {
            if on {
                termios.c_lflag |= flag;
            } else {
                termios.c_lflag &= !flag;
            }
        }
        // SAFETY: valid fd, initialised termios.
        assert_eq!(
            unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, &termios) },
            0
        );
    }

    #[test]
    fn a_secret_read_is_seen_through_the_master() {
        let (pty, pts) = pty_process::blocking::open().unwrap();
        // getpass: line mode, no echo.
        set_modes(pts.as_fd(), false, true);
        assert_eq!(secret_read(pty.as_fd()), Some(true));
        assert_eq!(secret_read(pts.as_fd()), Some(true));
        // A line editor at a shell prompt: it echoes itself.
        set_modes(pts.as_fd(), false, false);
        assert_eq!(secret_read(pty.as_fd()), Some(false));
        // A command running: the terminal echoes.
        set_modes(pts.as_fd(), true, true);
        assert_eq!(secret_read(pty.as_fd()), Some(false));
        assert_eq!(secret_read(pts.as_fd()), Some(false));
    }

    #[test]
    fn a_non_terminal_is_unknown() {
        let file = tempfile::tempfile().unwrap();
        assert_eq!(secret_read(file.as_fd()), None);
    }
}
