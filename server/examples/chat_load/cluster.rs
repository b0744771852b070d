//! `chat-load --cluster`'s services: a Postgres server (the one `--pg-url`
//! names, or a throwaway Postgres 15 started here with the settings of
//! `scripts/with-postgres.sh`), a Redis broker, the secret key file every
//! node shares, and `termroom serve` nodes on them. Everything started here
//! is stopped when its handle is dropped (also when the run fails).
use std::{
    io::Write,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use sqlx::Connection;
use tokio::process::{Child, Command};

use crate::bench_server;

/// Postgres 15 server binaries (Debian's `postgresql-15`).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// How long Postgres, Redis or a node may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free loopback port (another process may still take it first).
fn free_port() -> anyhow::Result<u16> {
    Ok(bench_server::free_addr()
        .context("finding a free port")?
        .port())
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(30);
            lines.get(from..).unwrap_or_default().join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Whether this process runs as root (Postgres refuses to).
fn running_as_root() -> bool {
    // /proc/self belongs to the effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program` run as the `postgres` user when we are root, from `dir` (the
/// postgres user may not be able to enter the current directory).
fn pg_command(program: &Path, as_root: bool, dir: &Path) -> std::process::Command {
    let mut c = if as_root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    c.current_dir(dir);
    c
}

/// A Postgres server that may create databases: one given by URL, or a
/// throwaway one started here.
pub struct Postgres {
    admin_url: String,
    /// What the output calls it.
    pub description: String,
    own: Option<OwnPostgres>,
}

/// A Postgres cluster this program started.
struct OwnPostgres {
    /// Holds `data/` and the log (and the socket); removed on drop.
    dir: tempfile::TempDir,
    /// `postgres` (or `runuser` running it).
    child: Child,
    as_root: bool,
}

impl OwnPostgres {
    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }
}

impl Postgres {
    /// The server at `admin_url`, or without one a throwaway Postgres 15 in
    /// a temporary directory; either way it accepts connections on return.
    pub async fn start_or_use(admin_url: Option<&str>) -> anyhow::Result<Self> {
        let mut pg = match admin_url {
            Some(url) => Self {
                admin_url: url.to_string(),
                description: format!("Postgres at {}", server::db::redacted(url)),
                own: None,
            },
            None => Self::start().await?,
        };
        pg.wait_ready().await?;
        Ok(pg)
    }

    async fn start() -> anyhow::Result<Self> {
        let bin = Path::new(PG_BIN);
        for tool in ["initdb", "postgres", "pg_ctl"] {
            if !bin.join(tool).is_file() {
                bail!(
                    "{PG_BIN}/{tool} not found: install PostgreSQL 15 (apt install postgresql-15; \
                     `make tools-test` does), or pass --pg-url postgres://USER@HOST:PORT/postgres \
                     (a role allowed to CREATE DATABASE)"
                );
            }
        }
        let as_root = running_as_root();
        if as_root {
            let known = Command::new("id")
                .arg("postgres")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success());
            if !known {
                bail!(
                    "running as root, Postgres must run as the user `postgres`, and there is none \
                     (apt install postgresql-15 creates it), or pass --pg-url"
                );
            }
        }
        // As root, under /tmp: the postgres user must be able to reach it.
        let mut builder = tempfile::Builder::new();
        builder.prefix("chat-load-pg.");
        let dir = if as_root {
            builder.tempdir_in("/tmp")
        } else {
            builder.tempdir()
        }
        .context("creating a temporary directory for Postgres")?;
        if as_root {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .await
                .context("running chown")?;
            if !status.success() {
                bail!("chown postgres: {} failed", dir.path().display());
            }
        }
        let data = dir.path().join("data");
        let out = Command::from(pg_command(&bin.join("initdb"), as_root, dir.path()))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync"])
            .output()
            .await
            .with_context(|| format!("running {PG_BIN}/initdb"))?;
        if !out.status.success() {
            bail!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port()?;
        let log = dir.path().join("postgres.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        // The settings of scripts/with-postgres.sh: loopback only, no fsync.
        let child = Command::from(pg_command(&bin.join("postgres"), as_root, dir.path()))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(dir.path())
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {PG_BIN}/postgres"))?;
        Ok(Self {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            description: format!(
                "throwaway Postgres 15 on 127.0.0.1:{port} (fsync, synchronous_commit and \
                 full_page_writes off, as scripts/with-postgres.sh)"
            ),
            own: Some(OwnPostgres {
                dir,
                child,
                as_root,
            }),
        })
    }

    /// Waits until the server takes logins (it listens a moment before).
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let err = match sqlx::PgConnection::connect(&self.admin_url).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return Ok(());
                }
                Err(e) => e,
            };
            let Some(own) = self.own.as_mut() else {
                bail!(
                    "cannot connect to --pg-url {}: {err}",
                    server::db::redacted(&self.admin_url)
                );
            };
            if let Some(status) = own.child.try_wait()? {
                bail!(
                    "postgres exited at start ({status}); its log:\n{}",
                    log_tail(&own.log())
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not take connections within {} s ({err}); its log:\n{}",
                    START_TIMEOUT.as_secs(),
                    log_tail(&own.log())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new empty database on this server; its URL.
    pub async fn database(&self) -> anyhow::Result<String> {
        server::db::create_scratch_database(&self.admin_url)
            .await
            .with_context(|| {
                format!(
                    "creating a database on {}",
                    server::db::redacted(&self.admin_url)
                )
            })
    }

    /// Drops a database [`Postgres::database`] made (nodes still connected
    /// to it are disconnected).
    pub async fn drop_database(&self, url: &str) -> anyhow::Result<()> {
        let parsed = url::Url::parse(url).map_err(|e| anyhow!("database url: {e}"))?;
        let name = parsed.path().trim_start_matches('/');
        // Only names create_scratch_database makes (hex digits): nothing to inject.
        let ours = name.starts_with("termroom_t")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ours {
            bail!("not dropping {name:?}: not a database this program made");
        }
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(own) = self.own.as_mut() {
            // Immediate shutdown (the data is thrown away). As root the child
            // is `runuser`, so pg_ctl signals the server itself.
            let _ = pg_command(
                &Path::new(PG_BIN).join("pg_ctl"),
                own.as_root,
                own.dir.path(),
            )
            .args(["stop", "-m", "immediate", "-w", "-t", "30", "-D"])
            .arg(own.dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
            let _ = own.child.start_kill();
        }
    }
}

/// A Redis server on a free loopback port, without persistence; killed on drop.
pub struct Redis {
    pub port: u16,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts `bin` (`redis-server`) and waits until it accepts connections.
    pub async fn start(bin: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("chat-load-redis.")
            .tempdir()
            .context("creating a temporary directory for Redis")?;
        let port = free_port()?;
        let log = dir.path().join("redis.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    anyhow!(
                        "{} not found: install Redis (apt install redis-server; `make tools-test` \
                         does), or pass --redis-bin PATH",
                        bin.display()
                    )
                } else {
                    anyhow!("starting {}: {e}", bin.display())
                }
            })?;
        let deadline = Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited at start ({status}); its log:\n{}",
                    bin.display(),
                    log_tail(&log)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on port {port} within {} s; its log:\n{}",
                    bin.display(),
                    START_TIMEOUT.as_secs(),
                    log_tail(&log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            port,
            _child: child,
            _dir: dir,
        })
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A fresh random secret key in a private file, shared by every node.
pub struct KeyFile {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl KeyFile {
    pub fn create() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("chat-load-key.")
            .tempdir()
            .context("creating a temporary directory for the key")?;
        let path = dir.path().join("secret.key");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(hex::encode(rand::random::<[u8; 32]>()).as_bytes())?;
        Ok(Self { path, _dir: dir })
    }
}

/// What every node of one setup shares.
pub struct NodeSettings<'a> {
    /// The termroom binary.
    pub bin: &'a Path,
    pub database_url: &'a str,
    /// The Redis URL for several nodes (each then gets `--node-id`); `None`:
    /// one plain server on the database.
    pub broker: Option<&'a str>,
    pub key_file: &'a Path,
    /// Further `serve` options (the benchmark's limits).
    pub serve_options: &'a [&'a str],
    /// The account created in the database, logged in on every node.
    pub user: &'a str,
    pub password: &'a str,
}

/// A running `termroom serve` node, logged in; killed on drop.
pub struct Node {
    pub id: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Holds the login cookie; sends this node's origin.
    pub http: reqwest::Client,
    pub pid: u32,
    child: Child,
    /// Its data directory (recordings, its log).
    _data: tempfile::TempDir,
}

impl Node {
    /// Kills the node.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Creates the account in the database, then starts one node per id (each
/// with a data directory of its own, all on the same database, key file and
/// broker) and logs in on each.
pub async fn start_nodes(s: &NodeSettings<'_>, ids: &[&str]) -> anyhow::Result<Vec<Node>> {
    let setup = tempfile::tempdir().context("creating a temporary directory")?;
    // Also applies the migrations, before the nodes start.
    bench_server::cli(
        s.bin,
        setup.path(),
        &[
            "--database-url",
            s.database_url,
            "user",
            "add",
            s.user,
            "--role",
            "member",
        ],
        Some(&format!("{}\n", s.password)),
    )
    .await
    .context("creating the benchmark's user in Postgres")?;
    let key_file = s.key_file.to_string_lossy().into_owned();
    let mut nodes = Vec::with_capacity(ids.len());
    for &id in ids {
        let data = tempfile::Builder::new()
            .prefix(&format!("chat-load-node-{id}."))
            .tempdir()
            .context("creating a node's data directory")?;
        let addr = bench_server::free_addr()?.to_string();
        let mut options = vec![
            "--database-url",
            s.database_url,
            "--secret-key-file",
            &key_file,
        ];
        if let Some(broker) = s.broker {
            options.extend(["--broker", broker, "--node-id", id]);
        }
        options.extend_from_slice(s.serve_options);
        let log = data.path().join("node.log");
        let mut child = bench_server::serve_with_output(
            s.bin,
            &addr,
            data.path(),
            &options,
            "warn",
            Some(&log),
        )?;
        let pid = child.id().context("node pid")?;
        let base = format!("http://{addr}");
        let http = bench_server::same_origin_client(&base)?;
        tokio::select! {
            r = bench_server::wait_for_login(&http, &base, s.user, s.password) => {
                r.with_context(|| format!("node {id}; its log:\n{}", log_tail(&log)))?;
            }
            status = child.wait() => {
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                bail!("node {id} exited at start ({status}); its log:\n{}", log_tail(&log));
            }
        }
        nodes.push(Node {
            id: id.to_string(),
            addr,
            base,
            http,
            pid,
            child,
            _data: data,
        });
    }
    Ok(nodes)
}
