//! Accounts: login, login sessions, tickets, user administration.
use std::{net::IpAddr, sync::Arc};

use app::{
    backend::{Accounts, Caller, LoginGrant},
    error::ApiError,
    model::{Role, UserSummary},
};
use async_trait::async_trait;
use tracing::info;

use super::{audit, check_name, internal};
use crate::{
    auth::{password, tickets, tokens},
    db::{self, users},
    state::Core,
};

/// [`Accounts`] backed by the database.
pub struct AccountService(pub Arc<Core>);

/// Creates a user after validating the name and password (shared with the CLI).
pub async fn create_user(
    core_db: &db::Db,
    name: &str,
    password_text: &str,
    role: Role,
) -> Result<i64, ApiError> {
    check_name("user", name)?;
    if password_text.chars().count() < password::MIN_PASSWORD_CHARS {
        return Err(ApiError::Invalid(format!(
            "password must have at least {} characters",
            password::MIN_PASSWORD_CHARS
        )));
    }
    if password_text.len() > password::MAX_PASSWORD_BYTES {
        return Err(ApiError::Invalid("password too long".into()));
    }
    let hash = password::hash(password_text).await.map_err(internal)?;
    match users::create(core_db, name, &hash, role).await {
        Ok(id) => Ok(id),
        Err(e) if users::is_unique_violation(&e) => {
            Err(ApiError::Invalid(format!("user {name} already exists")))
        }
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
    ) -> Result<LoginGrant, ApiError> {
        let core = &self.0;
        core.login_limiter
            .check(remote)
            .map_err(ApiError::RateLimited)?;
        let user = users::by_name(&core.db, name).await.map_err(internal)?;
        let ok = match &user {
            Some(u) if !u.disabled => password::verify(password_text, &u.password_hash)
                .await
                .map_err(internal)?,
            _ => {
                // Same work for unknown names, so timing does not reveal them.
                let _ = password::verify(password_text, password::dummy_hash().await).await;
                false
            }
        };
        let Some(user) = user.filter(|_| ok) else {
            core.login_limiter.failed(remote);
            audit(
                &core.db,
                None,
                "login.failed",
                Some(name),
                Some(&remote.to_string()),
            )
            .await;
            return Err(ApiError::Unauthorized);
        };
        core.login_limiter.succeeded(remote);
        let session_token = tokens::random_session_token();
        let session_hash = tokens::token_hash(&session_token);
        users::create_login_session(&core.db, &session_hash, user.id)
            .await
            .map_err(internal)?;
        let otp = tickets::issue(&core.db, user.id, "chat", Some(&session_hash))
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
        audit(&self.0.db, Some(&caller.user.name), "logout", None, None).await;
        Ok(())
    }

    async fn ticket(&self, caller: &Caller, purpose: &str) -> Result<String, ApiError> {
        let hash = tokens::token_hash(&caller.session_token);
        tickets::issue(&self.0.db, caller.user.id, purpose, Some(&hash))
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
        create_user(&self.0.db, name, password_text, role).await?;
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
}
