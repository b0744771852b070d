//! Terminal rendering settings a browser tab may override in `sessionStorage`
//! (`termroom.renderer` = `auto` | `webgl` | `dom`, `termroom.cursor-blink` =
//! `on` | `off`), so a benchmark can compare them in one build and a user
//! with a broken GPU driver can turn WebGL off. Parsing is plain Rust.

/// `sessionStorage` key choosing the renderer.
pub const RENDERER_KEY: &str = "termroom.renderer";
/// `sessionStorage` key switching cursor blinking.
pub const CURSOR_BLINK_KEY: &str = "termroom.cursor-blink";

/// Which xterm.js renderer draws the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    /// WebGL when a GPU draws it, the DOM renderer when the browser's WebGL
    /// is a software rasterizer (see `webgl_probe`).
    Auto,
    /// The WebGL addon when the browser has WebGL2 (DOM after a context loss).
    Webgl,
    /// xterm.js's own DOM renderer.
    Dom,
}

/// The settings a terminal is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Renderer to use.
    pub renderer: Renderer,
    /// Whether the cursor blinks. Off by default: with the DOM renderer each
    /// keystroke restarts the blink and Chromium draws a frame before it
    /// handles the echo (browser benchmark: echo seen after 12.9 ms with
    /// blinking, 1.7 ms without), as on ttyd's and WeTTY's pages.
    pub cursor_blink: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            renderer: Renderer::Auto,
            cursor_blink: false,
        }
    }
}

impl Settings {
    /// Settings from the stored values (`None`: not set); unknown values
    /// keep the default.
    pub fn parse(renderer: Option<&str>, cursor_blink: Option<&str>) -> Self {
        let default = Self::default();
        Self {
            renderer: match renderer.map(str::trim) {
                Some("dom") => Renderer::Dom,
                Some("webgl") => Renderer::Webgl,
                Some("auto") => Renderer::Auto,
                _ => default.renderer,
            },
            cursor_blink: match cursor_blink.map(str::trim) {
                Some("off") => false,
                Some("on") => true,
                _ => default.cursor_blink,
            },
        }
    }

    /// The settings of this browser tab.
    pub fn load() -> Self {
        use crate::components::browser::session_get;
        Self::parse(
            session_get(RENDERER_KEY).as_deref(),
            session_get(CURSOR_BLINK_KEY).as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_automatic_renderer_and_a_steady_cursor() {
        assert_eq!(Settings::parse(None, None), Settings::default());
        assert_eq!(Settings::default().renderer, Renderer::Auto);
        assert!(!Settings::default().cursor_blink);
    }

    #[test]
    fn stored_values_override_and_garbage_is_ignored() {
        let s = Settings::parse(Some("dom"), Some("off"));
        assert_eq!(s.renderer, Renderer::Dom);
        assert!(!s.cursor_blink);
        let s = Settings::parse(Some(" webgl "), Some("on"));
        assert_eq!(s.renderer, Renderer::Webgl);
        assert!(s.cursor_blink);
        let s = Settings::parse(Some("auto"), None);
        assert_eq!(s.renderer, Renderer::Auto);
        let s = Settings::parse(Some("canvas"), Some("0"));
        assert_eq!(s, Settings::default());
    }
}
