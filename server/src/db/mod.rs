//! Database access: the pool, migrations, and one module of queries per table.
pub mod audit;
pub mod commands;
pub mod guard_rules;
pub mod hosts;
pub mod messages;
pub mod namespaces;
pub mod terminal_sessions;
pub mod users;

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The database pool every query module takes.
pub type Db = sqlx::SqlitePool;

/// Database failures, mapped to 500 / "internal" at the edges.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url {0:?} (this build supports sqlite:)")]
    Unsupported(String),
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
/// `url` is `sqlite:PATH`; `None` means `sqlite:<data_dir>/termroom.db`.
pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Db, DbError> {
    let url = match url {
        Some(u) => u.to_string(),
        None => format!("sqlite:{}", data_dir.join("termroom.db").display()),
    };
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
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

/// A fresh, migrated database in a temporary directory (removed when the
/// directory guard is dropped), for the query modules' unit tests.
#[cfg(test)]
pub(crate) async fn test_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = open(None, dir.path()).await.expect("open test database");
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
