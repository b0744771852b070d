//! wasm-bindgen bindings to xterm.js 6 and its addons (served from
//! `/vendor/xterm/`, copied from npm by the build), plus the browser APIs the
//! terminal needs beyond the enabled web-sys features: `ResizeObserver`, the
//! async clipboard and the `paste` event's text. Browser only (`hydrate`).
use wasm_bindgen::prelude::*;

#[wasm_bindgen(raw_module = "/vendor/xterm/xterm.mjs")]
extern "C" {
    /// An xterm.js terminal (`new Terminal(options)`).
    #[derive(Debug, Clone)]
    pub type Terminal;

    /// Creates a terminal with an options object (`ITerminalOptions`).
    #[wasm_bindgen(constructor)]
    pub fn new(options: &js_sys::Object) -> Terminal;

    /// Attaches the terminal to a container element.
    #[wasm_bindgen(method)]
    pub fn open(this: &Terminal, parent: &web_sys::HtmlElement);

    /// Queues bytes for parsing. xterm keeps the array until it has parsed
    /// it: pass one nobody writes to afterwards.
    #[wasm_bindgen(method, js_name = write)]
    pub fn write_bytes(this: &Terminal, data: &js_sys::Uint8Array);

    /// [`Terminal::write_bytes`], and `callback` runs once these bytes (and
    /// all written before them) are processed, possibly synchronously.
    #[wasm_bindgen(method, js_name = write)]
    pub fn write_bytes_then(
        this: &Terminal,
        data: &js_sys::Uint8Array,
        callback: &js_sys::Function,
    );

    /// Writes text (notices from termroom itself).
    #[wasm_bindgen(method, js_name = write)]
    pub fn write_text(this: &Terminal, data: &str);

    /// Sets the size in cells (a watcher's view follows the owner's).
    #[wasm_bindgen(method)]
    pub fn resize(this: &Terminal, cols: u32, rows: u32);

    /// Hard reset: clears the screen and scrollback (before a snapshot).
    #[wasm_bindgen(method)]
    pub fn reset(this: &Terminal);

    /// Gives the terminal keyboard focus.
    #[wasm_bindgen(method)]
    pub fn focus(this: &Terminal);

    /// Frees the terminal and its addons.
    #[wasm_bindgen(method)]
    pub fn dispose(this: &Terminal);

    /// Pastes text as if typed (bracketed paste aware); fires `onData`.
    #[wasm_bindgen(method)]
    pub fn paste(this: &Terminal, data: &str);

    /// Loads an addon; throws when the addon cannot activate (WebGL without WebGL2).
    #[wasm_bindgen(method, catch, js_name = loadAddon)]
    pub fn load_addon(this: &Terminal, addon: &JsValue) -> Result<(), JsValue>;

    /// Subscribes to user input (keystrokes, paste) as a string.
    #[wasm_bindgen(method, js_name = onData)]
    pub fn on_data(this: &Terminal, listener: &js_sys::Function) -> JsValue;

    /// Subscribes to size changes (`{cols, rows}`).
    #[wasm_bindgen(method, js_name = onResize)]
    pub fn on_resize(this: &Terminal, listener: &js_sys::Function) -> JsValue;

    /// Lets a handler see key events first; returning `false` stops xterm from handling one.
    #[wasm_bindgen(method, js_name = attachCustomKeyEventHandler)]
    pub fn attach_custom_key_event_handler(this: &Terminal, handler: &js_sys::Function);

    /// Whether text is selected.
    #[wasm_bindgen(method, js_name = hasSelection)]
    pub fn has_selection(this: &Terminal) -> bool;

    /// The selected text.
    #[wasm_bindgen(method, js_name = getSelection)]
    pub fn get_selection(this: &Terminal) -> String;

    /// Columns.
    #[wasm_bindgen(method, getter)]
    pub fn cols(this: &Terminal) -> u32;

    /// Rows.
    #[wasm_bindgen(method, getter)]
    pub fn rows(this: &Terminal) -> u32;

    /// Unicode handling (`activeVersion`), a proposed API.
    #[wasm_bindgen(method, getter)]
    pub fn unicode(this: &Terminal) -> JsValue;
}

#[wasm_bindgen(raw_module = "/vendor/xterm/addon-fit.mjs")]
extern "C" {
    /// Sizes the terminal to its container.
    #[derive(Debug, Clone)]
    pub type FitAddon;
    /// Creates the addon.
    #[wasm_bindgen(constructor)]
    pub fn new() -> FitAddon;
    /// Resizes the terminal to fill its container (no-op while it has no size).
    #[wasm_bindgen(method, catch)]
    pub fn fit(this: &FitAddon) -> Result<(), JsValue>;
}

#[wasm_bindgen(raw_module = "/vendor/xterm/addon-webgl.mjs")]
extern "C" {
    /// GPU renderer; without it xterm renders with the DOM.
    #[derive(Debug, Clone)]
    pub type WebglAddon;
    /// Creates the addon.
    #[wasm_bindgen(constructor, catch)]
    pub fn new() -> Result<WebglAddon, JsValue>;
    /// Fires when the GPU context is lost; dispose the addon to fall back to the DOM renderer.
    #[wasm_bindgen(method, js_name = onContextLoss)]
    pub fn on_context_loss(this: &WebglAddon, listener: &js_sys::Function) -> JsValue;
    /// Removes the renderer (xterm switches back to the DOM renderer).
    #[wasm_bindgen(method)]
    pub fn dispose(this: &WebglAddon);
}

#[wasm_bindgen(raw_module = "/vendor/xterm/addon-search.mjs")]
extern "C" {
    /// Finds text in the buffer and selects it.
    #[derive(Debug, Clone)]
    pub type SearchAddon;
    /// Creates the addon.
    #[wasm_bindgen(constructor)]
    pub fn new() -> SearchAddon;
    /// Selects the next match; `false` if there is none.
    #[wasm_bindgen(method, js_name = findNext)]
    pub fn find_next(this: &SearchAddon, term: &str, options: &js_sys::Object) -> bool;
    /// Selects the previous match; `false` if there is none.
    #[wasm_bindgen(method, js_name = findPrevious)]
    pub fn find_previous(this: &SearchAddon, term: &str, options: &js_sys::Object) -> bool;
    /// Clears match highlighting and the selection.
    #[wasm_bindgen(method, js_name = clearDecorations)]
    pub fn clear_decorations(this: &SearchAddon);
}

#[wasm_bindgen(raw_module = "/vendor/xterm/addon-web-links.mjs")]
extern "C" {
    /// Makes URLs clickable (opened in a new window without opener).
    #[derive(Debug, Clone)]
    pub type WebLinksAddon;
    /// Creates the addon with its default handler.
    #[wasm_bindgen(constructor)]
    pub fn new() -> WebLinksAddon;
}

#[wasm_bindgen(raw_module = "/vendor/xterm/addon-unicode11.mjs")]
extern "C" {
    /// Unicode 11 character widths (emoji, CJK).
    #[derive(Debug, Clone)]
    pub type Unicode11Addon;
    /// Creates the addon.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Unicode11Addon;
}

#[wasm_bindgen]
extern "C" {
    /// Calls back when an element's size changes.
    #[derive(Debug, Clone)]
    pub type ResizeObserver;
    /// Creates an observer; throws where unsupported.
    #[wasm_bindgen(constructor, catch)]
    pub fn new(callback: &js_sys::Function) -> Result<ResizeObserver, JsValue>;
    /// Starts observing `target`.
    #[wasm_bindgen(method)]
    pub fn observe(this: &ResizeObserver, target: &web_sys::Element);
    /// Stops observing everything.
    #[wasm_bindgen(method)]
    pub fn disconnect(this: &ResizeObserver);

    /// A promise, bound loosely so its callbacks can be plain JS functions.
    type Thenable;
    #[wasm_bindgen(method)]
    fn then(this: &Thenable, on_ok: &JsValue, on_err: &JsValue) -> Thenable;

    #[wasm_bindgen(js_namespace = ["navigator", "clipboard"], js_name = writeText, catch)]
    fn clipboard_write_text(text: &str) -> Result<Thenable, JsValue>;
    #[wasm_bindgen(js_namespace = ["navigator", "clipboard"], js_name = readText, catch)]
    fn clipboard_read_text() -> Result<Thenable, JsValue>;
}

#[wasm_bindgen]
extern "C" {
    /// A `paste` event (a `ClipboardEvent`), bound to the part the terminal uses.
    #[wasm_bindgen(extends = web_sys::Event)]
    #[derive(Debug, Clone)]
    pub type PasteEvent;
    #[wasm_bindgen(method, getter, js_name = clipboardData)]
    fn clipboard_data(this: &PasteEvent) -> Option<ClipboardData>;

    /// The `DataTransfer` of a clipboard event.
    type ClipboardData;
    #[wasm_bindgen(method, js_name = getData)]
    fn get_data(this: &ClipboardData, format: &str) -> String;
}

/// The plain text a `paste` event carries, if any.
pub fn pasted_text(ev: &PasteEvent) -> Option<String> {
    let text = ev.clipboard_data()?.get_data("text/plain");
    (!text.is_empty()).then_some(text)
}

thread_local! {
    /// One shared do-nothing JS function for promise rejections we ignore
    /// (created once, so ignoring costs no closure per call).
    static IGNORE: JsValue = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {}).into_js_value();
}

/// Copies `text` to the clipboard; failures (no permission, insecure page) are ignored.
pub fn copy_to_clipboard(text: &str) {
    if let Ok(p) = clipboard_write_text(text) {
        IGNORE.with(|ignore| p.then(ignore, ignore));
    }
}

/// Reads the clipboard (the browser may ask the user) and calls `done` with its text.
pub fn read_clipboard(done: impl FnOnce(String) + 'static) {
    let Ok(p) = clipboard_read_text() else { return };
    let on_ok = Closure::<dyn FnMut(JsValue)>::once_into_js(move |text: JsValue| {
        if let Some(text) = text.as_string() {
            done(text);
        }
    });
    IGNORE.with(|ignore| p.then(&on_ok, ignore));
}
