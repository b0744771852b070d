//! The command line: `termroom serve` and the admin subcommands scripts use.
use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

/// termroom: chat rooms and live SSH terminals in one browser page.
#[derive(Debug, Parser)]
#[command(name = "termroom", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    /// What to do; without a subcommand, `serve` with its defaults (so that
    /// `cargo leptos watch` runs the server).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `serve`'s settings alone, parsed from the environment when no subcommand is given.
#[derive(Debug, Parser)]
#[command(name = "termroom")]
pub struct ServeDefaults {
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Where the data lives; accepted by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the SQLite database, recordings and the generated secret key.
    #[arg(
        long,
        global = true,
        env = "TERMROOM_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
    /// Database URL (`sqlite:PATH`); default: `sqlite:<data-dir>/termroom.db`.
    #[arg(long, global = true, env = "TERMROOM_DATABASE_URL")]
    pub database_url: Option<String>,
    /// File holding the 32-byte key that encrypts host secrets (hex). Default:
    /// `<data-dir>/secret.key`, generated on first start.
    #[arg(long, global = true, env = "TERMROOM_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Directory for terminal recordings (asciicast files, named by id).
    /// Default: `<data-dir>/recordings`.
    #[arg(long, global = true, env = "TERMROOM_RECORDINGS_DIR")]
    pub recordings_dir: Option<PathBuf>,
    /// Redis URL of the broker between nodes (`redis://10.0.0.9:6379`).
    /// `serve`: several nodes share chat, presence and rooms through it
    /// (needs `--database-url postgres://…` and `--node-id`). Other
    /// subcommands: the nodes are told of a change at once (a disabled
    /// user, a revoked grant, a terminated session, …) instead of at their
    /// next poll of the database.
    #[arg(long, global = true, env = "TERMROOM_BROKER")]
    pub broker: Option<String>,
}

impl StoreArgs {
    /// Where recordings live.
    pub fn recordings(&self) -> crate::recordings::files::RecordingDir {
        crate::recordings::files::RecordingDir::new(
            self.recordings_dir
                .clone()
                .unwrap_or_else(|| self.data_dir.join("recordings")),
        )
    }
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage namespaces (teams).
    #[command(subcommand)]
    Namespace(NamespaceCmd),
    /// Manage SSH hosts.
    #[command(subcommand)]
    Host(HostCmd),
    /// List and export terminal recordings.
    #[command(subcommand)]
    Recording(RecordingCmd),
    /// Manage the command guard's rules of a namespace.
    #[command(subcommand)]
    Guard(GuardCmd),
    /// List live terminal sessions, or end one.
    #[command(subcommand)]
    Session(SessionCmd),
    /// Read the audit trail and the log of typed commands.
    #[command(subcommand)]
    Audit(AuditCmd),
}

/// Who may open the `local` target (a shell on the termroom host itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LocalTarget {
    /// Nobody.
    Off,
    /// Admins only (the embedded default).
    Admins,
    /// Every logged-in user: each gets a shell as the user running termroom,
    /// which can read the secret key and the database (every host secret);
    /// needs --i-understand-local-shells.
    All,
}

/// A combination of settings `serve` refuses.
#[derive(Debug, thiserror::Error)]
pub enum ServeArgsError {
    /// `--local-target all` without the acknowledgement.
    #[error(
        "--local-target all gives every logged-in member a shell as the user running termroom; \
         that shell can read the secret key and the database, and so every stored host password \
         and private key. If that is really meant, add --i-understand-local-shells \
         (TERMROOM_I_UNDERSTAND_LOCAL_SHELLS=1); otherwise use --local-target admins or off"
    )]
    LocalShellsNotAcknowledged,
    /// `--broker` and `--node-id` go together.
    #[error("several nodes need both --broker redis://… and --node-id (each node its own)")]
    ClusterIncomplete,
    /// A node id that cannot name a node.
    #[error("--node-id {0:?}: use 1 to 64 letters, digits, '-' or '_'")]
    BadNodeId(String),
}

impl ServeArgs {
    /// Refuses settings that must not be used by accident (`broker`: the
    /// store's `--broker`).
    pub fn check(&self, broker: Option<&str>) -> Result<(), ServeArgsError> {
        if self.local_target == LocalTarget::All && !self.i_understand_local_shells {
            return Err(ServeArgsError::LocalShellsNotAcknowledged);
        }
        if broker.is_some() != self.node_id.is_some() {
            return Err(ServeArgsError::ClusterIncomplete);
        }
        if let Some(id) = &self.node_id {
            let ok = (1..=64).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(ServeArgsError::BadNodeId(id.clone()));
            }
        }
        Ok(())
    }
}

/// Settings of `termroom serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TERMROOM_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Extra origin allowed to open WebSockets (exact match, e.g.
    /// `https://termroom.example.com`); the server's own origin is always allowed.
    /// Repeat the flag, or separate with commas in the variable.
    #[arg(
        long = "allowed-origin",
        env = "TERMROOM_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Who may open the local shell target (a shell on this machine as the user
    /// running termroom). WARNING: such a shell can read the secret key and the
    /// database, hence every stored host password and private key; `all` gives
    /// that to every member and is refused without --i-understand-local-shells.
    #[arg(
        long,
        env = "TERMROOM_LOCAL_TARGET",
        value_enum,
        default_value = "admins"
    )]
    pub local_target: LocalTarget,
    /// Confirms `--local-target all`: every member may then read the secret key,
    /// the database and every host secret through the local shell.
    #[arg(
        long,
        env = "TERMROOM_I_UNDERSTAND_LOCAL_SHELLS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub i_understand_local_shells: bool,
    /// Shell for the local target.
    #[arg(long, env = "TERMROOM_LOCAL_SHELL", default_value = "/bin/bash")]
    pub local_shell: PathBuf,
    /// Record typed input in local-target sessions too (never while the
    /// terminal has echo off or shows a password prompt). SSH hosts follow
    /// their namespace's setting (`namespace recording NS --input`).
    #[arg(
        long,
        env = "TERMROOM_LOCAL_RECORD_INPUT",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub local_record_input: bool,
    /// Show the owner of a terminal session who is watching it (a badge on
    /// the tab that stays while they watch). `false` hides watchers from owners.
    #[arg(
        long,
        env = "TERMROOM_ANNOUNCE_WATCHERS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub announce_watchers: bool,
    /// Seconds a terminal session stays alive with no browser attached.
    #[arg(long, env = "TERMROOM_TERM_GRACE_SECS", default_value_t = 300)]
    pub term_grace_secs: u64,
    /// Leptos settings file (site root, package names); LEPTOS_* variables override it.
    #[arg(long, env = "TERMROOM_LEPTOS_CONFIG", default_value = "Leptos.toml")]
    pub leptos_config: PathBuf,
    /// Chat messages one user may send per second (sustained; bursts of 3x allowed).
    #[arg(long, env = "TERMROOM_CHAT_RATE", default_value_t = 5)]
    pub chat_rate: u32,
    /// Seconds of silence after which a chat socket is closed (pings keep live clients alive).
    #[arg(
        long,
        env = "TERMROOM_CHAT_IDLE_SECS",
        default_value_t = 60,
        hide = true
    )]
    pub chat_idle_secs: u64,
    /// Seconds between pings on a terminal socket.
    #[arg(
        long,
        env = "TERMROOM_TERM_PING_SECS",
        default_value_t = 20,
        hide = true
    )]
    pub term_ping_secs: u64,
    /// Seconds of silence (no frame, no pong) after which a terminal socket is
    /// dropped and its session's grace period starts.
    #[arg(
        long,
        env = "TERMROOM_TERM_IDLE_SECS",
        default_value_t = 60,
        hide = true
    )]
    pub term_idle_secs: u64,
    /// On Ctrl-C / SIGTERM, let live terminal sessions finish for up to this
    /// many seconds before stopping: meanwhile new ones are refused, their
    /// owners are told, and `/healthz` answers 503 so a load balancer sends
    /// new users to other nodes. A second signal stops at once. 0: stop at
    /// once, closing every session.
    #[arg(long, env = "TERMROOM_DRAIN_SECS", default_value_t = 0)]
    pub drain_secs: u64,
    /// Most live terminal sessions one user may have open at once.
    #[arg(long, env = "TERMROOM_MAX_SESSIONS_PER_USER", default_value_t = 32)]
    pub max_sessions_per_user: usize,
    /// Milliseconds between polls of the database's change counter (how soon
    /// a `user disable`, `namespace revoke` or `host delete` takes effect).
    #[arg(
        long,
        env = "TERMROOM_REVOCATION_POLL_MS",
        default_value_t = 2000,
        hide = true
    )]
    pub revocation_poll_ms: u64,
    /// Seconds between purges of expired login sessions and tickets.
    #[arg(
        long,
        env = "TERMROOM_PURGE_INTERVAL_SECS",
        default_value_t = 60,
        hide = true
    )]
    pub purge_interval_secs: u64,
    /// Password hashes computed at the same time (each holds ~19 MiB while
    /// it runs and keeps it for the next). Default: the number of CPUs.
    #[arg(long, env = "TERMROOM_HASH_WORKERS")]
    pub hash_workers: Option<usize>,
    /// Logins that may wait for a free password hasher; past this they are
    /// answered 503 with Retry-After. Default: 8 per hash worker.
    #[arg(long, env = "TERMROOM_HASH_QUEUE")]
    pub hash_queue: Option<usize>,
    /// Allocate argon2 memory afresh for every hash instead of keeping it
    /// per worker (only to compare memory use with `login-flood`).
    #[arg(long, hide = true)]
    pub hash_fresh_memory: bool,
    /// Address range (CIDR, or one address) of a reverse proxy in front of
    /// termroom. Only requests from these peers have `X-Forwarded-For` read,
    /// and the right-most address in it that is not such a proxy is the
    /// client (for login rate limits and logs). Repeat the flag, or separate
    /// with commas in the variable.
    #[arg(
        long = "trusted-proxy",
        env = "TERMROOM_TRUSTED_PROXY",
        value_delimiter = ',',
        value_parser = parse_proxy_range
    )]
    pub trusted_proxies: Vec<IpNet>,
    /// Serve diagnostic endpoints (`/ws/echo`, an echo WebSocket for protocol
    /// conformance runs); off in production.
    #[arg(long, env = "TERMROOM_DIAGNOSTICS")]
    pub diagnostics: bool,
    /// Most chat rooms that may exist; joining a new room beyond it is refused
    /// (existing rooms stay open).
    #[arg(long, env = "TERMROOM_MAX_ROOMS", default_value_t = 1000)]
    pub max_rooms: usize,
    /// Most chat sockets (browser tabs) one user may have open at once; more are refused with 429.
    #[arg(long, env = "TERMROOM_MAX_CHAT_SOCKETS_PER_USER", default_value_t = 16)]
    pub max_chat_sockets_per_user: usize,
    /// Do not record terminal sessions. Only for measuring what recording
    /// costs: unrecorded sessions cannot be replayed or audited.
    #[arg(long, hide = true)]
    pub no_recording: bool,
    /// This node's id among several (unique; letters, digits, `-`, `_`).
    #[arg(long, env = "TERMROOM_NODE_ID")]
    pub node_id: Option<String>,
    /// The base URL other nodes reach this one at (default: `http://<addr>`).
    #[arg(long, env = "TERMROOM_NODE_URL")]
    pub node_url: Option<String>,
}

/// A `--trusted-proxy` value: `10.0.0.0/8`, `2001:db8::/32` or a bare address.
fn parse_proxy_range(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not an address range like 10.0.0.0/8 or an address"))
}

/// `termroom user ...`
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user; the password is read from standard input.
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "member"], default_value = "member")]
        role: String,
    },
    /// Set a user's password, read from standard input.
    Passwd { name: String },
    /// List users.
    List,
    /// Disable a user (cannot log in; sessions end).
    Disable { name: String },
}

/// `termroom namespace ...`
#[derive(Debug, Subcommand)]
pub enum NamespaceCmd {
    /// Create a namespace.
    Add { name: String },
    /// Add a user to a namespace.
    Grant { namespace: String, user: String },
    /// Remove a user from a namespace.
    Revoke { namespace: String, user: String },
    /// List namespaces and members.
    List,
    /// Show or change how a namespace's terminal sessions are recorded.
    Recording {
        name: String,
        /// `strict`: a session whose recording cannot be written is ended
        /// (the default); `best-effort`: it goes on, marked incomplete.
        #[arg(long, value_parser = ["strict", "best-effort"])]
        policy: Option<String>,
        /// How long finished recordings are kept (`90d`, `12h`), or `forever`.
        #[arg(long, value_parser = parse_retention)]
        retention: Option<Retention>,
        /// Whether members may replay each other's sessions in this namespace.
        #[arg(long)]
        shared: Option<bool>,
        /// Whether typed input is recorded too (never while the target has
        /// echo off or shows a password prompt).
        #[arg(long)]
        input: Option<bool>,
    },
}

/// A `--retention` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep for ever.
    Forever,
    /// Keep this many seconds after the session ended.
    Secs(i64),
}

/// `forever`, or a duration such as `90d`, `12h` or `30s`.
fn parse_retention(s: &str) -> Result<Retention, String> {
    if s == "forever" {
        return Ok(Retention::Forever);
    }
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 90d or 12h, nor `forever`: {e}"))?;
    i64::try_from(d.as_secs())
        .map(Retention::Secs)
        .map_err(|_| format!("{s:?} is too long"))
}

/// `termroom recording ...`
#[derive(Debug, Subcommand)]
pub enum RecordingCmd {
    /// List recordings, newest first: id, user, target, start, status, size.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Write a recording to standard output.
    Export {
        id: String,
        /// `v3` (the original asciicast), `v2` or `txt` (plain text).
        #[arg(long, default_value = "v3", value_parser = ["v3", "v2", "txt"])]
        format: String,
    },
}

/// `termroom host ...`
#[derive(Debug, Subcommand)]
pub enum HostCmd {
    /// Add a host (then `termroom host trust NAME` to pin its key).
    Add {
        name: String,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        address: String,
        #[arg(long, default_value_t = 22)]
        port: u16,
        #[arg(long)]
        user: String,
        /// Read the SSH password from standard input.
        #[arg(long, conflicts_with = "key_file")]
        password_stdin: bool,
        /// OpenSSH private key file.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Probe the host's current key and pin it, printing its fingerprint. If a
    /// different key is pinned already, shows both and asks before replacing it
    /// (y/N on a terminal; without a terminal only with --yes).
    Trust {
        name: String,
        /// Replace an existing, different pin without asking (for scripts).
        #[arg(long)]
        yes: bool,
    },
    /// List hosts.
    List,
    /// Delete a host.
    Delete { name: String },
}

/// `termroom guard ...`
#[derive(Debug, Subcommand)]
pub enum GuardCmd {
    /// Add a rule to a namespace; prints the new rule's id. Running servers
    /// pick it up within their change poll interval.
    Add {
        namespace: String,
        /// What a line the rule matches gets.
        #[arg(long, value_parser = crate::db::guard_rules::RuleAction::NAMES)]
        action: String,
        /// A command name such as `rm` (one word: no whitespace, shell
        /// characters, quotes or backslash), or with --regex a regular
        /// expression; at most 1024 bytes.
        #[arg(long, allow_hyphen_values = true)]
        pattern: String,
        /// The pattern is a regular expression (Rust `regex` syntax), matched
        /// anywhere in each command of the line.
        #[arg(long)]
        regex: bool,
        /// Order of evaluation: lower first; rules of equal priority in the
        /// order they were added.
        #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
        priority: i64,
    },
    /// List a namespace's rules in the order they apply: id, priority,
    /// action, kind, pattern, created.
    List { namespace: String },
    /// Remove a rule.
    Remove { id: i64 },
}

/// `termroom session ...`
#[derive(Debug, Subcommand)]
pub enum SessionCmd {
    /// List live terminal sessions, oldest first: id, user, target,
    /// namespace (`-` for local), started, status.
    List,
    /// Ask the running server to end a live session; it does so within its
    /// change poll interval (`--revocation-poll-ms` of `serve`).
    Terminate {
        id: String,
        /// Why (kept in the audit trail).
        #[arg(long)]
        reason: String,
    },
}

/// `termroom audit ...`. Output is one row per line, fields separated by
/// tabs; in text fields a backslash, tab, newline, carriage return or other
/// control character is written as an escape (`\\`, `\t`, `\n`, `\r`,
/// `\xNN`), and an empty field as `-`.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Commands typed in terminal sessions, newest first: id, time, user,
    /// target, verdict, line, rule.
    Commands {
        /// Typed by this user.
        #[arg(long)]
        user: Option<String>,
        /// On this host (or `local`).
        #[arg(long)]
        host: Option<String>,
        /// With this verdict of the guard.
        #[arg(long, value_parser = crate::db::commands::Verdict::NAMES)]
        verdict: Option<String>,
        /// In this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Lines containing this text (ignoring ASCII case).
        #[arg(long, allow_hyphen_values = true)]
        text: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..))]
        limit: i64,
    },
    /// Audit events, oldest first: id, time, actor (`-`: the system or the
    /// command line), action, target, detail.
    Events {
        /// The first events at or after this time (RFC 3339, e.g.
        /// 2024-05-01T12:00:00Z); without it, the last ones.
        #[arg(long, value_parser = parse_time)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..))]
        limit: i64,
    },
}

/// An RFC 3339 time, checked and kept as given.
fn parse_time(s: &str) -> Result<String, String> {
    crate::db::stored_time(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}
