//! The `termroom` command line as scripts use it: users, namespaces and hosts
//! prepared in a data directory before a server starts.
mod common;

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use common::{
    served::{Served, START_LIMIT},
    sshd::{Sshd, TEST_USER},
};

fn termroom(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_termroom"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .envs(common::database_env(data))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run termroom");
    if let Some(mut s) = child.stdin.take() {
        if let Some(text) = stdin {
            s.write_all(text.as_bytes()).expect("stdin");
        }
    }
    child.wait_with_output().expect("termroom output")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn users_are_managed_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    ok(termroom(
        d,
        &["user", "add", "alice", "--role", "admin"],
        Some("a-long-password\n"),
    ));
    ok(termroom(
        d,
        &["user", "add", "bob"],
        Some("another-password\n"),
    ));
    assert!(err(termroom(
        d,
        &["user", "add", "bob"],
        Some("another-password\n")
    ))
    .contains("already exists"));
    assert!(err(termroom(d, &["user", "add", "carol"], Some("short\n"))).contains("at least 8"));
    assert!(err(termroom(d, &["user", "add", "dave"], Some(""))).contains("standard input"));
    ok(termroom(
        d,
        &["user", "passwd", "bob"],
        Some("changed-password\n"),
    ));
    ok(termroom(d, &["user", "disable", "bob"], None));
    assert!(err(termroom(d, &["user", "disable", "nobody"], None)).contains("no user nobody"));
    let list = ok(termroom(d, &["user", "list"], None));
    assert!(list.contains("alice\tadmin\tactive"), "{list}");
    assert!(list.contains("bob\tmember\tdisabled"), "{list}");
    // Passwords are never stored in clear.
    if common::on_postgres() {
        let url = common::database_url(d);
        let hash = common::block_on(async {
            let db = server::db::open(url.as_deref(), d).await.unwrap();
            server::db::users::by_name(&db, "alice")
                .await
                .unwrap()
                .unwrap()
                .password_hash
        });
        assert!(hash.starts_with("$argon2id$") && !hash.contains("a-long-password"));
    } else {
        let db = std::fs::read(d.join("termroom.db")).unwrap();
        assert!(!db.windows(15).any(|w| w == b"a-long-password"));
    }
}

#[test]
fn a_change_is_kept_when_the_broker_to_tell_the_nodes_is_away() {
    let data = tempfile::tempdir().expect("temp dir");
    let d = data.path();
    ok(termroom(
        d,
        &["user", "add", "alice"],
        Some("a-long-password\n"),
    ));
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let broker = format!("redis://127.0.0.1:{port}");
    let out = termroom(d, &["user", "disable", "alice", "--broker", &broker], None);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(ok(out).contains("disabled alice"));
    assert!(
        stderr.contains("the change is stored, but the servers were not told at once"),
        "{stderr}"
    );
    let list = ok(termroom(d, &["user", "list"], None));
    assert!(list.contains("alice\tmember\tdisabled"), "{list}");
}

#[test]
fn hosts_are_added_and_their_keys_pinned_from_the_command_line() {
    let sshd = Sshd::start();
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    ok(termroom(
        d,
        &["user", "add", "carol"],
        Some("carol-password\n"),
    ));
    ok(termroom(d, &["namespace", "add", "ops"], None));
    assert!(err(termroom(d, &["namespace", "add", "ops"], None)).contains("already exists"));
    ok(termroom(d, &["namespace", "grant", "ops", "carol"], None));
    assert!(ok(termroom(d, &["namespace", "list"], None)).contains("ops\tcarol"));
    let port = sshd.port.to_string();
    let key = sshd.client_key.path.to_string_lossy().into_owned();
    let web = host_add(
        "web",
        "ops",
        "127.0.0.1",
        Some(&port),
        TEST_USER,
        &["--key-file", &key],
    );
    ok(termroom(d, &web, None));
    assert!(ok(termroom(d, &["host", "list"], None)).contains("(untrusted)"));
    let printed = ok(termroom(d, &["host", "trust", "web"], None));
    assert_eq!(printed.trim(), sshd.host_fingerprint);
    let list = ok(termroom(d, &["host", "list"], None));
    assert!(list.contains(&sshd.host_fingerprint), "{list}");
    assert!(
        list.contains(&format!("{TEST_USER}@127.0.0.1:{port}")),
        "{list}"
    );
    // Bad input is refused with a clear message and changes nothing.
    let pw = host_add(
        "pw",
        "ops",
        "127.0.0.1",
        Some(&port),
        TEST_USER,
        &["--password-stdin"],
    );
    assert!(err(termroom(d, &pw, Some(""))).contains("standard input"));
    let ghost = host_add("x", "ghost", "h", None, "u", &["--password-stdin"]);
    assert!(err(termroom(d, &ghost, Some("pw\n"))).contains("namespace ghost"));
    let bad_key = d.join("not-a-key");
    std::fs::write(&bad_key, "hello").unwrap();
    let bad = host_add(
        "y",
        "ops",
        "h",
        None,
        "u",
        &["--key-file", bad_key.to_str().unwrap()],
    );
    assert!(err(termroom(d, &bad, None)).contains("private key"));
    assert!(err(termroom(d, &["host", "trust", "nope"], None)).contains("no host nope"));
    let list = ok(termroom(d, &["host", "list"], None));
    assert_eq!(list.lines().count(), 1, "{list}");
    // The key is stored encrypted, never in clear.
    if common::on_postgres() {
        let url = common::database_url(d);
        let stored = common::block_on(async {
            let db = server::db::open(url.as_deref(), d).await.unwrap();
            server::db::hosts::by_name(&db, "web")
                .await
                .unwrap()
                .unwrap()
                .secret_ciphertext
        });
        assert!(!stored.windows(11).any(|w| w == b"PRIVATE KEY"));
    } else {
        let db = std::fs::read(d.join("termroom.db")).unwrap();
        assert!(!db.windows(11).any(|w| w == b"PRIVATE KEY"));
    }
    ok(termroom(d, &["host", "delete", "web"], None));
    assert_eq!(ok(termroom(d, &["host", "list"], None)).trim(), "");
}

/// Arguments of `termroom host add` (`port` left to its default when `None`).
fn host_add<'a>(
    name: &'a str,
    namespace: &'a str,
    address: &'a str,
    port: Option<&'a str>,
    user: &'a str,
    auth: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "host",
        "add",
        name,
        "--namespace",
        namespace,
        "--address",
        address,
    ];
    if let Some(port) = port {
        args.extend(["--port", port]);
    }
    args.extend(["--user", user]);
    args.extend_from_slice(auth);
    args
}

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn data_directory_database_and_key_are_private_after_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("new").join("data");
    let served = Served::start(&data, &[]);
    assert!(
        served.admin_password.is_some(),
        "first start creates the admin"
    );
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("secret.key")), 0o600, "secret key");
    if common::on_postgres() {
        // The rest is about SQLite's files; Postgres keeps its own.
        return;
    }
    for file in ["termroom.db", "termroom.db-wal", "termroom.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    drop(served);
    // An older database left open to others is narrowed on the next start.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        data.join("termroom.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    ok(termroom(&data, &["user", "list"], None));
    assert_eq!(mode(&data.join("termroom.db")), 0o600);
}

#[test]
fn local_shells_for_everyone_need_an_explicit_acknowledgement() {
    let nowhere = tempfile::tempdir().unwrap();
    let help = ok(termroom(nowhere.path(), &["serve", "--help"], None));
    assert!(help.contains("--i-understand-local-shells"), "{help}");
    assert!(help.contains("secret key"), "--help says why: {help}");

    let data = tempfile::tempdir().unwrap();
    let refused = |extra: &[&str], env: &[(&str, &str)]| {
        let mut child = common::served::serve_command(data.path(), extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run termroom serve");
        let deadline = std::time::Instant::now() + START_LIMIT;
        while child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("termroom serve {extra:?} {env:?} started instead of refusing");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        err(child.wait_with_output().expect("output"))
    };
    for msg in [
        refused(&["--local-target", "all"], &[]),
        refused(&[], &[("TERMROOM_LOCAL_TARGET", "all")]),
    ] {
        assert!(msg.contains("--i-understand-local-shells"), "{msg}");
        assert!(msg.contains("secret key and the database"), "{msg}");
    }
    // Acknowledged (flag or variable): it starts.
    drop(Served::start(
        data.path(),
        &["--local-target", "all", "--i-understand-local-shells"],
    ));
    drop(Served::start_env(
        data.path(),
        &["--local-target", "all"],
        &[("TERMROOM_I_UNDERSTAND_LOCAL_SHELLS", "1")],
    ));
}

#[tokio::test]
async fn passwd_and_disable_end_the_users_login_sessions() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let served = Served::start(d, &[]);
    let admin_pw = served.admin_password.clone().expect("admin password");
    ok(termroom(
        d,
        &["user", "add", "bob"],
        Some("bob-password-1\n"),
    ));
    ok(termroom(
        d,
        &["user", "add", "carol"],
        Some("carol-password\n"),
    ));
    let bob = served.login("bob", "bob-password-1").await;
    let (status, ticket) = served.chat_ticket(&bob).await;
    assert_eq!(status, 200);
    let ticket = ticket.expect("ticket");

    ok(termroom(
        d,
        &["user", "passwd", "bob"],
        Some("bob-password-2\n"),
    ));
    let (status, _) = served.chat_ticket(&bob).await;
    assert_eq!(status, 401, "the old cookie no longer authenticates");
    // Nor does a ticket the old session asked for.
    let ws = common::connect(
        &format!("ws://{}/ws?otp={ticket}", served.addr),
        Some(&format!("http://{}", served.addr)),
    )
    .await;
    assert_eq!(ws.err(), Some(401), "the old session's ticket is gone");
    let db = server::db::open(common::database_url(d).as_deref(), d)
        .await
        .unwrap();
    let bob_id = server::db::users::by_name(&db, "bob")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        server::db::users::count_login_sessions(&db, bob_id)
            .await
            .unwrap(),
        0
    );
    // The new password works; disabling from the command line ends that session too.
    let bob = served.login("bob", "bob-password-2").await;
    assert_eq!(served.chat_ticket(&bob).await.0, 200);
    ok(termroom(d, &["user", "disable", "bob"], None));
    assert_eq!(served.chat_ticket(&bob).await.0, 401);
    assert_eq!(
        server::db::users::count_login_sessions(&db, bob_id)
            .await
            .unwrap(),
        0
    );

    // The admin server function does the same.
    let carol = served.login("carol", "carol-password").await;
    assert_eq!(served.chat_ticket(&carol).await.0, 200);
    let admin = served.login("admin", &admin_pw).await;
    let resp = admin
        .post(served.url("/api/user_disable"))
        .form(&[("name", "carol")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(served.chat_ticket(&carol).await.0, 401);
    let carol_id = server::db::users::by_name(&db, "carol")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        server::db::users::count_login_sessions(&db, carol_id)
            .await
            .unwrap(),
        0
    );
    // The admin's own session is untouched.
    assert_eq!(served.chat_ticket(&admin).await.0, 200);
    db.close().await;
}

/// Adds namespace `ops` and a password host `web` at 127.0.0.1:2222 through the CLI.
fn add_password_host(d: &Path, password: &str) {
    ok(termroom(d, &["namespace", "add", "ops"], None));
    let web = host_add(
        "web",
        "ops",
        "127.0.0.1",
        Some("2222"),
        "deploy",
        &["--password-stdin"],
    );
    ok(termroom(d, &web, Some(&format!("{password}\n"))));
}

#[tokio::test]
async fn a_host_secret_opens_only_for_the_row_it_was_stored_for() {
    use server::db::hosts;
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    add_password_host(d, "s3cret-deploy-pw");
    let db = server::db::open(common::database_url(d).as_deref(), d)
        .await
        .unwrap();
    let secrets = server::secrets::SecretBox::load(None, d).unwrap();
    let web = hosts::by_name(&db, "web").await.unwrap().unwrap();
    assert_eq!(web.open_secret(&secrets).unwrap(), b"s3cret-deploy-pw");
    // Any of id, address, port or user edited in place: the secret does not open.
    for edit in [
        "UPDATE hosts SET address = '10.6.6.6' WHERE name = 'web'",
        "UPDATE hosts SET port = 22 WHERE name = 'web'",
        "UPDATE hosts SET ssh_user = 'root' WHERE name = 'web'",
        "UPDATE hosts SET id = id + 100 WHERE name = 'web'",
    ] {
        let before = hosts::by_name(&db, "web").await.unwrap().unwrap();
        server::on_db!(&db, p => sqlx::query(edit).execute(p).await.map(|r| r.rows_affected()))
            .unwrap();
        let edited = hosts::by_name(&db, "web").await.unwrap().unwrap();
        let e = edited.open_secret(&secrets).expect_err(edit);
        assert!(
            matches!(e, hosts::HostSecretError::Mismatch { .. }),
            "{edit}: {e:?}"
        );
        assert!(e.to_string().contains("host web"), "{e}");
        assert!(e.to_string().contains("does not open"), "{e}");
        // put it back: opens again
        server::on_db!(&db, p => sqlx::query(
            "UPDATE hosts SET id = $1, address = $2, port = $3, ssh_user = $4 WHERE name = 'web'",
        )
        .bind(before.id)
        .bind(&before.address)
        .bind(i64::from(before.port))
        .bind(&before.user)
        .execute(p)
        .await.map(|r| r.rows_affected()))
        .unwrap();
        let back = hosts::by_name(&db, "web").await.unwrap().unwrap();
        assert_eq!(back.open_secret(&secrets).unwrap(), b"s3cret-deploy-pw");
    }

    // Through the server: opening a terminal to the edited host fails with that message.
    server::on_db!(&db, p => sqlx::query(
        "UPDATE hosts SET address = '10.6.6.6', host_key_fingerprint = 'SHA256:x' WHERE name = 'web'",
    )
    .execute(p)
    .await.map(|r| r.rows_affected()))
    .unwrap();
    let served = Served::start(d, &[]);
    let admin = served
        .login("admin", served.admin_password.as_deref().expect("admin"))
        .await;
    let resp = admin
        .post(served.url("/api/term_open"))
        .form(&[("target", "web"), ("cols", "80"), ("rows", "24")])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("stored secret of host web does not open"),
        "{body}"
    );
    db.close().await;
}

#[tokio::test]
async fn secrets_of_an_older_version_are_bound_to_their_rows_at_start() {
    use server::db::hosts;
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    ok(termroom(d, &["namespace", "add", "ops"], None));
    let db = server::db::open(common::database_url(d).as_deref(), d)
        .await
        .unwrap();
    let secrets = server::secrets::SecretBox::load(None, d).unwrap();
    let ns = server::db::namespaces::id_by_name(&db, "ops")
        .await
        .unwrap()
        .unwrap();
    // What an older termroom stored: a bare nonce, no associated data.
    let (nonce, ct) = secrets.seal(b"old-pw").unwrap();
    hosts::create(
        &db,
        hosts::NewHostRow {
            name: "old",
            namespace_id: ns,
            address: "127.0.0.1",
            port: 22,
            user: "deploy",
            auth_kind: "password",
            secret_nonce: &nonce,
            secret_ciphertext: &ct,
            fingerprint: None,
        },
    )
    .await
    .unwrap();
    let old = hosts::by_name(&db, "old").await.unwrap().unwrap();
    assert!(matches!(
        old.open_secret(&secrets),
        Err(hosts::HostSecretError::Legacy { .. })
    ));
    db.close().await;
    drop(Served::start(d, &[]));
    let db = server::db::open(common::database_url(d).as_deref(), d)
        .await
        .unwrap();
    let old = hosts::by_name(&db, "old").await.unwrap().unwrap();
    assert_eq!(old.secret_nonce[0], hosts::BOUND_V1);
    assert_eq!(old.open_secret(&secrets).unwrap(), b"old-pw");
    assert_eq!(hosts::reseal_legacy(&db, &secrets).await.unwrap(), 0);
    server::on_db!(&db, p => sqlx::query("UPDATE hosts SET address = '10.6.6.6'")
        .execute(p)
        .await.map(|r| r.rows_affected()))
    .unwrap();
    let moved = hosts::by_name(&db, "old").await.unwrap().unwrap();
    assert!(moved.open_secret(&secrets).is_err(), "now bound");
    db.close().await;
}

#[test]
fn new_host_debug_output_leaves_secrets_out() {
    let host = app::model::NewHost {
        name: "web".into(),
        namespace: "ops".into(),
        address: "10.0.0.1".into(),
        port: 22,
        user: "deploy".into(),
        password: Some("hunter2-password".into()),
        private_key: Some("-----BEGIN OPENSSH PRIVATE KEY-----".into()),
        fingerprint: String::new(),
    };
    let shown = format!("{host:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(
        shown.contains("web") && shown.contains("10.0.0.1"),
        "{shown}"
    );
}

/// Runs `termroom ARGS --data-dir DATA` on a pseudo-terminal, answering
/// `answer` once the question is shown; returns its exit success and output.
async fn termroom_on_tty(data: &Path, args: &[&str], answer: &str) -> (bool, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut pty, pts) = pty_process::open().expect("pty");
    let mut child = pty_process::Command::new(env!("CARGO_BIN_EXE_termroom"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .envs(common::database_env(data))
        .env("RUST_LOG", "warn")
        .spawn(pts)
        .expect("run termroom on a pty");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut answered = false;
    let deadline = tokio::time::Instant::now() + START_LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, pty.read(&mut buf)).await {
            Err(_) => panic!(
                "termroom {args:?} on a tty: no end; output so far: {}",
                String::from_utf8_lossy(&out)
            ),
            // EIO once the child has closed the terminal.
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
        if !answered && String::from_utf8_lossy(&out).contains("[y/N]") {
            pty.write_all(answer.as_bytes()).await.expect("answer");
            answered = true;
        }
    }
    let status = tokio::time::timeout_at(deadline, child.wait())
        .await
        .expect("termroom exits")
        .expect("wait");
    (status.success(), String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn a_different_pinned_key_is_replaced_only_when_confirmed() {
    let sshd = Sshd::start();
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    ok(termroom(d, &["namespace", "add", "ops"], None));
    let port = sshd.port.to_string();
    let key = sshd.client_key.path.to_string_lossy().into_owned();
    let web = host_add(
        "web",
        "ops",
        "127.0.0.1",
        Some(&port),
        TEST_USER,
        &["--key-file", &key],
    );
    ok(termroom(d, &web, None));
    // First pin: no question. The same key again: nothing to replace.
    assert_eq!(
        ok(termroom(d, &["host", "trust", "web"], None)).trim(),
        sshd.host_fingerprint
    );
    assert_eq!(
        ok(termroom(d, &["host", "trust", "web"], None)).trim(),
        sshd.host_fingerprint
    );
    let db = server::db::open(common::database_url(d).as_deref(), d)
        .await
        .unwrap();
    let pin = |db: server::db::Db| async move {
        server::db::hosts::by_name(&db, "web")
            .await
            .unwrap()
            .unwrap()
            .fingerprint
            .unwrap_or_default()
    };
    let stale = "SHA256:stale-pin-of-the-old-key";
    server::db::hosts::set_fingerprint(&db, "web", stale)
        .await
        .unwrap();

    // Not a terminal and no --yes: shown, refused, unchanged (even with "y" piped in).
    let msg = err(termroom(d, &["host", "trust", "web"], Some("y\n")));
    assert!(msg.contains(stale), "shows the old pin: {msg}");
    assert!(
        msg.contains(&sshd.host_fingerprint),
        "and the new key: {msg}"
    );
    assert!(msg.contains("--yes"), "{msg}");
    assert_eq!(pin(db.clone()).await, stale);

    // On a terminal: "n" (or just Enter) keeps the pin, "y" replaces it.
    let (success, out) = termroom_on_tty(d, &["host", "trust", "web"], "\r").await;
    assert!(!success, "{out}");
    assert!(
        out.contains(stale) && out.contains(&sshd.host_fingerprint),
        "{out}"
    );
    assert_eq!(pin(db.clone()).await, stale);
    let (success, out) = termroom_on_tty(d, &["host", "trust", "web"], "y\r").await;
    assert!(success, "{out}");
    assert_eq!(pin(db.clone()).await, sshd.host_fingerprint);

    // --yes replaces without asking.
    server::db::hosts::set_fingerprint(&db, "web", stale)
        .await
        .unwrap();
    let printed = ok(termroom(d, &["host", "trust", "web", "--yes"], None));
    assert_eq!(printed.trim(), sshd.host_fingerprint);
    assert_eq!(pin(db.clone()).await, sshd.host_fingerprint);
    db.close().await;
}

#[tokio::test]
async fn a_killed_server_leaves_an_interrupted_recording_that_plays() {
    use app::protocol::term::{ClientFrame, ServerFrame};
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut served = Served::start(&data, &[]);
    let password = served.admin_password.clone().expect("first admin");
    let admin = served.login("admin", &password).await;
    let resp = admin
        .post(served.url("/api/term_open"))
        .form(&[("target", "local"), ("cols", "80"), ("rows", "24")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "term_open");
    let ticket: serde_json::Value = resp.json().await.unwrap();
    let id = ticket["session_id"].as_str().unwrap().to_string();
    let otp = ticket["otp"].as_str().unwrap();
    let mut ws = common::connect(
        &format!("ws://{}/ws/term/{id}?otp={otp}", served.addr),
        None,
    )
    .await
    .expect("terminal socket");
    let send = |f: ClientFrame| Message::Binary(f.encode().into());
    ws.send(send(ClientFrame::ResumeFrom { seq: 0 }))
        .await
        .unwrap();
    ws.send(send(ClientFrame::Input(
        b"echo before-$((40+2))-kill\r".to_vec(),
    )))
    .await
    .unwrap();
    let mut seen = String::new();
    while !seen.contains("before-42-kill") {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(15), ws.next())
            .await
            .expect("output in time");
        if let Some(Ok(Message::Binary(b))) = msg {
            if let Ok(ServerFrame::Output { data, .. }) = ServerFrame::decode(&b) {
                seen.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
    // Past the recorder's group sync, then no chance to close anything.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let pid = served.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    let _ = served.child.wait();
    drop(ws);

    let file = data.join("recordings").join(format!("{id}.cast"));
    assert!(file.exists(), "the recording is on disk");
    // Leave a torn line behind, as a crash mid-write would.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"[0.1, \"o\", \"torn")
        .unwrap();

    served = Served::start(&data, &[]);
    let listing = ok(termroom(&data, &["recording", "list"], None));
    let line = listing
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} listed: {listing}"));
    let cols: Vec<&str> = line.split('\t').collect();
    assert_eq!(cols[1], "admin", "{line}");
    assert_eq!(cols[2], "local", "{line}");
    assert_eq!(cols[4], "interrupted", "{line}");
    assert_eq!(
        cols[5].parse::<u64>().unwrap(),
        std::fs::metadata(&file).unwrap().len(),
        "{line}"
    );
    let text = ok(termroom(
        &data,
        &["recording", "export", &id, "--format", "txt"],
        None,
    ));
    assert!(text.contains("before-42-kill"), "{text}");
    let v3 = ok(termroom(&data, &["recording", "export", &id], None));
    assert!(!v3.contains("torn"), "the torn line is cut");
    assert!(
        v3.trim_end()
            .ends_with("\"interrupted: the server stopped before the session ended\"]"),
        "closed with a marker: {v3}"
    );
    // The independent reader plays it.
    let out = Command::new("asciinema")
        .args(["convert", "-q", "-f", "raw"])
        .arg(&file)
        .arg("-")
        .output()
        .expect("the asciinema 3.x CLI is on PATH (make test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("before-42-kill"));
    let err = err(termroom(
        &data,
        &["recording", "export", "../secret.key"],
        None,
    ));
    assert!(err.contains("no recording"), "{err}");
    // Its index was closed too: the player gets the marker from it.
    let index = std::fs::read_to_string(data.join("recordings").join(format!("{id}.idx")))
        .expect("an index beside the recording");
    assert!(
        index
            .lines()
            .last()
            .unwrap_or_default()
            .contains("\"kind\":\"end\""),
        "{index}"
    );
    let admin = served.login("admin", &password).await;
    let detail: serde_json::Value = admin
        .post(served.url("/api/recording"))
        .form(&[("id", id.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let labels: Vec<&str> = detail["markers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["label"].as_str())
        .collect();
    assert_eq!(
        labels,
        vec![
            "$ echo before-$((40+2))-kill",
            "interrupted: the server stopped before the session ended"
        ],
        "the typed command, then the closing marker"
    );
    let duration = detail["duration"].as_f64().unwrap();
    assert!(duration > 0.0, "{detail}");
    assert_eq!(
        detail["info"]["duration_ms"].as_i64(),
        Some((duration * 1000.0) as i64),
        "the row's length is the recording's: {detail}"
    );
    drop(served);
}

#[test]
fn namespace_recording_settings_are_shown_and_changed() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    ok(termroom(d, &["namespace", "add", "prod"], None));
    let shown = ok(termroom(d, &["namespace", "recording", "prod"], None));
    assert_eq!(
        shown.trim(),
        "prod: policy strict, retention forever, shared with members: no, input: not recorded"
    );
    let shown = ok(termroom(
        d,
        &[
            "namespace",
            "recording",
            "prod",
            "--policy",
            "best-effort",
            "--retention",
            "90d",
            "--shared",
            "true",
            "--input",
            "true",
        ],
        None,
    ));
    assert_eq!(
        shown.trim(),
        "prod: policy best-effort, retention 90d, shared with members: yes, input: recorded"
    );
    // What is not given stays as it was.
    let shown = ok(termroom(
        d,
        &["namespace", "recording", "prod", "--input", "false"],
        None,
    ));
    assert_eq!(
        shown.trim(),
        "prod: policy best-effort, retention 90d, shared with members: yes, input: not recorded"
    );
    let e = err(termroom(
        d,
        &["namespace", "recording", "prod", "--retention", "soon"],
        None,
    ));
    assert!(e.contains("not a duration"), "{e}");
    let e = err(termroom(d, &["namespace", "recording", "nope"], None));
    assert!(e.contains("no namespace nope"), "{e}");
}

/// The rows of a listing: one per line, fields split at tabs.
fn rows(listing: &str) -> Vec<Vec<String>> {
    listing
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// The audit events as `termroom audit events` prints them.
fn audit_events(d: &Path, extra: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["audit", "events"];
    args.extend_from_slice(extra);
    rows(&ok(termroom(d, &args, None)))
}

#[test]
fn guard_rules_are_added_listed_by_priority_and_removed() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    ok(termroom(d, &["namespace", "add", "ops"], None));
    let add = |extra: &[&str]| {
        let mut args = vec!["guard", "add", "ops"];
        args.extend_from_slice(extra);
        termroom(d, &args, None)
    };
    let deny = ok(add(&[
        "--action",
        "deny",
        "--pattern",
        "shutdown",
        "--priority",
        "50",
    ]));
    let deny: i64 = deny.trim().parse().expect("prints the new id");
    let warn: i64 = ok(add(&[
        "--action",
        "warn",
        "--pattern",
        r"rm\s+-rf",
        "--regex",
        "--priority",
        "10",
    ]))
    .trim()
    .parse()
    .unwrap();
    // Default priority 100; a pattern may start with a hyphen.
    let allow: i64 = ok(add(&["--action", "allow", "--pattern", "--force"]))
        .trim()
        .parse()
        .unwrap();

    let listed = rows(&ok(termroom(d, &["guard", "list", "ops"], None)));
    let ids: Vec<i64> = listed.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(
        ids,
        [warn, deny, allow],
        "lowest priority first: {listed:?}"
    );
    assert_eq!(
        listed[0][1..5],
        ["10", "warn", "regex", r"rm\\s+-rf"],
        "id, priority, action, kind, pattern (backslash escaped): {listed:?}"
    );
    assert_eq!(listed[1][1..5], ["50", "deny", "word", "shutdown"]);
    assert_eq!(listed[2][1..5], ["100", "allow", "word", "--force"]);
    assert!(listed[0][5].starts_with("20"), "created at: {listed:?}");

    let removed = ok(termroom(d, &["guard", "remove", &deny.to_string()], None));
    assert!(removed.contains("shutdown"), "{removed}");
    let listed = rows(&ok(termroom(d, &["guard", "list", "ops"], None)));
    let ids: Vec<i64> = listed.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(ids, [warn, allow]);

    // Each step is in the audit trail, by the command line (actor `-`).
    let events = audit_events(d, &[]);
    let guard: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e[3].starts_with("guard."))
        .map(|e| (e[2].as_str(), e[3].as_str(), e[4].as_str()))
        .collect();
    assert_eq!(
        guard,
        [
            ("-", "guard.rule_added", "ops"),
            ("-", "guard.rule_added", "ops"),
            ("-", "guard.rule_added", "ops"),
            ("-", "guard.rule_removed", "ops"),
        ],
        "{events:?}"
    );
    let removal = &events
        .iter()
        .find(|e| e[3] == "guard.rule_removed")
        .unwrap()[5];
    assert!(
        removal.contains(&format!("rule {deny}")) && removal.contains("deny word shutdown"),
        "the detail is the rule: {removal}"
    );
}

#[test]
fn bad_guard_rules_are_refused_with_a_reason_and_change_nothing() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    ok(termroom(d, &["namespace", "add", "ops"], None));
    ok(termroom(
        d,
        &[
            "guard",
            "add",
            "ops",
            "--action",
            "deny",
            "--pattern",
            "reboot",
        ],
        None,
    ));
    let list_before = ok(termroom(d, &["guard", "list", "ops"], None));
    let audit_before = audit_events(d, &[]);
    let refused = |args: &[&str]| err(termroom(d, args, None));

    let huge = "a".repeat(1025);
    // (namespace, action, --regex?, pattern) → what the refusal must say.
    let cases: [(&str, &str, bool, &str, &str); 9] = [
        ("ops", "deny", true, "(unclosed", "invalid regex"),
        ("ops", "deny", true, &huge, "the limit is 1024"),
        ("ops", "deny", false, "rm;ls", "contains ';'"),
        ("ops", "deny", false, "$(id)", "contains '$'"),
        ("ops", "deny", false, "rm -rf", "one command name"),
        ("ops", "deny", false, "", "empty"),
        ("ops", "block", false, "rm", "allow, deny, warn"),
        ("ghost", "deny", false, "rm", "no namespace ghost"),
        ("ghost", "warn", true, "rm", "no namespace ghost"),
    ];
    for (ns, action, regex, pattern, says) in cases {
        let mut args = vec!["guard", "add", ns, "--action", action, "--pattern", pattern];
        if regex {
            args.push("--regex");
        }
        let e = refused(&args);
        assert!(e.contains(says), "{args:?}: {e}");
    }
    let e = refused(&["guard", "list", "ghost"]);
    assert!(e.contains("no namespace ghost"), "{e}");
    let e = refused(&["guard", "remove", "9999"]);
    assert!(e.contains("no guard rule 9999"), "{e}");
    let e = refused(&["guard", "remove", "first"]);
    assert!(e.contains("invalid value"), "{e}");

    assert_eq!(
        ok(termroom(d, &["guard", "list", "ops"], None)),
        list_before
    );
    assert_eq!(audit_events(d, &[]), audit_before, "nothing audited either");
}

/// A running `local` session row `id` of `user_id`, as the server stores it.
async fn seed_session(db: &server::db::Db, id: &str, user_id: i64) {
    server::db::terminal_sessions::insert(
        db,
        &server::db::terminal_sessions::NewTermSession {
            id,
            user_id,
            host_id: None,
            target: "local",
            namespace: "",
            remote_addr: None,
            user_agent: None,
            cols: 80,
            rows: 24,
            recording_id: None,
            node_id: None,
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn live_sessions_are_listed_and_their_termination_requested() {
    use server::db::terminal_sessions::{self, Status};
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let db = server::db::open(common::database_url(d).as_deref(), d)
        .await
        .unwrap();
    let alice = server::db::users::create(&db, "alice", "not-a-hash", app::model::Role::Member)
        .await
        .unwrap();
    seed_session(&db, "s-live", alice).await;
    seed_session(&db, "s-done", alice).await;
    terminal_sessions::finish(&db, "s-done", Status::Exited, Some(0), Default::default())
        .await
        .unwrap();

    let listed = rows(&ok(termroom(d, &["session", "list"], None)));
    assert_eq!(listed.len(), 1, "only the live one: {listed:?}");
    let s = &listed[0];
    assert_eq!(s[..4], ["s-live", "alice", "local", "-"], "{s:?}");
    assert!(s[4].starts_with("20"), "started: {s:?}");
    assert_eq!(s[5], "running");

    // Refused, and nothing requested: no reason, an unknown id, an ended session.
    let e = err(termroom(
        d,
        &["session", "terminate", "s-live", "--reason", " "],
        None,
    ));
    assert!(e.contains("give a reason"), "{e}");
    let e = err(termroom(d, &["session", "terminate", "s-live"], None));
    assert!(e.contains("--reason"), "{e}");
    let e = err(termroom(
        d,
        &["session", "terminate", "s-nope", "--reason", "x"],
        None,
    ));
    assert!(e.contains("no session s-nope"), "{e}");
    let e = err(termroom(
        d,
        &["session", "terminate", "s-done", "--reason", "x"],
        None,
    ));
    assert!(e.contains("ended already"), "{e}");
    assert!(terminal_sessions::termination_requests(&db)
        .await
        .unwrap()
        .is_empty());

    let said = ok(termroom(
        d,
        &[
            "session",
            "terminate",
            "s-live",
            "--reason",
            "policy breach",
        ],
        None,
    ));
    assert!(said.contains("--revocation-poll-ms"), "{said}");
    let requested = terminal_sessions::termination_requests(&db).await.unwrap();
    assert_eq!(requested.len(), 1);
    assert_eq!(
        (
            requested[0].id.as_str(),
            requested[0].by.as_str(),
            requested[0].reason.as_str()
        ),
        ("s-live", "cli", "policy breach")
    );
    // The first request stands.
    let e = err(termroom(
        d,
        &["session", "terminate", "s-live", "--reason", "other"],
        None,
    ));
    assert!(e.contains("requested already by cli: policy breach"), "{e}");
    assert_eq!(
        terminal_sessions::termination_requests(&db).await.unwrap()[0].reason,
        "policy breach"
    );
    let events = audit_events(d, &[]);
    let asked: Vec<&Vec<String>> = events
        .iter()
        .filter(|e| e[3] == "session.terminate_requested")
        .collect();
    assert_eq!(asked.len(), 1, "{events:?}");
    assert_eq!(
        asked[0][2..],
        [
            "-",
            "session.terminate_requested",
            "s-live",
            "policy breach"
        ]
    );
    db.close().await;
}

#[tokio::test]
async fn audit_events_since_a_time() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let db = server::db::open(common::database_url(d).as_deref(), d)
        .await
        .unwrap();
    // Older events, as a long-running server would have left them.
    for (at, action) in [
        ("2020-01-01T00:00:00.000Z", "old.one"),
        ("2021-06-01T00:00:00.000Z", "old.two"),
    ] {
        server::on_db!(&db, p => sqlx::query("INSERT INTO audit_events (at, actor, action) VALUES ($1, 'alice', $2)")
            .bind(at)
            .bind(action)
            .execute(p)
            .await.map(|r| r.rows_affected()))
            .unwrap();
    }
    ok(termroom(d, &["namespace", "add", "ops"], None));
    ok(termroom(
        d,
        &[
            "guard",
            "add",
            "ops",
            "--action",
            "deny",
            "--pattern",
            "reboot",
        ],
        None,
    ));
    let actions = |events: Vec<Vec<String>>| -> Vec<String> {
        events.into_iter().map(|e| e[3].clone()).collect()
    };
    assert_eq!(
        actions(audit_events(d, &[])),
        ["old.one", "old.two", "guard.rule_added"],
        "oldest first"
    );
    assert_eq!(
        actions(audit_events(d, &["--limit", "1"])),
        ["guard.rule_added"],
        "the last"
    );
    assert_eq!(
        actions(audit_events(d, &["--since", "2021-01-01T00:00:00Z"])),
        ["old.two", "guard.rule_added"]
    );
    // Same instant, another offset.
    assert_eq!(
        actions(audit_events(
            d,
            &["--since", "2021-06-01T02:00:00+02:00", "--limit", "1"]
        )),
        ["old.two"]
    );
    let all = audit_events(d, &["--since", "2020-01-01T00:00:00Z"]);
    assert_eq!(
        all[0][1..3],
        ["2020-01-01T00:00:00.000Z", "alice"],
        "{all:?}"
    );
    for bad in ["yesterday", "2021-01-01", "2021-13-01T00:00:00Z"] {
        let e = err(termroom(d, &["audit", "events", "--since", bad], None));
        assert!(e.contains("RFC 3339"), "{bad}: {e}");
    }
    let e = err(termroom(d, &["audit", "events", "--limit", "0"], None));
    assert!(e.contains("--limit"), "{e}");
    db.close().await;
}

#[tokio::test]
async fn typed_commands_are_searched_by_user_host_verdict_and_text() {
    use server::db::commands::{self, NewCommand, Verdict};
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let db = server::db::open(common::database_url(d).as_deref(), d)
        .await
        .unwrap();
    let mut user_ids = Vec::new();
    for name in ["alice", "bob"] {
        user_ids.push(
            server::db::users::create(&db, name, "not-a-hash", app::model::Role::Member)
                .await
                .unwrap(),
        );
    }
    let (alice, bob) = (user_ids[0], user_ids[1]);
    let typed =
        |user_id: i64, target: &str, line: &str, verdict: Verdict, rule: Option<&str>| NewCommand {
            session_id: format!("s-{user_id}-{target}"),
            user_id,
            target: target.into(),
            namespace: "ops".into(),
            offset_ms: 250,
            line: line.into(),
            verdict,
            rule_id: rule.map(|_| 1),
            rule: rule.map(str::to_string),
        };
    for c in [
        typed(alice, "web", "uptime", Verdict::Allow, None),
        typed(
            alice,
            "web",
            "rm -rf /",
            Verdict::Deny,
            Some("rule 1: deny word rm"),
        ),
        typed(
            bob,
            "db",
            "psql\t-c 'DROP TABLE x'\nrm -rf /",
            Verdict::Warn,
            Some("rule 2"),
        ),
        typed(bob, "web", "ls", Verdict::Unchecked, None),
    ] {
        commands::insert(&db, &c).await.unwrap();
    }
    let search = |extra: &[&str]| {
        let mut args = vec!["audit", "commands"];
        args.extend_from_slice(extra);
        rows(&ok(termroom(d, &args, None)))
    };
    let lines = |found: Vec<Vec<String>>| -> Vec<String> {
        found.into_iter().map(|r| r[5].clone()).collect()
    };

    let every = search(&[]);
    assert_eq!(
        every.len(),
        4,
        "one row per line, newlines escaped: {every:?}"
    );
    assert!(
        every.iter().all(|r| r.len() == 7),
        "tabs escaped: {every:?}"
    );
    assert_eq!(
        every[1][5], r"psql\t-c 'DROP TABLE x'\nrm -rf /",
        "newest first"
    );
    assert_eq!(
        every[2][2..],
        ["alice", "web", "deny", "rm -rf /", "rule 1: deny word rm"]
    );
    assert_eq!(every[3][6], "-", "no rule");
    assert!(every[3][1].starts_with("20"), "time: {every:?}");

    assert_eq!(lines(search(&["--user", "alice"])), ["rm -rf /", "uptime"]);
    assert_eq!(
        lines(search(&["--host", "web"])),
        ["ls", "rm -rf /", "uptime"]
    );
    assert_eq!(lines(search(&["--user", "bob", "--host", "web"])), ["ls"]);
    assert_eq!(lines(search(&["--verdict", "deny"])), ["rm -rf /"]);
    assert_eq!(
        lines(search(&["--verdict", "warn", "--namespace", "ops"])),
        [r"psql\t-c 'DROP TABLE x'\nrm -rf /"]
    );
    assert_eq!(
        lines(search(&["--text", "RM -RF", "--user", "alice"])),
        ["rm -rf /"]
    );
    assert!(search(&["--namespace", "dev"]).is_empty());
    assert_eq!(search(&["--limit", "1"]).len(), 1);

    let e = err(termroom(
        d,
        &["audit", "commands", "--verdict", "blocked"],
        None,
    ));
    assert!(
        e.contains("allow, deny, warn, unchecked"),
        "lists the verdicts: {e}"
    );
    let e = err(termroom(d, &["audit", "commands", "--user", "carol"], None));
    assert!(e.contains("no user carol"), "{e}");
    db.close().await;
}
