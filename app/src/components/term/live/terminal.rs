//! The xterm.js instance of a tab: options, addons, renderer choice, and the
//! handlers xterm.js and the pane call (input, paste, resize, keys).
use std::{borrow::Cow, rc::Rc};

use js_sys::{Object, Reflect};
use leptos::prelude::*;
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use web_sys::{HtmlElement, KeyboardEvent};

use super::{input, Shared};
use crate::components::term::paste::{neutralize_markers, sanitize_input};
use crate::components::term::settings::{Renderer, Settings};
use crate::components::term::webgl_probe;
use crate::components::xterm::{
    copy_to_clipboard, pasted_text, FitAddon, PasteEvent, ResizeObserver, SearchAddon, Terminal,
    Unicode11Addon, WebLinksAddon, WebglAddon,
};

/// A terminal opened in its pane, before it is wired to the tab.
pub(super) struct Parts {
    pub term: Terminal,
    pub fit: FitAddon,
    pub search: SearchAddon,
    /// Falls back to the DOM renderer when the GPU context is lost.
    pub context_loss: Option<Closure<dyn FnMut()>>,
}

/// Handlers registered on xterm.js and the pane; live as long as the terminal.
pub(super) struct Handlers {
    _data: Closure<dyn FnMut(String)>,
    _resize: Closure<dyn FnMut(JsValue)>,
    _keys: Closure<dyn FnMut(KeyboardEvent) -> bool>,
    _observer: Closure<dyn FnMut()>,
    _context_loss: Option<Closure<dyn FnMut()>>,
    /// Capture-phase `paste` listener on the pane (removed on dispose).
    paste: Closure<dyn FnMut(PasteEvent)>,
}

impl Handlers {
    /// Removes the listeners registered on the pane itself.
    pub fn remove_from(&self, pane: &HtmlElement) {
        let _ = pane.remove_event_listener_with_callback_and_bool(
            "paste",
            self.paste.as_ref().unchecked_ref(),
            true,
        );
    }
}

/// Creates xterm.js inside `el` with its addons and fits it.
pub(super) fn create(el: &HtmlElement) -> Parts {
    let settings = Settings::load();
    let term = Terminal::new(&options(&settings));
    term.open(el);
    let fit = FitAddon::new();
    load_addon(&term, &fit, "fit");
    let unicode = Unicode11Addon::new();
    if load_addon(&term, &unicode, "unicode11") {
        let _ = Reflect::set(&term.unicode(), &"activeVersion".into(), &"11".into());
    }
    load_addon(&term, &WebLinksAddon::new(), "web-links");
    let search = SearchAddon::new();
    load_addon(&term, &search, "search");
    let context_loss = match settings.renderer {
        Renderer::Webgl => load_webgl(&term),
        Renderer::Auto if !webgl_probe::webgl_is_software() => load_webgl(&term),
        Renderer::Auto | Renderer::Dom => None,
    };
    // Hook for tests and debugging: the pane element knows its terminal.
    let _ = Reflect::set(el, &"xterm".into(), &term);
    let _ = fit.fit();
    Parts {
        term,
        fit,
        search,
        context_loss,
    }
}

fn options(settings: &Settings) -> Object {
    let theme = Object::new();
    set(&theme, "background", &"#0d1117".into());
    set(&theme, "foreground", &"#d6dde6".into());
    set(&theme, "cursor", &"#f2c35b".into());
    set(&theme, "selectionBackground", &"#3b5b8c".into());
    let o = Object::new();
    set(&o, "cursorBlink", &settings.cursor_blink.into());
    set(&o, "fontSize", &14.into());
    set(
        &o,
        "fontFamily",
        &"ui-monospace, 'DejaVu Sans Mono', 'Cascadia Mono', Menlo, Consolas, monospace".into(),
    );
    set(&o, "scrollback", &5000.into());
    // `unicode.activeVersion` is a proposed API.
    set(&o, "allowProposedApi", &true.into());
    set(&o, "macOptionIsMeta", &true.into());
    set(&o, "theme", &theme);
    o
}

fn set(o: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(o, &key.into(), value);
}

fn load_addon(term: &Terminal, addon: &JsValue, name: &str) -> bool {
    match term.load_addon(addon) {
        Ok(()) => true,
        Err(e) => {
            leptos::logging::warn!("xterm addon {name} not loaded: {e:?}");
            false
        }
    }
}

/// Uses the WebGL renderer when the browser can; otherwise (or once the GPU
/// context is lost) xterm keeps its DOM renderer.
fn load_webgl(term: &Terminal) -> Option<Closure<dyn FnMut()>> {
    let addon = WebglAddon::new().ok()?;
    if term.load_addon(&addon).is_err() {
        return None;
    }
    let lost = addon.clone();
    let on_loss = Closure::<dyn FnMut()>::new(move || lost.dispose());
    addon.on_context_loss(on_loss.as_ref().unchecked_ref());
    Some(on_loss)
}

/// Registers the handlers on xterm.js and the pane.
pub(super) fn wire(
    live: &Shared,
    el: &HtmlElement,
    on_input: Callback<(u64, String)>,
    context_loss: Option<Closure<dyn FnMut()>>,
) {
    let weak = Rc::downgrade(live);
    let (term, key) = {
        let l = live.borrow();
        (l.term.clone(), l.tab.key)
    };

    // The keystroke path: xterm.js → bytes on the socket, nothing reactive
    // in between. Mirroring to other tabs (`on_input`) comes after the send.
    let w = weak.clone();
    let data = Closure::<dyn FnMut(String)>::new(move |data: String| {
        let Some(live) = w.upgrade() else { return };
        // A paste arrives here whole; whatever path it took into xterm.js,
        // markers inside it must not end it early. Typed input is borrowed
        // unchanged, so the common case copies nothing.
        let cleaned = match sanitize_input(&data) {
            Cow::Owned(clean) => Some(clean),
            Cow::Borrowed(_) => None,
        };
        let data = cleaned.unwrap_or(data);
        input::send_input(&live, data.as_bytes());
        on_input.run((key, data));
    });
    term.on_data(data.as_ref().unchecked_ref());

    // A paste holding a bracketed-paste marker is taken from xterm.js before
    // its own handler (capture phase on the pane) and pasted neutralised, so
    // the marker is gone even when bracketed paste is off. Clean pastes go
    // the usual way.
    let w = weak.clone();
    let paste = Closure::<dyn FnMut(PasteEvent)>::new(move |ev: PasteEvent| {
        let Some(text) = pasted_text(&ev) else { return };
        let Cow::Owned(clean) = neutralize_markers(&text) else {
            return;
        };
        ev.prevent_default();
        ev.stop_propagation();
        if let Some(live) = w.upgrade() {
            let term = live.borrow().term.clone();
            term.paste(&clean);
        }
    });
    let _ =
        el.add_event_listener_with_callback_and_bool("paste", paste.as_ref().unchecked_ref(), true);

    let w = weak.clone();
    let resize = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
        if let Some(live) = w.upgrade() {
            input::send_size(&live);
        }
    });
    term.on_resize(resize.as_ref().unchecked_ref());

    let w = weak.clone();
    let keys = Closure::<dyn FnMut(KeyboardEvent) -> bool>::new(move |ev: KeyboardEvent| {
        if !(ev.ctrl_key() && ev.shift_key()) {
            return true;
        }
        match ev.code().as_str() {
            // Ctrl+Shift+C copies (the browser would open its inspector).
            "KeyC" => {
                if ev.type_() == "keydown" {
                    ev.prevent_default();
                    if let Some(live) = w.upgrade() {
                        copy_selection(&live);
                    }
                }
                false
            }
            // Ctrl+Shift+V: let the browser paste into xterm's textarea.
            "KeyV" => false,
            _ => true,
        }
    });
    term.attach_custom_key_event_handler(keys.as_ref().unchecked_ref());

    let w = weak;
    let observed = Closure::<dyn FnMut()>::new(move || {
        if let Some(live) = w.upgrade() {
            fit(&live);
        }
    });
    let observer = ResizeObserver::new(observed.as_ref().unchecked_ref()).ok();
    if let Some(o) = &observer {
        o.observe(el);
    }

    let mut l = live.borrow_mut();
    l.observer = observer;
    l.term_handlers = Some(Handlers {
        _data: data,
        _resize: resize,
        _keys: keys,
        _observer: observed,
        _context_loss: context_loss,
        paste,
    });
}

/// Fits the terminal to its pane (xterm then fires `onResize` if the size changed).
pub(super) fn fit(live: &Shared) {
    let fit = live.borrow().fit.clone();
    let _ = fit.fit();
}

/// Copies the selection, if any, to the clipboard.
pub(super) fn copy_selection(live: &Shared) {
    let term = live.borrow().term.clone();
    if term.has_selection() {
        copy_to_clipboard(&term.get_selection());
    }
}

/// Selects the next (or previous) match of `text`; `false` if there is none.
pub(super) fn find(search: &SearchAddon, text: &str, forward: bool, incremental: bool) -> bool {
    let opts = Object::new();
    set(&opts, "incremental", &incremental.into());
    if forward {
        search.find_next(text, &opts)
    } else {
        search.find_previous(text, &opts)
    }
}
