//! The command guard through a real sshd: submitted lines are read from the
//! screen (edits and history included), logged with their offsets, checked
//! against the namespace's rules; denied lines never run, warned ones run
//! flagged, and a full-screen program's span is logged as unchecked.
mod common;

use std::time::Duration;

use app::protocol::term::ClientFrame;
use common::{term::*, *};
use server::{
    db::{
        self,
        commands::{CommandFilter, CommandRow, Verdict},
        guard_rules::{RuleAction, RuleKind},
    },
    term::UNCHECKED_LINE,
};

/// Adds a rule to `prod`.
async fn rule(s: &TestServer, action: RuleAction, kind: RuleKind, pattern: &str) {
    db::guard_rules::add(
        &s.core().db,
        "prod",
        100,
        kind,
        pattern,
        action,
        Some("root1"),
    )
    .await
    .expect("rule added");
}

/// The commands of session `id`, oldest first, once there are `n`.
async fn commands(s: &TestServer, id: &str, n: usize) -> Vec<CommandRow> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut rows = db::commands::search(
            &s.core().db,
            &CommandFilter {
                session_id: Some(id.to_string()),
                limit: 1000,
                ..CommandFilter::default()
            },
        )
        .await
        .expect("search");
        rows.reverse();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} commands, have {:?}",
            rows.iter().map(|r| &r.line).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `bytes` as one input frame.
async fn keys(t: &mut Term, bytes: &str) {
    t.send(ClientFrame::Input(bytes.as_bytes().to_vec())).await;
}

/// Makes a file `x` in a fresh directory and goes there.
async fn scratch_dir_with_x(t: &mut Term) {
    t.type_line("cd \"$(mktemp -d)\" && touch x && echo made-$((5*5))")
        .await;
    t.until(15, |t| t.text.contains("made-25")).await;
}

/// Proves `x` is still there.
async fn x_still_there(t: &mut Term, tag: &str) {
    t.type_line(&format!("test -e x && echo {tag}-$((2+2))"))
        .await;
    let want = format!("{tag}-4");
    t.until(15, |t| t.text.contains(&want)).await;
}

#[tokio::test]
async fn lines_are_read_from_the_screen_with_edits_history_and_offsets() {
    let (_sshd, s, admin) = with_ssh_host().await;
    let (id, otp) = open(&s, &admin, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("echo one-$((1+0))").await;
    t.until(15, |t| t.text.contains("one-1")).await;
    // Typed, then edited with the arrow keys: what the shell runs is on the screen.
    keys(&mut t, "echo abc").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    keys(&mut t, "\x1b[D\x1b[D\x1b[DX").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    keys(&mut t, "\r").await;
    t.until(15, |t| t.text.contains("Xabc\r\n")).await;
    // History recall: the recalled line is the command.
    keys(&mut t, "\x1b[A").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    keys(&mut t, "\r").await;
    t.until(15, |t| t.text.matches("Xabc\r\n").count() >= 2)
        .await;
    // Output is not a command, and an empty line is not one either.
    t.type_line("").await;

    let rows = commands(&s, &id, 3).await;
    let lines: Vec<&str> = rows.iter().map(|r| r.line.as_str()).collect();
    assert_eq!(lines, ["echo one-$((1+0))", "echo Xabc", "echo Xabc"]);
    assert!(rows.iter().all(|r| r.verdict == Verdict::Allow));
    assert!(rows
        .iter()
        .all(|r| r.target == "box" && r.namespace == "prod"));
    assert!(
        rows.windows(2).all(|w| w[0].offset_ms <= w[1].offset_ms) && rows[0].offset_ms > 0,
        "offsets grow: {:?}",
        rows.iter().map(|r| r.offset_ms).collect::<Vec<_>>()
    );
    t.type_line("exit").await;
    t.until(15, |t| t.exit.is_some()).await;
    let cast = admin
        .get(s.url(&format!("/recordings/{id}.cast")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        cast.contains("\"$ echo one-$((1+0))\""),
        "command marker: {cast}"
    );
}

#[tokio::test]
async fn denied_lines_never_run_however_they_are_typed() {
    let (_sshd, s, admin) = with_ssh_host().await;
    rule(&s, RuleAction::Deny, RuleKind::Word, "rm").await;
    let (id, otp) = open(&s, &admin, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    scratch_dir_with_x(&mut t).await;

    t.type_line("ls; rm x").await;
    t.until(15, |t| {
        t.notices
            .iter()
            .any(|n| n.contains("blocked by deny word \"rm\""))
    })
    .await;
    x_still_there(&mut t, "after-list").await;

    t.type_line("echo ok && rm x").await;
    t.until(15, |t| t.notices.len() >= 2).await;
    x_still_there(&mut t, "after-and").await;

    // An allowed prefix, Ctrl-C, then a denied command, in one frame.
    keys(&mut t, "echo fine\x03rm x\r").await;
    t.until(15, |t| t.notices.len() >= 3).await;
    x_still_there(&mut t, "after-ctrl-c").await;

    // A denied line inside pasted text: the lines around it run, it does not.
    keys(
        &mut t,
        "\x1b[200~echo first-$((3*3))\nrm x\necho third-$((4*4))\x1b[201~",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    keys(&mut t, "\r").await;
    t.until(15, |t| {
        t.text.contains("first-9") && t.text.contains("third-16")
    })
    .await;
    t.until(15, |t| t.notices.len() >= 4).await;
    x_still_there(&mut t, "after-paste").await;

    let rows = commands(&s, &id, 1).await;
    let denied: Vec<&str> = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Deny)
        .map(|r| r.line.as_str())
        .collect();
    assert_eq!(
        denied,
        ["ls; rm x", "echo ok && rm x", "rm x", "rm x"],
        "{rows:?}"
    );
    assert!(rows
        .iter()
        .filter(|r| r.verdict == Verdict::Deny)
        .all(|r| r.rule_id.is_some() && r.rule.as_deref().is_some_and(|t| t.contains("rm"))));
    let ran: Vec<&str> = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Allow)
        .map(|r| r.line.as_str())
        .collect();
    assert!(
        ran.contains(&"echo first-$((3*3))") && ran.contains(&"echo third-$((4*4))"),
        "{ran:?}"
    );
}

#[tokio::test]
async fn warned_lines_run_flagged_and_full_screen_programs_are_marked_unchecked() {
    let (_sshd, s, admin) = with_ssh_host().await;
    rule(&s, RuleAction::Warn, RuleKind::Regex, "^whoami").await;
    let (id, otp) = open(&s, &admin, "box").await.expect("open");
    let mut t = Term::attach(&s, &id, &otp, 0).await;
    t.type_line("whoami").await;
    // whoami's output: the user name alone on its line.
    let answer = format!("\r{}\r\n", common::sshd::TEST_USER);
    t.until(15, |t| t.text.contains(&answer)).await;
    t.until(15, |t| {
        t.notices.iter().any(|n| n.contains("command flagged"))
    })
    .await;

    t.type_line("vim -u NONE -N").await;
    t.until(15, |t| t.text.contains("\x1b[?1049h")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    keys(&mut t, ":q!\r").await;
    t.until(15, |t| t.text.contains("\x1b[?1049l")).await;
    t.type_line("echo back-$((6+6))").await;
    t.until(15, |t| t.text.contains("back-12")).await;

    let rows = commands(&s, &id, 4).await;
    let got: Vec<(&str, Verdict)> = rows.iter().map(|r| (r.line.as_str(), r.verdict)).collect();
    assert_eq!(
        got,
        [
            ("whoami", Verdict::Warn),
            ("vim -u NONE -N", Verdict::Allow),
            (UNCHECKED_LINE, Verdict::Unchecked),
            ("echo back-$((6+6))", Verdict::Allow),
        ]
    );
    assert!(rows[0]
        .rule
        .as_deref()
        .is_some_and(|r| r.contains("whoami")));
}

#[tokio::test]
async fn send_to_all_is_checked_against_each_targets_rules() {
    let (_sshd, s, admin) = with_ssh_host().await;
    rule(&s, RuleAction::Deny, RuleKind::Word, "rm").await;
    let (ssh_id, ssh_otp) = open(&s, &admin, "box").await.expect("open box");
    let (local_id, local_otp) = open(&s, &admin, "local").await.expect("open local");
    let mut guarded = Term::attach(&s, &ssh_id, &ssh_otp, 0).await;
    let mut free = Term::attach(&s, &local_id, &local_otp, 0).await;
    for t in [&mut guarded, &mut free] {
        t.type_line("echo up-$((1+1))").await;
        t.until(15, |t| t.text.contains("up-2")).await;
    }
    for t in [&mut guarded, &mut free] {
        t.send(ClientFrame::InputToAll(
            b"rm -f /nonexistent/tr-x; echo all-$((5*5))\r".to_vec(),
        ))
        .await;
    }
    free.until(15, |t| t.broadcasts.len() == 1 && t.text.contains("all-25"))
        .await;
    guarded.until(15, |t| t.broadcasts.len() == 1).await;
    assert_eq!(free.broadcasts, [None], "no rules: sent");
    let blocked = guarded.broadcasts[0]
        .clone()
        .expect("blocked on the guarded host");
    assert!(blocked.contains("deny word \"rm\""), "{blocked}");
    x_absent(&mut guarded, "all-25").await;
}

/// Waits a moment and checks `text` never appeared as output.
async fn x_absent(t: &mut Term, text: &str) {
    t.type_line("echo settled-$((7*7))").await;
    t.until(15, |t| t.text.contains("settled-49")).await;
    assert!(!t.text.contains(text), "{text} ran: {:?}", t.text);
}
