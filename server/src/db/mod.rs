//! Database access: the pool, migrations, and one module of queries per table.
pub mod audit;
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
}

/// Current time as RFC 3339 (UTC, millisecond precision).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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
    let opts = SqliteConnectOptions::from_str(&url)?
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
