//! Database access: the pool, migrations, and one module of queries per table.
pub mod audit;
pub mod commands;
pub mod guard_rules;
pub mod hosts;
pub mod messages;
pub mod namespaces;
pub mod nodes;
pub mod terminal_sessions;
pub mod users;

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// The database every query module takes: the embedded SQLite file (the
/// default) or a Postgres server shared by several nodes. Queries are
/// written once in SQL both understand (`$1` placeholders, `RETURNING`,
/// `ON CONFLICT`) and run on either through [`on_db!`](crate::on_db); the
/// few that differ match on the variant.
#[derive(Clone, Debug)]
pub enum Db {
    /// The embedded default.
    Sqlite(sqlx::SqlitePool),
    /// Several nodes.
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to the pool of whichever backend `$db`
/// is (the body is compiled once per backend, so it may use the pool's own
/// types): `on_db!(db, p => sqlx::query("…").execute(p).await.map(|r| r.rows_affected()))`.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Which SQL dialect a [`Db`] speaks, for the few queries that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Db {
    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// One trivial query: whether the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        on_db!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes every connection (waits for queries in flight).
    pub async fn close(&self) {
        on_db!(self, p => p.close().await)
    }

    /// `sqlite` or `postgres`, for logs and checks.
    pub fn name(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Database failures, mapped to 500 / "internal" at the edges.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url {0:?} (use sqlite:PATH or postgres://…)")]
    Unsupported(String),
    /// The database server could not be reached at start.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL, without its password.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// Sealing a host secret for its row failed.
    #[error("{0}")]
    Secret(#[from] crate::secrets::SecretError),
    /// A namespace named by the caller does not exist.
    #[error("no namespace {0}")]
    NoNamespace(String),
    /// A guard rule was refused before it was stored (the guard could not apply it).
    #[error(transparent)]
    GuardPattern(#[from] crate::guard::RuleError),
    /// A time given by the caller is not RFC 3339.
    #[error("{0:?} is not an RFC 3339 time like 2024-05-01T12:00:00Z")]
    BadTime(String),
    /// Creating the database file or fixing its permissions failed.
    #[error("database file {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// Creates the data directory if missing, readable by the server's user only
/// (0700); it holds the database and the secret key.
pub fn create_data_dir(data_dir: &Path) -> std::io::Result<()> {
    crate::secrets::create_private_dir(data_dir)
}

/// Makes the database file private before SQLite opens it: created with mode
/// 0600 if missing (SQLite gives its `-wal` and `-shm` files the database
/// file's mode), and an existing database, `-wal` or `-shm` open to other
/// users is narrowed to 0600.
fn make_private(db_file: &Path) -> Result<(), DbError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DbError::File { path, source }
        };
        if let Some(dir) = db_file
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            create_data_dir(dir).map_err(err(dir))?;
        }
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(db_file)
            .map_err(err(db_file))?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db_file.as_os_str().to_owned();
            name.push(suffix);
            let path = std::path::PathBuf::from(name);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!("{} was open to other users; now 0600", path.display());
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(err(&path))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db_file;
    Ok(())
}

/// Current time as RFC 3339 (UTC, millisecond precision).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A caller's RFC 3339 time (any offset) in the form times are stored in
/// (UTC, milliseconds, `Z`), so that it compares with stored times as text.
pub fn stored_time(rfc3339: &str) -> Result<String, DbError> {
    chrono::DateTime::parse_from_rfc3339(rfc3339.trim())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
        .map_err(|_| DbError::BadTime(rfc3339.to_string()))
}

/// Current unix time in seconds.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Opens (creating if needed) the database and applies migrations.
/// `url` is `sqlite:PATH` or `postgres://…`; `None` means
/// `sqlite:<data_dir>/termroom.db`.
pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Db, DbError> {
    let url = match url {
        Some(u) => u.to_string(),
        None => format!("sqlite:{}", data_dir.join("termroom.db").display()),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return open_postgres(&url).await;
    }
    if !url.starts_with("sqlite:") {
        return Err(DbError::Unsupported(url));
    }
    let opts = SqliteConnectOptions::from_str(&url)?;
    let file = opts.get_filename();
    let in_memory = file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:");
    if !in_memory {
        make_private(file)?;
    }
    let opts = opts
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    Ok(Db::Sqlite(pool))
}

/// Connects to Postgres (failing within 10 s when it cannot be reached) and
/// applies its migrations; several nodes may do this at once (sqlx takes an
/// advisory lock around migrations).
async fn open_postgres(url: &str) -> Result<Db, DbError> {
    let opts = PgConnectOptions::from_str(url)?;
    let shown = redacted(url);
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(|source| DbError::Connect { url: shown, source })?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(Db::Postgres(pool))
}

/// `url` without the password, for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparsable url)".to_string(),
    }
}

/// Creates an empty database with a fresh name on the Postgres server of
/// `admin_url` (a role allowed to create databases) and returns its URL:
/// each test server gets a database of its own.
pub async fn create_scratch_database(admin_url: &str) -> Result<String, DbError> {
    use sqlx::Connection;
    let name = format!("termroom_t{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    // The name is made here of hex digits: nothing to inject.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let mut url =
        url::Url::parse(admin_url).map_err(|_| DbError::Unsupported(redacted(admin_url)))?;
    url.set_path(&name);
    Ok(url.to_string())
}

/// The Postgres server the tests use, when `TERMROOM_TEST_POSTGRES` names
/// one (`scripts/with-postgres.sh` starts it).
pub fn test_postgres() -> Option<String> {
    std::env::var("TERMROOM_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A fresh, migrated database for the query modules' unit tests: SQLite in a
/// temporary directory (removed when the directory guard is dropped), or a
/// scratch Postgres database when `TERMROOM_TEST_POSTGRES` is set.
#[cfg(test)]
pub(crate) async fn test_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match test_postgres() {
        Some(admin) => Some(
            create_scratch_database(&admin)
                .await
                .expect("scratch database"),
        ),
        None => None,
    };
    let db = open(url.as_deref(), dir.path())
        .await
        .expect("open test database");
    (dir, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_times_are_normalised_to_the_stored_form() {
        assert_eq!(
            stored_time("2024-05-01T14:00:00+02:00").unwrap(),
            "2024-05-01T12:00:00.000Z"
        );
        assert_eq!(
            stored_time("2024-05-01T12:00:00.5Z").unwrap(),
            "2024-05-01T12:00:00.500Z"
        );
        for bad in ["yesterday", "2024-05-01", "", "2024-05-01 12:00"] {
            assert!(
                matches!(stored_time(bad), Err(DbError::BadTime(_))),
                "{bad:?}"
            );
        }
    }
}
