//! HTTP edge: cross-site request checks on state-changing requests, response
//! compression (dynamic and precompressed static files), the health check
//! and the diagnostic `/ws/echo` socket.
mod common;

use std::{io::Read, time::Duration};

use app::{model::Role, protocol::chat::MAX_FRAME_BYTES};
use common::{connect, Options, TestServer, PASSWORD};
use futures::{SinkExt, StreamExt};
use reqwest::{
    header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, ORIGIN, SET_COOKIE},
    Response, StatusCode,
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http, Message};

const ALLOWED: &str = "https://ops.example.com";

/// `POST /login` with JSON and optional extra headers, from a client that keeps no cookies.
async fn login_with(s: &TestServer, name: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = reqwest::Client::new()
        .post(s.url("/login"))
        .json(&json!({"username": name, "password": PASSWORD}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("login request")
}

/// The `termroom_session=...` pair a login response set.
fn session_cookie(resp: &Response) -> String {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("termroom_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_string()
}

/// An admin's session cookie, obtained without any Origin.
async fn admin_cookie(s: &TestServer) -> String {
    s.add_user("root1", Role::Admin).await;
    let r = login_with(s, "root1", &[]).await;
    assert_eq!(r.status(), 200);
    session_cookie(&r)
}

/// `POST /api/user_add` creating `name`, with the given headers (cookie, origin, ...).
async fn add_user(s: &TestServer, name: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = reqwest::Client::new().post(s.url("/api/user_add")).form(&[
        ("name", name),
        ("password", "a-long-password-1"),
        ("role", "member"),
    ]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("user_add request")
}

async fn user_exists(s: &TestServer, name: &str) -> bool {
    server::db::users::by_name(&s.core().db, name)
        .await
        .expect("user lookup")
        .is_some()
}

#[tokio::test]
async fn a_foreign_origin_cannot_log_in_or_act() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let r = login_with(&s, "alice", &[("origin", "https://evil.example")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.headers().get(SET_COOKIE).is_none(),
        "no session is created"
    );
    assert!(r.text().await.unwrap_or_default().contains("origin"));

    // The login-CSRF attack: a foreign page posts JSON as text/plain (no preflight).
    let r = reqwest::Client::new()
        .post(s.url("/login"))
        .header(ORIGIN, "https://evil.example")
        .header(CONTENT_TYPE, "text/plain")
        .body(json!({"username": "alice", "password": PASSWORD}).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let cookie = admin_cookie(&s).await;
    let r = add_user(
        &s,
        "mallory",
        &[("cookie", &cookie), ("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!user_exists(&s, "mallory").await);
}

#[tokio::test]
async fn a_sibling_subdomain_cannot_post_admin_actions() {
    let s = TestServer::start().await;
    let cookie = admin_cookie(&s).await;
    // Same site as the allowed https://ops.example.com, but another origin.
    let r = add_user(
        &s,
        "mallory",
        &[("cookie", &cookie), ("origin", "https://dev.example.com")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A browser that sends no Origin still says where the request came from.
    let r = add_user(
        &s,
        "mallory",
        &[("cookie", &cookie), ("sec-fetch-site", "same-site")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!user_exists(&s, "mallory").await);
}

#[tokio::test]
async fn a_cookie_without_origin_is_refused() {
    let s = TestServer::start().await;
    let cookie = admin_cookie(&s).await;
    let r = add_user(&s, "carol", &[("cookie", &cookie)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let text = r.text().await.unwrap_or_default();
    assert!(text.contains("without an Origin"), "clear message: {text}");
    assert!(!user_exists(&s, "carol").await);
    // Logging in again while holding a cookie is cookie-authenticated too.
    let r = login_with(&s, "root1", &[("cookie", &cookie)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_own_origin_and_allow_listed_origins_work() {
    let s = TestServer::start().await;
    let cookie = admin_cookie(&s).await;
    let own = s.origin();
    let r = add_user(&s, "carol", &[("cookie", &cookie), ("origin", &own)]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let r = add_user(&s, "dave", &[("cookie", &cookie), ("origin", ALLOWED)]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let r = add_user(
        &s,
        "erin",
        &[("cookie", &cookie), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    for name in ["carol", "dave", "erin"] {
        assert!(user_exists(&s, name).await, "{name} was created");
    }
    assert_eq!(
        login_with(&s, "carol", &[("origin", ALLOWED)])
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "wrong password, but the request got through"
    );
}

#[tokio::test]
async fn the_classic_chat_client_logs_in_from_its_origin_and_opens_the_socket() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    for origin in [s.origin(), ALLOWED.to_string()] {
        let r = login_with(&s, "alice", &[("origin", &origin)]).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("json");
        let otp = body["otp"].as_str().expect("otp");
        let ws = s.chat(otp, false, Some(&origin)).await;
        assert!(ws.is_ok(), "socket from {origin}");
    }
}

#[tokio::test]
async fn scripts_without_origin_or_cookie_log_in_with_json_only() {
    let s = TestServer::start().await;
    s.add_user("alice", Role::Member).await;
    let r = login_with(&s, "alice", &[]).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert!(body["otp"].is_string());

    let r = reqwest::Client::new()
        .post(s.url("/login"))
        .header(CONTENT_TYPE, "text/plain")
        .body(json!({"username": "alice", "password": PASSWORD}).to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // GET requests are never checked.
    let r = reqwest::Client::new()
        .get(s.url("/login"))
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
}

fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("brotli body");
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gzip body");
        }
        None => out = body.to_vec(),
        Some(other) => panic!("unexpected encoding {other}"),
    }
    out
}

/// Sends `req` with `Accept-Encoding: accept` (if any); returns the encoding and decoded body.
async fn fetch(req: reqwest::RequestBuilder, accept: Option<&str>) -> (Option<String>, Vec<u8>) {
    let req = match accept {
        Some(a) => req.header(ACCEPT_ENCODING, a),
        None => req,
    };
    let r = req.send().await.expect("request");
    assert!(r.status().is_success(), "status {}", r.status());
    let enc = r
        .headers()
        .get(CONTENT_ENCODING)
        .map(|v| v.to_str().expect("ascii").to_string());
    let body = r.bytes().await.expect("body");
    let plain = decode(enc.as_deref(), &body);
    (enc, plain)
}

#[tokio::test]
async fn pages_and_server_functions_are_compressed_when_asked() {
    let s = TestServer::start().await;
    s.add_user("root1", Role::Admin).await;
    let (admin, _) = s.login("root1").await;
    let http = reqwest::Client::new();
    for (accept, want) in [
        (Some("gzip"), Some("gzip")),
        (Some("br"), Some("br")),
        (Some("gzip, deflate, br"), Some("br")),
        (None, None),
    ] {
        let (enc, body) = fetch(http.get(s.url("/login")), accept).await;
        assert_eq!(enc.as_deref(), want, "SSR page with {accept:?}");
        let html = String::from_utf8(body).expect("utf-8 page");
        assert!(html.contains("<html"), "a whole page");

        let (enc, body) = fetch(admin.post(s.url("/api/users")), accept).await;
        assert_eq!(enc.as_deref(), want, "server function with {accept:?}");
        let users: Value = serde_json::from_slice(&body).expect("json");
        assert!(users.to_string().contains("root1"));
    }
}

/// The next frame within 10 s.
async fn next(ws: &mut common::Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("echo in time")
        .expect("socket open")
        .expect("frame")
}

#[tokio::test]
async fn static_files_are_served_precompressed_and_unknown_paths_get_the_404_page() {
    let site = tempfile::tempdir().expect("temp dir");
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).expect("pkg dir");
    let js = "export function hello() { return 'termroom'; }\n".repeat(400);
    std::fs::write(pkg.join("termroom.js"), &js).expect("write js");
    let server = TestServer::start_with(Options {
        site_root: Some(site.path().to_path_buf()),
        ..Options::default()
    })
    .await;
    let addr = server.addr;

    // Compressed once, in the background, at start.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(pkg.join("termroom.js.br").exists() && pkg.join("termroom.js.gz").exists()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "siblings were not written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let br = std::fs::read(pkg.join("termroom.js.br")).expect("br");
    let gz = std::fs::read(pkg.join("termroom.js.gz")).expect("gz");
    let url = format!("http://{addr}/pkg/termroom.js");
    let http = reqwest::Client::new();
    for (accept, enc, file) in [
        ("br", "br", &br),
        ("gzip", "gzip", &gz),
        ("gzip, br", "br", &br),
    ] {
        let r = http
            .get(&url)
            .header(ACCEPT_ENCODING, accept)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_ENCODING], enc);
        let ctype = r.headers()[CONTENT_TYPE].to_str().unwrap_or_default();
        assert!(
            ctype.contains("javascript"),
            "the original file's type: {ctype}"
        );
        let body = r.bytes().await.expect("body");
        assert_eq!(&body[..], &file[..], "the precompressed file as it is");
    }
    let r = http.get(&url).send().await.expect("request");
    assert!(r.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(r.text().await.expect("body"), js);

    let r = http
        .get(format!("http://{addr}/no/such/page"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("Page not found"));
}

#[tokio::test]
async fn the_echo_socket_is_off_without_diagnostics() {
    let s = TestServer::start().await;
    assert_eq!(connect(&s.ws_url("/ws/echo"), None).await.err(), Some(404));
}

#[tokio::test]
async fn the_health_check_answers_without_a_login() {
    let s = TestServer::start().await;
    let resp = reqwest::get(s.url("/healthz")).await.expect("healthz");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert_eq!(resp.text().await.expect("body"), "ok single\n");
}

#[tokio::test]
async fn the_echo_socket_echoes_with_chat_limits_and_upgrades_are_not_compressed() {
    let s = TestServer::start_with(Options {
        diagnostics: true,
        ..Default::default()
    })
    .await;
    assert_eq!(
        connect(&s.ws_url("/ws/echo"), Some("https://evil.example"))
            .await
            .err(),
        Some(403)
    );
    let mut req = s.ws_url("/ws/echo").into_client_request().expect("request");
    req.headers_mut().insert(
        http::header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("gzip, deflate, br"),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("echo upgrade with Accept-Encoding");
    assert!(resp.headers().get(http::header::CONTENT_ENCODING).is_none());

    let text = "é".repeat(100);
    ws.send(Message::Text(text.clone().into()))
        .await
        .expect("send");
    let bin = vec![0u8, 1, 2, 255];
    ws.send(Message::Binary(bin.clone().into()))
        .await
        .expect("send");
    assert_eq!(next(&mut ws).await, Message::Text(text.into()));
    assert_eq!(next(&mut ws).await, Message::Binary(bin.into()));

    let big = vec![b'z'; MAX_FRAME_BYTES + 1];
    ws.send(Message::Binary(big.into())).await.expect("send");
    loop {
        match next(&mut ws).await {
            Message::Close(Some(f)) => {
                assert_eq!(u16::from(f.code), 1009);
                break;
            }
            Message::Close(None) => panic!("closed without a code"),
            _ => {}
        }
    }
}
