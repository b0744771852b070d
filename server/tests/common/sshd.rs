//! A real OpenSSH `sshd` on a random loopback port with throwaway keys, killed on drop.
//!
//! Password authentication needs a real account: when run as root the harness
//! creates (idempotently) the user [`TEST_USER`] with password
//! [`TEST_PASSWORD`]. Key authentication uses a generated key listed in an
//! `AuthorizedKeysFile` inside the temporary directory. sshd logs at DEBUG to
//! a file so tests can check what it saw (e.g. no authentication attempt).
#![allow(dead_code)]

use std::{
    io::Read,
    net::{TcpListener, TcpStream},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The sshd binary.
const SSHD: &str = "/usr/sbin/sshd";
/// Account the tests log in as.
pub const TEST_USER: &str = "termroom-sshtest";
/// Its password (a throwaway account on a test machine, reachable only via loopback sshd).
pub const TEST_PASSWORD: &str = "Throwaway-termroom-3141";
/// How long sshd may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at a free port (another process may grab the one we picked).
const PORT_ATTEMPTS: usize = 5;

/// Runs a command, panicking with its stderr on failure.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A generated ed25519 key pair.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// OpenSSH private key text.
    pub private: String,
    /// Public key line.
    pub public: String,
    /// `SHA256:...` as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// Path of the private key file.
    pub path: PathBuf,
}

/// Generates an ed25519 key pair at `dir/name`.
pub fn keygen(dir: &Path, name: &str) -> KeyPair {
    let path = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path));
    let pub_path = path.with_extension("pub");
    let listing = run(Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&pub_path));
    let fingerprint = listing
        .split_whitespace()
        .nth(1)
        .expect("fingerprint in ssh-keygen -l output")
        .to_string();
    KeyPair {
        private: std::fs::read_to_string(&path).expect("private key"),
        public: std::fs::read_to_string(&pub_path).expect("public key"),
        fingerprint,
        path,
    }
}

/// Whether the tests run as root (needed to create the password account).
pub fn is_root() -> bool {
    run(Command::new("id").arg("-u")).trim() == "0"
}

/// Creates [`TEST_USER`] with [`TEST_PASSWORD`] once per process (idempotent across runs).
pub fn ensure_test_user() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        assert!(
            is_root(),
            "the sshd tests create the account {TEST_USER} and must run as root"
        );
        let exists = Command::new("id")
            .arg(TEST_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !exists {
            let out = Command::new("useradd")
                .args(["-m", "-s", "/bin/bash", TEST_USER])
                .output()
                .expect("useradd");
            // 9: already exists (another test binary won the race).
            assert!(
                out.status.success() || out.status.code() == Some(9),
                "useradd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("chpasswd stdin");
            writeln!(stdin, "{TEST_USER}:{TEST_PASSWORD}").expect("write chpasswd");
        }
        assert!(child.wait().expect("chpasswd").success(), "chpasswd failed");
    });
}

/// A running sshd.
pub struct Sshd {
    /// Listening port on 127.0.0.1.
    pub port: u16,
    /// Host key fingerprint (`SHA256:...`).
    pub host_fingerprint: String,
    /// Key authorized for [`TEST_USER`].
    pub client_key: KeyPair,
    /// Temporary directory (keys, config, log); readable by the test user.
    pub dir: tempfile::TempDir,
    /// DEBUG log of sshd.
    pub log_path: PathBuf,
    /// The sshd process.
    child: Child,
}

impl Sshd {
    /// Starts sshd on a free loopback port and waits until it answers.
    pub fn start() -> Self {
        ensure_test_user();
        std::fs::create_dir_all("/run/sshd").expect("privilege separation directory /run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("termroom-sshd")
            .tempdir()
            .expect("temp dir");
        // The test user must be able to read the authorized keys (and the files tests put here).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let host = keygen(dir.path(), "host_key");
        let client_key = keygen(dir.path(), "client_key");
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, &client_key.public).expect("authorized_keys");
        std::fs::set_permissions(&authorized, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let log_path = dir.path().join("sshd.log");
        let cfg = dir.path().join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "ListenAddress 127.0.0.1\n\
                 HostKey {host}\n\
                 PidFile {pid}\n\
                 AuthorizedKeysFile {authorized}\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PasswordAuthentication yes\n\
                 PubkeyAuthentication yes\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin no\n\
                 AllowUsers {TEST_USER}\n\
                 PrintMotd no\n\
                 PrintLastLog no\n\
                 UseDNS no\n\
                 MaxStartups 100\n\
                 MaxSessions 100\n\
                 LogLevel DEBUG\n",
                host = host.path.display(),
                pid = dir.path().join("sshd.pid").display(),
                authorized = authorized.display(),
            ),
        )
        .expect("sshd_config");
        for _ in 0..PORT_ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-E")
                .arg(&log_path)
                .arg("-f")
                .arg(&cfg)
                .args(["-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sshd");
            if wait_ready(port, &mut child) {
                return Self {
                    port,
                    host_fingerprint: host.fingerprint,
                    client_key,
                    dir,
                    log_path,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "sshd did not start; log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    /// The sshd log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (or `timeout` passes); returns whether it did.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// Whether sshd on `port` sends its banner before the child exits or time runs out.
fn wait_ready(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 8];
            if s.read_exact(&mut buf).is_ok() && &buf[..7] == b"SSH-2.0" {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
