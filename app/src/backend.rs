//! The narrow interface server functions use to reach server-side logic.
//! `server` implements these traits and provides a [`Services`] value as Leptos
//! context; `app` itself carries no database, SSH or PTY code, and server
//! functions can be tested with fakes.
use std::{net::IpAddr, sync::Arc};

use async_trait::async_trait;

use crate::error::ApiError;
use crate::model::*;

/// Name of the login cookie.
pub const SESSION_COOKIE: &str = "termroom_session";
/// Name of the device cookie: a browser that logged into an account before
/// (sent to `/login` only; its login goes ahead of a flood of strangers').
pub const DEVICE_COOKIE: &str = "termroom_device";

/// What a successful login yields.
#[derive(Debug, Clone)]
pub struct LoginGrant {
    /// The user.
    pub user: UserInfo,
    /// Opaque login-session token for the cookie.
    pub session_token: String,
    /// Single-use ticket for `/ws` (purpose `chat`).
    pub otp: String,
    /// A fresh device token for the device cookie (`None` if none could be made).
    pub device_token: Option<String>,
}

/// Who is calling: from the login cookie plus transport details.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated user.
    pub user: UserInfo,
    /// The login-session token (to end it on logout).
    pub session_token: String,
}

/// Accounts, login sessions and tickets.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// Checks credentials (rate-limited per address and account) and opens
    /// a login session; `device` is the browser's device cookie, if any.
    async fn login(
        &self,
        name: &str,
        password: &str,
        remote: IpAddr,
        device: Option<&str>,
    ) -> Result<LoginGrant, ApiError>;
    /// The user behind a login-session token, if it is valid.
    async fn caller(&self, session_token: &str) -> Result<Option<Caller>, ApiError>;
    /// Ends a login session and closes that user's sockets opened with it.
    async fn logout(&self, caller: &Caller) -> Result<(), ApiError>;
    /// A fresh single-use ticket for the chat socket (terminal tickets come
    /// from [`Terminals`]).
    async fn chat_ticket(&self, caller: &Caller) -> Result<String, ApiError>;
    /// Every user (admin).
    async fn list_users(&self) -> Result<Vec<UserSummary>, ApiError>;
    /// Creates a user (admin `actor`, recorded in the audit log).
    async fn add_user(
        &self,
        actor: &Caller,
        name: &str,
        password: &str,
        role: Role,
    ) -> Result<(), ApiError>;
    /// Disables a user and ends their sessions (admin `actor`).
    async fn disable_user(&self, actor: &Caller, name: &str) -> Result<(), ApiError>;
    /// Changes the caller's own password once `current` checks out (counted
    /// like a login attempt from `remote`); every login session of theirs
    /// ends, this one included.
    async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
        remote: IpAddr,
    ) -> Result<(), ApiError>;
}

/// Namespaces, memberships and hosts.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Targets the user may open (their namespaces' hosts, plus `local` if allowed).
    async fn targets(&self, user: &UserInfo) -> Result<Vec<TargetInfo>, ApiError>;
    /// Every namespace with its members.
    async fn namespaces(&self) -> Result<Vec<NamespaceInfo>, ApiError>;
    /// Creates a namespace (admin `actor`, recorded in the audit log).
    async fn add_namespace(&self, actor: &Caller, name: &str) -> Result<(), ApiError>;
    /// Adds a user to a namespace.
    async fn grant(&self, actor: &Caller, namespace: &str, user: &str) -> Result<(), ApiError>;
    /// Removes a user from a namespace.
    async fn revoke(&self, actor: &Caller, namespace: &str, user: &str) -> Result<(), ApiError>;
    /// Every host (admin view, no secrets).
    async fn hosts(&self) -> Result<Vec<HostInfo>, ApiError>;
    /// Connects to `address:port` and returns its host key's SHA-256
    /// fingerprint without sending any credential.
    async fn probe(&self, address: &str, port: u16) -> Result<String, ApiError>;
    /// Adds a host with the fingerprint the admin confirmed.
    async fn add_host(&self, actor: &Caller, host: NewHost) -> Result<(), ApiError>;
    /// Deletes a host.
    async fn delete_host(&self, actor: &Caller, name: &str) -> Result<(), ApiError>;
}

/// Details of the browser opening a terminal, for the session record.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Remote address of the HTTP request.
    pub remote: Option<IpAddr>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
}

/// Terminal sessions.
#[async_trait]
pub trait Terminals: Send + Sync + 'static {
    /// Opens a session to `target` (authorization checked) and returns a ticket to attach.
    async fn open(
        &self,
        caller: &Caller,
        target: &str,
        cols: u16,
        rows: u16,
        client: ClientInfo,
    ) -> Result<TermTicket, ApiError>;
    /// A fresh ticket to (re)attach to one of the caller's sessions.
    async fn attach_ticket(
        &self,
        caller: &Caller,
        session_id: &str,
    ) -> Result<TermTicket, ApiError>;
    /// The caller's live sessions.
    async fn list(&self, caller: &Caller) -> Result<Vec<TermSessionInfo>, ApiError>;
    /// Ends one of the caller's sessions.
    async fn close(&self, caller: &Caller, session_id: &str) -> Result<(), ApiError>;
}

/// Live monitoring: what admins see and do to other people's sessions.
#[async_trait]
pub trait Monitoring: Send + Sync + 'static {
    /// Every live session (admins only).
    async fn live(&self, caller: &Caller) -> Result<Vec<LiveSession>, ApiError>;
    /// A ticket to watch a session read-only: admins, and members of the
    /// session's namespace once its owner shared it; `NotFound` otherwise.
    async fn watch_ticket(
        &self,
        caller: &Caller,
        session_id: &str,
    ) -> Result<WatchTicket, ApiError>;
    /// Ends a session at once, showing `reason` to its owner (admins only).
    async fn terminate(
        &self,
        caller: &Caller,
        session_id: &str,
        reason: &str,
    ) -> Result<(), ApiError>;
    /// Holds back (`frozen`) or lets through the owner's input (admins only).
    async fn freeze(&self, caller: &Caller, session_id: &str, frozen: bool)
        -> Result<(), ApiError>;
    /// Posts a link to watch one of the caller's own sessions into `room`.
    async fn share_watch(
        &self,
        caller: &Caller,
        session_id: &str,
        room: &str,
    ) -> Result<(), ApiError>;
    /// Typed command lines matching `query`, newest first, one page (admins only).
    async fn commands(
        &self,
        caller: &Caller,
        query: &CommandQuery,
    ) -> Result<Vec<CommandEntry>, ApiError>;
    /// The newest audit events, since `since` (`YYYY-MM-DD`) if given (admins only).
    async fn events(&self, caller: &Caller, since: &str) -> Result<Vec<AuditEntry>, ApiError>;
}

/// Terminal recordings; what the caller may not read is `NotFound`.
#[async_trait]
pub trait Recordings: Send + Sync + 'static {
    /// Recordings the caller may read, newest first, one page.
    async fn list(
        &self,
        caller: &Caller,
        query: &RecordingQuery,
    ) -> Result<Vec<RecordingInfo>, ApiError>;
    /// One recording's row, markers and length.
    async fn detail(&self, caller: &Caller, id: &str) -> Result<RecordingDetail, ApiError>;
    /// Posts a link to the recording (at `at` seconds, if given) into the
    /// chat room `room` as the caller.
    async fn share(
        &self,
        caller: &Caller,
        id: &str,
        room: &str,
        at: Option<f64>,
    ) -> Result<(), ApiError>;
    /// Where `text` was printed (case-insensitive), at most a page of hits.
    async fn search(
        &self,
        caller: &Caller,
        id: &str,
        text: &str,
    ) -> Result<Vec<SearchHit>, ApiError>;
}

/// Everything server functions can reach, provided as Leptos context.
#[derive(Clone)]
pub struct Services {
    pub accounts: Arc<dyn Accounts>,
    pub directory: Arc<dyn Directory>,
    pub terminals: Arc<dyn Terminals>,
    pub recordings: Arc<dyn Recordings>,
    pub monitoring: Arc<dyn Monitoring>,
}
