//! Recordings through the whole server: every terminal session written as
//! asciicast v3 beside the data path, read back by an independent reader
//! (the asciinema 3.x CLI, which `make test` installs), the download routes
//! and who may use them, the failure policies on a full disk, retention.
mod common;

use std::{path::Path, process::Command, time::Duration};

use app::{model::Role, protocol::term::ClientFrame};
use common::{sshd::Sshd, term::*, *};
use server::{
    db::{self, namespaces::RecordingSettings, terminal_sessions::TermSessionRow},
    recordings::cast::{parse_size, Cast, Code, Event},
    term::RecordingPolicy,
};
use sha2::{Digest, Sha256};

/// Waits until session `id`'s recording is finished; returns its row.
async fn finished_row(s: &TestServer, id: &str) -> TermSessionRow {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let row = db::terminal_sessions::by_id(&s.core().db, id)
            .await
            .expect("row query")
            .expect("row exists");
        if matches!(
            row.recording_state.as_deref(),
            Some("complete" | "incomplete")
        ) {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recording never finished: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(client: &reqwest::Client, s: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let r = client.get(s.url(path)).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

/// `asciinema convert -f FORMAT file -`: the independent reader.
fn asciinema(format: &str, file: &Path) -> Vec<u8> {
    let out = Command::new("asciinema")
        .args(["convert", "-q", "-f", format])
        .arg(file)
        .arg("-")
        .output()
        .expect("the asciinema 3.x CLI is on PATH (make test installs it)");
    assert!(
        out.status.success(),
        "asciinema convert -f {format} {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Sets namespace `ns`'s recording settings directly.
async fn set_recording(s: &TestServer, ns: &str, settings: RecordingSettings) {
    let id = db::namespaces::id_by_name(&s.core().db, ns)
        .await
        .unwrap()
        .expect("namespace");
    db::namespaces::set_recording_settings(&s.core().db, id, &settings)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_ssh_session_recording_plays_in_asciinema_and_holds_everything() {
    let (_sshd, s, admin) = with_ssh_host().await;
    let (id, otp) = open(&s, &admin, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo typed-$((6*7))").await;
    t.until(15, |t| t.text.contains("typed-42")).await;
    // 20 KB of two- and three-byte characters: reads split some of them.
    t.type_line(r"printf '%.0s\xc3\xa9\xe2\x82\xac' $(seq 1 4000); echo; echo mb-done")
        .await;
    // The output's line, not the echo of the command (typing on while
    // printf runs would interleave the echo with a split character).
    t.until(15, |t| t.text.contains("\nmb-done\r\n")).await;
    t.send(ClientFrame::Resize {
        cols: 100,
        rows: 30,
    })
    .await;
    t.type_line("stty size").await;
    t.until(10, |t| t.text.contains("30 100")).await;
    t.send(ClientFrame::InputToAll(b"echo from-the-bar\r".to_vec()))
        .await;
    t.until(10, |t| t.text.contains("from-the-bar\r\n")).await;
    t.type_line("exit 0").await;
    t.until(10, |t| t.exit.is_some()).await;

    let row = finished_row(&s, &id).await;
    assert_eq!(row.recording_state.as_deref(), Some("complete"));
    assert_eq!(row.status, "exited");
    assert!(row.duration_ms.unwrap_or(0) > 0, "{row:?}");

    // The original, byte for byte as stored, with its size and digest.
    let (status, cast_bytes) = get(&admin, &s, &format!("/recordings/{id}.cast")).await;
    assert_eq!(status, 200);
    assert_eq!(row.recording_size, Some(cast_bytes.len() as i64));
    assert_eq!(
        row.recording_digest.as_deref(),
        Some(hex::encode(Sha256::digest(&cast_bytes)).as_str())
    );
    let text = String::from_utf8(cast_bytes.clone()).expect("a recording is UTF-8");
    let cast = Cast::parse(&text).expect("valid v3");
    assert_eq!((cast.header.cols, cast.header.rows), (80, 24));
    assert_eq!(cast.header.title, "root1@box");
    let codes = |c: Code| cast.events.iter().filter(move |e| e.code == c);
    assert_eq!(
        codes(Code::Resize)
            .map(|e| e.data.as_str())
            .collect::<Vec<_>>(),
        vec!["100x30"]
    );
    assert!(
        codes(Code::Marker).any(|e| e.data == "send to all: echo from-the-bar"),
        "send to all is marked: {:?}",
        codes(Code::Marker).collect::<Vec<_>>()
    );
    assert_eq!(
        codes(Code::Exit)
            .map(|e| e.data.as_str())
            .collect::<Vec<_>>(),
        vec!["0"]
    );

    // An independent reader: asciinema's raw output is exactly what the
    // browser received, split characters and all.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rec.cast");
    std::fs::write(&file, &cast_bytes).unwrap();
    let raw = String::from_utf8(asciinema("raw", &file)).expect("UTF-8 output");
    // asciinema starts raw output by setting the recorded size.
    let raw = raw
        .strip_prefix("\u{1b}[8;24;80t")
        .unwrap_or(&raw)
        .to_string();
    if raw.as_bytes() != t.raw.as_slice() {
        let at = raw
            .bytes()
            .zip(t.raw.iter())
            .take_while(|(a, b)| a == *b)
            .count();
        let tail = |b: &[u8]| {
            let from = at.saturating_sub(40).min(b.len());
            String::from_utf8_lossy(&b[from..(at + 80).min(b.len())]).into_owned()
        };
        panic!(
            "the recording replays the session's output exactly ({} bytes replayed, {} received); \
             they part at byte {at}: replayed {:?}, received {:?}",
            raw.len(),
            t.raw.len(),
            tail(raw.as_bytes()),
            tail(&t.raw)
        );
    }
    // The shell may interleave a redraw with printf's output, so count.
    assert!(
        raw.matches("é€").count() >= 4000,
        "multi-byte characters survive: {} found",
        raw.matches("é€").count()
    );
    assert!(!raw.contains('\u{fffd}'), "nothing mangled");

    // v2 export: valid v2 for asciinema too, same output.
    let (status, v2) = get(&admin, &s, &format!("/recordings/{id}.v2.cast")).await;
    assert_eq!(status, 200);
    let v2_text = String::from_utf8(v2.clone()).unwrap();
    let header: serde_json::Value = serde_json::from_str(v2_text.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 80);
    let mut last = 0.0f64;
    for line in v2_text.lines().skip(1) {
        let (at, code, _): (f64, String, String) = serde_json::from_str(line).unwrap();
        assert!(at >= last, "v2 times are absolute and ascending");
        assert!(code != "x", "v2 has no exit events");
        last = at;
    }
    let v2_file = dir.path().join("rec.v2.cast");
    std::fs::write(&v2_file, &v2).unwrap();
    let v2_raw = asciinema("raw", &v2_file);
    assert!(
        v2_raw.ends_with(raw.as_bytes()),
        "v2 replays the same output ({} bytes, v3 {})",
        v2_raw.len(),
        raw.len()
    );

    // The transcript holds the printed lines, as asciinema renders them.
    let (status, txt) = get(&admin, &s, &format!("/recordings/{id}.txt")).await;
    assert_eq!(status, 200);
    let txt = String::from_utf8(txt).unwrap();
    assert!(txt.lines().any(|l| l == "typed-42"), "{txt}");
    assert!(txt.lines().any(|l| l == "from-the-bar"), "{txt}");
    assert!(
        !txt.contains('\u{1b}'),
        "no escape sequences in a transcript"
    );
    let theirs = String::from_utf8(asciinema("txt", &file)).unwrap();
    assert_eq!(
        txt.trim_end().lines().collect::<Vec<_>>(),
        theirs.trim_end().lines().collect::<Vec<_>>(),
        "same transcript as asciinema's"
    );
    s.assert_audited("recording.download", &id, "root1").await;
}

#[tokio::test]
async fn recording_routes_follow_the_access_matrix() {
    let sshd = Sshd::start();
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    for u in ["alice", "carol", "bob"] {
        s.add_user(u, Role::Member).await;
    }
    let (admin, _) = s.login("root1").await;
    setup_host(&s, &sshd, &admin, "box", None).await;
    let r = s.call(&admin, "namespace_add", &[("name", "dev")]).await;
    assert_eq!(r.status(), 200);
    grant(&s, &admin, "prod", "alice").await;
    grant(&s, &admin, "prod", "carol").await;
    grant(&s, &admin, "dev", "bob").await;
    let (alice, _) = s.login("alice").await;
    let (carol, _) = s.login("carol").await;
    let (bob, _) = s.login("bob").await;
    let anonymous = reqwest::Client::new();

    let (id, otp) = open(&s, &alice, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo secret-work; exit").await;
    t.until(15, |t| t.exit.is_some()).await;
    finished_row(&s, &id).await;

    for suffix in ["cast", "v2.cast", "txt"] {
        let path = format!("/recordings/{id}.{suffix}");
        assert_eq!(get(&anonymous, &s, &path).await.0, 401, "anonymous {path}");
        assert_eq!(
            get(&bob, &s, &path).await.0,
            404,
            "another namespace {path}"
        );
        assert_eq!(get(&carol, &s, &path).await.0, 404, "not shared {path}");
        let (status, body) = get(&alice, &s, &path).await;
        assert_eq!(status, 200, "owner {path}");
        assert!(String::from_utf8_lossy(&body).contains("secret-work"));
        assert_eq!(get(&admin, &s, &path).await.0, 200, "admin {path}");
    }
    set_recording(
        &s,
        "prod",
        RecordingSettings {
            shared: true,
            ..RecordingSettings::default()
        },
    )
    .await;
    let path = format!("/recordings/{id}.cast");
    assert_eq!(get(&carol, &s, &path).await.0, 200, "shared with members");
    assert_eq!(
        get(&bob, &s, &path).await.0,
        404,
        "still not another namespace"
    );
    // The same rules for the server functions behind the Recordings page.
    let list = |c: reqwest::Client, q: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let form: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = s.call(&c, "recordings", &form).await;
            let status = r.status();
            let body = r.text().await.unwrap();
            assert_eq!(status, 200, "{body}");
            let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
            rows.as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(alice.clone(), vec![]).await, vec![id.clone()]);
    assert_eq!(
        list(carol.clone(), vec![]).await,
        vec![id.clone()],
        "shared"
    );
    assert!(list(bob.clone(), vec![]).await.is_empty());
    assert_eq!(
        list(
            admin.clone(),
            vec![
                ("query[user]", "alice".into()),
                ("query[status]", "exited".into())
            ]
        )
        .await,
        vec![id.clone()]
    );
    assert!(list(admin.clone(), vec![("query[user]", "carol".into())])
        .await
        .is_empty());
    assert!(
        list(admin.clone(), vec![("query[since]", "2999-01-01".into())])
            .await
            .is_empty()
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        list(
            admin.clone(),
            vec![("query[since]", today.clone()), ("query[until]", today)]
        )
        .await,
        vec![id.clone()]
    );
    let r = s
        .call(&admin, "recordings", &[("query[since]", "yesterday")])
        .await;
    assert_eq!(r.status(), 400, "a bad date is a clear error");
    let r = s.call(&bob, "recording", &[("id", id.as_str())]).await;
    assert_eq!(r.status(), 404, "detail of another namespace's recording");
    let r = s
        .call(
            &bob,
            "recording_search",
            &[("id", id.as_str()), ("text", "secret")],
        )
        .await;
    assert_eq!(r.status(), 404, "search in another namespace's recording");
    let detail: serde_json::Value = s
        .call(&alice, "recording", &[("id", id.as_str())])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["info"]["user"], "alice");
    assert!(detail["duration"].as_f64().unwrap() > 0.0);
    let hits: serde_json::Value = s
        .call(
            &carol,
            "recording_search",
            &[("id", id.as_str()), ("text", "SECRET-WORK")],
        )
        .await
        .json()
        .await
        .unwrap();
    let lines: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["line"].as_str().unwrap())
        .collect();
    assert!(
        lines.contains(&"secret-work"),
        "case-insensitive hit on the printed line: {lines:?}"
    );

    // Sharing into a chat room: everyone in the room sees the link; only
    // those allowed to replay it get anything behind it.
    let bob_otp = s.chat_ticket(&bob).await;
    let mut bob_chat = s.chat(&bob_otp, false, None).await.expect("chat socket");
    let r = s
        .call(
            &alice,
            "recording_share",
            &[("id", id.as_str()), ("room", "general"), ("at", "1.5")],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let msg = next_of_type(&mut bob_chat, "new_message").await;
    assert_eq!(msg["payload"]["from"], "alice");
    let text = msg["payload"]["message"].as_str().unwrap();
    assert!(text.contains(&format!("/recordings/{id}?t=1.5")), "{text}");
    assert!(text.contains("alice@box"), "{text}");
    s.assert_audited("recording.share", &id, "alice").await;
    let r = s
        .call(
            &alice,
            "recording_share",
            &[("id", id.as_str()), ("room", "no-such-room")],
        )
        .await;
    assert_eq!(r.status(), 404, "no such room");
    let r = s
        .call(
            &bob,
            "recording_share",
            &[("id", id.as_str()), ("room", "general")],
        )
        .await;
    assert_eq!(r.status(), 404, "nobody shares what they may not see");

    // Ids that look like paths or do not exist are not found, and nothing
    // of the data directory is ever served.
    for bad in [
        "/recordings/..%2Fsecret.key.cast",
        "/recordings/..%2F..%2Ftermroom.db.txt",
        "/recordings/00000000000000000000000000000000.cast",
        &format!("/recordings/{}.cast", id.to_uppercase()),
    ] {
        assert_eq!(get(&admin, &s, bad).await.0, 404, "{bad}");
    }
}

/// A 64 KiB tmpfs as the recordings directory: full after a little output.
struct TinyDisk(tempfile::TempDir);

impl TinyDisk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(st.success(), "mounting a tmpfs (needs root)");
        TinyDisk(dir)
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_ends_a_strict_session_and_best_effort_goes_on() {
    let sshd = Sshd::start();
    let disk = TinyDisk::mount();
    let s = TestServer::start_with(Options {
        recordings_dir: Some(disk.0.path().to_path_buf()),
        ..Options::default()
    })
    .await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    setup_host(&s, &sshd, &admin, "box", None).await;

    // Strict (the default): the session ends with a clear message.
    let (id, otp) = open(&s, &admin, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("head -c 300000 /dev/zero | tr '\\0' x; echo; sleep 30")
        .await;
    t.until(20, |t| t.exit.is_some() || !t.notices.is_empty())
        .await;
    let notice = t.notices.join(" | ");
    assert!(
        notice.contains("writing the recording failed") && notice.contains("must be recorded"),
        "{notice}"
    );
    let row = finished_row(&s, &id).await;
    assert_eq!(row.recording_state.as_deref(), Some("incomplete"));
    assert_eq!(row.status, "closed");
    // Free the disk for the next session.
    std::fs::remove_file(disk.0.path().join(format!("{id}.cast"))).unwrap();

    // Best effort: the session goes on, the row says what was lost.
    set_recording(
        &s,
        "prod",
        RecordingSettings {
            policy: RecordingPolicy::BestEffort,
            ..RecordingSettings::default()
        },
    )
    .await;
    let (id, otp) = open(&s, &admin, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("head -c 300000 /dev/zero | tr '\\0' y; echo; echo still-$((1+1))")
        .await;
    t.until(20, |t| t.text.contains("still-2")).await;
    assert!(t.notices.is_empty(), "{:?}", t.notices);
    t.type_line("exit").await;
    t.until(10, |t| t.exit.is_some()).await;
    let row = finished_row(&s, &id).await;
    assert_eq!(row.recording_state.as_deref(), Some("incomplete"));
    assert_eq!(row.status, "exited");
}

#[tokio::test]
async fn expired_recordings_are_deleted_and_audited() {
    let sshd = Sshd::start();
    let s = TestServer::start_with(Options {
        purge_interval_secs: 1,
        ..Options::default()
    })
    .await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    setup_host(&s, &sshd, &admin, "box", None).await;
    set_recording(
        &s,
        "prod",
        RecordingSettings {
            retention_secs: Some(2),
            ..RecordingSettings::default()
        },
    )
    .await;
    let (id, otp) = open(&s, &admin, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo short-lived; exit").await;
    t.until(15, |t| t.exit.is_some()).await;
    finished_row(&s, &id).await;
    let file = s.data_dir.join("recordings").join(format!("{id}.cast"));
    assert!(file.exists(), "kept until the retention period ends");
    assert_eq!(
        get(&admin, &s, &format!("/recordings/{id}.cast")).await.0,
        200
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while file.exists() {
        assert!(tokio::time::Instant::now() < deadline, "never deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = db::terminal_sessions::by_id(&s.core().db, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.recording_state.as_deref(), Some("deleted"));
    let audit = db::audit::recent(&s.core().db, 50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "recording.deleted" && e.target.as_deref() == Some(id.as_str())),
        "the deletion is audited"
    );
    assert_eq!(
        get(&admin, &s, &format!("/recordings/{id}.cast")).await.0,
        404
    );
}

/// The screen text after playing `events` on a `cols` × `rows` terminal.
fn screen_after<'a>(
    cols: u16,
    rows: u16,
    events: impl IntoIterator<Item = &'a Event>,
) -> Vec<String> {
    let mut vt = avt::Terminal::new(usize::from(cols), usize::from(rows)).expect("size");
    for e in events {
        match e.code {
            Code::Output => vt.feed(e.data.as_str()),
            Code::Resize => {
                if let Some((c, r)) = parse_size(&e.data) {
                    vt.resize(usize::from(c), usize::from(r));
                }
            }
            _ => {}
        }
    }
    vt.screen().text()
}

#[tokio::test]
async fn a_long_recording_plays_in_windows_that_start_from_keyframes() {
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    let (id, otp) = open(&s, &admin, "local").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    // About 21 MB of output: five keyframes, a recording of about 33 MB.
    t.type_line("seq 1 3000000; echo seq-$((1+1))-done").await;
    let tail =
        |t: &Term| String::from_utf8_lossy(&t.raw[t.raw.len().saturating_sub(400)..]).into_owned();
    t.until(120, |t| tail(t).contains("seq-2-done\r\n")).await;
    t.type_line("exit 0").await;
    t.until(10, |t| t.exit.is_some()).await;
    let row = finished_row(&s, &id).await;
    assert_eq!(row.recording_state.as_deref(), Some("complete"));

    let r = s.call(&admin, "recording", &[("id", id.as_str())]).await;
    assert_eq!(r.status(), 200);
    let detail: serde_json::Value = r.json().await.expect("detail");
    let windows: Vec<(f64, f64)> = detail["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .map(|w| (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap()))
        .collect();
    assert!(
        windows.len() >= 3,
        "a 33 MB recording plays in windows: {windows:?}"
    );
    let duration = detail["duration"].as_f64().unwrap();
    assert_eq!(windows.last().map(|w| w.1), Some(duration));

    let (_, whole) = get(&admin, &s, &format!("/recordings/{id}.cast")).await;
    let whole = Cast::parse(std::str::from_utf8(&whole).unwrap()).expect("valid v3");
    let mut parts = Vec::new();
    for (n, &(start, end)) in windows.iter().enumerate() {
        let (status, body) = get(&admin, &s, &format!("/recordings/{id}.cast?window={n}")).await;
        assert_eq!(status, 200, "window {n}");
        assert!(body.len() < 16 << 20, "window {n} is {} bytes", body.len());
        let part = Cast::parse(std::str::from_utf8(&body).unwrap()).expect("a window is valid v3");
        // Its times run from the window's start to the next one's.
        let length: u64 = part.events.iter().map(|e| e.interval_us).sum();
        let played = start + length as f64 / 1e6;
        assert!(
            (played - end).abs() < 0.001 || (n + 1 == windows.len() && played <= end + 0.001),
            "window {n}: {start} + {length} µs is not {end}"
        );
        parts.push(part);
    }
    // Every window starts on the screen the one before it ended on.
    for n in 1..parts.len() {
        let (prev, next) = (&parts[n - 1], &parts[n]);
        let ended_on = screen_after(prev.header.cols, prev.header.rows, &prev.events);
        let starts_on = screen_after(
            next.header.cols,
            next.header.rows,
            next.events.iter().take(1),
        );
        assert_eq!(ended_on, starts_on, "window {n}'s keyframe");
    }
    // The last one ends where the whole recording does.
    let last = parts.last().unwrap();
    assert_eq!(
        screen_after(last.header.cols, last.header.rows, &last.events),
        screen_after(whole.header.cols, whole.header.rows, &whole.events)
    );
    // Windows are the player's: one that does not exist is 404, and other
    // formats have none.
    let (status, _) = get(&admin, &s, &format!("/recordings/{id}.cast?window=99")).await;
    assert_eq!(status, 404);
    let (status, _) = get(&admin, &s, &format!("/recordings/{id}.txt?window=1")).await;
    assert_eq!(status, 400);
    let (status, _) = get(&admin, &s, &format!("/recordings/{id}.cast?window=x")).await;
    assert_eq!(status, 400);
}

/// The `i` events of session `id`'s recording, joined.
async fn typed_in(s: &TestServer, admin: &reqwest::Client, id: &str) -> String {
    let (status, body) = get(admin, s, &format!("/recordings/{id}.cast")).await;
    assert_eq!(status, 200);
    let cast = Cast::parse(std::str::from_utf8(&body).unwrap()).expect("valid v3");
    cast.events
        .iter()
        .filter(|e| e.code == Code::Input)
        .map(|e| e.data.as_str())
        .collect()
}

/// Types `keys` one key at a time, as a person types a password.
async fn press_keys(t: &mut Term, keys: &str) {
    for key in keys.chars() {
        t.send(ClientFrame::Input(key.to_string().into_bytes()))
            .await;
    }
}

/// Runs `echo after-$((1+1))`, exits, and returns what the recording says was typed.
async fn type_after_and_exit(
    s: &TestServer,
    admin: &reqwest::Client,
    id: &str,
    t: &mut Term,
) -> String {
    t.type_line("echo after-$((1+1))").await;
    t.until(15, |t| t.text.contains("after-2")).await;
    t.type_line("exit").await;
    t.until(10, |t| t.exit.is_some()).await;
    finished_row(s, id).await;
    typed_in(s, admin, id).await
}

#[tokio::test]
async fn typed_input_is_recorded_where_asked_and_never_a_secret() {
    let (_sshd, s, admin) = with_ssh_host().await;

    // Off by default: output only.
    let (id, otp) = open(&s, &admin, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo not-$((1+1))-typed").await;
    t.until(15, |t| t.text.contains("not-2-typed")).await;
    t.type_line("exit").await;
    t.until(10, |t| t.exit.is_some()).await;
    finished_row(&s, &id).await;
    assert_eq!(typed_in(&s, &admin, &id).await, "");

    set_recording(
        &s,
        "prod",
        RecordingSettings {
            input: true,
            ..RecordingSettings::default()
        },
    )
    .await;
    let (id, otp) = open(&s, &admin, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo typed-$((6*7))").await;
    t.until(15, |t| t.text.contains("typed-42")).await;
    // The remote turns echo off and asks for a password: what is typed
    // then, key by key, stays out of the recording.
    t.type_line("read -s -p 'Password: ' pw; echo; echo got-${#pw}-chars")
        .await;
    t.until(15, |t| t.text.ends_with("Password: ")).await;
    press_keys(&mut t, "hunter2\r").await;
    t.until(15, |t| t.text.contains("got-7-chars")).await;
    // Recorded again once it was submitted.
    let typed = type_after_and_exit(&s, &admin, &id, &mut t).await;
    assert!(typed.contains("echo typed-$((6*7))\r"), "{typed:?}");
    assert!(typed.contains("echo after-$((1+1))\r"), "{typed:?}");
    assert!(
        !typed.contains("hunter"),
        "the password was recorded: {typed:?}"
    );
    let (_, cast) = get(&admin, &s, &format!("/recordings/{id}.cast")).await;
    assert!(
        !String::from_utf8_lossy(&cast).contains("hunter"),
        "nowhere in the recording"
    );
}

#[tokio::test]
async fn a_local_terminal_reading_without_echo_keeps_its_input_out_of_the_recording() {
    let s = TestServer::start_with(Options {
        local_record_input: true,
        ..Options::default()
    })
    .await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    let (id, otp) = open(&s, &admin, "local").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo typed-$((6*7))").await;
    t.until(15, |t| t.text.contains("typed-42")).await;
    // No password prompt: only the terminal's mode tells (line mode
    // without echo, as `read -s`, sudo and passwd set it). bash sets the
    // mode before it prints read's prompt, which says nothing secret.
    t.type_line("read -s -p 'ready> ' x; echo; echo got-${#x}-chars")
        .await;
    t.until(15, |t| t.text.ends_with("ready> ")).await;
    press_keys(&mut t, "s3cr3t\r").await;
    t.until(15, |t| t.text.contains("got-6-chars")).await;
    let typed = type_after_and_exit(&s, &admin, &id, &mut t).await;
    assert!(typed.contains("echo typed-$((6*7))\r"), "{typed:?}");
    assert!(
        typed.contains("read -s -p"),
        "typed at the prompt: {typed:?}"
    );
    assert!(typed.contains("echo after-$((1+1))\r"), "{typed:?}");
    assert!(
        !typed.contains("s3cr3t"),
        "typed while echo was off: {typed:?}"
    );
    let (_, cast) = get(&admin, &s, &format!("/recordings/{id}.cast")).await;
    assert!(
        !String::from_utf8_lossy(&cast).contains("s3cr3t"),
        "nowhere in it"
    );
}
