//! Plain data shown by the UI and returned by server functions (no secrets ever).
use serde::{Deserialize, Serialize};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users, namespaces and hosts; may use the local target when enabled.
    Admin,
    /// Opens terminals to the hosts of their namespaces.
    Member,
}

impl Role {
    /// The role's name as stored and typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
    /// Parses `admin` / `member`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// The logged-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Database id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
}

impl UserInfo {
    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A user as the admin page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// Disabled users cannot log in; their sessions were ended.
    pub disabled: bool,
    /// Namespaces the user belongs to.
    pub namespaces: Vec<String>,
}

/// `POST /login` reply: a single-use WebSocket ticket for `/ws`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginReply {
    pub otp: String,
}

/// Something a user can open a terminal to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// Name used in `/terminals?host=NAME` (`local` for the local shell).
    pub name: String,
    /// Namespace the host belongs to (empty for the local target).
    pub namespace: String,
    /// `user@address:port`, or `local shell` for the local target.
    pub endpoint: String,
}

/// A host as the admin page lists it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub id: i64,
    pub name: String,
    pub namespace: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// `password` or `key`.
    pub auth: String,
    /// Pinned SHA-256 host-key fingerprint (`SHA256:...`), if confirmed.
    pub fingerprint: Option<String>,
}

/// Fields to add a host. Its `Debug` output leaves the secrets out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHost {
    pub name: String,
    pub namespace: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Password, if password authentication.
    pub password: Option<String>,
    /// OpenSSH private key text, if key authentication.
    pub private_key: Option<String>,
    /// The fingerprint the admin confirmed after probing.
    pub fingerprint: String,
}

impl std::fmt::Debug for NewHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("NewHost")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &redacted(&self.password))
            .field("private_key", &redacted(&self.private_key))
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// A namespace (team) and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceInfo {
    pub name: String,
    pub members: Vec<String>,
}

/// What the browser needs to attach to a terminal session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermTicket {
    /// Session id, used in `/ws/term/{id}`.
    pub session_id: String,
    /// Single-use ticket bound to this session.
    pub otp: String,
    /// Target name, for the tab title.
    pub target: String,
}

/// A live terminal session of the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermSessionInfo {
    pub session_id: String,
    pub target: String,
    /// `running`, `exited` (the shell ended or the session was closed) or
    /// `failed` (connecting failed or the connection was lost).
    pub state: String,
    /// RFC 3339 start time.
    pub started: String,
}

/// A recorded terminal session, as the Recordings page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// Recording (and session) id.
    pub id: String,
    /// Owner's name.
    pub user: String,
    /// Host name or `local`.
    pub target: String,
    /// Namespace of the host (empty for `local`).
    pub namespace: String,
    /// RFC 3339 start.
    pub started: String,
    /// `running`, `exited`, `closed`, `failed` or `interrupted`.
    pub status: String,
    /// Length in milliseconds, once ended.
    pub duration_ms: Option<i64>,
    /// Bytes of the recording, once finished.
    pub size: Option<i64>,
    /// `recording`, `complete`, `incomplete` or `recovered`.
    pub state: String,
}

/// Filters of the Recordings page; empty (or missing) fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordingQuery {
    pub user: String,
    pub target: String,
    pub namespace: String,
    pub status: String,
    /// Started on or after this day (`YYYY-MM-DD`).
    pub since: String,
    /// Started on or before this day (`YYYY-MM-DD`).
    pub until: String,
    /// Page number, from 0.
    pub page: u32,
}

/// Rows per page of the Recordings page.
pub const RECORDINGS_PER_PAGE: u32 = 50;

/// A marker on a recording's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingMarker {
    /// Seconds from the start.
    pub time: f64,
    /// What happened (send to all, reattached, interrupted, ...).
    pub label: String,
}

/// What the player page needs besides the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingDetail {
    pub info: RecordingInfo,
    pub markers: Vec<RecordingMarker>,
    /// Seconds.
    pub duration: f64,
    /// The windows a long recording is played in (one: the whole file).
    pub windows: Vec<RecordingWindow>,
}

/// A part of a long recording the player loads on its own (served at
/// `/recordings/{id}.cast?window=N`), starting from a screen snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecordingWindow {
    /// Seconds from the start of the recording.
    pub start: f64,
    /// Seconds from the start where the next window starts (or the end).
    pub end: f64,
}

/// The window of `windows` that plays second `t` (the last one past the end).
pub fn window_at(windows: &[RecordingWindow], t: f64) -> usize {
    windows.iter().rposition(|w| w.start <= t).unwrap_or(0)
}

/// Where a searched text was printed in a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// Seconds from the start.
    pub time: f64,
    /// The printed line that holds it.
    pub line: String,
}

/// A link to a recording found in a chat message: `/recordings/{id}`,
/// optionally `?t=SECONDS`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingLink {
    pub id: String,
    pub at: Option<f64>,
}

impl RecordingLink {
    /// The link's path (what a chat card points to).
    pub fn path(&self) -> String {
        match self.at {
            Some(t) => format!("/recordings/{}?t={t:.1}", self.id),
            None => format!("/recordings/{}", self.id),
        }
    }

    /// The first recording link in a chat message, if any.
    pub fn find(text: &str) -> Option<Self> {
        text.match_indices("/recordings/").find_map(|(at, m)| {
            let rest = text.get(at + m.len()..)?;
            let id = rest.get(..32)?;
            if !id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return None;
            }
            let after = rest.get(32..).unwrap_or_default();
            if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.') {
                return None;
            }
            let t = after.strip_prefix("?t=").and_then(|q| {
                let end = q
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .unwrap_or(q.len());
                q.get(..end)?.parse::<f64>().ok()
            });
            Some(RecordingLink {
                id: id.to_string(),
                at: t.filter(|t| t.is_finite() && *t >= 0.0),
            })
        })
    }
}

#[cfg(test)]
mod recording_link_tests {
    use super::RecordingLink;

    #[test]
    fn links_are_found_in_messages_and_nothing_else_is() {
        let id = "0123456789abcdef0123456789abcdef";
        let l =
            RecordingLink::find(&format!("look: /recordings/{id}?t=12.5 at the error")).unwrap();
        assert_eq!(l.id, id);
        assert_eq!(l.at, Some(12.5));
        assert_eq!(l.path(), format!("/recordings/{id}?t=12.5"));
        let l = RecordingLink::find(&format!("https://ops.example.com/recordings/{id}")).unwrap();
        assert_eq!(l.at, None);
        assert!(
            RecordingLink::find(&format!("/recordings/{id}.cast")).is_none(),
            "a download"
        );
        assert!(RecordingLink::find("/recordings/0123").is_none());
        assert!(RecordingLink::find(&format!("/recordings/{}", id.to_uppercase())).is_none());
        assert!(RecordingLink::find("no link here").is_none());
    }
}

/// A live terminal session as the admins' Live page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSession {
    pub session_id: String,
    /// Owner's user name.
    pub user: String,
    /// Host name or `local`.
    pub target: String,
    /// The host's namespace (empty for the local target).
    pub namespace: String,
    /// RFC 3339 start time.
    pub started: String,
    /// Seconds since the last output or keystroke.
    pub idle_secs: u64,
    /// Output bytes so far.
    pub bytes: u64,
    /// Who is watching now.
    pub watchers: Vec<String>,
    /// The owner's input is held back.
    pub frozen: bool,
    /// A browser tab is attached.
    pub attached: bool,
    /// With several nodes: the other node that holds it (its activity and
    /// watchers are not known here); empty when this node does.
    #[serde(default)]
    pub node: String,
}

/// What a watcher needs to open `/ws/watch/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchTicket {
    pub session_id: String,
    /// Single-use ticket (purpose bound to this session).
    pub otp: String,
    /// Owner's user name.
    pub user: String,
    /// Host name or `local`.
    pub target: String,
}

/// A link to watch a live session, found in a chat message: `/live/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchLink {
    pub id: String,
}

impl WatchLink {
    /// The link's path.
    pub fn path(&self) -> String {
        format!("/live/{}", self.id)
    }

    /// The first watch link in a chat message, if any (ids are 32 hex digits).
    pub fn find(text: &str) -> Option<Self> {
        text.match_indices("/live/").find_map(|(at, m)| {
            let rest = text.get(at + m.len()..)?;
            let id = rest.get(..32)?;
            let hex = id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            let ends = !rest
                .get(32..)
                .unwrap_or_default()
                .starts_with(|c: char| c.is_ascii_alphanumeric());
            (hex && ends).then(|| WatchLink { id: id.to_string() })
        })
    }
}

#[cfg(test)]
mod watch_link_tests {
    use super::WatchLink;

    #[test]
    fn watch_links_are_found_and_nothing_else_is() {
        let id = "0123456789abcdef0123456789abcdef";
        let l =
            WatchLink::find(&format!("join me: https://ops.example.com/live/{id} now")).unwrap();
        assert_eq!(l.id, id);
        assert_eq!(l.path(), format!("/live/{id}"));
        assert_eq!(WatchLink::find("/live/not-an-id"), None);
        assert_eq!(WatchLink::find(&format!("/live/{id}x")), None);
        assert_eq!(WatchLink::find(&format!("/live/{}", &id[..31])), None);
    }
}

/// Filters of the Audit page's commands; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandQuery {
    pub user: String,
    pub host: String,
    pub namespace: String,
    /// `allow`, `deny`, `warn`, `unchecked` or empty.
    pub verdict: String,
    /// Lines containing this text.
    pub text: String,
    /// Typed on or after this day (`YYYY-MM-DD`).
    pub since: String,
    /// Typed on or before this day (`YYYY-MM-DD`).
    pub until: String,
    /// The next page: rows older than this id.
    pub before_id: Option<i64>,
}

/// Rows per page of the Audit page.
pub const AUDIT_PER_PAGE: u32 = 100;

/// A command line typed in a terminal session, as the Audit page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEntry {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    pub user: String,
    pub target: String,
    pub namespace: String,
    pub line: String,
    /// `allow`, `deny`, `warn` or `unchecked`.
    pub verdict: String,
    /// The rule that decided, or why there was none.
    pub rule: Option<String>,
    pub session_id: String,
    /// Milliseconds into the session's recording.
    pub offset_ms: i64,
}

impl CommandEntry {
    /// The recording at the moment the line was submitted (a second early).
    pub fn recording_link(&self) -> String {
        RecordingLink {
            id: self.session_id.clone(),
            at: Some((self.offset_ms as f64 / 1000.0 - 1.0).max(0.0)),
        }
        .path()
    }
}

/// An entry of the audit log (logins, host changes, watches, terminations,
/// rule changes, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// Who did it (`None`: the system or the command line).
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}
