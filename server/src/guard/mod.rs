//! The command guard: checks a line typed at a shell prompt against a namespace's rules before its Enter reaches the shell.
//!
//! When a user presses Enter in a web terminal, the server reads the submitted line
//! from its screen model ([`capture`]), splits it into the simple commands it would run
//! ([`split`]), and checks each against the rules ([`rules`]): the line is let through,
//! let through flagged, or cleared. The three parts are pure: no I/O, no transport.
//!
//! The split follows what a line visibly runs: every part of a list or pipeline,
//! substitutions, subshells, wrappers (`sudo`, `env`, `xargs`...), and the strings given
//! to `bash -c`, `eval` and `find -exec`.
//!
//! **What the guard cannot see.** It reads the text on the screen, not what the shell
//! will run. It does not know the contents of scripts (`./deploy.sh`, `bash script`),
//! aliases and shell functions (`ll`, `cleanup`), variables and globs expanded at run
//! time (`$CMD`, `$(echo rm)` as a command word), commands started by other programs
//! (interpreters such as `python -c` or `perl -e`, `make`, `git` hooks, `ssh host cmd`),
//! or anything typed inside an editor or another full-screen program. It prevents
//! mistakes and flags intent; it is not a sandbox, and a user who means to get around
//! it can. Enforcement belongs to the target host's accounts and permissions.

pub mod capture;
pub mod keys;
pub mod rules;
pub mod split;

pub use capture::{submitted_line, Anchor, Captured};
pub use keys::{keys, Key, TypedLine, CLEAR_LINE, PASTE_END, PASTE_START};
pub use rules::{Action, Pattern, Rule, RuleError, RuleRef, RuleSet, Verdict};
pub use split::{simple_commands, SimpleCommand, Split};
