//! Guard rules (a word or a regex with an action) and the verdict a rule set gives a line.

use std::fmt;
use std::str::FromStr;

use super::split::{self, SimpleCommand};

/// Longest pattern accepted, in bytes: rules are typed by an admin, and a longer one
/// is a mistake or an attempt to make every Enter expensive.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// Compiled size limit for a regex, in bytes (the regex crate's own measure); keeps one
/// rule from costing much memory or time per checked command.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Characters a command name never contains unquoted; a word pattern with one of these
/// could never match, so it is refused with a hint to use a regex.
const SHELL_CHARS: &[char] = &[
    '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', '*', '?', '#', '/', '=',
];

/// A rule is invalid; the message is shown to the admin who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The pattern is empty (or only blanks).
    #[error("the pattern is empty")]
    Empty,
    /// The pattern is longer than [`MAX_PATTERN_BYTES`].
    #[error("the pattern is {len} bytes long; the limit is {max}")]
    TooLong {
        /// The pattern's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A word pattern holds whitespace or a shell character.
    #[error(
        "a word pattern is one command name such as \"rm\"; {word:?} contains {found:?} (use a regex to match more)"
    )]
    NotAWord {
        /// The pattern as given.
        word: String,
        /// The first offending character.
        found: char,
    },
    /// A word pattern is a shell reserved word, which is never a command word.
    #[error("{0:?} is a shell keyword, never a command word (use a regex to match it)")]
    Keyword(String),
    /// The regex does not parse; the message is the regex crate's.
    #[error("invalid regex: {0}")]
    BadRegex(String),
    /// The regex compiles to more than [`REGEX_SIZE_LIMIT`] bytes.
    #[error("the regex is too complex (compiled size over {limit} bytes)")]
    RegexTooBig {
        /// The limit.
        limit: usize,
    },
    /// An action name other than allow, deny or warn.
    #[error("unknown action {0:?}: expected allow, deny or warn")]
    UnknownAction(String),
}

/// What a rule does to a command it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Lets the command through; any allow rule turns the set into an allow-list.
    Allow,
    /// Blocks the line.
    Deny,
    /// Lets the line through, flagged.
    Warn,
}

impl Action {
    /// The action's name as stored and shown: `allow`, `deny` or `warn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Warn => "warn",
        }
    }

    /// How bad the action is for the line: a line takes its worst command's action.
    fn severity(self) -> u8 {
        match self {
            Action::Allow => 0,
            Action::Warn => 1,
            Action::Deny => 2,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Action::Allow),
            "deny" => Ok(Action::Deny),
            "warn" => Ok(Action::Warn),
            other => Err(RuleError::UnknownAction(other.to_string())),
        }
    }
}

/// What a rule matches.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// A command name, compared with each simple command's word and wrappers.
    Word(String),
    /// A regex searched (unanchored) in each simple command's text.
    Regex(regex::Regex),
}

impl Pattern {
    /// The pattern as the admin typed it.
    pub fn as_str(&self) -> &str {
        match self {
            Pattern::Word(word) => word,
            Pattern::Regex(regex) => regex.as_str(),
        }
    }

    /// `word` or `regex`.
    pub fn kind(&self) -> &'static str {
        match self {
            Pattern::Word(_) => "word",
            Pattern::Regex(_) => "regex",
        }
    }

    /// A word matches a command that runs that program, itself or through a wrapper
    /// (`deny sudo` blocks `sudo rm`); a regex matches anywhere in the command's text.
    pub fn matches(&self, cmd: &SimpleCommand) -> bool {
        match self {
            Pattern::Word(word) => cmd.names().any(|name| name == word),
            Pattern::Regex(regex) => regex.is_match(&cmd.text),
        }
    }

    fn word(text: &str) -> Result<Pattern, RuleError> {
        if let Some(found) = text
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || SHELL_CHARS.contains(c))
        {
            return Err(RuleError::NotAWord {
                word: text.to_string(),
                found,
            });
        }
        if split::KEYWORDS.contains(&text) {
            return Err(RuleError::Keyword(text.to_string()));
        }
        Ok(Pattern::Word(text.to_string()))
    }

    fn regex(text: &str) -> Result<Pattern, RuleError> {
        regex::RegexBuilder::new(text)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(Pattern::Regex)
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(limit) => RuleError::RegexTooBig { limit },
                other => RuleError::BadRegex(other.to_string()),
            })
    }
}

/// One guard rule of a namespace.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's database id, shown as `#id`.
    pub id: i64,
    /// Lower is checked first; decides which rule a verdict names.
    pub priority: i64,
    /// What the rule matches.
    pub pattern: Pattern,
    /// What happens to a command it matches.
    pub action: Action,
}

impl Rule {
    /// Validates and compiles a rule typed by an admin: a word pattern (`regex == false`)
    /// is one command name; a regex pattern is compiled with a size limit.
    pub fn new(
        id: i64,
        priority: i64,
        pattern_text: &str,
        regex: bool,
        action: Action,
    ) -> Result<Rule, RuleError> {
        if pattern_text.trim().is_empty() {
            return Err(RuleError::Empty);
        }
        if pattern_text.len() > MAX_PATTERN_BYTES {
            return Err(RuleError::TooLong {
                len: pattern_text.len(),
                max: MAX_PATTERN_BYTES,
            });
        }
        let pattern = if regex {
            Pattern::regex(pattern_text)?
        } else {
            Pattern::word(pattern_text)?
        };
        Ok(Rule {
            id,
            priority,
            pattern,
            action,
        })
    }

    /// The rule in a few words for notices and the audit log: `deny word "rm" (#3)`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {:?} (#{})",
            self.action,
            self.pattern.kind(),
            self.pattern.as_str(),
            self.id
        )
    }

    fn reference(&self) -> RuleRef {
        RuleRef {
            id: self.id,
            description: self.describe(),
        }
    }
}

/// The rule a verdict names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// The rule's id.
    pub id: i64,
    /// [`Rule::describe`] at the time of the check.
    pub description: String,
}

/// What the guard does with a submitted line, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Let the Enter through, clear the line, or let it through flagged.
    pub action: Action,
    /// The rule that decided; `None` for "not in the allow-list", for no matching rule,
    /// and for a line too complex to check.
    pub rule: Option<RuleRef>,
    /// The simple command that decided (its text), if one did.
    pub command: Option<String>,
    /// One line for the user and the audit log: `blocked by deny word "rm" (#3)`.
    pub reason: String,
}

impl Verdict {
    fn allowed() -> Verdict {
        Verdict {
            action: Action::Allow,
            rule: None,
            command: None,
            reason: "allowed".into(),
        }
    }

    fn by_rule(rule: &Rule, cmd: &SimpleCommand) -> Verdict {
        let verb = match rule.action {
            Action::Allow => "allowed by",
            Action::Deny => "blocked by",
            Action::Warn => "flagged by",
        };
        Verdict {
            action: rule.action,
            reason: format!("{verb} {}", rule.describe()),
            rule: Some(rule.reference()),
            command: Some(cmd.text.clone()),
        }
    }
}

/// A namespace's rules, ordered for checking.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Sorted by priority, then id.
    rules: Vec<Rule>,
    /// At least one allow rule: commands no allow rule matches are denied.
    allow_list: bool,
}

impl RuleSet {
    /// Orders `rules` by priority ascending, then id (a lower number is checked first).
    pub fn new(mut rules: Vec<Rule>) -> RuleSet {
        rules.sort_by_key(|r| (r.priority, r.id));
        let allow_list = rules.iter().any(|r| r.action == Action::Allow);
        RuleSet { rules, allow_list }
    }

    /// No rules: every line is allowed, so the guard need not read the screen.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules in checking order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Checks every simple command of `line`; the line gets the worst verdict
    /// (deny over warn over allow; the first such command names the reason).
    pub fn check(&self, line: &str) -> Verdict {
        if self.is_empty() {
            return Verdict::allowed();
        }
        let split = split::simple_commands(line);
        let mut worst: Option<Verdict> = None;
        for cmd in &split.commands {
            let verdict = self.check_command(cmd);
            if verdict.action == Action::Deny {
                return verdict;
            }
            if worst
                .as_ref()
                .is_none_or(|w| verdict.action.severity() > w.action.severity())
            {
                worst = Some(verdict);
            }
        }
        let worst = worst.unwrap_or_else(Verdict::allowed);
        if split.truncated {
            return self.too_complex(worst);
        }
        worst
    }

    /// The verdict for one simple command.
    fn check_command(&self, cmd: &SimpleCommand) -> Verdict {
        if let Some(rule) = self.first_match(Action::Deny, cmd) {
            return Verdict::by_rule(rule, cmd);
        }
        if let Some(name) = self.name_outside_allow_list(cmd) {
            return Verdict {
                action: Action::Deny,
                rule: None,
                command: Some(cmd.text.clone()),
                reason: format!("{name:?} is not in the allow-list"),
            };
        }
        if let Some(rule) = self.first_match(Action::Warn, cmd) {
            return Verdict::by_rule(rule, cmd);
        }
        match self.first_match(Action::Allow, cmd) {
            Some(rule) => Verdict::by_rule(rule, cmd),
            None => Verdict::allowed(),
        }
    }

    fn first_match(&self, action: Action, cmd: &SimpleCommand) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.action == action && r.pattern.matches(cmd))
    }

    /// The first program `cmd` starts that the allow-list does not admit (`None` without
    /// an allow-list). A command passes if an allow regex matches its text, or if allow
    /// words name every program it starts, wrappers included (`sudo ls` needs `sudo`
    /// allowed too). A command that starts nothing (`FOO=1`, `done`) passes.
    fn name_outside_allow_list<'c>(&self, cmd: &'c SimpleCommand) -> Option<&'c str> {
        if !self.allow_list {
            return None;
        }
        let allows = || self.rules.iter().filter(|r| r.action == Action::Allow);
        let regex_allows =
            allows().any(|r| matches!(r.pattern, Pattern::Regex(_)) && r.pattern.matches(cmd));
        if regex_allows {
            return None;
        }
        cmd.names().find(|name| {
            !allows().any(|r| matches!(&r.pattern, Pattern::Word(word) if word == name))
        })
    }

    /// A line the split could not read whole gets the strictest action the set can give.
    fn too_complex(&self, worst: Verdict) -> Verdict {
        let can_block = self.allow_list || self.rules.iter().any(|r| r.action == Action::Deny);
        let action = if can_block {
            Action::Deny
        } else {
            Action::Warn
        };
        if action.severity() <= worst.action.severity() {
            return worst;
        }
        Verdict {
            action,
            rule: None,
            command: None,
            reason: format!(
                "the line is too complex to check (over {} commands or nested too deeply)",
                split::MAX_COMMANDS
            ),
        }
    }
}

impl From<Vec<Rule>> for RuleSet {
    fn from(rules: Vec<Rule>) -> Self {
        RuleSet::new(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(id: i64, text: &str, action: Action) -> Rule {
        Rule::new(id, id, text, false, action).expect("valid word rule")
    }

    fn regex(id: i64, text: &str, action: Action) -> Rule {
        Rule::new(id, id, text, true, action).expect("valid regex rule")
    }

    fn deny_rm() -> RuleSet {
        RuleSet::new(vec![word(3, "rm", Action::Deny)])
    }

    #[test]
    fn denied_word_is_found_wherever_the_line_runs_it() {
        let set = deny_rm();
        for line in [
            "rm x",
            "ls; rm x",
            "echo ok && rm x",
            "echo $(rm x)",
            "sudo rm x",
            "/bin/rm x",
            "'rm' x",
            "FOO=1 rm x",
            "bash -c 'rm x'",
            "for f in *; do rm $f; done",
            "ls | xargs rm",
        ] {
            let v = set.check(line);
            assert_eq!(v.action, Action::Deny, "{line}");
            assert_eq!(v.rule.as_ref().map(|r| r.id), Some(3), "{line}");
            assert_eq!(v.reason, r#"blocked by deny word "rm" (#3)"#, "{line}");
        }
    }

    #[test]
    fn a_denied_word_as_an_argument_is_allowed() {
        let set = deny_rm();
        for line in ["echo rm", "git rm x", "ls rm", "echo 'rm x'", "# rm x", ""] {
            let v = set.check(line);
            assert_eq!(v.action, Action::Allow, "{line}: {}", v.reason);
            assert_eq!(v.rule, None, "{line}");
        }
    }

    #[test]
    fn verdict_names_the_command_that_decided() {
        let v = deny_rm().check("ls -l; rm -f x && echo done");
        assert_eq!(v.command.as_deref(), Some("rm -f x"));
        let v = deny_rm().check("echo $(rm -f x)");
        assert_eq!(v.command.as_deref(), Some("rm -f x"));
    }

    #[test]
    fn allow_list_denies_every_other_program() {
        let set = RuleSet::new(vec![
            word(1, "ls", Action::Allow),
            word(2, "echo", Action::Allow),
        ]);
        let v = set.check("ls -l | grep x");
        assert_eq!(v.action, Action::Deny);
        assert_eq!(v.rule, None);
        assert_eq!(v.reason, r#""grep" is not in the allow-list"#);
        assert_eq!(v.command.as_deref(), Some("grep x"));

        let v = set.check("ls && echo hi");
        assert_eq!(v.action, Action::Allow);
        assert_eq!(v.reason, r#"allowed by allow word "ls" (#1)"#);

        let v = set.check("sudo ls");
        assert_eq!(v.reason, r#""sudo" is not in the allow-list"#);
        assert_eq!(
            set.check("FOO=1").action,
            Action::Allow,
            "assignments run nothing"
        );
        assert_eq!(
            set.check("echo $(curl x)").reason,
            r#""curl" is not in the allow-list"#
        );
    }

    #[test]
    fn allow_regex_admits_a_whole_command() {
        let set = RuleSet::new(vec![regex(1, r"^git (status|log)\b", Action::Allow)]);
        assert_eq!(set.check("git status -s").action, Action::Allow);
        let v = set.check("git push");
        assert_eq!(v.action, Action::Deny);
        assert_eq!(v.reason, r#""git" is not in the allow-list"#);
    }

    #[test]
    fn warn_lets_the_line_through_flagged() {
        let set = RuleSet::new(vec![regex(5, "git push .*--force", Action::Warn)]);
        let v = set.check("git push origin main --force");
        assert_eq!(v.action, Action::Warn);
        assert_eq!(v.rule.as_ref().map(|r| r.id), Some(5));
        assert_eq!(
            v.reason,
            r#"flagged by warn regex "git push .*--force" (#5)"#
        );
        assert_eq!(set.check("git push origin main").action, Action::Allow);
    }

    #[test]
    fn deny_beats_allow_whatever_the_priority() {
        let set = RuleSet::new(vec![
            Rule::new(1, 0, "rm", false, Action::Allow).expect("rule"),
            Rule::new(2, 100, "rm -rf", true, Action::Deny).expect("rule"),
        ]);
        let v = set.check("rm -rf /");
        assert_eq!(v.action, Action::Deny);
        assert_eq!(v.rule.as_ref().map(|r| r.id), Some(2));
        assert_eq!(set.check("rm x").action, Action::Allow);
    }

    #[test]
    fn worst_command_decides_the_line() {
        let set = RuleSet::new(vec![
            word(1, "git", Action::Warn),
            word(2, "rm", Action::Deny),
        ]);
        assert_eq!(set.check("git status; rm x").action, Action::Deny);
        assert_eq!(set.check("ls; git status").action, Action::Warn);
        assert_eq!(set.check("ls; pwd").action, Action::Allow);
    }

    #[test]
    fn first_rule_by_priority_then_id_is_reported() {
        let set = RuleSet::new(vec![
            Rule::new(9, 5, "rm", false, Action::Deny).expect("rule"),
            Rule::new(4, 5, "^rm", true, Action::Deny).expect("rule"),
            Rule::new(7, 10, "rm", false, Action::Deny).expect("rule"),
        ]);
        let ids: Vec<i64> = set.rules().iter().map(|r| r.id).collect();
        assert_eq!(ids, [4, 9, 7]);
        assert_eq!(set.check("rm x").rule.map(|r| r.id), Some(4));
    }

    #[test]
    fn a_denied_wrapper_blocks_what_it_wraps() {
        let set = RuleSet::new(vec![word(1, "sudo", Action::Deny)]);
        assert_eq!(set.check("sudo rm x").action, Action::Deny);
        assert_eq!(set.check("sudo -i").action, Action::Deny);
        assert_eq!(set.check("echo sudo").action, Action::Allow);
    }

    #[test]
    fn a_line_too_complex_to_check_is_treated_strictly() {
        let long = "true;".repeat(split::MAX_COMMANDS) + "rm x";
        let v = deny_rm().check(&long);
        assert_eq!(v.action, Action::Deny);
        assert!(v.reason.contains("too complex"), "{}", v.reason);
        let warn_only = RuleSet::new(vec![word(1, "git", Action::Warn)]);
        assert_eq!(warn_only.check(&long).action, Action::Warn);
        assert_eq!(RuleSet::default().check(&long).action, Action::Allow);
    }

    #[test]
    fn empty_set_allows_and_says_so() {
        let set = RuleSet::new(Vec::new());
        assert!(set.is_empty());
        assert!(!deny_rm().is_empty());
        assert_eq!(set.check("rm -rf /").action, Action::Allow);
    }

    #[test]
    fn describe_reads_like_the_rule() {
        assert_eq!(
            word(3, "rm", Action::Deny).describe(),
            r#"deny word "rm" (#3)"#
        );
        assert_eq!(
            regex(5, "^git push.*--force", Action::Warn).describe(),
            r#"warn regex "^git push.*--force" (#5)"#
        );
    }

    #[test]
    fn bad_patterns_get_clear_errors() {
        let err = |text: &str, regex: bool| Rule::new(1, 1, text, regex, Action::Deny).err();
        assert_eq!(err("", false), Some(RuleError::Empty));
        assert_eq!(err("  ", true), Some(RuleError::Empty));
        assert_eq!(
            err("rm -rf", false),
            Some(RuleError::NotAWord {
                word: "rm -rf".into(),
                found: ' '
            })
        );
        assert!(matches!(
            err("a;b", false),
            Some(RuleError::NotAWord { found: ';', .. })
        ));
        assert!(matches!(
            err("/bin/rm", false),
            Some(RuleError::NotAWord { found: '/', .. })
        ));
        assert_eq!(err("done", false), Some(RuleError::Keyword("done".into())));
        match err("(unclosed", true) {
            Some(RuleError::BadRegex(msg)) => assert!(msg.contains("unclosed"), "{msg}"),
            other => panic!("expected BadRegex, got {other:?}"),
        }
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        assert_eq!(
            err(&long, true),
            Some(RuleError::TooLong {
                len: MAX_PATTERN_BYTES + 1,
                max: MAX_PATTERN_BYTES
            })
        );
        // Small text, huge automaton: nested counted repetitions.
        assert!(matches!(
            err(r"(\w{100}){100}", true),
            Some(RuleError::RegexTooBig { .. })
        ));
        assert!(err("[", false).is_none(), "`[` is a real command");
    }

    #[test]
    fn action_round_trips_through_its_name() {
        for action in [Action::Allow, Action::Deny, Action::Warn] {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
            assert_eq!(action.to_string(), action.as_str());
        }
        assert_eq!(
            "block".parse::<Action>(),
            Err(RuleError::UnknownAction("block".into()))
        );
    }
}
