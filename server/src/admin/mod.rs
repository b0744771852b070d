//! The admin subcommands (`termroom user|namespace|host|recording|guard|session|audit ...`):
//! they work on the database directly, so scripts can prepare (and watch) a server.
mod audit;
mod guard;
mod session;
mod table;

use std::io::Read;

use anyhow::{bail, Context};
use app::model::{NewHost, Role};

use crate::{
    auth::password,
    cli::{HostCmd, NamespaceCmd, RecordingCmd, Retention, StoreArgs, UserCmd},
    db::{self, hosts, namespaces, users, Db},
    secrets::SecretBox,
    services::{
        accounts::create_user,
        directory::{insert_host, probe_error, PROBE_TIMEOUT},
    },
    term,
};

pub use self::{audit::audit, guard::guard, session::session};

/// The database of `store`, created and migrated if needed.
async fn open_db(store: &StoreArgs) -> anyhow::Result<Db> {
    db::create_data_dir(&store.data_dir)
        .with_context(|| format!("creating {}", store.data_dir.display()))?;
    Ok(db::open(store.database_url.as_deref(), &store.data_dir).await?)
}

/// Whom the nodes see a hint from the command line as: not a node id (those
/// have no ':'), so no node takes it for its own.
const HINT_SENDER: &str = "command-line:";

/// After a change the running servers act on (who may do what, hosts,
/// guard rules, a termination request): with `--broker`, tells every node
/// at once instead of leaving it to their poll of the database. Whether
/// they were told; an unreachable broker is a warning, not a failure: the
/// change is stored and they find it at their next poll.
async fn tell_nodes(store: &StoreArgs) -> bool {
    let Some(url) = store.broker.as_deref() else {
        return false;
    };
    let sender = format!("{HINT_SENDER}{}", std::process::id());
    match crate::cluster::broker::hint_changed_once(url, &sender).await {
        Ok(_) => true,
        Err(e) => {
            eprintln!(
                "termroom: warning: the change is stored, but the servers were not told at \
                 once ({e}); they see it at their next poll of the database"
            );
            false
        }
    }
}

/// Reads a secret from standard input (one line, or all of it for keys).
fn read_stdin_line() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading standard input")?;
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.is_empty() {
        bail!("expected the password on standard input");
    }
    Ok(line)
}

/// Asks on the terminal whether to replace the pinned key of `name`; `yes`
/// answers for scripts. Without a terminal on standard input (and no `yes`)
/// nothing is replaced.
fn confirm_replace(name: &str, yes: bool) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "the pin of {name} was NOT replaced: standard input is not a terminal, so nobody \
             confirmed it; run it interactively, or pass --yes to replace it from a script"
        );
    }
    eprint!("Replace the pinned key of {name}? [y/N] ");
    std::io::stderr().flush().context("writing the question")?;
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("the pin of {name} was not replaced");
    }
}

/// `termroom user ...`
pub async fn user(cmd: UserCmd, store: &StoreArgs) -> anyhow::Result<()> {
    let db = open_db(store).await?;
    let changes = !matches!(cmd, UserCmd::List);
    match cmd {
        UserCmd::Add { name, role } => {
            let role = Role::parse(&role).context("role must be admin or member")?;
            let pw = read_stdin_line()?;
            create_user(&db, &name, &pw, role)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created {} user {name}", role.as_str());
        }
        UserCmd::Passwd { name } => {
            let pw = read_stdin_line()?;
            if pw.chars().count() < password::MIN_PASSWORD_CHARS {
                bail!(
                    "password must have at least {} characters",
                    password::MIN_PASSWORD_CHARS
                );
            }
            let hash = password::hash(&pw).await?;
            if !users::set_password(&db, &name, &hash).await? {
                bail!("no user {name}");
            }
            println!("password of {name} changed; their login sessions are ended");
        }
        UserCmd::List => {
            for u in users::list(&db).await? {
                let state = if u.disabled { "disabled" } else { "active" };
                println!(
                    "{}\t{}\t{}\t{}",
                    u.name,
                    u.role.as_str(),
                    state,
                    u.namespaces.join(",")
                );
            }
        }
        UserCmd::Disable { name } => {
            if users::disable(&db, &name).await?.is_none() {
                bail!("no user {name}");
            }
            println!("disabled {name}");
        }
    }
    if changes {
        tell_nodes(store).await;
    }
    db.close().await;
    Ok(())
}

/// `termroom namespace ...`
pub async fn namespace(cmd: NamespaceCmd, store: &StoreArgs) -> anyhow::Result<()> {
    let db = open_db(store).await?;
    let lookup = |db: Db, ns: String, user: String| async move {
        let n = namespaces::id_by_name(&db, &ns)
            .await?
            .with_context(|| format!("no namespace {ns}"))?;
        let u = users::by_name(&db, &user)
            .await?
            .with_context(|| format!("no user {user}"))?;
        anyhow::Ok((n, u.id))
    };
    let changes = !matches!(cmd, NamespaceCmd::List);
    match cmd {
        NamespaceCmd::Add { name } => {
            crate::services::check_name("namespace", &name).map_err(|e| anyhow::anyhow!("{e}"))?;
            namespaces::create(&db, &name).await.map_err(|e| {
                if users::is_unique_violation(&e) {
                    anyhow::anyhow!("namespace {name} already exists")
                } else {
                    e.into()
                }
            })?;
            println!("created namespace {name}");
        }
        NamespaceCmd::Grant { namespace, user } => {
            let (n, u) = lookup(db.clone(), namespace.clone(), user.clone()).await?;
            namespaces::grant(&db, n, u).await?;
            println!("{user} is a member of {namespace}");
        }
        NamespaceCmd::Revoke { namespace, user } => {
            let (n, u) = lookup(db.clone(), namespace.clone(), user.clone()).await?;
            namespaces::revoke(&db, n, u).await?;
            println!("{user} is no longer a member of {namespace}");
        }
        NamespaceCmd::List => {
            for ns in namespaces::list(&db).await? {
                println!("{}\t{}", ns.name, ns.members.join(","));
            }
        }
        NamespaceCmd::Recording {
            name,
            policy,
            retention,
            shared,
            input,
        } => {
            let id = namespaces::id_by_name(&db, &name)
                .await?
                .with_context(|| format!("no namespace {name}"))?;
            let mut settings = namespaces::recording_settings(&db, &name).await?;
            if let Some(p) = policy {
                settings.policy = term::RecordingPolicy::parse(&p.replace('-', "_"))
                    .with_context(|| format!("unknown policy {p}"))?;
            }
            match retention {
                Some(Retention::Forever) => settings.retention_secs = None,
                Some(Retention::Secs(s)) => settings.retention_secs = Some(s),
                None => {}
            }
            if let Some(s) = shared {
                settings.shared = s;
            }
            if let Some(i) = input {
                settings.input = i;
            }
            namespaces::set_recording_settings(&db, id, &settings).await?;
            let keep = settings
                .retention_secs
                .map_or_else(|| "forever".to_string(), retention_text);
            println!(
                "{name}: policy {}, retention {keep}, shared with members: {}, input: {}",
                settings.policy.as_str().replace('_', "-"),
                if settings.shared { "yes" } else { "no" },
                if settings.input {
                    "recorded"
                } else {
                    "not recorded"
                }
            );
        }
    }
    if changes {
        tell_nodes(store).await;
    }
    db.close().await;
    Ok(())
}

/// `termroom host ...`
pub async fn host(cmd: HostCmd, store: &StoreArgs) -> anyhow::Result<()> {
    let db = open_db(store).await?;
    let changes = !matches!(cmd, HostCmd::List);
    match cmd {
        HostCmd::Add {
            name,
            namespace,
            address,
            port,
            user,
            password_stdin,
            key_file,
        } => {
            let secrets = SecretBox::load(store.secret_key_file.as_deref(), &store.data_dir)?;
            let (password, private_key) = match (password_stdin, key_file) {
                (true, None) => (Some(read_stdin_line()?), None),
                (false, Some(f)) => (
                    None,
                    Some(
                        std::fs::read_to_string(&f)
                            .with_context(|| format!("reading {}", f.display()))?,
                    ),
                ),
                _ => bail!("give --password-stdin or --key-file"),
            };
            let new = NewHost {
                name: name.clone(),
                namespace,
                address,
                port,
                user,
                password,
                private_key,
                fingerprint: String::new(),
            };
            insert_host(&db, &secrets, &new, None)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("added host {name}; pin its key with `termroom host trust {name}`");
        }
        HostCmd::Trust { name, yes } => {
            let h = hosts::by_name(&db, &name)
                .await?
                .with_context(|| format!("no host {name}"))?;
            let fp = term::probe_host_key(&h.address, h.port, PROBE_TIMEOUT)
                .await
                .map_err(|e| anyhow::anyhow!("{}", probe_error(&h.address, h.port, e)))?;
            match h.fingerprint.as_deref() {
                Some(pinned) if pinned == fp => {
                    eprintln!("host {name}: this key is pinned already");
                }
                Some(pinned) => {
                    eprintln!(
                        "host {name} ({}:{}) presents a DIFFERENT key than the one pinned:\n  pinned:   {pinned}\n  presents: {fp}\n\
                         If the host was not reinstalled or re-keyed on purpose, someone may be in between.",
                        h.address, h.port
                    );
                    confirm_replace(&name, yes)?;
                    hosts::set_fingerprint(&db, &name, &fp).await?;
                    let detail = format!("{pinned} -> {fp}");
                    let _ =
                        db::audit::record(&db, None, "host.retrust", Some(&name), Some(&detail))
                            .await;
                }
                None => {
                    hosts::set_fingerprint(&db, &name, &fp).await?;
                    let _ =
                        db::audit::record(&db, None, "host.trust", Some(&name), Some(&fp)).await;
                }
            }
            println!("{fp}");
        }
        HostCmd::List => {
            for h in hosts::list(&db).await? {
                println!(
                    "{}\t{}\t{}@{}:{}\t{}\t{}",
                    h.name,
                    h.namespace,
                    h.user,
                    h.address,
                    h.port,
                    h.auth_kind,
                    h.fingerprint.as_deref().unwrap_or("(untrusted)")
                );
            }
        }
        HostCmd::Delete { name } => {
            if !hosts::delete(&db, &name).await? {
                bail!("no host {name}");
            }
            println!("deleted host {name}");
        }
    }
    if changes {
        tell_nodes(store).await;
    }
    db.close().await;
    Ok(())
}

/// A retention period as `--retention` takes it: `90d`, `12h`, `30m`, `45s`.
fn retention_text(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `termroom recording ...`
pub async fn recording(cmd: RecordingCmd, store: &StoreArgs) -> anyhow::Result<()> {
    let db = open_db(store).await?;
    match cmd {
        RecordingCmd::List { user, limit } => {
            let user_id = match user {
                Some(name) => Some(
                    users::by_name(&db, &name)
                        .await?
                        .with_context(|| format!("no user {name}"))?
                        .id,
                ),
                None => None,
            };
            let filter = db::terminal_sessions::RecordingFilter {
                user_id,
                ..Default::default()
            };
            let names = user_names(&db).await?;
            for r in db::terminal_sessions::recordings(&db, &filter, limit.max(0), 0).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    r.id,
                    names.get(&r.user_id).map_or("?", String::as_str),
                    r.target,
                    r.started_at,
                    r.status,
                    r.recording_size.unwrap_or(0)
                );
            }
        }
        RecordingCmd::Export { id, format } => {
            let format = crate::recordings::export::Format::parse(&format)
                .with_context(|| format!("unknown format {format}"))?;
            let row = db::terminal_sessions::by_id(&db, &id)
                .await?
                .filter(|r| {
                    r.recording_id.is_some() && r.recording_state.as_deref() != Some("deleted")
                })
                .with_context(|| format!("no recording {id}"))?;
            let file = store
                .recordings()
                .open(row.recording_id.as_deref().unwrap_or_default())
                .with_context(|| format!("opening recording {id}"))?;
            let stdout = std::io::stdout();
            crate::recordings::export::export(
                format,
                std::io::BufReader::new(file),
                std::io::BufWriter::new(stdout.lock()),
            )
            .with_context(|| format!("exporting recording {id}"))?;
        }
    }
    db.close().await;
    Ok(())
}

/// Every user's name by id, for listings of rows that hold a user id.
async fn user_names(db: &Db) -> anyhow::Result<std::collections::HashMap<i64, String>> {
    Ok(users::list(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect())
}
