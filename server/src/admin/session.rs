//! `termroom session ...`: list live terminal sessions and ask the running server to end one.
use anyhow::{bail, Context};

use super::{
    open_db,
    table::{field, print_row},
    tell_nodes, user_names,
};
use crate::{
    cli::{SessionCmd, StoreArgs},
    db::{self, terminal_sessions},
};

/// Who a termination requested from the command line is recorded as.
const CLI_ACTOR: &str = "cli";

/// `termroom session ...`
pub async fn session(cmd: SessionCmd, store: &StoreArgs) -> anyhow::Result<()> {
    let db = open_db(store).await?;
    match cmd {
        SessionCmd::List => {
            let names = user_names(&db).await?;
            for s in terminal_sessions::live(&db).await? {
                print_row(&[
                    &field(&s.id),
                    &field(names.get(&s.user_id).map_or("?", String::as_str)),
                    &field(&s.target),
                    &field(&s.namespace),
                    &field(&s.started_at),
                    &field(&s.status),
                ]);
            }
        }
        SessionCmd::Terminate { id, reason } => {
            let reason = reason.trim();
            if reason.is_empty() {
                bail!("give a reason: --reason TEXT (it is kept in the audit trail)");
            }
            let row = terminal_sessions::by_id(&db, &id)
                .await?
                .with_context(|| format!("no session {id}"))?;
            if row.ended_at.is_some() {
                bail!("session {id} has ended already ({})", row.status);
            }
            if !terminal_sessions::request_termination(&db, &id, CLI_ACTOR, reason).await? {
                // Someone asked first, or it ended since it was read.
                let earlier = terminal_sessions::termination_requests(&db)
                    .await?
                    .into_iter()
                    .find(|r| r.id == id);
                match earlier {
                    Some(r) => bail!(
                        "the termination of session {id} was requested already by {}: {}",
                        r.by,
                        r.reason
                    ),
                    None => bail!("session {id} has ended already"),
                }
            }
            db::audit::record(
                &db,
                None,
                "session.terminate_requested",
                Some(&id),
                Some(reason),
            )
            .await
            .with_context(|| {
                format!("the termination of {id} was requested, but its audit event was not")
            })?;
            if tell_nodes(store).await {
                println!("termination of session {id} requested; the servers were told at once");
            } else {
                println!(
                    "termination of session {id} requested; the running server ends it within \
                     its change poll interval (serve --revocation-poll-ms, 2000 ms by default)"
                );
            }
        }
    }
    db.close().await;
    Ok(())
}
