//! Rows of `commands`: each line typed in a terminal session, with the guard's verdict, and their search.
use super::{now_rfc3339, stored_time, Backend, Db, DbError};

/// What the guard decided about a typed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Verdict {
    /// A rule allowed it.
    Allow,
    /// A rule refused it: it never reached the target.
    Deny,
    /// It went through, flagged by a rule.
    Warn,
    /// No guard looked at it (none configured, or it could not tell).
    Unchecked,
}

impl Verdict {
    /// Every verdict, as stored and as the command line spells them.
    pub const NAMES: [&'static str; 4] = ["allow", "deny", "warn", "unchecked"];

    /// The value stored in the `verdict` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Warn => "warn",
            Verdict::Unchecked => "unchecked",
        }
    }

    /// Reads a stored or typed value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Verdict::Allow),
            "deny" => Some(Verdict::Deny),
            "warn" => Some(Verdict::Warn),
            "unchecked" => Some(Verdict::Unchecked),
            _ => None,
        }
    }
}

/// A line to log (its time is set when it is stored).
#[derive(Debug, Clone)]
pub struct NewCommand {
    /// The terminal session (`terminal_sessions.id`).
    pub session_id: String,
    /// Who typed it.
    pub user_id: i64,
    /// Host name or `local`.
    pub target: String,
    /// The host's namespace; empty for the local target.
    pub namespace: String,
    /// Milliseconds into the session's recording, to play it from there.
    pub offset_ms: i64,
    /// The line as typed.
    pub line: String,
    /// The guard's decision.
    pub verdict: Verdict,
    /// The rule that decided, if one did.
    pub rule_id: Option<i64>,
    /// That rule as it read then (it may change or go), or why there was none.
    pub rule: Option<String>,
}

/// Stores a typed line; returns its id.
pub async fn insert(db: &Db, c: &NewCommand) -> Result<i64, DbError> {
    let (id,): (i64,) = crate::on_db!(db, p => sqlx::query_as(
        "INSERT INTO commands (session_id, user_id, target, namespace, at, offset_ms, line, verdict, rule_id, rule) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(&c.session_id)
    .bind(c.user_id)
    .bind(&c.target)
    .bind(&c.namespace)
    .bind(now_rfc3339())
    .bind(c.offset_ms)
    .bind(&c.line)
    .bind(c.verdict)
    .bind(c.rule_id)
    .bind(&c.rule)
    .fetch_one(p)
    .await)?;
    Ok(id)
}

/// A logged line, with its user's name.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CommandRow {
    /// Line id (grows with every line).
    pub id: i64,
    /// The terminal session.
    pub session_id: String,
    /// Who typed it.
    pub user_id: i64,
    /// Their name (`None` if the user row is gone).
    pub user: Option<String>,
    /// Host name or `local`.
    pub target: String,
    /// The host's namespace; empty for the local target.
    pub namespace: String,
    /// RFC 3339 time it was typed.
    pub at: String,
    /// Milliseconds into the session's recording.
    pub offset_ms: i64,
    /// The line as typed.
    pub line: String,
    /// The guard's decision.
    pub verdict: Verdict,
    /// The rule that decided, if any (it may have been removed since).
    pub rule_id: Option<i64>,
    /// The rule as it read then, or the reason there was none.
    pub rule: Option<String>,
}

/// What to search for; every `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct CommandFilter {
    /// Typed by the user of this name.
    pub user: Option<String>,
    /// On this target (host name or `local`).
    pub host: Option<String>,
    /// In this namespace (`""`: the local target).
    pub namespace: Option<String>,
    /// With this verdict.
    pub verdict: Option<Verdict>,
    /// Lines containing this text (case-insensitive for ASCII letters; `%`
    /// and `_` are plain characters).
    pub text: Option<String>,
    /// Typed at or after (RFC 3339).
    pub since: Option<String>,
    /// Typed before (RFC 3339).
    pub until: Option<String>,
    /// In this terminal session.
    pub session_id: Option<String>,
    /// At most this many rows (negative: none).
    pub limit: i64,
    /// Only lines older than this id: the next page after a page's last row.
    pub before_id: Option<i64>,
}

/// `text` as a `LIKE ... ESCAPE '\'` pattern matching it anywhere.
fn like_substring(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Logged lines matching `f`, newest first. A `since` or `until` that is
/// not RFC 3339 is [`DbError::BadTime`].
pub async fn search(db: &Db, f: &CommandFilter) -> Result<Vec<CommandRow>, DbError> {
    let since = f.since.as_deref().map(stored_time).transpose()?;
    let until = f.until.as_deref().map(stored_time).transpose()?;
    // SQLite's LIKE ignores ASCII case; Postgres needs ILIKE for the same.
    let like = match db.backend() {
        Backend::Sqlite => " AND c.line LIKE ",
        Backend::Postgres => " AND c.line ILIKE ",
    };
    Ok(crate::on_db!(db, p => {
    let mut q = sqlx::QueryBuilder::new(
        "SELECT c.id, c.session_id, c.user_id, u.name AS user, c.target, c.namespace, c.at, \
         c.offset_ms, c.line, c.verdict, c.rule_id, c.rule \
         FROM commands c LEFT JOIN users u ON u.id = c.user_id WHERE 1 = 1",
    );
    if let Some(v) = &f.user {
        q.push(" AND u.name = ").push_bind(v.clone());
    }
    if let Some(v) = &f.host {
        q.push(" AND c.target = ").push_bind(v.clone());
    }
    if let Some(v) = &f.namespace {
        q.push(" AND c.namespace = ").push_bind(v.clone());
    }
    if let Some(v) = f.verdict {
        q.push(" AND c.verdict = ").push_bind(v);
    }
    if let Some(v) = &f.text {
        q.push(like)
            .push_bind(like_substring(v))
            .push(" ESCAPE '\\'");
    }
    if let Some(v) = &since {
        q.push(" AND c.at >= ").push_bind(v.clone());
    }
    if let Some(v) = &until {
        q.push(" AND c.at < ").push_bind(v.clone());
    }
    if let Some(v) = &f.session_id {
        q.push(" AND c.session_id = ").push_bind(v.clone());
    }
    if let Some(v) = f.before_id {
        q.push(" AND c.id < ").push_bind(v);
    }
    // Ids grow with time and, unlike `at`, never tie: the order pages by.
    q.push(" ORDER BY c.id DESC LIMIT ")
        .push_bind(f.limit.max(0));
    q.build_query_as::<CommandRow>().fetch_all(p).await
    })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{test_db, users};

    fn line(session: &str, user_id: i64, target: &str, line: &str, verdict: Verdict) -> NewCommand {
        NewCommand {
            session_id: session.into(),
            user_id,
            target: target.into(),
            namespace: if target == "local" { "" } else { "ops" }.into(),
            offset_ms: 1500,
            line: line.into(),
            verdict,
            rule_id: (verdict == Verdict::Deny).then_some(7),
            rule: (verdict == Verdict::Deny).then(|| "rule 7: deny word rm".to_string()),
        }
    }

    fn lines(rows: &[CommandRow]) -> Vec<&str> {
        rows.iter().map(|r| r.line.as_str()).collect()
    }

    #[tokio::test]
    async fn lines_are_stored_and_found_by_every_filter() {
        let (_dir, db) = test_db().await;
        let alice = users::create(&db, "alice", "x", app::model::Role::Member)
            .await
            .unwrap();
        let bob = users::create(&db, "bob", "x", app::model::Role::Member)
            .await
            .unwrap();
        let all = [
            line("s1", alice, "web", "ls -l", Verdict::Allow),
            line("s1", alice, "web", "rm -rf /", Verdict::Deny),
            line("s2", bob, "local", "echo 100%_done", Verdict::Unchecked),
            line("s3", bob, "db", "SELECT 1", Verdict::Warn),
        ];
        let mut ids = Vec::new();
        for c in &all {
            ids.push(insert(&db, c).await.unwrap());
        }
        let find = |f: CommandFilter| {
            let db = db.clone();
            // The tests' default: room for every line.
            let limit = if f.limit == 0 { 100 } else { f.limit };
            async move { search(&db, &CommandFilter { limit, ..f }).await.unwrap() }
        };

        let every = find(CommandFilter::default()).await;
        assert_eq!(
            lines(&every),
            ["SELECT 1", "echo 100%_done", "rm -rf /", "ls -l"],
            "newest first"
        );
        let denied = &every[2];
        assert_eq!(denied.user.as_deref(), Some("alice"));
        assert_eq!(denied.session_id, "s1");
        assert_eq!(denied.offset_ms, 1500);
        assert_eq!(denied.rule_id, Some(7));
        assert_eq!(denied.rule.as_deref(), Some("rule 7: deny word rm"));
        assert!(
            super::super::stored_time(&denied.at).is_ok(),
            "{}",
            denied.at
        );

        let by = |user: &str| CommandFilter {
            user: Some(user.into()),
            ..Default::default()
        };
        assert_eq!(
            lines(&find(by("bob")).await),
            ["SELECT 1", "echo 100%_done"]
        );
        assert!(find(by("nobody")).await.is_empty());
        let host = find(CommandFilter {
            host: Some("web".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(lines(&host), ["rm -rf /", "ls -l"]);
        let local = find(CommandFilter {
            namespace: Some(String::new()),
            ..Default::default()
        })
        .await;
        assert_eq!(lines(&local), ["echo 100%_done"]);
        let warned = find(CommandFilter {
            verdict: Some(Verdict::Warn),
            ..Default::default()
        })
        .await;
        assert_eq!(lines(&warned), ["SELECT 1"]);
        let session = find(CommandFilter {
            session_id: Some("s1".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(session.len(), 2);

        let text = |t: &str| CommandFilter {
            text: Some(t.into()),
            ..Default::default()
        };
        assert_eq!(lines(&find(text("select")).await), ["SELECT 1"], "any case");
        assert_eq!(lines(&find(text("0%_d")).await), ["echo 100%_done"]);
        assert!(
            find(text("l%l")).await.is_empty(),
            "% is a plain character, not a wildcard"
        );
        assert!(find(text("l_")).await.is_empty(), "_ too");

        // Paging: a page, then the next one after its last row.
        let page = find(CommandFilter {
            limit: 3,
            ..Default::default()
        })
        .await;
        assert_eq!(page.len(), 3);
        let next = find(CommandFilter {
            before_id: Some(page[2].id),
            ..Default::default()
        })
        .await;
        assert_eq!(lines(&next), ["ls -l"]);
        assert_eq!(next[0].id, ids[0]);

        // Times.
        let later = find(CommandFilter {
            since: Some("2999-01-01T00:00:00Z".into()),
            ..Default::default()
        })
        .await;
        assert!(later.is_empty());
        let earlier = find(CommandFilter {
            until: Some("2999-01-01T00:00:00+05:00".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(earlier.len(), 4);
        let bad = search(
            &db,
            &CommandFilter {
                since: Some("soon".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await;
        assert!(matches!(bad, Err(DbError::BadTime(_))));
    }
}
