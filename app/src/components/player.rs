//! wasm-bindgen binding to asciinema-player 3 (served from
//! `/vendor/asciinema-player/`, copied from npm by the build). Its script
//! is loaded on the first use, so other pages never pay for it. Browser only
//! (`hydrate`).
use wasm_bindgen::{prelude::*, JsCast};

/// The player's script (a bundle that defines `window.AsciinemaPlayer`).
const SCRIPT: &str = "/vendor/asciinema-player/asciinema-player.min.js";

#[wasm_bindgen]
extern "C" {
    /// A player created by `AsciinemaPlayer.create`.
    #[derive(Debug, Clone)]
    pub type Player;

    #[wasm_bindgen(js_namespace = AsciinemaPlayer, js_name = create)]
    fn create_player(src: &str, el: &web_sys::Element, opts: &js_sys::Object) -> Player;

    /// Jumps to `seconds` from the start.
    #[wasm_bindgen(method)]
    pub fn seek(this: &Player, seconds: f64) -> js_sys::Promise;

    /// Seconds from the start now.
    #[wasm_bindgen(method, js_name = getCurrentTime)]
    pub fn current_time(this: &Player) -> JsValue;

    /// Starts playing.
    #[wasm_bindgen(method)]
    pub fn play(this: &Player) -> js_sys::Promise;

    /// Removes the player from the page.
    #[wasm_bindgen(method)]
    pub fn dispose(this: &Player);

    /// Calls `f` on the player's event `name` (`play`, `pause`, `ended`, ...).
    #[wasm_bindgen(method, js_name = addEventListener)]
    pub fn add_event_listener(this: &Player, name: &str, f: &js_sys::Function);
}

/// How to play a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Playback speed (1 = real time).
    pub speed: f64,
    /// Longest pause kept, in seconds (`None`: as recorded).
    pub idle_time_limit: Option<f64>,
    /// Where to start, in seconds.
    pub start_at: f64,
    /// `(seconds, label)` of each marker, shown on the timeline.
    pub markers: Vec<(f64, String)>,
    /// Start playing once loaded.
    pub auto_play: bool,
}

/// Loads the player's script once (resolves at once if it is there).
async fn load_script() -> Result<(), JsValue> {
    let window = web_sys::window().ok_or("no window")?;
    if js_sys::Reflect::has(&window, &"AsciinemaPlayer".into())? {
        return Ok(());
    }
    let document = window.document().ok_or("no document")?;
    let script = document.create_element("script")?;
    script.set_attribute("src", SCRIPT)?;
    let loaded = js_sys::Promise::new(&mut |resolve, reject| {
        let _ = script.add_event_listener_with_callback("load", &resolve);
        let _ = script.add_event_listener_with_callback("error", &reject);
    });
    document.head().ok_or("no head")?.append_child(&script)?;
    wasm_bindgen_futures::JsFuture::from(loaded).await?;
    Ok(())
}

/// Creates a player for the recording at `src` inside `el`.
pub async fn create(src: &str, el: &web_sys::Element, o: &Options) -> Result<Player, JsValue> {
    load_script().await?;
    let opts = js_sys::Object::new();
    let set = |k: &str, v: JsValue| js_sys::Reflect::set(&opts, &k.into(), &v).map(|_| ());
    set("speed", o.speed.into())?;
    if let Some(limit) = o.idle_time_limit {
        set("idleTimeLimit", limit.into())?;
    }
    set("startAt", o.start_at.into())?;
    set("fit", "width".into())?;
    set("preload", true.into())?;
    set("autoPlay", o.auto_play.into())?;
    if !o.auto_play {
        // Paused, it shows the screen at the start time (not a blank one).
        set("poster", format!("npt:{:.3}", o.start_at.max(0.0)).into())?;
    }
    let markers = js_sys::Array::new();
    for (t, label) in &o.markers {
        markers.push(&js_sys::Array::of2(&(*t).into(), &label.into()));
    }
    set("markers", markers.into())?;
    Ok(create_player(src, el, &opts))
}

/// The player's current time in seconds (0 before it loaded).
pub fn time_of(player: &Player) -> f64 {
    player.current_time().as_f64().unwrap_or(0.0)
}

/// `el` as an `Element`, for [`create`].
pub fn element(el: &web_sys::HtmlElement) -> web_sys::Element {
    el.clone().unchecked_into()
}
