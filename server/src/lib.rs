//! Roomcast server library: everything the `roomcast` binary runs, usable in-process by
//! tests and by applications that embed the server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), roomcast_server::ServerError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = roomcast_server::Config::dev();
//! roomcast_server::run(listener, config, std::future::pending()).await
//! # }
//! ```

#![warn(unreachable_pub, missing_docs)]

pub mod api;
pub mod auth;
pub mod broker;
mod clock;
pub mod config;
mod context;
mod demo;
mod error;
pub mod handler;
pub mod hub;
pub mod metrics;
pub mod model;
pub mod presence;
mod server;
mod session;
mod stats;
pub mod store;

pub use clock::now_ms;
pub use config::{Config, Settings};
pub use error::ServerError;
pub use handler::{Handler, HandlerContext, HandlerError, WebhookHandler};
pub use hub::Hub;
pub use server::{run, run_with, ws_config};
