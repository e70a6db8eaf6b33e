//! Roomcast browser SDK. [`core`] is the whole client as a sans-I/O state machine (auth,
//! pong, inflate, batch unpacking, acks, reconnect with backoff, rejoin without loss or
//! duplicates, the offline queue), tested natively; the wasm-bindgen façade that drives
//! it from a browser WebSocket sits on top of it.

pub mod core;
pub mod error;

pub use self::core::{Backoff, Core, Effect, Options, State};
pub use self::error::ClientError;

#[cfg(test)]
mod types_check;
#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "wasm32")]
pub use self::wasm::RoomcastClient;
