//! JavaScript values at the façade's edge: JSON text to and from JS (through the
//! browser's own `JSON`, so the SDK carries no JSON library), the `Error`s every
//! rejection carries, and small readers of option objects.

use js_sys::{Object, Reflect};
use wasm_bindgen::JsValue;

use crate::core::json::quote;
use crate::error::ClientError;

pub(super) fn now() -> u64 {
    // Whole milliseconds since the epoch fit in f64 exactly until the year 287396.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = js_sys::Date::now() as u64;
    ms
}

/// JSON text (from the server, or built by the core) to a JS value, by the browser's own
/// `JSON.parse`: the SDK carries no JSON library of its own.
pub(super) fn to_js(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap_or(JsValue::NULL)
}

/// A JS value the app passed, as JSON text (`undefined` is `null`).
pub(super) fn to_json(value: &JsValue) -> Result<String, JsValue> {
    if value.is_undefined() {
        return Ok("null".into());
    }
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|t| t.as_string())
        .ok_or_else(|| {
            js_error(
                "bad_request",
                "not JSON-compatible (cycles, functions, BigInt)",
            )
        })
}

/// A JSON object from members whose values are JSON texts already.
pub(super) fn object(members: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote(key));
        out.push(':');
        out.push_str(value);
    }
    out.push('}');
    out
}

/// A JS `Error` with a `code` property, what every rejection carries.
pub(super) fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    let _ = Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

pub(super) fn client_error(err: &ClientError) -> JsValue {
    js_error(err.code(), &err.to_string())
}

/// Sets `key` on a plain object (cannot fail on one).
pub(super) fn set(object: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(object, &key.into(), value);
}

pub(super) fn number(options: &JsValue, key: &str) -> Option<f64> {
    Reflect::get(options, &key.into())
        .ok()
        .and_then(|v| v.as_f64())
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub(super) fn millis(value: f64) -> u64 {
    value.max(0.0) as u64
}
