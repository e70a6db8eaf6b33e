//! [`Context`]: what every connection's session is given besides its socket: the hub and
//! the application's handler. The handler lives here, not in the hub, because only
//! sessions call it; the hub never calls back into application code.

use std::sync::Arc;

use crate::handler::Handler;
use crate::hub::Hub;

/// The server a session belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Context {
    /// This node's hub.
    pub hub: Hub,
    /// The application's handler, if any.
    pub handler: Option<Arc<dyn Handler>>,
}
