//! Cross-site request defence: every state-changing request must come from an
//! allowed origin, and JSON endpoints take only JSON.
//!
//! SameSite=Lax alone is not enough: it lets a sibling subdomain (same site)
//! post with the victim's cookie, and `/login` needs no cookie at all (a
//! foreign page could log the victim into the attacker's account with a
//! `text/plain` "simple request" that browsers send without a preflight).
//! Browsers send `Origin` on every POST, so the rule is:
//! - `Origin` present: it must be on the WebSocket allow-list
//!   ([`Config::origin_allowed`], the server's own origin included);
//! - no `Origin` but `Sec-Fetch-Site`: only `same-origin` (or `none`, a
//!   user-initiated request) passes;
//! - neither, with a cookie: refused (a browser would have sent `Origin`; a
//!   script that carries a session cookie must send it too);
//! - neither, without a cookie: not a browser riding on a session (curl, the
//!   classic chat client's `POST /login` from a script): allowed.
use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::warn;

use crate::{config::Config, state::Core};

/// Paths of the server functions whose arguments are a JSON body
/// (`input = Json` in `app::api`); they refuse any other content type, so a
/// cross-site `text/plain` form or fetch can never reach them.
pub const JSON_ENDPOINTS: &[&str] = &["/login"];

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `Origin` is not on the allow-list (nor the server's own origin).
    #[error("cross-origin request refused: origin {0} is not allowed")]
    ForeignOrigin(String),
    /// No `Origin`, and `Sec-Fetch-Site` says another site or origin.
    #[error("cross-site request refused (Sec-Fetch-Site: {0})")]
    CrossSite(String),
    /// A cookie but neither `Origin` nor `Sec-Fetch-Site`.
    #[error(
        "request carrying a cookie without an Origin header refused: \
         send the Origin of the page (or script) making the request"
    )]
    MissingOrigin,
    /// A JSON endpoint called with another content type.
    #[error("{0} takes a JSON body: send Content-Type: application/json")]
    NotJson(String),
}

impl Refusal {
    /// The HTTP status answered for this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

/// Whether `method` may change state (everything but GET, HEAD, OPTIONS, TRACE).
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Decides whether a request may reach its handler. `authority` is the
/// request's `Host` (or its URI authority over HTTP/2).
pub fn check(
    config: &Config,
    method: &Method,
    path: &str,
    authority: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    if !is_state_changing(method) {
        return Ok(());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| config.origin_allowed(o, authority));
        if !allowed {
            return Err(Refusal::ForeignOrigin(
                String::from_utf8_lossy(origin.as_bytes()).into_owned(),
            ));
        }
    } else if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("invalid");
        if !matches!(site, "same-origin" | "none") {
            return Err(Refusal::CrossSite(site.to_string()));
        }
    } else if headers.contains_key(header::COOKIE) {
        return Err(Refusal::MissingOrigin);
    }
    if JSON_ENDPOINTS.contains(&path) && !is_json(headers) {
        return Err(Refusal::NotJson(path.to_string()));
    }
    Ok(())
}

/// Whether the body is declared as JSON (`application/json`, parameters allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Middleware: refuses requests that fail [`check`] (403, or 415 for a
/// non-JSON body to a JSON endpoint) with a plain-text reason.
pub async fn guard(State(core): State<Arc<Core>>, req: Request, next: Next) -> Response {
    let authority = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if let Err(refusal) = check(
        &core.config,
        req.method(),
        req.uri().path(),
        authority,
        req.headers(),
    ) {
        // The path only: query strings may carry tickets.
        warn!(method = %req.method(), path = %req.uri().path(), "{refusal}");
        return (refusal.status(), refusal.to_string()).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {

    use axum::http::HeaderValue;

    use super::*;

    fn cfg() -> Config {
        Config::for_tests(&["https://ops.example.com"])
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    const HOST: Option<&str> = Some("termroom.example.com");

    #[test]
    fn safe_methods_pass_whatever_their_origin() {
        let h = headers(&[("origin", "https://evil.example"), ("cookie", "s=1")]);
        assert_eq!(check(&cfg(), &Method::GET, "/api/me", HOST, &h), Ok(()));
        assert_eq!(check(&cfg(), &Method::HEAD, "/", HOST, &h), Ok(()));
    }

    #[test]
    fn origins_are_matched_exactly() {
        let c = cfg();
        let post = |o: &'static str| {
            check(
                &c,
                &Method::POST,
                "/api/logout",
                HOST,
                &headers(&[("origin", o)]),
            )
        };
        assert_eq!(post("https://termroom.example.com"), Ok(()));
        assert_eq!(post("https://ops.example.com"), Ok(()));
        assert!(matches!(
            post("https://sub.termroom.example.com"),
            Err(Refusal::ForeignOrigin(_))
        ));
        assert!(matches!(post("null"), Err(Refusal::ForeignOrigin(_))));
    }

    #[test]
    fn sec_fetch_site_decides_without_origin() {
        let c = cfg();
        let post = |s: &'static str| {
            check(
                &c,
                &Method::DELETE,
                "/api/x",
                HOST,
                &headers(&[("sec-fetch-site", s), ("cookie", "s=1")]),
            )
        };
        assert_eq!(post("same-origin"), Ok(()));
        assert_eq!(
            post("same-site"),
            Err(Refusal::CrossSite("same-site".into()))
        );
        assert_eq!(
            post("cross-site"),
            Err(Refusal::CrossSite("cross-site".into()))
        );
    }

    #[test]
    fn cookie_without_origin_is_refused_and_bare_requests_pass() {
        let c = cfg();
        let with_cookie = headers(&[("cookie", "s=1")]);
        assert_eq!(
            check(&c, &Method::POST, "/api/logout", HOST, &with_cookie),
            Err(Refusal::MissingOrigin)
        );
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(check(&c, &Method::POST, "/login", HOST, &json), Ok(()));
    }

    #[test]
    fn json_endpoints_refuse_other_content_types() {
        let c = cfg();
        for ct in ["text/plain", "application/x-www-form-urlencoded"] {
            let h = headers(&[("content-type", ct), ("origin", "https://ops.example.com")]);
            let r = check(&c, &Method::POST, "/login", HOST, &h);
            assert_eq!(r, Err(Refusal::NotJson("/login".into())));
            assert_eq!(
                r.err().map(|e| e.status()),
                Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            );
        }
        assert_eq!(
            check(&c, &Method::POST, "/login", HOST, &HeaderMap::new()),
            Err(Refusal::NotJson("/login".into()))
        );
    }
}
