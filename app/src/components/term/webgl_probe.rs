//! Whether this browser draws WebGL with a software rasterizer (SwiftShader,
//! llvmpipe, …), as on machines and VMs without a GPU. There xterm.js's DOM
//! renderer is the faster one (browser benchmark, headless Chromium on
//! SwiftShader: bulk output about 2× faster, Ctrl-C → prompt sooner), so
//! [`super::settings::Renderer::Auto`] takes it. The name check is plain Rust.

/// Parts of WebGL renderer names that mean a software rasterizer.
const SOFTWARE_RENDERERS: &[&str] = &[
    "swiftshader",
    "llvmpipe",
    "softpipe",
    "software",
    "microsoft basic render",
];

/// Whether a WebGL renderer name (`UNMASKED_RENDERER_WEBGL`) is a software
/// rasterizer.
pub fn is_software_renderer(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SOFTWARE_RENDERERS.iter().any(|s| name.contains(s))
}

/// Whether WebGL2 here is drawn in software; probed once per page (`false`
/// when it cannot be told: xterm.js falls back to DOM by itself when there
/// is no WebGL2 at all).
#[cfg(feature = "hydrate")]
pub fn webgl_is_software() -> bool {
    use std::cell::Cell;
    thread_local! {
        static SOFTWARE: Cell<Option<bool>> = const { Cell::new(None) };
    }
    SOFTWARE.with(|cached| {
        if let Some(known) = cached.get() {
            return known;
        }
        let known = probe::renderer_name().is_some_and(|n| is_software_renderer(&n));
        cached.set(Some(known));
        known
    })
}

#[cfg(feature = "hydrate")]
mod probe {
    //! Asks a throwaway WebGL2 context for its renderer's name.
    use js_sys::{Function, Reflect};
    use wasm_bindgen::{JsCast, JsValue};

    /// `gl.RENDERER`, for when the unmasked name is not offered.
    const RENDERER: u32 = 0x1F01;

    /// Calls `target.method(arg)`; `None` if it is missing, throws or gives
    /// null or undefined.
    fn call(target: &JsValue, method: &str, arg: &JsValue) -> Option<JsValue> {
        let f: Function = Reflect::get(target, &method.into()).ok()?.dyn_into().ok()?;
        let v = f.call1(target, arg).ok()?;
        (!v.is_null() && !v.is_undefined()).then_some(v)
    }

    /// The WebGL2 renderer's name, if the browser has WebGL2 and tells it.
    pub fn renderer_name() -> Option<String> {
        let canvas = web_sys::window()?
            .document()?
            .create_element("canvas")
            .ok()?;
        let gl = call(&canvas, "getContext", &"webgl2".into())?;
        let name = match call(&gl, "getExtension", &"WEBGL_debug_renderer_info".into()) {
            Some(info) => {
                let unmasked = Reflect::get(&info, &"UNMASKED_RENDERER_WEBGL".into()).ok()?;
                call(&gl, "getParameter", &unmasked)
            }
            None => call(&gl, "getParameter", &RENDERER.into()),
        };
        // Give the context back now rather than at garbage collection
        // (browsers keep only a few alive).
        if let Some(lose) = call(&gl, "getExtension", &"WEBGL_lose_context".into()) {
            let _ = call(&lose, "loseContext", &JsValue::UNDEFINED);
        }
        name?.as_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_rasterizers_are_recognised() {
        for name in [
            "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)",
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            "Mesa softpipe",
            "Google SwiftShader",
            "ANGLE (Microsoft, Microsoft Basic Render Driver Direct3D11 vs_5_0 ps_5_0)",
        ] {
            assert!(is_software_renderer(name), "{name}");
        }
    }

    #[test]
    fn gpus_are_not_software() {
        for name in [
            "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Direct3D11 vs_5_0 ps_5_0, D3D11)",
            "Apple M2",
            "Mesa Intel(R) UHD Graphics 620 (KBL GT2)",
            "AMD Radeon Pro 5500M OpenGL Engine",
            "WebKit WebGL",
            "",
        ] {
            assert!(!is_software_renderer(name), "{name}");
        }
    }
}
