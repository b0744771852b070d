//! `termroom audit ...`: read the audit trail and search the log of typed commands.
use anyhow::Context;

use super::{
    open_db,
    table::{field, opt, print_row},
};
use crate::{
    cli::{AuditCmd, StoreArgs},
    db::{
        self,
        commands::{self, CommandFilter, Verdict},
        users,
    },
};

/// `termroom audit ...`
pub async fn audit(cmd: AuditCmd, store: &StoreArgs) -> anyhow::Result<()> {
    let db = open_db(store).await?;
    match cmd {
        AuditCmd::Commands {
            user,
            host,
            verdict,
            namespace,
            text,
            limit,
        } => {
            let verdict = verdict
                .map(|v| {
                    Verdict::parse(&v).with_context(|| {
                        format!("unknown verdict {v}; one of {}", Verdict::NAMES.join(", "))
                    })
                })
                .transpose()?;
            if let Some(name) = &user {
                // A misspelt name is an error, not an empty result.
                users::by_name(&db, name)
                    .await?
                    .with_context(|| format!("no user {name}"))?;
            }
            let filter = CommandFilter {
                user,
                host,
                namespace,
                verdict,
                text,
                limit,
                ..Default::default()
            };
            for c in commands::search(&db, &filter).await? {
                print_row(&[
                    &c.id.to_string(),
                    &field(&c.at),
                    &opt(c.user.as_deref()),
                    &field(&c.target),
                    c.verdict.as_str(),
                    &field(&c.line),
                    &opt(c.rule.as_deref()),
                ]);
            }
        }
        AuditCmd::Events { since, limit } => {
            for e in db::audit::list(&db, since.as_deref(), limit).await? {
                print_row(&[
                    &e.id.to_string(),
                    &field(&e.at),
                    &opt(e.actor.as_deref()),
                    &field(&e.action),
                    &opt(e.target.as_deref()),
                    &opt(e.detail.as_deref()),
                ]);
            }
        }
    }
    db.close().await;
    Ok(())
}
