//! Rows of `guard_rules` (the command guard's rules per namespace) and what a storable pattern is.
use super::{now_rfc3339, Db, DbError};

/// How a rule's pattern matches a typed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum RuleKind {
    /// A whole word of the line.
    Word,
    /// A regular expression (Rust `regex` syntax) anywhere in the line.
    Regex,
}

impl RuleKind {
    /// The value stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Word => "word",
            RuleKind::Regex => "regex",
        }
    }
}

/// What the guard does with a line a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum RuleAction {
    /// Let it through, and stop looking at later rules.
    Allow,
    /// Refuse it.
    Deny,
    /// Let it through, flagged.
    Warn,
}

impl RuleAction {
    /// Every action, as the command line spells them.
    pub const NAMES: [&'static str; 3] = ["allow", "deny", "warn"];

    /// The value stored in the `action` column.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Allow => "allow",
            RuleAction::Deny => "deny",
            RuleAction::Warn => "warn",
        }
    }

    /// Reads a stored or typed value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(RuleAction::Allow),
            "deny" => Some(RuleAction::Deny),
            "warn" => Some(RuleAction::Warn),
            _ => None,
        }
    }
}

impl From<RuleAction> for crate::guard::Action {
    fn from(a: RuleAction) -> Self {
        match a {
            RuleAction::Allow => crate::guard::Action::Allow,
            RuleAction::Deny => crate::guard::Action::Deny,
            RuleAction::Warn => crate::guard::Action::Warn,
        }
    }
}

/// Checks a pattern before it is stored with the guard's own rule compiler
/// ([`crate::guard::Rule::new`]), so that only rules running servers can
/// apply are stored: not empty, at most
/// [`crate::guard::rules::MAX_PATTERN_BYTES`]; a word is one command name
/// (no whitespace, shell characters or quotes, not a shell keyword); a regex
/// compiles within [`crate::guard::rules::REGEX_SIZE_LIMIT`].
pub fn validate(kind: RuleKind, pattern: &str) -> Result<(), crate::guard::RuleError> {
    let action = crate::guard::Action::Deny; // any: the action cannot make a rule invalid
    crate::guard::Rule::new(0, 0, pattern, kind == RuleKind::Regex, action).map(|_| ())
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GuardRuleRow {
    /// Rule id.
    pub id: i64,
    /// Name of the namespace it applies in.
    pub namespace: String,
    /// Order of evaluation: lower first (ties: the older rule first).
    pub priority: i64,
    /// How the pattern matches.
    pub kind: RuleKind,
    /// The word or regex.
    pub pattern: String,
    /// What a match does.
    pub action: RuleAction,
    /// RFC 3339 time it was added.
    pub created_at: String,
    /// User name that added it; `None` for the command line.
    pub created_by: Option<String>,
}

impl GuardRuleRow {
    /// The rule in one line, for audit details and command verdicts.
    pub fn describe(&self) -> String {
        format!(
            "rule {}: {} {} {} (priority {}, namespace {})",
            self.id,
            self.action.as_str(),
            self.kind.as_str(),
            self.pattern,
            self.priority,
            self.namespace
        )
    }
}

/// The `SELECT` of [`GuardRuleRow`]s (`r`: the rule, `n`: its namespace).
const SELECT: &str = "SELECT r.id, n.name AS namespace, r.priority, r.kind, r.pattern, r.action, r.created_at, r.created_by \
     FROM guard_rules r JOIN namespaces n ON n.id = r.namespace_id";

/// Namespace `name`'s id, or [`DbError::NoNamespace`].
async fn namespace_id(db: &Db, name: &str) -> Result<i64, DbError> {
    super::namespaces::id_by_name(db, name)
        .await?
        .ok_or_else(|| DbError::NoNamespace(name.to_string()))
}

/// Adds a rule to namespace `namespace` after [`validate`]; returns its id.
/// `created_by` is a user name (`None` for the command line).
pub async fn add(
    db: &Db,
    namespace: &str,
    priority: i64,
    kind: RuleKind,
    pattern: &str,
    action: RuleAction,
    created_by: Option<&str>,
) -> Result<i64, DbError> {
    validate(kind, pattern)?;
    let ns = namespace_id(db, namespace).await?;
    let (id,): (i64,) = crate::on_db!(db, p => sqlx::query_as(
        "INSERT INTO guard_rules (namespace_id, priority, kind, pattern, action, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(ns)
    .bind(priority)
    .bind(kind)
    .bind(pattern)
    .bind(action)
    .bind(now_rfc3339())
    .bind(created_by)
    .fetch_one(p)
    .await)?;
    Ok(id)
}

/// Namespace `namespace`'s rules in the order they apply (priority, then id);
/// [`DbError::NoNamespace`] if it does not exist.
pub async fn list(db: &Db, namespace: &str) -> Result<Vec<GuardRuleRow>, DbError> {
    let ns = namespace_id(db, namespace).await?;
    list_for_namespace_id(db, ns).await
}

/// The rules of namespace `namespace_id`, in the order they apply.
pub async fn list_for_namespace_id(
    db: &Db,
    namespace_id: i64,
) -> Result<Vec<GuardRuleRow>, DbError> {
    Ok(
        crate::on_db!(db, p => sqlx::query_as::<_, GuardRuleRow>(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE r.namespace_id = $1 ORDER BY r.priority, r.id"
        )))
        .bind(namespace_id)
        .fetch_all(p)
        .await)?,
    )
}

/// One rule by id.
pub async fn by_id(db: &Db, id: i64) -> Result<Option<GuardRuleRow>, DbError> {
    Ok(
        crate::on_db!(db, p => sqlx::query_as::<_, GuardRuleRow>(sqlx::AssertSqlSafe(format!("{SELECT} WHERE r.id = $1")))
            .bind(id)
            .fetch_optional(p)
            .await)?,
    )
}

/// Removes rule `id`; returns it as it was, or `None` if there was none.
pub async fn remove(db: &Db, id: i64) -> Result<Option<GuardRuleRow>, DbError> {
    crate::on_db!(db, p => {
    let mut tx = p.begin().await?;
    let Some(row) =
        sqlx::query_as::<_, GuardRuleRow>(sqlx::AssertSqlSafe(format!("{SELECT} WHERE r.id = $1")))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Ok(None);
    };
    let deleted = sqlx::query("DELETE FROM guard_rules WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    // Removed by someone else between the read and the delete: not ours.
    Ok((deleted == 1).then_some(row))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{namespaces, test_db};

    async fn counter(db: &Db) -> i64 {
        crate::on_db!(db, p => sqlx::query_scalar("SELECT counter FROM changes WHERE id = 1")
            .fetch_one(p)
            .await)
        .unwrap()
    }

    #[test]
    fn patterns_are_checked_before_they_are_stored() {
        use crate::guard::{
            rules::{MAX_PATTERN_BYTES, REGEX_SIZE_LIMIT},
            RuleError::*,
        };
        assert_eq!(validate(RuleKind::Word, "rm"), Ok(()));
        assert_eq!(validate(RuleKind::Word, "--force"), Ok(()));
        assert_eq!(validate(RuleKind::Word, ""), Err(Empty));
        assert_eq!(validate(RuleKind::Regex, ""), Err(Empty));
        let not_a_word = |p: &str| matches!(validate(RuleKind::Word, p), Err(NotAWord { .. }));
        for p in ["rm -rf", "rm\t", "a\u{1b}b"] {
            assert!(not_a_word(p), "{p:?}");
        }
        for c in [';', '|', '&', '$', '(', ')', '<', '>', '`', '"', '\'', '\\'] {
            assert!(not_a_word(&format!("x{c}y")), "{c}");
        }
        assert_eq!(validate(RuleKind::Regex, r"rm\s+-rf\s+/"), Ok(()));
        assert!(matches!(
            validate(RuleKind::Regex, "(unclosed"),
            Err(BadRegex(_))
        ));
        assert_eq!(
            validate(RuleKind::Regex, r"\w{1000}\w{1000}"),
            Err(RegexTooBig {
                limit: REGEX_SIZE_LIMIT
            })
        );
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        assert!(matches!(
            validate(RuleKind::Regex, &long),
            Err(TooLong { len, .. }) if len == MAX_PATTERN_BYTES + 1
        ));
        assert_eq!(
            validate(RuleKind::Word, &long[1..]),
            Ok(()),
            "the limit itself is allowed"
        );
    }

    #[tokio::test]
    async fn rules_are_added_listed_in_order_and_removed() {
        let (_dir, db) = test_db().await;
        namespaces::create(&db, "ops").await.unwrap();
        let other = namespaces::create(&db, "dev").await.unwrap();
        let before = counter(&db).await;
        let late = add(
            &db,
            "ops",
            200,
            RuleKind::Word,
            "reboot",
            RuleAction::Warn,
            None,
        )
        .await
        .unwrap();
        let first = add(
            &db,
            "ops",
            10,
            RuleKind::Regex,
            r"rm\s+-rf",
            RuleAction::Deny,
            Some("alice"),
        )
        .await
        .unwrap();
        let tie = add(
            &db,
            "ops",
            200,
            RuleKind::Word,
            "ls",
            RuleAction::Allow,
            None,
        )
        .await
        .unwrap();
        add(&db, "dev", 1, RuleKind::Word, "x", RuleAction::Deny, None)
            .await
            .unwrap();
        assert!(counter(&db).await >= before + 4, "inserts bump the counter");

        let rules = list(&db, "ops").await.unwrap();
        let ids: Vec<i64> = rules.iter().map(|r| r.id).collect();
        assert_eq!(ids, [first, late, tie], "priority, then age");
        assert_eq!(rules[0].kind, RuleKind::Regex);
        assert_eq!(rules[0].action, RuleAction::Deny);
        assert_eq!(rules[0].pattern, r"rm\s+-rf");
        assert_eq!(rules[0].namespace, "ops");
        assert_eq!(rules[0].created_by.as_deref(), Some("alice"));
        assert_eq!(list_for_namespace_id(&db, other).await.unwrap().len(), 1);

        let before = counter(&db).await;
        crate::on_db!(&db, p => sqlx::query("UPDATE guard_rules SET priority = 5 WHERE id = $1")
            .bind(tie)
            .execute(p)
            .await.map(|r| r.rows_affected()))
        .unwrap();
        assert!(counter(&db).await > before, "updates bump the counter");
        crate::on_db!(&db, p => sqlx::query("UPDATE guard_rules SET priority = 200 WHERE id = $1")
            .bind(tie)
            .execute(p)
            .await.map(|r| r.rows_affected()))
        .unwrap();

        let before = counter(&db).await;
        let removed = remove(&db, late).await.unwrap().expect("removed");
        assert_eq!(removed.pattern, "reboot");
        assert!(counter(&db).await > before, "deletes bump the counter");
        assert_eq!(remove(&db, late).await.unwrap(), None, "gone");
        assert_eq!(list(&db, "ops").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn bad_rules_are_refused_and_nothing_is_stored() {
        let (_dir, db) = test_db().await;
        namespaces::create(&db, "ops").await.unwrap();
        let e = add(
            &db,
            "ghost",
            1,
            RuleKind::Word,
            "rm",
            RuleAction::Deny,
            None,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, DbError::NoNamespace(ref n) if n == "ghost"),
            "{e}"
        );
        assert!(matches!(
            list(&db, "ghost").await,
            Err(DbError::NoNamespace(_))
        ));
        let e = add(&db, "ops", 1, RuleKind::Word, "a;b", RuleAction::Deny, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                DbError::GuardPattern(crate::guard::RuleError::NotAWord { found: ';', .. })
            ),
            "{e}"
        );
        assert!(list(&db, "ops").await.unwrap().is_empty());
    }
}
