//! Splitting a shell command line into the simple commands it would run, each with its command word.
//!
//! This is a reader of bash syntax good enough to find every command a typed line starts,
//! not a shell: it expands nothing, and when the syntax is unclear it prefers to report one
//! command too many over one too few.

/// Most simple commands taken from one line; past this the split is marked truncated.
/// A typed line holds a handful; hundreds means a paste or an attempt to tire the guard.
pub const MAX_COMMANDS: usize = 256;

/// Deepest `bash -c '...'` / `eval ...` string split again (the typed line is depth 0).
pub const MAX_SCRIPT_DEPTH: usize = 4;

/// Deepest nesting of substitutions, subshells, `${...}` and scripts; bounds the
/// recursion (and so the stack) on hostile input. Real lines nest two or three deep.
const MAX_NESTING: usize = 64;

/// Reserved words that may come before a command without being its command word.
const PREFIX_KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "do", "while", "until", "!", "{", "coproc",
];

/// Reserved words (and compound-command openers) after which no command word follows.
const NO_COMMAND_KEYWORDS: &[&str] = &[
    "fi", "done", "esac", "}", "in", "for", "select", "case", "function", "[[", "]]", "((",
];

/// Every shell reserved word; no command word can equal one of these.
pub const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "case",
    "esac", "select", "function", "coproc", "!", "{", "}", "[[", "]]",
];

/// Programs that run their arguments as a shell command line with `-c`.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish"];

/// One simple command of a line: a program with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleCommand {
    /// The command as typed, trimmed, without leading reserved words (`if`, `do`, `!`).
    pub text: String,
    /// The program it runs: quotes removed, directory stripped (`/bin/rm` → `rm`), found
    /// past assignments, redirections and wrappers. `None` when the command runs nothing
    /// (only assignments or redirections, or a reserved word such as `done` or `for ...`).
    pub word: Option<String>,
    /// The wrappers the word was reached through, outermost first (`sudo`, `env`, `xargs`).
    pub wrappers: Vec<String>,
}

impl SimpleCommand {
    /// Every program the command starts: its wrappers, then its word.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.wrappers
            .iter()
            .map(String::as_str)
            .chain(self.word.as_deref())
    }
}

/// The simple commands of a line, in the order they start in the text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// The commands found; those inside a substitution or a `bash -c` string come after
    /// the command that contains them.
    pub commands: Vec<SimpleCommand>,
    /// Part of the line was not read: more than [`MAX_COMMANDS`] commands, or nesting
    /// deeper than the limits. The commands found are right, but they are not all.
    pub truncated: bool,
}

/// Splits `line` into its simple commands (see [`SimpleCommand`]). Never panics; an
/// unterminated quote or substitution runs to the end of the line.
pub fn simple_commands(line: &str) -> Split {
    let mut out = Output::default();
    Parser::new(line, &mut out, 0, 0).parse_list(Close::Eof);
    out.finish()
}

/// Commands collected across all parsers of one line (substitutions, scripts).
#[derive(Default)]
struct Output {
    /// One slot per command, reserved when its first token starts so that commands keep
    /// their textual order although inner ones are finished first.
    slots: Vec<Option<SimpleCommand>>,
    /// Set when a limit was hit; every parser stops reading.
    truncated: bool,
}

impl Output {
    fn reserve(&mut self) -> Option<usize> {
        if self.slots.len() >= MAX_COMMANDS {
            self.truncated = true;
        }
        if self.truncated {
            return None;
        }
        self.slots.push(None);
        Some(self.slots.len() - 1)
    }

    fn finish(self) -> Split {
        Split {
            commands: self.slots.into_iter().flatten().collect(),
            truncated: self.truncated,
        }
    }
}

/// What ends the list being read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The end of the text.
    Eof,
    /// A `)` closing `$(`, `<(`, `>(` or a subshell.
    Paren,
}

/// What a token is to the command it belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// A word: the command word, an argument or an assignment.
    Word,
    /// A redirection operator or the file descriptor before it (`2`, `>`).
    Redirect,
    /// The word after a redirection operator (a file name, a heredoc delimiter).
    Target,
}

/// One token of a simple command.
#[derive(Debug)]
struct Token {
    kind: Kind,
    /// Char offsets of the token in the parser's text.
    start: usize,
    end: usize,
    /// The token as typed (keywords and assignments are recognised only unquoted).
    raw: String,
    /// The token with quotes and escapes removed; substitutions kept as typed.
    value: String,
}

/// A heredoc whose body follows the next newline.
struct Heredoc {
    delimiter: String,
    /// `<<-`: leading tabs are stripped before comparing with the delimiter.
    strip_tabs: bool,
}

/// The simple command being read.
#[derive(Default)]
struct Pending {
    slot: Option<usize>,
    tokens: Vec<Token>,
    /// The next word is a redirection target; `Some(strip_tabs)` if it names a heredoc.
    target: Option<Option<bool>>,
    /// Inside `[[ ... ]]`, where `&&`, `||`, `<`, `>` and parens are operands.
    cond: bool,
}

impl Pending {
    /// True when only reserved words came before, so a `[[` here opens a conditional.
    fn at_command_position(&self) -> bool {
        self.tokens
            .iter()
            .all(|t| t.kind == Kind::Word && PREFIX_KEYWORDS.contains(&t.raw.as_str()))
    }
}

struct Parser<'o> {
    src: Vec<char>,
    pos: usize,
    out: &'o mut Output,
    /// How many `bash -c` / `eval` strings deep this text is.
    script_depth: usize,
    /// How many substitutions, subshells and scripts deep the reader is.
    nesting: usize,
    heredocs: Vec<Heredoc>,
}

impl<'o> Parser<'o> {
    fn new(text: &str, out: &'o mut Output, script_depth: usize, nesting: usize) -> Self {
        Parser {
            src: text.chars().collect(),
            pos: 0,
            out,
            script_depth,
            nesting,
            heredocs: Vec::new(),
        }
    }

    /// The next char, or `None` at the end or once a limit stopped the split.
    fn peek(&self) -> Option<char> {
        if self.out.truncated {
            return None;
        }
        self.src.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.src.get(self.pos + ahead).copied()
    }

    fn push_char(&mut self, value: &mut String) {
        if let Some(&c) = self.src.get(self.pos) {
            value.push(c);
        }
        self.pos += 1;
    }

    fn slice(&self, start: usize, end: usize) -> String {
        let end = end.min(self.src.len());
        self.src[start.min(end)..end].iter().collect()
    }

    /// Runs `f` one level deeper, or marks the split truncated at the limit.
    fn nested(&mut self, f: impl FnOnce(&mut Self)) {
        if self.nesting >= MAX_NESTING {
            self.out.truncated = true;
            return;
        }
        self.nesting += 1;
        f(self);
        self.nesting -= 1;
    }

    /// Reads commands until `close` (or the end of the text).
    fn parse_list(&mut self, close: Close) {
        let mut cmd = Pending::default();
        while let Some(c) = self.peek() {
            if cmd.cond && "&|()<>".contains(c) {
                self.word(&mut cmd);
                continue;
            }
            match c {
                ' ' | '\t' | '\r' => self.pos += 1,
                '\n' => {
                    self.end_command(&mut cmd);
                    self.pos += 1;
                    self.skip_heredoc_bodies();
                }
                ';' => self.separator(&mut cmd, 1),
                '|' => {
                    let len = if matches!(self.peek_at(1), Some('|' | '&')) {
                        2
                    } else {
                        1
                    };
                    self.separator(&mut cmd, len);
                }
                '&' => match self.peek_at(1) {
                    Some('&') => self.separator(&mut cmd, 2),
                    Some('>') => self.redirect(&mut cmd),
                    _ => self.separator(&mut cmd, 1),
                },
                ')' => {
                    self.separator(&mut cmd, 1);
                    if close == Close::Paren {
                        return;
                    }
                }
                '(' => self.open_paren(&mut cmd),
                '<' | '>' if self.peek_at(1) != Some('(') => self.redirect(&mut cmd),
                '#' => self.skip_comment(),
                _ => self.word(&mut cmd),
            }
        }
        self.end_command(&mut cmd);
    }

    fn separator(&mut self, cmd: &mut Pending, len: usize) {
        self.end_command(cmd);
        self.pos += len;
    }

    fn skip_comment(&mut self) {
        while self.peek().is_some_and(|c| c != '\n') {
            self.pos += 1;
        }
    }

    /// Reserves the command's slot when its first token starts.
    fn begin(&mut self, cmd: &mut Pending) {
        if cmd.slot.is_none() {
            cmd.slot = self.out.reserve();
        }
    }

    /// `((` at the start of a command is arithmetic; any other `(` opens a subshell.
    fn open_paren(&mut self, cmd: &mut Pending) {
        if cmd.at_command_position() && self.peek_at(1) == Some('(') {
            self.begin(cmd);
            let start = self.pos;
            self.pos += 2;
            self.nested(Self::arithmetic);
            cmd.tokens.push(Token {
                kind: Kind::Word,
                start,
                end: self.pos,
                raw: "((".into(),
                value: "((".into(),
            });
            return;
        }
        self.end_command(cmd);
        self.pos += 1;
        self.nested(|p| p.parse_list(Close::Paren));
    }

    /// A redirection operator: `<`, `>`, `>>`, `<<`, `<<-`, `<<<`, `<>`, `>|`, `>&`, `<&`, `&>`, `&>>`.
    fn redirect(&mut self, cmd: &mut Pending) {
        self.begin(cmd);
        let start = self.pos;
        let mut op = String::new();
        self.push_char(&mut op);
        let follows: &[char] = match op.as_str() {
            "&" => &['>'],
            "<" => &['<', '>', '&'],
            _ => &['>', '|', '&'],
        };
        if self.peek().is_some_and(|c| follows.contains(&c)) {
            self.push_char(&mut op);
        }
        if matches!(op.as_str(), "&>" | "<<") && matches!(self.peek(), Some('>' | '<' | '-')) {
            let third = self.peek();
            if (op == "&>" && third == Some('>')) || (op == "<<" && third != Some('>')) {
                self.push_char(&mut op);
            }
        }
        cmd.target = Some(match op.as_str() {
            "<<" => Some(false),
            "<<-" => Some(true),
            _ => None,
        });
        cmd.tokens.push(Token {
            kind: Kind::Redirect,
            start,
            end: self.pos,
            raw: op.clone(),
            value: op,
        });
    }

    /// Reads one word and files it as a word, a redirection target or a file descriptor.
    fn word(&mut self, cmd: &mut Pending) {
        self.begin(cmd);
        let start = self.pos;
        let value = self.lex_word(cmd.cond);
        if self.pos == start {
            // Not reachable by the dispatch in `parse_list`; guarantees progress anyway.
            self.pos += 1;
            return;
        }
        let raw = self.slice(start, self.pos);
        let before_redirect =
            !cmd.cond && matches!(self.peek(), Some('<' | '>')) && self.peek_at(1) != Some('(');
        let kind = if let Some(heredoc) = cmd.target.take() {
            if let Some(strip_tabs) = heredoc {
                self.heredocs.push(Heredoc {
                    delimiter: value.clone(),
                    strip_tabs,
                });
            }
            Kind::Target
        } else if before_redirect && is_fd(&raw) {
            Kind::Redirect
        } else {
            Kind::Word
        };
        if kind == Kind::Word && raw == "[[" && cmd.at_command_position() {
            cmd.cond = true;
        } else if cmd.cond && raw == "]]" {
            cmd.cond = false;
        }
        cmd.tokens.push(Token {
            kind,
            start,
            end: self.pos,
            raw,
            value,
        });
    }

    /// Reads a word up to an unquoted blank or operator; returns it with quotes removed.
    fn lex_word(&mut self, cond: bool) -> String {
        let mut value = String::new();
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' | '\n' | ';' => break,
                '&' | '|' | '(' | ')' | '<' | '>' if cond => self.push_char(&mut value),
                '<' | '>' if self.peek_at(1) == Some('(') => self.process_substitution(&mut value),
                '(' if opens_word_paren(&value) => self.paren_word(&mut value),
                '&' | '|' | '(' | ')' | '<' | '>' => break,
                '\\' => self.escape(&mut value),
                '\'' => self.single_quoted(&mut value),
                '"' => self.double_quoted(&mut value),
                '`' => self.backtick(&mut value),
                '$' => self.dollar(&mut value, false),
                _ => self.push_char(&mut value),
            }
        }
        value
    }

    /// `\x` outside quotes: `x` literally; backslash-newline joins lines.
    fn escape(&mut self, value: &mut String) {
        self.pos += 1;
        match self.peek() {
            Some('\n') => self.pos += 1,
            Some(_) => self.push_char(value),
            None => {}
        }
    }

    fn single_quoted(&mut self, value: &mut String) {
        self.pos += 1;
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == '\'' {
                return;
            }
            value.push(c);
        }
    }

    /// `"..."`: blanks and operators are literal, but substitutions still open.
    fn double_quoted(&mut self, value: &mut String) {
        self.pos += 1;
        while let Some(c) = self.peek() {
            match c {
                '"' => {
                    self.pos += 1;
                    return;
                }
                '\\' => match self.peek_at(1) {
                    Some('\n') => self.pos += 2,
                    Some('$' | '`' | '"' | '\\') => {
                        self.pos += 1;
                        self.push_char(value);
                    }
                    _ => self.push_char(value),
                },
                '`' => self.backtick(value),
                '$' => self.dollar(value, true),
                _ => self.push_char(value),
            }
        }
    }

    /// `$...`: a substitution, arithmetic, parameter expansion or `$'...'` quoting.
    fn dollar(&mut self, value: &mut String, in_double_quotes: bool) {
        let start = self.pos;
        match self.peek_at(1) {
            Some('(') if self.peek_at(2) == Some('(') => {
                self.pos += 3;
                self.nested(Self::arithmetic);
            }
            Some('(') => {
                self.pos += 2;
                self.nested(|p| p.parse_list(Close::Paren));
            }
            Some('{') => {
                self.pos += 2;
                self.nested(Self::parameter);
            }
            Some('\'') if !in_double_quotes => {
                self.pos += 1;
                self.ansi_c_quoted(value);
                return;
            }
            Some('"') if !in_double_quotes => {
                self.pos += 1;
                self.double_quoted(value);
                return;
            }
            _ => {
                self.push_char(value);
                return;
            }
        }
        value.push_str(&self.slice(start, self.pos));
    }

    /// `<(...)` / `>(...)`: the commands inside run; the word keeps them as typed.
    fn process_substitution(&mut self, value: &mut String) {
        let start = self.pos;
        self.pos += 2;
        self.nested(|p| p.parse_list(Close::Paren));
        value.push_str(&self.slice(start, self.pos));
    }

    /// `` `...` ``: the text between backticks, unescaped, is a command line of its own.
    fn backtick(&mut self, value: &mut String) {
        let start = self.pos;
        self.pos += 1;
        let mut inner = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '`' => break,
                '\\' => match self.peek() {
                    Some(next @ ('`' | '$' | '\\')) => {
                        inner.push(next);
                        self.pos += 1;
                    }
                    _ => inner.push('\\'),
                },
                _ => inner.push(c),
            }
        }
        value.push_str(&self.slice(start, self.pos));
        let depth = self.script_depth;
        self.nested(|p| p.sub_source(&inner, depth));
    }

    /// Splits `text` (a backtick body or a script string) into the same output.
    fn sub_source(&mut self, text: &str, script_depth: usize) {
        let mut sub = Parser::new(text, &mut *self.out, script_depth, self.nesting);
        sub.parse_list(Close::Eof);
    }

    /// `(` inside a word: an array `a=(...)` or an extglob `!(...)`; read to the match.
    fn paren_word(&mut self, value: &mut String) {
        let start = self.pos;
        self.pos += 1;
        self.nested(Self::balanced_parens);
        value.push_str(&self.slice(start, self.pos));
    }

    /// Skips to the `)` matching an already consumed `(`, reading substitutions inside.
    fn balanced_parens(&mut self) {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                '(' => {
                    depth += 1;
                    self.pos += 1;
                }
                ')' => {
                    self.pos += 1;
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                }
                _ => self.skip_part(),
            }
        }
    }

    /// After `((` or `$((`: skips to the closing `))`.
    fn arithmetic(&mut self) {
        self.balanced_parens();
        if self.peek() == Some(')') {
            self.pos += 1;
        }
    }

    /// After `${`: skips to the closing `}`, reading substitutions inside.
    fn parameter(&mut self) {
        while let Some(c) = self.peek() {
            if c == '}' {
                self.pos += 1;
                return;
            }
            self.skip_part();
        }
    }

    /// Steps over one char, or one quoted or substituted part, inside an opaque region.
    fn skip_part(&mut self) {
        let mut scratch = String::new();
        match self.peek() {
            Some('\\') => self.escape(&mut scratch),
            Some('\'') => self.single_quoted(&mut scratch),
            Some('"') => self.double_quoted(&mut scratch),
            Some('`') => self.backtick(&mut scratch),
            Some('$') => self.dollar(&mut scratch, false),
            Some(_) => self.pos += 1,
            None => {}
        }
    }

    /// `$'...'`: bash's C-style quoting; escapes are decoded so `$'\x72m'` reads `rm`.
    fn ansi_c_quoted(&mut self, value: &mut String) {
        self.pos += 1;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                '\'' => return,
                '\\' => self.ansi_c_escape(value),
                _ => value.push(c),
            }
        }
    }

    fn ansi_c_escape(&mut self, value: &mut String) {
        let Some(c) = self.peek() else {
            value.push('\\');
            return;
        };
        self.pos += 1;
        let decoded = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            'f' => Some('\x0c'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '?' => Some(c),
            'x' => self.radix_char(16, 2),
            'u' => self.radix_char(16, 4),
            'U' => self.radix_char(16, 8),
            '0'..='7' => {
                self.pos -= 1;
                self.radix_char(8, 3)
            }
            'c' => self.control_char(),
            _ => None,
        };
        match decoded {
            Some(ch) => value.push(ch),
            None => {
                value.push('\\');
                value.push(c);
            }
        }
    }

    /// Up to `max` digits in `radix` as one char (`None` if there are none).
    fn radix_char(&mut self, radix: u32, max: usize) -> Option<char> {
        let mut code: u32 = 0;
        let mut digits = 0;
        while digits < max {
            let Some(d) = self.peek().and_then(|c| c.to_digit(radix)) else {
                break;
            };
            code = code * radix + d;
            digits += 1;
            self.pos += 1;
        }
        if digits == 0 {
            return None;
        }
        char::from_u32(code)
    }

    /// `\cX`: the control character for X.
    fn control_char(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        char::from_u32(u32::from(c) & 0x1f)
    }

    /// After a newline: steps over the bodies of heredocs opened on the line before.
    fn skip_heredoc_bodies(&mut self) {
        for doc in std::mem::take(&mut self.heredocs) {
            while let Some(line) = self.take_line() {
                let line = if doc.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line.as_str()
                };
                if line == doc.delimiter {
                    break;
                }
            }
        }
    }

    fn take_line(&mut self) -> Option<String> {
        if self.pos >= self.src.len() {
            return None;
        }
        let start = self.pos;
        while self.pos < self.src.len() && self.src[self.pos] != '\n' {
            self.pos += 1;
        }
        let line = self.slice(start, self.pos);
        self.pos += 1;
        Some(line)
    }

    /// Finishes the command being read: resolves its word and splits any script it runs.
    fn end_command(&mut self, cmd: &mut Pending) {
        let cmd = std::mem::take(cmd);
        let (Some(slot), Some(last)) = (cmd.slot, cmd.tokens.last()) else {
            return;
        };
        let resolved = resolve(&cmd.tokens);
        let from = match resolved.word {
            Some(_) => cmd.tokens[resolved.first].start,
            None => cmd.tokens[0].start,
        };
        let text = self.slice(from, last.end).trim().to_string();
        self.out.slots[slot] = Some(SimpleCommand {
            text,
            word: resolved.word,
            wrappers: resolved.wrappers,
        });
        if let Some(script) = resolved.script {
            if self.script_depth >= MAX_SCRIPT_DEPTH {
                self.out.truncated = true;
                return;
            }
            let depth = self.script_depth + 1;
            self.nested(|p| p.sub_source(&script, depth));
        }
    }
}

/// `2` in `2>file`, or `{fd}` in `{fd}>file`.
fn is_fd(raw: &str) -> bool {
    let named = raw
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(is_name);
    named || (!raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()))
}

/// A `(` continues the word after `=` (an array) or an extglob operator (`!(x)`, `@(x)`).
fn opens_word_paren(value: &str) -> bool {
    value.ends_with(['=', '!', '@', '*', '+', '?'])
}

/// A shell variable name.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `NAME=value`, `NAME+=value` or `NAME[i]=value`, with the name unquoted.
fn is_assignment(raw: &str) -> bool {
    let name_len = raw
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(raw.len());
    if !is_name(&raw[..name_len]) {
        return false;
    }
    let mut rest = &raw[name_len..];
    if rest.starts_with('[') {
        match rest.find(']') {
            Some(close) => rest = &rest[close + 1..],
            None => return false,
        }
    }
    rest.starts_with('=') || rest.starts_with("+=")
}

/// The program a command word names: its last path component (`/bin/rm` → `rm`).
fn program_name(value: &str) -> Option<String> {
    let name = value.rsplit('/').next().unwrap_or(value);
    (!name.is_empty()).then(|| name.to_string())
}

/// What the tokens of one simple command run.
struct Resolved {
    /// Index of the first token after leading reserved words.
    first: usize,
    word: Option<String>,
    wrappers: Vec<String>,
    /// A command line the command runs: the string of `bash -c`, `env -S`, `eval`.
    script: Option<String>,
}

fn resolve(tokens: &[Token]) -> Resolved {
    let first = tokens
        .iter()
        .take_while(|t| t.kind == Kind::Word && PREFIX_KEYWORDS.contains(&t.raw.as_str()))
        .count();
    let words: Vec<&Token> = tokens[first..]
        .iter()
        .filter(|t| t.kind == Kind::Word)
        .collect();
    let mut resolved = Resolved {
        first,
        word: None,
        wrappers: Vec::new(),
        script: None,
    };
    let mut i = skip_assignments(&words, 0);
    if words
        .get(i)
        .is_none_or(|t| NO_COMMAND_KEYWORDS.contains(&t.raw.as_str()))
    {
        return resolved;
    }
    loop {
        let name = program_name(&words[i].value);
        let spec = name.as_deref().and_then(wrapper_spec);
        let Some(spec) = spec else {
            resolved.word = name;
            break;
        };
        let after = spec.skip(&words, i + 1);
        resolved.script = resolved.script.or(after.script);
        if after.stop || after.next >= words.len() {
            resolved.word = name;
            break;
        }
        resolved.wrappers.extend(name);
        i = after.next;
    }
    if resolved.script.is_none() {
        resolved.script = script_of(resolved.word.as_deref(), &words[i + 1..]);
    }
    resolved
}

fn skip_assignments(words: &[&Token], mut i: usize) -> usize {
    while words.get(i).is_some_and(|t| is_assignment(&t.raw)) {
        i += 1;
    }
    i
}

/// How a wrapper's own options and arguments look, so the wrapped command can be found.
struct WrapperSpec {
    /// Short options that take an argument (attached or as the next word).
    short_arg: &'static str,
    /// Long options that take the next word as argument when written without `=`.
    long_arg: &'static [&'static str],
    /// Short options after which no command is run (`command -v rm` only looks rm up).
    stop_short: &'static str,
    /// The option whose argument is itself a command line (`env -S '...'`).
    script_option: Option<(char, &'static str)>,
    /// Words between the options and the command (`timeout 5 cmd`).
    positional: usize,
    /// Whether `NAME=value` words may come before the command (`env`, `sudo`).
    assignments: bool,
}

const NO_OPTIONS: WrapperSpec = WrapperSpec {
    short_arg: "",
    long_arg: &[],
    stop_short: "",
    script_option: None,
    positional: 0,
    assignments: false,
};

fn wrapper_spec(name: &str) -> Option<WrapperSpec> {
    let spec = match name {
        "sudo" => WrapperSpec {
            short_arg: "CcDgpRrTtUu",
            long_arg: &[
                "user",
                "group",
                "prompt",
                "chdir",
                "chroot",
                "close-from",
                "role",
                "type",
                "command-timeout",
                "other-user",
                "login-class",
                "host",
            ],
            stop_short: "e",
            assignments: true,
            ..NO_OPTIONS
        },
        "doas" => WrapperSpec {
            short_arg: "uC",
            ..NO_OPTIONS
        },
        "env" => WrapperSpec {
            short_arg: "uCSP",
            long_arg: &["unset", "chdir", "split-string"],
            script_option: Some(('S', "split-string")),
            assignments: true,
            ..NO_OPTIONS
        },
        "command" => WrapperSpec {
            stop_short: "vV",
            ..NO_OPTIONS
        },
        "exec" => WrapperSpec {
            short_arg: "a",
            ..NO_OPTIONS
        },
        "time" => WrapperSpec {
            short_arg: "fo",
            long_arg: &["format", "output"],
            ..NO_OPTIONS
        },
        "nice" => WrapperSpec {
            short_arg: "n",
            long_arg: &["adjustment"],
            ..NO_OPTIONS
        },
        "xargs" => WrapperSpec {
            short_arg: "adEILnPs",
            long_arg: &[
                "arg-file",
                "delimiter",
                "max-args",
                "max-procs",
                "max-chars",
                "process-slot-var",
            ],
            ..NO_OPTIONS
        },
        "timeout" => WrapperSpec {
            short_arg: "sk",
            long_arg: &["signal", "kill-after"],
            positional: 1,
            ..NO_OPTIONS
        },
        "builtin" | "nohup" => NO_OPTIONS,
        _ => return None,
    };
    Some(spec)
}

/// Where a wrapper's own words end.
struct Skipped {
    /// Index of the wrapped command word.
    next: usize,
    /// An option says the wrapper runs no command.
    stop: bool,
    script: Option<String>,
}

impl WrapperSpec {
    /// Steps over the wrapper's options, assignments and positional words from `i`.
    fn skip(&self, words: &[&Token], mut i: usize) -> Skipped {
        let mut skipped = Skipped {
            next: i,
            stop: false,
            script: None,
        };
        while let Some(word) = words.get(i) {
            let v = word.value.as_str();
            if v == "--" {
                i += 1;
                break;
            }
            if !v.starts_with('-') || (v == "-" && !self.assignments) {
                break;
            }
            let (used, stop) = match v.strip_prefix("--") {
                Some(long) => self.long_option(long, words.get(i + 1), &mut skipped.script),
                None => self.short_options(&v[1..], words.get(i + 1), &mut skipped.script),
            };
            if stop {
                skipped.stop = true;
                return skipped;
            }
            i += used;
        }
        if self.assignments {
            i = skip_assignments(words, i);
        }
        skipped.next = i + self.positional;
        skipped
    }

    /// Returns how many words `--name[=value]` used, and whether it stops the wrapper.
    fn long_option(
        &self,
        long: &str,
        next: Option<&&Token>,
        script: &mut Option<String>,
    ) -> (usize, bool) {
        let (name, inline) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (long, None),
        };
        let takes_next = inline.is_none() && self.long_arg.contains(&name);
        if self
            .script_option
            .is_some_and(|(_, long_name)| long_name == name)
        {
            *script = inline.or_else(|| next.map(|t| t.value.clone()));
        }
        (if takes_next { 2 } else { 1 }, false)
    }

    /// Returns how many words a cluster like `-Eu root` used, and whether it stops the wrapper.
    fn short_options(
        &self,
        cluster: &str,
        next: Option<&&Token>,
        script: &mut Option<String>,
    ) -> (usize, bool) {
        for (at, flag) in cluster.char_indices() {
            if self.stop_short.contains(flag) {
                return (1, true);
            }
            if !self.short_arg.contains(flag) {
                continue;
            }
            let attached = &cluster[at + flag.len_utf8()..];
            let argument = if attached.is_empty() {
                next.map(|t| t.value.clone())
            } else {
                Some(attached.to_string())
            };
            if self.script_option.is_some_and(|(short, _)| short == flag) {
                *script = argument;
            }
            return (if attached.is_empty() { 2 } else { 1 }, false);
        }
        (1, false)
    }
}

/// The command line run by `bash -c '...'` (and other shells) or `eval ...`.
fn script_of(word: Option<&str>, args: &[&Token]) -> Option<String> {
    match word? {
        "eval" => {
            let joined = args
                .iter()
                .map(|t| t.value.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            (!joined.is_empty()).then_some(joined)
        }
        "find" => find_exec_commands(args),
        shell if SHELLS.contains(&shell) => shell_c_argument(args),
        _ => None,
    }
}

/// The commands `find` runs with `-exec`, `-execdir`, `-ok` or `-okdir`, one a line,
/// every word quoted as needed so that it is read back exactly as `find` passes it.
fn find_exec_commands(args: &[&Token]) -> Option<String> {
    let mut lines = Vec::new();
    let mut rest = args;
    while let Some(at) = rest
        .iter()
        .position(|t| matches!(t.value.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir"))
    {
        let after = &rest[at + 1..];
        let len = after
            .iter()
            .position(|t| t.value == ";" || t.value == "+")
            .unwrap_or(after.len());
        let words: Vec<String> = after[..len]
            .iter()
            .map(|t| single_quote(&t.value))
            .collect();
        lines.push(words.join(" "));
        rest = &after[(len + 1).min(after.len())..];
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// `s` as one shell word: as is when it holds nothing special, else single-quoted.
fn single_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || "_./{}=:,+@%-".contains(c));
    if plain {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The string after a shell's options when they include `-c` (`bash -lc 'cmd'`).
fn shell_c_argument(args: &[&Token]) -> Option<String> {
    let mut has_c = false;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let v = arg.value.as_str();
        if v == "--" || v == "-" {
            i += 1;
            break;
        }
        if let Some(long) = v.strip_prefix("--") {
            if let Some(command) = long.strip_prefix("command=") {
                return Some(command.to_string());
            }
            has_c |= long == "command";
            i += if matches!(long, "rcfile" | "init-file") {
                2
            } else {
                1
            };
            continue;
        }
        let Some(flags) = v.strip_prefix('-').or_else(|| v.strip_prefix('+')) else {
            break;
        };
        has_c |= v.starts_with('-') && flags.contains('c');
        // `-o option` / `-O shopt` take the next word.
        i += if flags.ends_with(['o', 'O']) { 2 } else { 1 };
    }
    if has_c {
        args.get(i).map(|t| t.value.clone())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command words of `line`, in order (`None` rendered as "-").
    fn words(line: &str) -> Vec<String> {
        simple_commands(line)
            .commands
            .into_iter()
            .map(|c| c.word.unwrap_or_else(|| "-".into()))
            .collect()
    }

    fn texts(line: &str) -> Vec<String> {
        simple_commands(line)
            .commands
            .into_iter()
            .map(|c| c.text)
            .collect()
    }

    #[test]
    fn splits_at_every_list_and_pipe_operator() {
        assert_eq!(
            words("a; b && c || d | e |& f & g\nh"),
            ["a", "b", "c", "d", "e", "f", "g", "h"]
        );
        assert_eq!(
            texts("ls -l ;  rm x  && echo y"),
            ["ls -l", "rm x", "echo y"]
        );
    }

    #[test]
    fn operators_inside_quotes_do_not_split() {
        assert_eq!(words(r#"echo "a; rm x | b" 'c && rm y'"#), ["echo"]);
        assert_eq!(words(r"echo a\;rm x"), ["echo"]);
    }

    #[test]
    fn command_substitution_is_checked_inside_and_after_its_command() {
        let split = simple_commands("echo $(rm -rf /) done");
        let got: Vec<(&str, Option<&str>)> = split
            .commands
            .iter()
            .map(|c| (c.text.as_str(), c.word.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("echo $(rm -rf /) done", Some("echo")),
                ("rm -rf /", Some("rm"))
            ]
        );
    }

    #[test]
    fn substitutions_open_inside_double_quotes_but_not_single() {
        assert_eq!(words(r#"echo "x $(rm a) `rm b`""#), ["echo", "rm", "rm"]);
        assert_eq!(words("echo '$(rm a) `rm b`'"), ["echo"]);
        assert_eq!(
            words(r"echo \$(rm a)"),
            ["echo", "rm"],
            "the ( still opens a subshell"
        );
    }

    #[test]
    fn backticks_process_substitution_subshells_and_groups() {
        assert_eq!(words("echo `rm x; ls`"), ["echo", "rm", "ls"]);
        assert_eq!(words("diff <(rm a) >(tee b)"), ["diff", "rm", "tee"]);
        assert_eq!(
            words("(cd /tmp; rm x) && { rm y; }"),
            ["cd", "rm", "rm", "-"]
        );
        assert_eq!(words("echo $(echo $(rm deep))"), ["echo", "echo", "rm"]);
    }

    #[test]
    fn parameter_expansion_and_arithmetic_are_not_commands() {
        assert_eq!(
            words("echo ${x:-$(rm y)} $((1 + 2)) $((x*(y+1)))"),
            ["echo", "rm"]
        );
        assert_eq!(words("(( i++ )); ls"), ["-", "ls"]);
        assert_eq!(words("if (( x > 1 )); then ls; fi"), ["-", "ls", "-"]);
        assert_eq!(words("a=(1 2 $(rm z)) ls !(*.txt)"), ["ls", "rm"]);
    }

    #[test]
    fn conditional_expression_operators_do_not_split() {
        assert_eq!(words("[[ -f a && b < c ]] && rm a"), ["-", "rm"]);
    }

    #[test]
    fn unterminated_input_keeps_every_command() {
        assert_eq!(words(r#"rm x "unterminated"#), ["rm"]);
        assert_eq!(words("rm x 'open; ls"), ["rm"]);
        assert_eq!(words("echo $(rm x"), ["echo", "rm"]);
        assert_eq!(words("echo `rm x"), ["echo", "rm"]);
        assert_eq!(words("echo ${x"), ["echo"]);
        assert_eq!(words("rm x\\"), ["rm"]);
        assert_eq!(words("ls )) rm"), ["ls", "rm"]);
    }

    #[test]
    fn skips_assignments_and_redirections_before_the_word() {
        assert_eq!(words("FOO=1 BAR=x rm a"), ["rm"]);
        assert_eq!(words("A[2]=x B+=y rm a"), ["rm"]);
        assert_eq!(words(">out rm a"), ["rm"]);
        assert_eq!(words("2>/dev/null rm a"), ["rm"]);
        assert_eq!(words("< in 2>&1 &>>log {fd}>x rm a"), ["rm"]);
        assert_eq!(words("FOO=1"), ["-"]);
        assert_eq!(
            words("'FOO'=1 x"),
            ["FOO=1"],
            "a quoted name is not an assignment"
        );
    }

    #[test]
    fn looks_through_wrappers_and_records_them() {
        let cases = [
            ("sudo rm x", "rm", vec!["sudo"]),
            ("sudo -u root -E rm x", "rm", vec!["sudo"]),
            ("sudo --user=root -Eu root FOO=1 rm", "rm", vec!["sudo"]),
            ("env -i -u HOME A=1 rm x", "rm", vec!["env"]),
            ("command rm x", "rm", vec!["command"]),
            ("builtin rm", "rm", vec!["builtin"]),
            ("exec -a name rm", "rm", vec!["exec"]),
            ("nohup rm x &", "rm", vec!["nohup"]),
            ("time -p rm x", "rm", vec!["time"]),
            ("nice -n 5 rm x", "rm", vec!["nice"]),
            ("nice -10 rm x", "rm", vec!["nice"]),
            ("xargs -0 -n 1 -I{} rm {}", "rm", vec!["xargs"]),
            ("doas -u root rm", "rm", vec!["doas"]),
            ("timeout -s KILL 5s rm x", "rm", vec!["timeout"]),
            (
                "sudo env nice -n1 /bin/rm x",
                "rm",
                vec!["sudo", "env", "nice"],
            ),
        ];
        for (line, word, wrappers) in cases {
            let split = simple_commands(line);
            assert_eq!(split.commands.len(), 1, "{line}");
            let cmd = &split.commands[0];
            assert_eq!(cmd.word.as_deref(), Some(word), "{line}");
            assert_eq!(cmd.wrappers, wrappers, "{line}");
        }
    }

    #[test]
    fn a_wrapper_alone_or_only_looking_is_the_word() {
        assert_eq!(words("sudo -i"), ["sudo"]);
        assert_eq!(words("command -v rm"), ["command"]);
        assert_eq!(words("sudo -e /etc/hosts"), ["sudo"]);
        assert_eq!(words("timeout 5"), ["timeout"]);
        let split = simple_commands("sudo -i");
        assert!(split.commands[0].wrappers.is_empty());
    }

    #[test]
    fn normalises_quotes_escapes_and_paths() {
        assert_eq!(
            words("'r'm x; \\rm y; \"rm\" z; r''m; /bin/rm; ./rm; $'\\x72m'"),
            ["rm", "rm", "rm", "rm", "rm", "rm", "rm"]
        );
        assert_eq!(words("$'\\162\\u006d'"), ["rm"]);
    }

    #[test]
    fn keywords_are_not_command_words() {
        assert_eq!(
            words("if rm x; then echo y; elif ls; else cat; fi"),
            ["rm", "echo", "ls", "cat", "-"]
        );
        assert_eq!(words("for f in *; do rm $f; done"), ["-", "rm", "-"]);
        assert_eq!(words("while true; do ! rm x; done"), ["true", "rm", "-"]);
        assert_eq!(words("case $x in a) rm y;; esac"), ["-", "rm", "-"]);
        assert_eq!(texts("if rm -rf /; then :; fi")[0], "rm -rf /");
        assert_eq!(words("echo if then"), ["echo"]);
    }

    #[test]
    fn shell_c_and_eval_strings_are_split_again() {
        assert_eq!(words("bash -c 'rm x'"), ["bash", "rm"]);
        assert_eq!(words(r#"sh -c "ls; rm y""#), ["sh", "ls", "rm"]);
        assert_eq!(words("bash -o pipefail -lc 'rm x' name"), ["bash", "rm"]);
        assert_eq!(words("sudo zsh -c 'rm x'"), ["zsh", "rm"]);
        assert_eq!(words("eval 'rm' x"), ["eval", "rm"]);
        assert_eq!(words("env -S 'rm x'"), ["env", "rm"]);
        assert_eq!(
            words("bash script.sh"),
            ["bash"],
            "no -c: a script file is not read"
        );
        assert_eq!(words("coproc rm x"), ["rm"]);
    }

    #[test]
    fn find_exec_commands_are_split_again() {
        assert_eq!(words(r"find . -name '*.o' -exec rm {} \;"), ["find", "rm"]);
        assert_eq!(
            words("find . -execdir sh -c 'rm $1' _ {} ';' -ok sudo ls {} +"),
            ["find", "sh", "rm", "ls"]
        );
        let split = simple_commands(r"find / -exec sudo rm '{}' \;");
        assert_eq!(split.commands[1].text, "sudo rm {}");
        assert_eq!(split.commands[1].wrappers, ["sudo"]);
        let quoted = words("find . -exec echo '$(rm x)' ';'");
        assert_eq!(quoted, ["find", "echo"], "quoted stays quoted");
        assert_eq!(words("find . -name rm"), ["find"]);
    }

    #[test]
    fn script_depth_is_limited_and_flagged() {
        // Four levels of `bash -c` are read; the fifth is not.
        let mut line = "rm x".to_string();
        for _ in 0..MAX_SCRIPT_DEPTH {
            line = format!("bash -c {}", single_quote(&line));
        }
        let split = simple_commands(&line);
        assert!(!split.truncated);
        assert_eq!(
            split.commands.last().and_then(|c| c.word.as_deref()),
            Some("rm")
        );
        let deeper = format!("bash -c {}", single_quote(&line));
        let split = simple_commands(&deeper);
        assert!(split.truncated);
        assert!(split
            .commands
            .iter()
            .all(|c| c.word.as_deref() != Some("rm")));
    }

    #[test]
    fn command_count_is_capped_and_flagged() {
        let line = "true;".repeat(MAX_COMMANDS) + "rm x";
        let split = simple_commands(&line);
        assert!(split.truncated);
        assert_eq!(split.commands.len(), MAX_COMMANDS);
        let line = "true;".repeat(MAX_COMMANDS - 1) + "rm x";
        let split = simple_commands(&line);
        assert!(!split.truncated);
        assert_eq!(
            split.commands.last().and_then(|c| c.word.as_deref()),
            Some("rm")
        );
    }

    #[test]
    fn deep_nesting_is_cut_not_overflowed() {
        let line = "$(".repeat(10_000) + "rm x";
        let split = simple_commands(&line);
        assert!(split.truncated);
        let line = "( ".repeat(10_000);
        assert!(simple_commands(&line).truncated);
        // `((` is arithmetic, skipped by counting, not by recursion: nothing to cut.
        let line = "(".repeat(10_000) + "rm x";
        assert!(!simple_commands(&line).truncated);
    }

    #[test]
    fn hostile_nesting_fits_a_small_stack() {
        let patterns = [
            "$(",
            "\"$(",
            "<(",
            "${",
            "( ",
            "a=($(",
            "$(( $(",
            "bash -c \"$(",
        ];
        let worker = std::thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn(move || {
                patterns
                    .iter()
                    .filter(|p| !simple_commands(&p.repeat(100_000)).truncated)
                    .copied()
                    .collect::<Vec<_>>()
            })
            .expect("spawn");
        let uncut = worker.join().expect("no stack overflow");
        assert!(uncut.is_empty(), "not cut: {uncut:?}");
    }

    /// An eighth of the 2 MiB tokio gives each worker thread (debug builds need ~100 KiB).
    const STACK_BYTES: usize = 256 * 1024;

    #[test]
    fn comments_and_blank_lines_hold_no_commands() {
        assert!(simple_commands("").commands.is_empty());
        assert!(simple_commands("   \n\t").commands.is_empty());
        assert!(simple_commands("# rm -rf /").commands.is_empty());
        assert_eq!(words("ls # ; rm x\nrm y"), ["ls", "rm"]);
        assert_eq!(words("echo a#b; rm c"), ["echo", "rm"]);
    }

    #[test]
    fn heredoc_bodies_are_not_commands() {
        assert_eq!(
            words("cat <<EOF; ls\nrm body\nEOF\nrm after"),
            ["cat", "ls", "rm"]
        );
        assert_eq!(
            texts("cat <<-'END'\n\trm body\n\tEND\nrm after")[1],
            "rm after"
        );
        assert_eq!(words("cat <<<'rm x'"), ["cat"]);
    }

    #[test]
    fn arguments_are_never_command_words() {
        assert_eq!(words("echo rm"), ["echo"]);
        assert_eq!(words("git rm x"), ["git"]);
        assert_eq!(words("echo a >rm"), ["echo"]);
    }

    #[test]
    fn names_lists_wrappers_then_word() {
        let split = simple_commands("sudo nice rm x");
        let names: Vec<&str> = split.commands[0].names().collect();
        assert_eq!(names, ["sudo", "nice", "rm"]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let samples = [
            "\\",
            "$",
            "$(",
            "`",
            "\"",
            "'",
            "$'",
            "$'\\",
            "$'\\c",
            "$'\\x",
            "<(",
            "((",
            "${",
            "<<",
            "<<-",
            "&>",
            "2>",
            "[[",
            "a=(",
            "!(",
            "$((",
            "é$(ü)`ß`",
            "\u{0}$(\u{7f})",
        ];
        for a in samples {
            for b in samples {
                let _ = simple_commands(&format!("{a}{b} rm x {a}"));
            }
        }
    }
}
