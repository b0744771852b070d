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
    sqlx::query("UPDATE tickets SET expires_at = expires_at - 31")
        .execute(&s.core().db)
        .await
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
    let otp = server::auth::tickets::issue(&s.core().db, user.id, "term:abc", None)
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
