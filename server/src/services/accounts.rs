//! Accounts: login, login sessions, tickets, user administration.
use std::{net::IpAddr, sync::Arc};

use app::{
    backend::{Accounts, Caller, LoginGrant},
    error::ApiError,
    model::{Role, UserSummary},
};
use async_trait::async_trait;
use tracing::{info, warn};

use super::{audit, check_name, internal};
use crate::{
    auth::{
        device,
        password::{self, Lane},
        ratelimit::Attempt,
        shared_limit, tickets, tokens,
    },
    db::{self, users},
    state::Core,
};

/// Seconds a login refused because every password hasher is busy is told
/// to wait (`Retry-After`): a queue drains in well under a second.
const HASH_BUSY_RETRY_SECS: u64 = 1;
/// Characters of a failed login's user name kept in the audit log (valid
/// names are at most 64; anything longer is an attacker's payload).
const AUDIT_NAME_CHARS: usize = 64;

/// Records a failed login, storing at most [`AUDIT_NAME_CHARS`] of the name.
/// A failed login: its waits (here and on every node) run from now.
async fn settle_failed(core: &Core, attempt: Attempt, shared: Option<shared_limit::SharedAttempt>) {
    core.login_limiter.failed(attempt);
    if let Some(a) = shared {
        if let Err(e) = shared_limit::failed(&core.db, a).await {
            warn!("settling a shared login failure: {e}");
        }
    }
}

async fn audit_failed_login(core: &Core, name: &str, remote: IpAddr) {
    let name: String = name.chars().take(AUDIT_NAME_CHARS).collect();
    audit(
        &core.db,
        None,
        "login.failed",
        Some(&name),
        Some(&remote.to_string()),
    )
    .await;
}

/// [`Accounts`] backed by the database.
pub struct AccountService(pub Arc<Core>);

/// Creates a user after validating the name and password (shared with the
/// CLI), hashing on the process-wide default pool.
pub async fn create_user(
    core_db: &db::Db,
    name: &str,
    password_text: &str,
    role: Role,
) -> Result<i64, ApiError> {
    let hasher = password::default_pool().map_err(internal)?;
    create_user_with(hasher, core_db, name, password_text, role).await
}

/// Creates a user, hashing the password on `hasher` (the server's workers).
pub async fn create_user_with(
    hasher: &password::HashPool,
    core_db: &db::Db,
    name: &str,
    password_text: &str,
    role: Role,
) -> Result<i64, ApiError> {
    check_name("user", name)?;
    check_new_password(password_text)?;
    let hash = hash_new_password(hasher, password_text).await?;
    match users::create(core_db, name, &hash, role).await {
        Ok(id) => Ok(id),
        Err(e) if users::is_unique_violation(&e) => {
            Err(ApiError::Invalid(format!("user {name} already exists")))
        }
        Err(e) => Err(internal(e)),
    }
}

/// Checks `name`'s password the way a login does: counted against the
/// name and the address before any lookup or hashing (and across nodes),
/// the same work for unknown and disabled names, failures audited. The
/// user when it is right; `Unauthorized` (no detail) when it is not.
/// `device`: the browser's device cookie, which may put the hash ahead of
/// a flood.
async fn check_password(
    core: &Core,
    name: &str,
    password_text: &str,
    remote: IpAddr,
    device: Option<&str>,
) -> Result<users::UserRow, ApiError> {
    let valid_name = check_name("user", name);
    // Counted before any lookup or hashing, so parallel guesses cannot
    // all pass the check; a name that cannot exist counts against the
    // address only.
    let attempt = core
        .login_limiter
        .begin(remote, valid_name.is_ok().then_some(name))
        .map_err(ApiError::RateLimited)?;
    // With several nodes the counts are shared through the database too.
    let shared = if core.config.node_id.is_some() {
        match shared_limit::begin(&core.db, remote, valid_name.is_ok().then_some(name)).await {
            Ok(a) => Some(a),
            Err(shared_limit::SharedLimitError::Wait(secs)) => {
                core.login_limiter.not_tried(attempt);
                return Err(ApiError::RateLimited(secs));
            }
            Err(shared_limit::SharedLimitError::Db(e)) => {
                core.login_limiter.not_tried(attempt);
                return Err(internal(e));
            }
        }
    } else {
        None
    };
    if let Err(e) = valid_name {
        settle_failed(core, attempt, shared).await;
        audit_failed_login(core, name, remote).await;
        return Err(e);
    }
    let user = users::by_name(&core.db, name).await.map_err(internal)?;
    // A browser this account logged in from (with its current password)
    // goes ahead of a flood; whether the name exists plays no part in the
    // choice.
    let lane = match (device, &user) {
        (Some(token), Some(u))
            if device::recognises(&core.secrets, token, name, &u.password_hash) =>
        {
            Lane::Ahead
        }
        _ => Lane::Normal,
    };
    let checked = match &user {
        Some(u) if !u.disabled => {
            core.hasher
                .verify(lane, password_text, &u.password_hash)
                .await
        }
        // Same work for unknown names, so timing does not reveal them.
        _ => core.hasher.verify_unknown(lane, password_text).await,
    };
    let ok = match checked {
        Ok(ok) => ok,
        Err(password::PasswordError::Busy) => {
            core.login_limiter.not_tried(attempt);
            if let Some(a) = shared {
                if let Err(e) = shared_limit::not_tried(&core.db, a).await {
                    warn!("taking back a shared login attempt: {e}");
                }
            }
            return Err(ApiError::Busy(HASH_BUSY_RETRY_SECS));
        }
        Err(e) => return Err(internal(e)),
    };
    let Some(user) = user.filter(|_| ok) else {
        settle_failed(core, attempt, shared).await;
        audit_failed_login(core, name, remote).await;
        return Err(ApiError::Unauthorized);
    };
    core.login_limiter.succeeded(attempt);
    if let Some(a) = shared {
        if let Err(e) = shared_limit::succeeded(&core.db, a).await {
            warn!("settling a shared login attempt: {e}");
        }
    }
    Ok(user)
}

/// Refuses a new password that is too short or too long.
fn check_new_password(password_text: &str) -> Result<(), ApiError> {
    if password_text.chars().count() < password::MIN_PASSWORD_CHARS {
        return Err(ApiError::Invalid(format!(
            "password must have at least {} characters",
            password::MIN_PASSWORD_CHARS
        )));
    }
    if password_text.len() > password::MAX_PASSWORD_BYTES {
        return Err(ApiError::Invalid("password too long".into()));
    }
    Ok(())
}

/// Hashes a new password (checked with [`check_new_password`]).
async fn hash_new_password(
    hasher: &password::HashPool,
    password_text: &str,
) -> Result<String, ApiError> {
    match hasher.hash(password_text).await {
        Ok(h) => Ok(h),
        Err(password::PasswordError::Busy) => Err(ApiError::Busy(HASH_BUSY_RETRY_SECS)),
        Err(e) => Err(internal(e)),
    }
}

#[async_trait]
impl Accounts for AccountService {
    async fn login(
        &self,
        name: &str,
        password_text: &str,
        remote: IpAddr,
        device: Option<&str>,
    ) -> Result<LoginGrant, ApiError> {
        let core = &self.0;
        let user = check_password(core, name, password_text, remote, device).await?;
        let session_token = tokens::random_session_token();
        let session_hash = tokens::token_hash(&session_token);
        users::create_login_session(&core.db, &session_hash, user.id)
            .await
            .map_err(internal)?;
        let otp = tickets::issue(
            &core.db,
            user.id,
            &tickets::Purpose::Chat,
            Some(&session_hash),
        )
        .await
        .map_err(internal)?;
        audit(
            &core.db,
            Some(&user.name),
            "login",
            None,
            Some(&remote.to_string()),
        )
        .await;
        info!(user = %user.name, "login");
        Ok(LoginGrant {
            device_token: device::issue(&core.secrets, &user.name, &user.password_hash),
            user: user.info(),
            session_token,
            otp,
        })
    }

    async fn caller(&self, session_token: &str) -> Result<Option<Caller>, ApiError> {
        let hash = tokens::token_hash(session_token);
        let user = users::login_session_user(&self.0.db, &hash)
            .await
            .map_err(internal)?;
        Ok(user.map(|u| Caller {
            user: u.info(),
            session_token: session_token.to_string(),
        }))
    }

    async fn logout(&self, caller: &Caller) -> Result<(), ApiError> {
        let hash = tokens::token_hash(&caller.session_token);
        users::delete_login_session(&self.0.db, &hash)
            .await
            .map_err(internal)?;
        self.0.hub.kick_session(&hash).await;
        self.0.sockets.close_session(&hash);
        self.0.hint_changed();
        audit(&self.0.db, Some(&caller.user.name), "logout", None, None).await;
        Ok(())
    }

    async fn chat_ticket(&self, caller: &Caller) -> Result<String, ApiError> {
        let hash = tokens::token_hash(&caller.session_token);
        tickets::issue(
            &self.0.db,
            caller.user.id,
            &tickets::Purpose::Chat,
            Some(&hash),
        )
        .await
        .map_err(internal)
    }

    async fn list_users(&self) -> Result<Vec<UserSummary>, ApiError> {
        users::list(&self.0.db).await.map_err(internal)
    }

    async fn add_user(
        &self,
        actor: &Caller,
        name: &str,
        password_text: &str,
        role: Role,
    ) -> Result<(), ApiError> {
        create_user_with(&self.0.hasher, &self.0.db, name, password_text, role).await?;
        audit(
            &self.0.db,
            Some(&actor.user.name),
            "user.add",
            Some(name),
            Some(role.as_str()),
        )
        .await;
        Ok(())
    }

    async fn disable_user(&self, actor: &Caller, name: &str) -> Result<(), ApiError> {
        let core = &self.0;
        let id = users::disable(&core.db, name)
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::NotFound(format!("user {name}")))?;
        core.hub.kick_user(id).await;
        core.sockets.close_user(id);
        core.terms.close_all_for_user(id);
        core.hint_changed();
        audit(
            &core.db,
            Some(&actor.user.name),
            "user.disable",
            Some(name),
            None,
        )
        .await;
        Ok(())
    }
    async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
        remote: IpAddr,
    ) -> Result<(), ApiError> {
        let core = &self.0;
        let name = caller.user.name.as_str();
        if new == current {
            return Err(ApiError::Invalid(
                "the new password is the current one".into(),
            ));
        }
        // The new one first (cheaply): a bad choice does not count as a guess.
        check_new_password(new)?;
        // A stolen session must not be a way around the login limits, nor
        // get a hash computed before them.
        let user = match check_password(core, name, current, remote, None).await {
            Err(ApiError::Unauthorized) => {
                return Err(ApiError::Invalid(
                    "the current password is not right".into(),
                ))
            }
            other => other?,
        };
        let hash = hash_new_password(&core.hasher, new).await?;
        // Every login session ends (this one too), and with them their sockets.
        if !users::set_password(&core.db, name, &hash)
            .await
            .map_err(internal)?
        {
            return Err(ApiError::NotFound(format!("user {name}")));
        }
        core.hub.kick_user(user.id).await;
        core.sockets.close_user(user.id);
        core.hint_changed();
        audit(
            &core.db,
            Some(name),
            "user.password_changed",
            Some(name),
            Some(&remote.to_string()),
        )
        .await;
        info!(user = %name, "password changed");
        Ok(())
    }
}
