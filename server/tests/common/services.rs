//! Throwaway Postgres and Redis servers for the several-node tests: each on a random loopback port in a temporary directory, stopped on drop.
#![allow(dead_code)]

use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Postgres 15 server binaries (Debian's `postgresql`).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free loopback port (another process may still take it first).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until `port` on loopback accepts connections.
fn wait_listening(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + START_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} on port {port} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` as the `postgres` user when we are root (Postgres refuses
/// to run as root).
fn as_postgres(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

/// A Postgres server for one test: the one `TERMROOM_TEST_POSTGRES` names
/// (`scripts/with-postgres.sh`), or one started here.
pub struct Postgres {
    /// An admin URL (may create databases).
    pub admin_url: String,
    own: Option<(tempfile::TempDir, Child)>,
}

impl Postgres {
    pub fn start() -> Self {
        if let Some(url) = server::db::test_postgres() {
            return Self {
                admin_url: url,
                own: None,
            };
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let _ = Command::new("chown")
            .args(["postgres:", &dir.path().to_string_lossy()])
            .status();
        let out = as_postgres(&format!("{PG_BIN}/initdb"))
            .args(["-D", &data.to_string_lossy()])
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "--locale=C"])
            .current_dir(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("initdb ({PG_BIN}; apt install postgresql): {e}"));
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = dir.path().join("postgres.log");
        let child = as_postgres(&format!("{PG_BIN}/postgres"))
            .args(["-D", &data.to_string_lossy()])
            .args(["-p", &port.to_string(), "-h", "127.0.0.1"])
            .args(["-k", &dir.path().to_string_lossy()])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start postgres");
        wait_listening(port, "postgres", &log);
        Self {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            own: Some((dir, child)),
        }
    }

    /// A new empty database on this server.
    pub async fn database(&self) -> String {
        // Postgres accepts connections a moment before it takes logins.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match server::db::create_scratch_database(&self.admin_url).await {
                Ok(url) => return url,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("creating a database: {e}"),
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some((dir, child)) = self.own.as_mut() {
            // Immediate shutdown (the data is thrown away); the child is
            // `runuser` when we are root, so pg_ctl signals the server.
            let _ = as_postgres(&format!("{PG_BIN}/pg_ctl"))
                .args(["stop", "-m", "immediate", "-w", "-D"])
                .arg(dir.path().join("data"))
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Redis server (`redis-server`, Debian's `redis-server`) that a test
/// may stop and start again on the same port.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut r = Self {
            port: free_port(),
            dir,
            child: None,
        };
        r.resume();
        r
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its clients see their connections drop).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = self.dir.path().join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir.path().to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt install redis-server; make tools-test does)");
        self.child = Some(child);
        wait_listening(self.port, "redis-server", &log);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
