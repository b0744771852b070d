//! Directory: namespaces, memberships, hosts and what a user may open.
use std::{sync::Arc, time::Duration};

use app::{
    backend::{Caller, Directory},
    error::ApiError,
    model::{HostInfo, NamespaceInfo, NewHost, TargetInfo, UserInfo},
};
use async_trait::async_trait;

use super::{audit, check_name, internal};
use crate::{
    cli::LocalTarget,
    db::{self, hosts, namespaces, users},
    state::Core,
    term,
};

/// Name of the local-shell target.
pub const LOCAL_TARGET: &str = "local";
/// How long probing a host key may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// [`Directory`] backed by the database.
pub struct DirectoryService(pub Arc<Core>);

/// Whether `user` may open the local target under the configured policy.
pub fn local_allowed(policy: LocalTarget, user: &UserInfo) -> bool {
    match policy {
        LocalTarget::Off => false,
        LocalTarget::Admins => user.is_admin(),
        LocalTarget::All => true,
    }
}

/// Maps a probe failure to a message for the admin.
pub fn probe_error(address: &str, port: u16, e: term::TermError) -> ApiError {
    ApiError::Invalid(format!("cannot probe {address}:{port}: {e}"))
}

/// Validates and stores a new host, sealing its secret (shared with the CLI;
/// `actor` is the admin recorded in the audit log, None for the command line).
pub async fn insert_host(
    db: &db::Db,
    secrets: &crate::secrets::SecretBox,
    host: &NewHost,
    actor: Option<&str>,
) -> Result<(), ApiError> {
    check_name("host", &host.name)?;
    if host.name == LOCAL_TARGET {
        return Err(ApiError::Invalid(
            "the name 'local' is reserved for the local shell".into(),
        ));
    }
    if host.address.trim().is_empty() || host.address.len() > 255 {
        return Err(ApiError::Invalid("address is required".into()));
    }
    if host.port == 0 {
        return Err(ApiError::Invalid("port must be 1-65535".into()));
    }
    if host.user.trim().is_empty() || host.user.len() > 64 {
        return Err(ApiError::Invalid("SSH user is required".into()));
    }
    let (kind, secret) = match (&host.password, &host.private_key) {
        (Some(p), None) if !p.is_empty() => ("password", p.as_bytes()),
        (None, Some(k)) if !k.trim().is_empty() => {
            if russh::keys::decode_secret_key(k, None).is_err() {
                return Err(ApiError::Invalid(
                    "the private key is not a valid unencrypted OpenSSH/PEM key".into(),
                ));
            }
            ("key", k.as_bytes())
        }
        _ => {
            return Err(ApiError::Invalid(
                "give either a password or a private key".into(),
            ))
        }
    };
    let fingerprint = host.fingerprint.trim();
    let fingerprint = if fingerprint.is_empty() {
        None
    } else if fingerprint.starts_with("SHA256:") {
        Some(fingerprint)
    } else {
        return Err(ApiError::Invalid(
            "fingerprint must look like SHA256:...".into(),
        ));
    };
    let ns = namespaces::id_by_name(db, &host.namespace)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound(format!("namespace {}", host.namespace)))?;
    let row = hosts::NewSealedHost {
        name: &host.name,
        namespace_id: ns,
        address: host.address.trim(),
        port: host.port,
        user: host.user.trim(),
        auth_kind: kind,
        secret,
        fingerprint,
    };
    match hosts::create_sealed(db, secrets, row).await {
        Ok(_) => {
            audit(db, actor, "host.add", Some(&host.name), fingerprint).await;
            Ok(())
        }
        Err(e) if users::is_unique_violation(&e) => Err(ApiError::Invalid(format!(
            "host {} already exists",
            host.name
        ))),
        Err(e) => Err(internal(e)),
    }
}

#[async_trait]
impl Directory for DirectoryService {
    async fn targets(&self, user: &UserInfo) -> Result<Vec<TargetInfo>, ApiError> {
        let core = &self.0;
        let rows = if user.is_admin() {
            hosts::list(&core.db).await
        } else {
            hosts::visible_to(&core.db, user.id).await
        }
        .map_err(internal)?;
        let mut out = Vec::new();
        if local_allowed(core.config.local_target, user) {
            out.push(TargetInfo {
                name: LOCAL_TARGET.into(),
                namespace: String::new(),
                endpoint: "local shell".into(),
            });
        }
        out.extend(rows.into_iter().map(|h| TargetInfo {
            endpoint: format!("{}@{}:{}", h.user, h.address, h.port),
            name: h.name,
            namespace: h.namespace,
        }));
        Ok(out)
    }

    async fn namespaces(&self) -> Result<Vec<NamespaceInfo>, ApiError> {
        namespaces::list(&self.0.db).await.map_err(internal)
    }

    async fn add_namespace(&self, actor: &Caller, name: &str) -> Result<(), ApiError> {
        check_name("namespace", name)?;
        match namespaces::create(&self.0.db, name).await {
            Ok(_) => {
                audit(
                    &self.0.db,
                    Some(&actor.user.name),
                    "namespace.add",
                    Some(name),
                    None,
                )
                .await;
                Ok(())
            }
            Err(e) if users::is_unique_violation(&e) => Err(ApiError::Invalid(format!(
                "namespace {name} already exists"
            ))),
            Err(e) => Err(internal(e)),
        }
    }

    async fn grant(&self, actor: &Caller, namespace: &str, user: &str) -> Result<(), ApiError> {
        let (ns, uid) = ns_and_user(&self.0, namespace, user).await?;
        namespaces::grant(&self.0.db, ns, uid)
            .await
            .map_err(internal)?;
        audit(
            &self.0.db,
            Some(&actor.user.name),
            "namespace.grant",
            Some(namespace),
            Some(user),
        )
        .await;
        Ok(())
    }

    async fn revoke(&self, actor: &Caller, namespace: &str, user: &str) -> Result<(), ApiError> {
        let (ns, uid) = ns_and_user(&self.0, namespace, user).await?;
        namespaces::revoke(&self.0.db, ns, uid)
            .await
            .map_err(internal)?;
        // At once here; the watcher would notice within its poll interval.
        self.0.hint_changed();
        crate::revocation::close_revoked_sessions(&self.0)
            .await
            .map_err(internal)?;
        audit(
            &self.0.db,
            Some(&actor.user.name),
            "namespace.revoke",
            Some(namespace),
            Some(user),
        )
        .await;
        Ok(())
    }

    async fn hosts(&self) -> Result<Vec<HostInfo>, ApiError> {
        Ok(hosts::list(&self.0.db)
            .await
            .map_err(internal)?
            .iter()
            .map(hosts::HostRow::info)
            .collect())
    }

    async fn probe(&self, address: &str, port: u16) -> Result<String, ApiError> {
        if address.trim().is_empty() || port == 0 {
            return Err(ApiError::Invalid("address and port are required".into()));
        }
        term::probe_host_key(address.trim(), port, PROBE_TIMEOUT)
            .await
            .map_err(|e| probe_error(address, port, e))
    }

    async fn add_host(&self, actor: &Caller, host: NewHost) -> Result<(), ApiError> {
        if host.fingerprint.trim().is_empty() {
            return Err(ApiError::Invalid(
                "probe the host and confirm its fingerprint first".into(),
            ));
        }
        insert_host(&self.0.db, &self.0.secrets, &host, Some(&actor.user.name)).await
    }

    async fn delete_host(&self, actor: &Caller, name: &str) -> Result<(), ApiError> {
        if !hosts::delete(&self.0.db, name).await.map_err(internal)? {
            return Err(ApiError::NotFound(format!("host {name}")));
        }
        // At once here; the watcher would notice within its poll interval.
        self.0.hint_changed();
        crate::revocation::close_revoked_sessions(&self.0)
            .await
            .map_err(internal)?;
        audit(
            &self.0.db,
            Some(&actor.user.name),
            "host.delete",
            Some(name),
            None,
        )
        .await;
        Ok(())
    }
}

async fn ns_and_user(core: &Core, namespace: &str, user: &str) -> Result<(i64, i64), ApiError> {
    let ns = namespaces::id_by_name(&core.db, namespace)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound(format!("namespace {namespace}")))?;
    let u = users::by_name(&core.db, user)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound(format!("user {user}")))?;
    Ok((ns, u.id))
}
