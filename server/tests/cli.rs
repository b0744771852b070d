//! The `termroom` command line as scripts use it: users, namespaces and hosts
//! prepared in a data directory before a server starts.
mod common;

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use common::sshd::{Sshd, TEST_USER};

fn termroom(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_termroom"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
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
    let db = std::fs::read(d.join("termroom.db")).unwrap();
    assert!(!db.windows(15).any(|w| w == b"a-long-password"));
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
    let db = std::fs::read(d.join("termroom.db")).unwrap();
    assert!(!db.windows(11).any(|w| w == b"PRIVATE KEY"));
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
