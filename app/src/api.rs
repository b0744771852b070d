//! Server functions: the only HTTP API besides the WebSockets. Each one is thin:
//! authenticate the caller, check the role, call [`crate::backend::Services`].
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use crate::error::ApiError;
use crate::model::*;

#[cfg(feature = "ssr")]
pub mod ssr {
    //! Request helpers shared by the server functions (server side only).
    use std::net::IpAddr;

    use leptos::prelude::*;

    use crate::backend::{Caller, ClientInfo, Services, DEVICE_COOKIE, SESSION_COOKIE};
    use crate::error::ApiError;

    /// Remote address of the request, put into request extensions by the server.
    #[derive(Debug, Clone, Copy)]
    pub struct ClientAddr(pub IpAddr);

    /// Sets the HTTP status (and `Retry-After` where the error says when)
    /// for `err` and returns it.
    pub fn fail(err: ApiError) -> ApiError {
        if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(code) = http::StatusCode::from_u16(err.status()) {
                opts.set_status(code);
            }
            if let Some(secs) = err.retry_after() {
                opts.insert_header(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
            }
        }
        err
    }

    /// The services the server provided.
    pub fn services() -> Result<Services, ApiError> {
        use_context::<Services>()
            .ok_or_else(|| fail(ApiError::Internal("services not provided".into())))
    }

    fn parts() -> Option<http::request::Parts> {
        use_context::<http::request::Parts>()
    }

    /// Value of the request's cookie `name`, if any.
    fn cookie(name: &str) -> Option<String> {
        cookie_in(&parts()?.headers, name)
    }

    /// Value of cookie `name` in request headers (also for plain axum handlers).
    pub fn cookie_in(headers: &http::HeaderMap, name: &str) -> Option<String> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }

    /// Value of the login cookie, if any.
    pub fn session_cookie() -> Option<String> {
        cookie(SESSION_COOKIE)
    }

    /// Value of the device cookie, if any.
    pub fn device_cookie() -> Option<String> {
        cookie(DEVICE_COOKIE)
    }

    /// Whether the request came over TLS (directly or through a proxy).
    fn is_https() -> bool {
        parts().is_some_and(|p| {
            p.uri.scheme_str() == Some("https")
                || p.headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("https"))
        })
    }

    /// Adds a `Set-Cookie` header to the response (`; Secure` over TLS).
    fn set_cookie(cookie: String) {
        let Some(opts) = use_context::<leptos_axum::ResponseOptions>() else {
            return;
        };
        let secure = if is_https() { "; Secure" } else { "" };
        if let Ok(v) = http::HeaderValue::from_str(&format!("{cookie}{secure}")) {
            opts.append_header(http::header::SET_COOKIE, v);
        }
    }

    /// Sets (or with `None`, clears) the login cookie: HttpOnly, SameSite=Lax, Secure over TLS.
    pub fn set_session_cookie(token: Option<&str>) {
        set_cookie(match token {
            Some(t) => format!("{SESSION_COOKIE}={t}; Path=/; HttpOnly; SameSite=Lax"),
            None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
        });
    }

    /// How long a browser keeps its device cookie (a year; renewed at each login).
    const DEVICE_COOKIE_MAX_AGE_SECS: u64 = 365 * 24 * 3600;

    /// Sets the device cookie: sent back to `/login` only, HttpOnly,
    /// SameSite=Strict, kept for a year (and across logouts).
    pub fn set_device_cookie(token: &str) {
        set_cookie(format!(
            "{DEVICE_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; \
             Max-Age={DEVICE_COOKIE_MAX_AGE_SECS}"
        ));
    }

    /// The remote address and user agent of the request.
    pub fn client_info() -> ClientInfo {
        let parts = parts();
        ClientInfo {
            remote: parts
                .as_ref()
                .and_then(|p| p.extensions.get::<ClientAddr>())
                .map(|a| a.0),
            user_agent: parts
                .as_ref()
                .and_then(|p| p.headers.get(http::header::USER_AGENT))
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(256).collect()),
        }
    }

    /// The logged-in caller, or 401.
    pub async fn caller() -> Result<Caller, ApiError> {
        let token = session_cookie().ok_or_else(|| fail(ApiError::Unauthorized))?;
        let services = services()?;
        services
            .accounts
            .caller(&token)
            .await
            .map_err(fail)?
            .ok_or_else(|| fail(ApiError::Unauthorized))
    }

    /// The logged-in caller if an admin; 401 or 403 otherwise.
    pub async fn admin() -> Result<Caller, ApiError> {
        let c = caller().await?;
        if c.user.is_admin() {
            Ok(c)
        } else {
            Err(fail(ApiError::Forbidden))
        }
    }
}

/// `POST /login` with JSON `{"username","password"}` → `{"otp"}` and the login
/// cookie; 401 with no detail on bad credentials; 400 for a name that cannot
/// exist; 429 when rate limited and 503 when every password hasher is busy
/// (both with `Retry-After`).
#[server(prefix = "", endpoint = "login", input = Json, output = Json)]
pub async fn login(username: String, password: String) -> Result<LoginReply, ApiError> {
    use ssr::*;
    let services = services()?;
    let remote = client_info()
        .remote
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let grant = services
        .accounts
        .login(&username, &password, remote, device_cookie().as_deref())
        .await
        .map_err(fail)?;
    set_session_cookie(Some(&grant.session_token));
    if let Some(token) = &grant.device_token {
        set_device_cookie(token);
    }
    Ok(LoginReply { otp: grant.otp })
}

/// Ends the caller's login session and closes its sockets.
#[server(prefix = "/api", endpoint = "logout")]
pub async fn logout() -> Result<(), ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?.accounts.logout(&caller).await.map_err(fail)?;
    set_session_cookie(None);
    Ok(())
}

/// The logged-in user, or `None`.
#[server(prefix = "/api", endpoint = "me")]
pub async fn current_user() -> Result<Option<UserInfo>, ApiError> {
    match ssr::caller().await {
        Ok(c) => Ok(Some(c.user)),
        Err(ApiError::Unauthorized) => {
            // Not being logged in is a normal answer here, not an error status.
            if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
                opts.set_status(http::StatusCode::OK);
            }
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Changes the caller's password (the current one is checked and counted
/// like a login attempt); every login session of theirs ends, this one too.
#[server(prefix = "/api", endpoint = "password")]
pub async fn change_password(current: String, new: String) -> Result<(), ApiError> {
    use ssr::*;
    let caller = caller().await?;
    let remote = client_info()
        .remote
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    services()?
        .accounts
        .change_password(&caller, &current, &new, remote)
        .await
        .map_err(fail)?;
    set_session_cookie(None);
    Ok(())
}

/// A fresh single-use ticket for the chat socket.
#[server(prefix = "/api", endpoint = "chat_ticket")]
pub async fn chat_ticket() -> Result<String, ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .accounts
        .chat_ticket(&caller)
        .await
        .map_err(fail)
}

/// Hosts (and the local target) the caller may open.
#[server(prefix = "/api", endpoint = "targets")]
pub async fn list_targets() -> Result<Vec<TargetInfo>, ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .directory
        .targets(&caller.user)
        .await
        .map_err(fail)
}

/// Opens a terminal session to `target`.
#[server(prefix = "/api", endpoint = "term_open")]
pub async fn open_terminal(target: String, cols: u16, rows: u16) -> Result<TermTicket, ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .terminals
        .open(&caller, &target, cols, rows, client_info())
        .await
        .map_err(fail)
}

/// A fresh ticket to reattach to one of the caller's sessions.
#[server(prefix = "/api", endpoint = "term_attach")]
pub async fn attach_terminal(session_id: String) -> Result<TermTicket, ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .terminals
        .attach_ticket(&caller, &session_id)
        .await
        .map_err(fail)
}

/// The caller's live terminal sessions.
#[server(prefix = "/api", endpoint = "term_list")]
pub async fn my_terminals() -> Result<Vec<TermSessionInfo>, ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?.terminals.list(&caller).await.map_err(fail)
}

/// Ends one of the caller's terminal sessions.
#[server(prefix = "/api", endpoint = "term_close")]
pub async fn close_terminal(session_id: String) -> Result<(), ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .terminals
        .close(&caller, &session_id)
        .await
        .map_err(fail)
}

/// Recordings the caller may replay, newest first (one page).
#[server(prefix = "/api", endpoint = "recordings")]
pub async fn list_recordings(
    #[server(default)] query: RecordingQuery,
) -> Result<Vec<RecordingInfo>, ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .recordings
        .list(&caller, &query)
        .await
        .map_err(fail)
}

/// One recording: its row, markers and length (404 if not the caller's to see).
#[server(prefix = "/api", endpoint = "recording")]
pub async fn get_recording(id: String) -> Result<RecordingDetail, ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .recordings
        .detail(&caller, &id)
        .await
        .map_err(fail)
}

/// Posts a card linking to a recording (optionally at a time) into a chat room.
#[server(prefix = "/api", endpoint = "recording_share")]
pub async fn share_recording(id: String, room: String, at: Option<f64>) -> Result<(), ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .recordings
        .share(&caller, &id, &room, at)
        .await
        .map_err(fail)
}

/// Where `text` was printed in a recording, with times.
#[server(prefix = "/api", endpoint = "recording_search")]
pub async fn search_recording(id: String, text: String) -> Result<Vec<SearchHit>, ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .recordings
        .search(&caller, &id, &text)
        .await
        .map_err(fail)
}

/// Admin: every live terminal session.
#[server(prefix = "/api", endpoint = "live")]
pub async fn live_sessions() -> Result<Vec<LiveSession>, ApiError> {
    use ssr::*;
    let caller = admin().await?;
    services()?.monitoring.live(&caller).await.map_err(fail)
}

/// A ticket to watch a live session read-only.
#[server(prefix = "/api", endpoint = "watch")]
pub async fn watch_session(session_id: String) -> Result<WatchTicket, ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .monitoring
        .watch_ticket(&caller, &session_id)
        .await
        .map_err(fail)
}

/// Admin: ends a live session at once; the owner sees `reason`.
#[server(prefix = "/api", endpoint = "terminate")]
pub async fn terminate_session(session_id: String, reason: String) -> Result<(), ApiError> {
    use ssr::*;
    let caller = admin().await?;
    services()?
        .monitoring
        .terminate(&caller, &session_id, &reason)
        .await
        .map_err(fail)
}

/// Admin: holds back (or lets through again) the owner's input.
#[server(prefix = "/api", endpoint = "freeze")]
pub async fn freeze_session(session_id: String, frozen: bool) -> Result<(), ApiError> {
    use ssr::*;
    let caller = admin().await?;
    services()?
        .monitoring
        .freeze(&caller, &session_id, frozen)
        .await
        .map_err(fail)
}

/// Posts a link to watch one of the caller's sessions into a chat room.
#[server(prefix = "/api", endpoint = "watch_share")]
pub async fn share_watch(session_id: String, room: String) -> Result<(), ApiError> {
    use ssr::*;
    let caller = caller().await?;
    services()?
        .monitoring
        .share_watch(&caller, &session_id, &room)
        .await
        .map_err(fail)
}

/// Admin: typed command lines matching the filters, newest first.
#[server(prefix = "/api", endpoint = "audit_commands")]
pub async fn audit_commands(
    #[server(default)] query: CommandQuery,
) -> Result<Vec<CommandEntry>, ApiError> {
    use ssr::*;
    let caller = admin().await?;
    services()?
        .monitoring
        .commands(&caller, &query)
        .await
        .map_err(fail)
}

/// Admin: the newest audit events (since a day, if given).
#[server(prefix = "/api", endpoint = "audit_events")]
pub async fn audit_events(#[server(default)] since: String) -> Result<Vec<AuditEntry>, ApiError> {
    use ssr::*;
    let caller = admin().await?;
    services()?
        .monitoring
        .events(&caller, &since)
        .await
        .map_err(fail)
}

/// Admin: every user.
#[server(prefix = "/api", endpoint = "users")]
pub async fn list_users() -> Result<Vec<UserSummary>, ApiError> {
    use ssr::*;
    admin().await?;
    services()?.accounts.list_users().await.map_err(fail)
}

/// Admin: creates a user.
#[server(prefix = "/api", endpoint = "user_add")]
pub async fn add_user(name: String, password: String, role: Role) -> Result<(), ApiError> {
    use ssr::*;
    let me = admin().await?;
    services()?
        .accounts
        .add_user(&me, &name, &password, role)
        .await
        .map_err(fail)
}

/// Admin: disables a user and ends their sessions.
#[server(prefix = "/api", endpoint = "user_disable")]
pub async fn disable_user(name: String) -> Result<(), ApiError> {
    use ssr::*;
    let me = admin().await?;
    if me.user.name == name {
        return Err(fail(ApiError::Invalid(
            "you cannot disable yourself".into(),
        )));
    }
    services()?
        .accounts
        .disable_user(&me, &name)
        .await
        .map_err(fail)
}

/// Admin: every namespace with its members.
#[server(prefix = "/api", endpoint = "namespaces")]
pub async fn list_namespaces() -> Result<Vec<NamespaceInfo>, ApiError> {
    use ssr::*;
    admin().await?;
    services()?.directory.namespaces().await.map_err(fail)
}

/// Admin: creates a namespace.
#[server(prefix = "/api", endpoint = "namespace_add")]
pub async fn add_namespace(name: String) -> Result<(), ApiError> {
    use ssr::*;
    let me = admin().await?;
    services()?
        .directory
        .add_namespace(&me, &name)
        .await
        .map_err(fail)
}

/// Admin: adds a user to a namespace.
#[server(prefix = "/api", endpoint = "namespace_grant")]
pub async fn grant_namespace(namespace: String, user: String) -> Result<(), ApiError> {
    use ssr::*;
    let me = admin().await?;
    services()?
        .directory
        .grant(&me, &namespace, &user)
        .await
        .map_err(fail)
}

/// Admin: removes a user from a namespace.
#[server(prefix = "/api", endpoint = "namespace_revoke")]
pub async fn revoke_namespace(namespace: String, user: String) -> Result<(), ApiError> {
    use ssr::*;
    let me = admin().await?;
    services()?
        .directory
        .revoke(&me, &namespace, &user)
        .await
        .map_err(fail)
}

/// Admin: every host (no secrets).
#[server(prefix = "/api", endpoint = "hosts")]
pub async fn list_hosts() -> Result<Vec<HostInfo>, ApiError> {
    use ssr::*;
    admin().await?;
    services()?.directory.hosts().await.map_err(fail)
}

/// Admin: probes a host's key (no credentials sent) and returns its SHA-256 fingerprint.
#[server(prefix = "/api", endpoint = "host_probe")]
pub async fn probe_host(address: String, port: u16) -> Result<String, ApiError> {
    use ssr::*;
    admin().await?;
    services()?
        .directory
        .probe(&address, port)
        .await
        .map_err(fail)
}

/// Admin: adds a host with the confirmed fingerprint.
#[server(prefix = "/api", endpoint = "host_add")]
pub async fn add_host(host: NewHost) -> Result<(), ApiError> {
    use ssr::*;
    let me = admin().await?;
    services()?
        .directory
        .add_host(&me, host)
        .await
        .map_err(fail)
}

/// Admin: deletes a host.
#[server(prefix = "/api", endpoint = "host_delete")]
pub async fn delete_host(name: String) -> Result<(), ApiError> {
    use ssr::*;
    let me = admin().await?;
    services()?
        .directory
        .delete_host(&me, &name)
        .await
        .map_err(fail)
}
