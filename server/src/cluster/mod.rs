//! Several nodes on one Postgres database and one Redis broker: this node's identity, its claim in `nodes`, its heartbeat, and the sweep that marks a dead node's sessions `interrupted`.
pub mod broker;

use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::{
    db::{self, Db, DbError},
    secrets::SecretBox,
};

/// How often a node records that it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node not heard from for this long is dead: its id may be claimed again
/// and its running sessions are marked `interrupted`.
pub const DEAD_AFTER: Duration = Duration::from_secs(15);

/// What this node is in a cluster.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Unique among the nodes (`--node-id`).
    pub id: String,
    /// The base URL other nodes reach this one at (`--node-url`).
    pub url: String,
}

/// Why a node may not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "node id {0:?} is in use by a running node (its heartbeat is under {dead}s old); \
         give each node its own --node-id, or wait until that node's heartbeat is {dead}s old",
        dead = DEAD_AFTER.as_secs()
    )]
    IdInUse(String),
    #[error(
        "this node's secret key differs from node {0:?}'s: every node must use the same \
         secret key file (--secret-key-file or TERMROOM_SECRET_KEY)"
    )]
    KeyMismatch(String),
    #[error("several nodes need Postgres (--database-url postgres://…), not SQLite")]
    NotShared,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What a node's `key_check` seals: readable only with the same key.
const KEY_CHECK: &[u8] = b"termroom node key check";

/// This node's `key_check`: [`KEY_CHECK`] sealed with its key, bound to
/// its id (hex nonce `:` hex ciphertext).
fn key_check(secrets: &SecretBox, node: &str) -> Result<String, DbError> {
    let (nonce, ct) = secrets.seal_with(KEY_CHECK, node.as_bytes())?;
    Ok(format!("{}:{}", hex::encode(nonce), hex::encode(ct)))
}

/// Whether `check`, written by node `node`, opens with `secrets`.
fn same_key(secrets: &SecretBox, node: &str, check: &str) -> bool {
    let Some((nonce, ct)) = check.split_once(':') else {
        return false;
    };
    let (Ok(nonce), Ok(ct)) = (hex::decode(nonce), hex::decode(ct)) else {
        return false;
    };
    secrets
        .open_with(&nonce, &ct, node.as_bytes())
        .is_ok_and(|p| p == KEY_CHECK)
}

/// Unix seconds before which a heartbeat means the node is dead.
pub fn dead_before() -> i64 {
    db::now_unix() - i64::try_from(DEAD_AFTER.as_secs()).unwrap_or(15)
}

/// The URL of node `id` if its heartbeat is recent.
pub async fn live_node_url(db: &Db, id: &str) -> Result<Option<String>, DbError> {
    Ok(db::nodes::by_id(db, id)
        .await?
        .filter(|n| n.heartbeat_at >= dead_before())
        .map(|n| n.url))
}

/// Joins the cluster: checks that every live node uses the same secret key,
/// then claims `node.id` (refused while a live node holds it).
pub async fn join(db: &Db, secrets: &SecretBox, node: &NodeConfig) -> Result<(), JoinError> {
    if db.backend() != db::Backend::Postgres {
        return Err(JoinError::NotShared);
    }
    for other in db::nodes::alive(db, dead_before()).await? {
        if other.id != node.id && !same_key(secrets, &other.id, &other.key_check) {
            return Err(JoinError::KeyMismatch(other.id));
        }
    }
    let check = key_check(secrets, &node.id)?;
    if !db::nodes::claim(db, &node.id, &node.url, &check, dead_before()).await? {
        return Err(JoinError::IdInUse(node.id.clone()));
    }
    info!(node = %node.id, url = %node.url, "joined the cluster");
    Ok(())
}

/// Beats this node's heartbeat and marks the sessions of dead nodes
/// `interrupted`, every [`HEARTBEAT`], until aborted; `on_interrupted` is
/// told the ids swept (for their owners' sockets, if any are here).
pub fn spawn_heartbeat(db: Db, node: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = db::nodes::heartbeat(&db, &node).await {
                warn!("heartbeat: {e}");
            }
            match db::terminal_sessions::interrupt_dead_nodes(&db, dead_before()).await {
                Ok(ids) if !ids.is_empty() => {
                    info!(
                        sessions = ids.len(),
                        "sessions of a dead node marked interrupted"
                    );
                }
                Ok(_) => {}
                Err(e) => warn!("sweeping dead nodes' sessions: {e}"),
            }
        }
    })
}

/// Leaves the cluster on a clean stop: the id is free at once.
pub async fn leave(db: &Db, node: &str) {
    if let Err(e) = db::nodes::remove(db, node).await {
        warn!("leaving the cluster: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_check_opens_only_with_the_same_key_and_node() {
        let a = SecretBox::from_hex(&"11".repeat(32)).unwrap();
        let b = SecretBox::from_hex(&"22".repeat(32)).unwrap();
        let check = key_check(&a, "n1").unwrap();
        assert!(same_key(&a, "n1", &check));
        assert!(!same_key(&b, "n1", &check));
        assert!(!same_key(&a, "n2", &check), "bound to its node");
        assert!(!same_key(&a, "n1", "garbage"));
    }
}
