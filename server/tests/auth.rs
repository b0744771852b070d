//! Login, tickets, origin checks and logout against a real server.
mod common;

use app::model::Role;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn login_ok_sets_an_httponly_cookie_and_returns_a_ticket() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let resp = reqwest::Client::new()
        .post(s.url("/login"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get("set-cookie")
        .expect("cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("termroom_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP must not set Secure: {cookie}"
    );
    let body: Value = resp.json().await.unwrap();
    let otp = body["otp"].as_str().unwrap();
    assert_eq!(otp.len(), 32, "128-bit hex ticket");
    assert!(s.chat(otp, false, None).await.is_ok());
}

#[tokio::test]
async fn bad_credentials_get_401_without_detail() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let client = reqwest::Client::new();
    for (user, pw) in [("alice", "wrong-password"), ("nobody", PASSWORD)] {
        let resp = client
            .post(s.url("/login"))
            .json(&json!({"username": user, "password": pw}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().get("set-cookie").is_none());
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains("nobody") && !text.to_lowercase().contains("password"),
            "leaks detail: {text}"
        );
    }
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_per_address() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let client = reqwest::Client::new();
    let mut statuses = vec![];
    for _ in 0..7 {
        let r = client
            .post(s.url("/login"))
            .json(&json!({"username": "alice", "password": "nope-nope"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5]);
    assert!(statuses[5..].iter().all(|&c| c == 429), "{statuses:?}");
    // even the right password waits while limited
    let r = client
        .post(s.url("/login"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let body = r.text().await.unwrap();
    assert!(body.contains("RateLimited"), "{body}");
}

#[tokio::test]
async fn a_ticket_works_once() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let (_c, otp) = s.login("alice").await;
    assert!(s.chat(&otp, true, None).await.is_ok());
    assert_eq!(s.chat(&otp, true, None).await.err(), Some(401));
}

#[tokio::test]
async fn missing_unknown_and_expired_tickets_get_401() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    assert_eq!(
        common::connect(&s.ws_url("/ws"), None).await.err(),
        Some(401)
    );
    assert_eq!(
        s.chat("00000000000000000000000000000000", false, None)
            .await
            .err(),
        Some(401)
    );
    let (client, _) = s.login("alice").await;
    let otp = s.chat_ticket(&client).await;
    server::on_db!(&s.core().db, p => sqlx::query("UPDATE tickets SET expires_at = expires_at - 31")
        .execute(p)
        .await
        .map(|_| ()))
    .unwrap();
    assert_eq!(s.chat(&otp, false, None).await.err(), Some(401));
}

#[tokio::test]
async fn a_ticket_for_another_purpose_is_refused() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let user = server::db::users::by_name(&s.core().db, "alice")
        .await
        .unwrap()
        .unwrap();
    let otp = server::auth::tickets::issue(
        &s.core().db,
        user.id,
        &server::auth::tickets::Purpose::Term("abc".into()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(s.chat(&otp, false, None).await.err(), Some(401));
}

#[tokio::test]
async fn concurrent_redemptions_succeed_exactly_once() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    for _ in 0..5 {
        let (_c, otp) = s.login("alice").await;
        let attempts = (0..8).map(|_| s.chat(&otp, false, None));
        let results = futures::future::join_all(attempts).await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            ok,
            1,
            "{:?}",
            results.iter().map(|r| r.as_ref().err()).collect::<Vec<_>>()
        );
        assert!(results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|&c| c == 401));
    }
}

#[tokio::test]
async fn foreign_origin_gets_403_and_listed_origins_pass() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let (client, otp) = s.login("alice").await;
    assert_eq!(
        s.chat(&otp, false, Some("https://evil.example.net"))
            .await
            .err(),
        Some(403)
    );
    let otp = s.chat_ticket(&client).await;
    assert!(s
        .chat(&otp, false, Some("https://ops.example.com"))
        .await
        .is_ok());
    let otp = s.chat_ticket(&client).await;
    let own = format!("http://{}", s.addr);
    assert!(s.chat(&otp, false, Some(&own)).await.is_ok());
}

#[tokio::test]
async fn logout_ends_the_session_and_closes_its_sockets() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let (client, otp) = s.login("alice").await;
    let mut ws = s.chat(&otp, true, None).await.unwrap();
    next_of_type(&mut ws, "joined").await;
    let me: Value = s.call(&client, "me", &[]).await.json().await.unwrap();
    assert_eq!(me["name"], "alice");
    assert_eq!(s.call(&client, "logout", &[]).await.status(), 200);
    loop {
        match next_event(&mut ws, 5).await {
            Got::Closed(reason) => {
                assert_eq!(reason.map(|r| r.1), Some("logged out".to_string()));
                break;
            }
            Got::Json(_) => continue,
        }
    }
    let me: Value = s.call(&client, "me", &[]).await.json().await.unwrap();
    assert!(me.is_null(), "still logged in: {me}");
    assert_eq!(s.call(&client, "chat_ticket", &[]).await.status(), 401);
}

#[tokio::test]
async fn members_cannot_call_admin_functions() {
    let s = TestServer::start().await;
    s.add_user("bob", Role::Member).await;
    let (client, _) = s.login("bob").await;
    assert_eq!(s.call(&client, "users", &[]).await.status(), 403);
    assert_eq!(
        s.call(&reqwest::Client::new(), "users", &[]).await.status(),
        401
    );
}

#[tokio::test]
async fn unknown_paths_get_404_and_pages_render() {
    let s = TestServer::start().await;
    let r = reqwest::get(s.url("/no/such/page")).await.unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::get(s.url("/login")).await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("/pkg/termroom"),
        "the page loads the termroom bundle"
    );
}

#[tokio::test]
async fn admins_manage_users_through_server_functions_and_the_audit_log_names_them() {
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    s.add_user("alice", Role::Member).await;
    let (admin, _) = s.login("root1").await;
    let (member, _) = s.login("alice").await;

    let args = [
        ("name", "carol"),
        ("password", "carol-password-1"),
        ("role", "member"),
    ];
    let r = s.call(&member, "user_add", &args).await;
    assert_eq!(r.status(), 403, "members cannot add users");
    let r = s.call(&admin, "user_add", &args).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let login = |password: &'static str| {
        reqwest::Client::new()
            .post(s.url("/login"))
            .json(&json!({"username": "carol", "password": password}))
            .send()
    };
    assert_eq!(login("carol-password-1").await.unwrap().status(), 200);

    let r = s.call(&admin, "user_disable", &[("name", "root1")]).await;
    assert_eq!(r.status(), 400, "an admin cannot disable themself");
    let r = s.call(&admin, "user_disable", &[("name", "carol")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        login("carol-password-1").await.unwrap().status(),
        401,
        "a disabled user cannot log in"
    );

    s.assert_audited("user.add", "carol", "root1").await;
    s.assert_audited("user.disable", "carol", "root1").await;
}

/// Posts `/login`, optionally with an `X-Forwarded-For` header.
async fn try_login(
    s: &TestServer,
    client: &reqwest::Client,
    name: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .post(s.url("/login"))
        .json(&json!({"username": name, "password": password}));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.expect("login request")
}

/// Free failures per address; the tests below drive the limiter past them.
const ADDR_FREE: u32 = server::auth::ratelimit::FREE_FAILURES_PER_ADDR;
/// Free failures per account name.
const NAME_FREE: u32 = server::auth::ratelimit::FREE_FAILURES_PER_NAME;

#[tokio::test]
async fn logging_into_ones_own_account_does_not_reset_guesses_at_another() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    s.add_user("mallory", Role::Member).await;
    let c = reqwest::Client::new();
    let mut statuses = vec![];
    for _ in 0..NAME_FREE {
        statuses.push(
            try_login(&s, &c, "alice", "guess-guess", None)
                .await
                .status(),
        );
        // Before the fix a success cleared the address's failures.
        let ok = try_login(&s, &c, "mallory", PASSWORD, None).await;
        assert_eq!(ok.status(), 200, "mallory's own logins always work");
    }
    assert!(statuses.iter().all(|c| *c == 401), "{statuses:?}");
    let r = try_login(&s, &c, "alice", "guess-guess", None).await;
    assert_eq!(r.status(), 429, "alice's guesses are limited");
    assert!(r.headers().get("retry-after").is_some());
    let r = try_login(&s, &c, "alice", PASSWORD, None).await;
    assert_eq!(r.status(), 429, "even the right password waits");
}

#[tokio::test]
async fn parallel_guesses_cannot_all_pass_the_check() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let c = reqwest::Client::new();
    let guesses = (0..30).map(|i| {
        let c = c.clone();
        let s = &s;
        async move {
            try_login(s, &c, "alice", &format!("guess-{i}"), None)
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let tried = statuses.iter().filter(|&&c| c == 401).count();
    assert!(
        tried <= NAME_FREE as usize,
        "at most {NAME_FREE} guesses are checked: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|&c| c == 401 || c == 429),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn invalid_names_are_refused_before_hashing_still_counted_and_audit_is_capped() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let c = reqwest::Client::new();
    let long = "x".repeat(10_000);
    let bad_names = ["", "a b", "../etc/passwd", long.as_str(), "é"];
    for i in 0..ADDR_FREE as usize {
        let r = try_login(&s, &c, bad_names[i % bad_names.len()], "pw", None).await;
        assert_eq!(r.status(), 400, "attempt {i}");
        let body = r.text().await.unwrap();
        assert!(body.contains("name"), "says what is wrong: {body}");
    }
    assert_eq!(
        s.core().hasher.peak_concurrency(),
        0,
        "no password was hashed for a name that cannot exist"
    );
    let audit = server::db::audit::recent(&s.core().db, 100).await.unwrap();
    let failed: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "login.failed")
        .collect();
    assert_eq!(failed.len(), ADDR_FREE as usize, "every attempt is audited");
    assert!(failed
        .iter()
        .all(|e| e.target.as_deref().unwrap_or("").chars().count() <= 64));
    // They counted against the address.
    let r = try_login(&s, &c, "alice", PASSWORD, None).await;
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn a_full_hash_queue_answers_503_with_retry_after_and_bounds_concurrency() {
    let s = TestServer::start_with(Options {
        hash_workers: Some(1),
        hash_queue: Some(1),
        // Each request comes "from" its own address, so that only the hash
        // queue (not the address limit) refuses them.
        trusted_proxies: vec!["127.0.0.1/32".into()],
        ..Options::default()
    })
    .await;
    s.add_user("alice", Role::Member).await;
    let c = reqwest::Client::new();
    let burst = (0..40).map(|i| {
        let c = c.clone();
        let s = &s;
        async move {
            let r = try_login(
                s,
                &c,
                &format!("ghost{i}"),
                "guess-guess",
                Some(&format!("198.51.100.{i}")),
            )
            .await;
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            (r.status().as_u16(), retry)
        }
    });
    let results = futures::future::join_all(burst).await;
    let busy: Vec<_> = results.iter().filter(|(c, _)| *c == 503).collect();
    assert!(!busy.is_empty(), "a full queue refuses: {results:?}");
    assert!(
        busy.iter().all(|(_, retry)| retry.is_some_and(|r| r >= 1)),
        "503 carries Retry-After: {results:?}"
    );
    assert!(
        results.iter().all(|(c, _)| *c == 401 || *c == 503),
        "{results:?}"
    );
    assert!(results.iter().any(|(c, _)| *c == 401), "some are served");
    assert_eq!(s.core().hasher.peak_concurrency(), 1, "one hash at a time");
    // A refused attempt was not counted: the queue is free again and the
    // right password works.
    let r = try_login(&s, &c, "alice", PASSWORD, Some("198.51.100.250")).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_browser_that_logged_in_before_gets_in_during_a_flood_of_strangers() {
    use std::sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    };
    let s = Arc::new(
        TestServer::start_with(Options {
            hash_workers: Some(1),
            hash_queue: Some(1),
            trusted_proxies: vec!["127.0.0.1/32".into()],
            ..Options::default()
        })
        .await,
    );
    s.add_user("alice", Role::Member).await;
    let c = reqwest::Client::new();
    // The first login from this browser gives it a device cookie for /login only.
    let r = try_login(&s, &c, "alice", PASSWORD, Some("198.51.100.200")).await;
    assert_eq!(r.status(), 200);
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("termroom_device="))
        .expect("a device cookie")
        .to_string();
    for part in ["Path=/login", "HttpOnly", "SameSite=Strict", "Max-Age="] {
        assert!(set.contains(part), "{part} in {set}");
    }
    let device = set.split(';').next().unwrap_or_default().to_string();

    // Strangers guess without pause, each from its own address: the queue
    // stays full.
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..8)
        .map(|i| {
            let (s, c, stop, refused) = (s.clone(), c.clone(), stop.clone(), refused.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let xff = format!("10.9.{i}.{}", n % 250);
                    let name = format!("ghost{i}x{n}");
                    let r = try_login(&s, &c, &name, "guess-guess", Some(&xff)).await;
                    if r.status() == 503 {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    while refused.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Without the cookie, alice is refused as busy like everyone else...
    let mut busy_without = 0;
    for k in 0..20 {
        let xff = format!("198.51.100.{}", 10 + k);
        if try_login(&s, &c, "alice", PASSWORD, Some(&xff))
            .await
            .status()
            == 503
        {
            busy_without += 1;
        }
    }
    // ...with it, she gets in every time.
    for k in 0..5 {
        let r = c
            .post(s.url("/login"))
            .headers(s.same_origin())
            .header("cookie", &device)
            .header("x-forwarded-for", format!("198.51.100.{}", 40 + k))
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
            .expect("login request");
        assert_eq!(r.status(), 200, "login {k} from the known browser");
    }
    // The cookie is no key: a wrong password from that browser still fails,
    // and the cookie does nothing for another account.
    s.add_user("bob", Role::Member).await;
    let r = c
        .post(s.url("/login"))
        .headers(s.same_origin())
        .header("cookie", &device)
        .header("x-forwarded-for", "198.51.100.60")
        .json(&json!({"username": "alice", "password": "not-her-password"}))
        .send()
        .await
        .expect("login request");
    assert_eq!(r.status(), 401);
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.expect("flood task");
    }
    assert!(
        busy_without > 0,
        "the flood kept the queue full (alice without the cookie was never refused)"
    );
}

/// Fails `n` logins on distinct unknown names, each with `xff(i)` as X-Forwarded-For.
async fn fail_many(s: &TestServer, n: u32, xff: impl Fn(u32) -> String) {
    let c = reqwest::Client::new();
    for i in 0..n {
        let r = try_login(s, &c, &format!("ghost{i}"), "guess-guess", Some(&xff(i))).await;
        assert_eq!(r.status(), 401, "failure {i}");
    }
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    // Claiming a new address each time does not escape the address limit.
    fail_many(&s, ADDR_FREE, |i| format!("203.0.113.{i}")).await;
    let c = reqwest::Client::new();
    let r = try_login(&s, &c, "alice", PASSWORD, Some("203.0.113.200")).await;
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let s = TestServer::start_with(Options {
        trusted_proxies: vec!["127.0.0.0/8".into()],
        ..Options::default()
    })
    .await;
    s.add_user("alice", Role::Member).await;
    s.add_user("mallory", Role::Member).await;
    // The attacker's failures, forwarded by the proxy (the left-most entry
    // is whatever the attacker wrote and is not believed).
    fail_many(&s, ADDR_FREE - 1, |i| format!("10.{i}.0.1, 203.0.113.66")).await;
    let c = reqwest::Client::new();
    // A success on their own account does not clear the address's failures.
    let r = try_login(&s, &c, "mallory", PASSWORD, Some("203.0.113.66")).await;
    assert_eq!(r.status(), 200);
    let r = try_login(&s, &c, "ghost-last", "guess-guess", Some("203.0.113.66")).await;
    assert_eq!(r.status(), 401);
    let r = try_login(&s, &c, "alice", PASSWORD, Some("203.0.113.66")).await;
    assert_eq!(r.status(), 429, "the attacker's address waits");
    // Everyone else behind the same proxy is unaffected.
    let r = try_login(&s, &c, "alice", PASSWORD, Some("203.0.113.7")).await;
    assert_eq!(r.status(), 200, "another client behind the proxy logs in");
    let audit = server::db::audit::recent(&s.core().db, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "login.failed" && e.detail.as_deref() == Some("203.0.113.66")),
        "the audit log names the forwarded client"
    );
}

#[tokio::test]
async fn one_account_guessed_from_many_addresses_is_limited() {
    let s = TestServer::start_with(Options {
        trusted_proxies: vec!["127.0.0.1/32".into()],
        ..Options::default()
    })
    .await;
    s.add_user("alice", Role::Member).await;
    let c = reqwest::Client::new();
    for i in 0..NAME_FREE {
        let xff = format!("198.51.100.{i}");
        let r = try_login(&s, &c, "alice", "guess-guess", Some(&xff)).await;
        assert_eq!(r.status(), 401);
    }
    let r = try_login(&s, &c, "alice", "guess-guess", Some("192.0.2.1")).await;
    assert_eq!(r.status(), 429, "counted per account name");
}

/// Whether `client`'s login cookie still names a user (`/api/me`).
async fn still_logged_in(s: &TestServer, client: &reqwest::Client) -> bool {
    let r = s.call(client, "me", &[]).await;
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.expect("me json");
    !me.is_null()
}

#[tokio::test]
async fn a_user_changes_their_password_and_every_session_of_theirs_ends() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    s.add_user("bob", Role::Member).await;
    let (here, _) = s.login("alice").await;
    let (elsewhere, _) = s.login("alice").await;
    let (bob, _) = s.login("bob").await;
    let new = "a-brand-new-passphrase";
    // Refusals change nothing and say why.
    for (current, next, why) in [
        ("not-the-password", new, "the current password is not right"),
        (PASSWORD, "short", "at least"),
        (PASSWORD, PASSWORD, "the new password is the current one"),
    ] {
        let r = s
            .call(&here, "password", &[("current", current), ("new", next)])
            .await;
        assert_eq!(r.status(), 400, "{why}");
        let body = r.text().await.expect("body");
        assert!(body.contains(why), "{why}: {body}");
        assert!(still_logged_in(&s, &here).await);
    }
    // Not logged in: no change.
    let r = s
        .call(
            &reqwest::Client::new(),
            "password",
            &[("current", PASSWORD), ("new", new)],
        )
        .await;
    assert_eq!(r.status(), 401);

    let r = s
        .call(&here, "password", &[("current", PASSWORD), ("new", new)])
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    // Both of alice's sessions ended; bob's did not.
    assert!(!still_logged_in(&s, &here).await, "this session ended");
    assert!(!still_logged_in(&s, &elsewhere).await, "the other one too");
    assert!(still_logged_in(&s, &bob).await, "another user is untouched");
    let c = reqwest::Client::new();
    assert_eq!(
        try_login(&s, &c, "alice", PASSWORD, None).await.status(),
        401
    );
    assert_eq!(try_login(&s, &c, "alice", new, None).await.status(), 200);
    s.assert_audited("user.password_changed", "alice", "alice")
        .await;
}

#[tokio::test]
async fn guessing_the_current_password_is_limited_like_logins() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let (client, _) = s.login("alice").await;
    let change = |current: &'static str| {
        let (s, client) = (&s, &client);
        async move {
            s.call(
                client,
                "password",
                &[("current", current), ("new", "a-brand-new-passphrase")],
            )
            .await
            .status()
            .as_u16()
        }
    };
    for _ in 0..NAME_FREE {
        assert_eq!(change("a-wrong-guess").await, 400);
    }
    assert_eq!(
        change("another-guess").await,
        429,
        "guesses are slowed down"
    );
    // The failures count for logins to the name too.
    let r = try_login(&s, &reqwest::Client::new(), "alice", PASSWORD, None).await;
    assert_eq!(r.status(), 429);
    assert!(
        still_logged_in(&s, &client).await,
        "the password did not change"
    );
}
