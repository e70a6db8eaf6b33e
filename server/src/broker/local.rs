//! [`LocalBroker`]: one node, no bus. Publishing is delivering through the local side;
//! requests are answered by it.

use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;

use super::{
    AckRequest, AckResults, Broker, BrokerHealth, Delivery, LocalSide, NodeAnswer, NodeRequest,
    Reach,
};
use crate::ServerError;

/// The single-node broker.
#[derive(Default)]
pub struct LocalBroker {
    local: OnceLock<Arc<dyn LocalSide>>,
}

impl std::fmt::Debug for LocalBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBroker")
            .field("started", &self.local.get().is_some())
            .finish()
    }
}

impl LocalBroker {
    /// A broker not yet started.
    pub fn new() -> Self {
        Self::default()
    }

    fn local(&self) -> Result<&Arc<dyn LocalSide>, ServerError> {
        self.local
            .get()
            .ok_or_else(|| ServerError::Broker("the broker has not been started".into()))
    }
}

impl Broker for LocalBroker {
    fn start(&self, local: Arc<dyn LocalSide>) -> BoxFuture<'_, Result<(), ServerError>> {
        let result = self
            .local
            .set(local)
            .map_err(|_| ServerError::Broker("the broker was already started".into()));
        Box::pin(std::future::ready(result))
    }

    fn publish(&self, delivery: Delivery) -> BoxFuture<'_, Result<Reach, ServerError>> {
        let result = self.local().map(|local| local.deliver(&delivery));
        Box::pin(std::future::ready(result))
    }

    fn publish_with_ack(
        &self,
        delivery: Delivery,
        ack: AckRequest,
    ) -> BoxFuture<'_, Result<AckResults, ServerError>> {
        Box::pin(async move {
            let local = self.local()?;
            Ok(local.deliver_with_ack(&delivery, &ack).await)
        })
    }

    fn health(&self) -> BrokerHealth {
        BrokerHealth {
            kind: "local",
            connected: true,
            nodes: 1,
            ..BrokerHealth::default()
        }
    }

    fn request(&self, request: NodeRequest) -> BoxFuture<'_, Result<NodeAnswer, ServerError>> {
        Box::pin(async move { self.local()?.handle(request).await })
    }
}
