//! Small helpers around the browser window. Most call into JavaScript, so use
//! them only where code runs in the browser (effects and event handlers); the
//! pure ones ([`encode_query_value`], [`safe_next`]) work on both sides.

/// A value of `sessionStorage`, if storage is available and the key is set.
pub fn session_get(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

/// Stores a value in `sessionStorage`; storage errors (quota, privacy mode) are ignored.
pub fn session_set(key: &str, value: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(key, value);
    }
}

/// Removes a key from `sessionStorage`.
pub fn session_remove(key: &str) {
    if let Some(s) = storage() {
        let _ = s.remove_item(key);
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// Asks the user with `window.confirm`; `false` if no dialog could be shown.
pub fn confirm(message: &str) -> bool {
    web_sys::window()
        .and_then(|w| w.confirm_with_message(message).ok())
        .unwrap_or(false)
}

/// Full page load of `path` (used after login and logout so every piece of
/// state starts fresh with the new cookie).
pub fn go(path: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.location().set_href(path);
    }
}

/// `ws://` or `wss://` URL for `path_and_query` on the page's own host.
pub fn ws_url(path_and_query: &str) -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!(
        "{scheme}://{}{path_and_query}",
        location.host().ok()?
    ))
}

/// Formats an RFC 3339 time as the browser's local time of day (with the
/// date when it is not today); the raw text if it does not parse.
pub fn local_time(rfc3339: &str) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(rfc3339));
    if date.get_time().is_nan() {
        return rfc3339.to_string();
    }
    let today = js_sys::Date::new_0();
    let same_day = date.to_date_string() == today.to_date_string();
    let options = js_sys::Object::new();
    for (k, v) in [("hour", "2-digit"), ("minute", "2-digit")] {
        let _ = js_sys::Reflect::set(&options, &k.into(), &v.into());
    }
    let time: String = date
        .to_locale_time_string_with_options("default", &options)
        .into();
    if same_day {
        time
    } else {
        let day: String = date
            .to_locale_date_string("default", &wasm_bindgen::JsValue::UNDEFINED)
            .into();
        format!("{day} {time}")
    }
}

/// A random number in `[0, 1)` (`Math.random`), for backoff jitter.
pub fn random() -> f64 {
    js_sys::Math::random()
}

/// Waits `ms` milliseconds (a browser timer).
pub async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// Percent-encodes `s` for use as a query-string value.
pub fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `next` if it is a path on this site (`/…` but not `//…`), so a login link
/// cannot send the user to another site after signing in.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    ok.then_some(next)
}

/// Removes a WebSocket's handlers (so dropped closures are never called) and closes it.
pub fn detach_socket(ws: &web_sys::WebSocket) {
    ws.set_onopen(None);
    ws.set_onmessage(None);
    ws.set_onclose(None);
    let _ = ws.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode_query_value("/terminals?host=a&host=b c"),
            "/terminals%3Fhost%3Da%26host%3Db%20c"
        );
        assert_eq!(encode_query_value("héllo"), "h%C3%A9llo");
    }

    #[test]
    fn next_must_stay_on_site() {
        assert_eq!(safe_next("/terminals?host=a"), Some("/terminals?host=a"));
        assert_eq!(safe_next("//evil.example"), None);
        assert_eq!(safe_next("https://evil.example"), None);
        assert_eq!(safe_next("/\\evil.example"), None);
    }
}
