//! Open tabs survive a page reload: their session ids live in `sessionStorage`
//! (per browser tab, gone when it closes), and a deep link
//! (`/terminals?host=a&host=b`) opens its tabs only once per browser tab.
use serde::{Deserialize, Serialize};

use crate::components::browser;

/// `sessionStorage` key of the open tabs.
const TABS_KEY: &str = "termroom.tabs.v1";
/// Prefix of the "this deep link was opened" flags.
const DEEP_LINK_PREFIX: &str = "termroom.deeplink:";

/// One tab to reattach after a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedTab {
    /// The terminal session.
    pub session_id: String,
    /// Its target, for the tab title until the server answers.
    pub target: String,
}

/// Parses the stored list; anything unreadable counts as no tabs.
pub fn parse(text: &str) -> Vec<SavedTab> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The tabs saved in this browser tab.
pub fn load() -> Vec<SavedTab> {
    browser::session_get(TABS_KEY)
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// Saves the open tabs (an empty list removes the key).
pub fn save(tabs: &[SavedTab]) {
    if tabs.is_empty() {
        browser::session_remove(TABS_KEY);
    } else if let Ok(text) = serde_json::to_string(tabs) {
        browser::session_set(TABS_KEY, &text);
    }
}

/// Whether the deep link with this query string was already opened here.
pub fn deep_link_done(query: &str) -> bool {
    browser::session_get(&format!("{DEEP_LINK_PREFIX}{query}")).is_some()
}

/// Remembers that the deep link with this query string was opened.
pub fn mark_deep_link_done(query: &str) {
    browser::session_set(&format!("{DEEP_LINK_PREFIX}{query}"), "1");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let tabs = vec![SavedTab {
            session_id: "s1".into(),
            target: "local".into(),
        }];
        let text = serde_json::to_string(&tabs).unwrap();
        assert_eq!(parse(&text), tabs);
        assert!(parse("not json").is_empty());
        assert!(parse(r#"[{"session_id":1}]"#).is_empty());
    }
}
