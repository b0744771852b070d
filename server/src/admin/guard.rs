//! `termroom guard ...`: add, list and remove a namespace's command guard rules.
use anyhow::{bail, Context};

use super::{
    open_db,
    table::{field, opt, print_row},
    tell_nodes,
};
use crate::{
    cli::{GuardCmd, StoreArgs},
    db::{
        self,
        guard_rules::{self, RuleAction, RuleKind},
    },
};

/// `termroom guard ...`
pub async fn guard(cmd: GuardCmd, store: &StoreArgs) -> anyhow::Result<()> {
    let db = open_db(store).await?;
    let changes = !matches!(cmd, GuardCmd::List { .. });
    match cmd {
        GuardCmd::Add {
            namespace,
            action,
            pattern,
            regex,
            priority,
        } => {
            let action = RuleAction::parse(&action).with_context(|| {
                format!(
                    "unknown action {action}; one of {}",
                    RuleAction::NAMES.join(", ")
                )
            })?;
            let kind = if regex {
                RuleKind::Regex
            } else {
                RuleKind::Word
            };
            // Checked (pattern, namespace) before anything is stored.
            let id =
                guard_rules::add(&db, &namespace, priority, kind, &pattern, action, None).await?;
            let rule = guard_rules::by_id(&db, id)
                .await?
                .with_context(|| format!("rule {id} was added but cannot be read back"))?;
            db::audit::record(
                &db,
                None,
                "guard.rule_added",
                Some(&namespace),
                Some(&rule.describe()),
            )
            .await
            .with_context(|| format!("rule {id} was added, but its audit event was not"))?;
            println!("{id}");
        }
        GuardCmd::List { namespace } => {
            for r in guard_rules::list(&db, &namespace).await? {
                print_row(&[
                    &r.id.to_string(),
                    &r.priority.to_string(),
                    r.action.as_str(),
                    r.kind.as_str(),
                    &field(&r.pattern),
                    &opt(Some(&r.created_at)),
                ]);
            }
        }
        GuardCmd::Remove { id } => {
            let Some(rule) = guard_rules::remove(&db, id).await? else {
                bail!("no guard rule {id}");
            };
            db::audit::record(
                &db,
                None,
                "guard.rule_removed",
                Some(&rule.namespace),
                Some(&rule.describe()),
            )
            .await
            .with_context(|| format!("rule {id} was removed, but its audit event was not"))?;
            println!("removed {}", rule.describe());
        }
    }
    if changes {
        tell_nodes(store).await;
    }
    db.close().await;
    Ok(())
}
