//! Counters and gauges, exported as Prometheus text at `/metrics` and as JSON at
//! `/api/stats`. Each server instance owns its own registry (no global recorder), so
//! several servers in one process (the tests) never mix their numbers.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use roomcast_protocol::ErrorCode;

use crate::model::BrokerHealth;

/// The `code` label of `roomcast_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The error code or close code.
    pub code: String,
}

/// Every metric the server keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections (authenticated or not).
    pub connections: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Authenticated connections.
    pub authenticated: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Rooms that exist.
    pub rooms: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Frames received from clients.
    pub messages_in: Counter<u64, AtomicU64>,
    /// Frames written to clients.
    pub messages_out: Counter<u64, AtomicU64>,
    /// Bytes received from clients (frame payloads).
    pub bytes_in: Counter<u64, AtomicU64>,
    /// Bytes written to clients (frame payloads).
    pub bytes_out: Counter<u64, AtomicU64>,
    /// `error` messages sent, by code.
    pub errors: Family<CodeLabel, Counter<u64, AtomicU64>>,
    /// Connections closed by the server, by close code.
    pub closes: Family<CodeLabel, Counter<u64, AtomicU64>>,
    /// Messages dropped because they did not fit in a connection's send queue (the
    /// one that overflowed it, and any after it while that connection closes).
    pub queue_drops: Counter<u64, AtomicU64>,
    /// Connections closed with 4029 because their send queue overflowed.
    pub slow_consumer_closes: Counter<u64, AtomicU64>,
    /// Topic items never written because a newer one of the same key replaced them in a
    /// connection's queue.
    pub topic_items_superseded: Counter<u64, AtomicU64>,
    /// Upgrades refused (total limit, bad token), by HTTP status.
    pub refused: Family<CodeLabel, Counter<u64, AtomicU64>>,
    /// Room chats read back from the store because the bus lost or delayed them.
    pub gap_repairs: Counter<u64, AtomicU64>,
    /// The broker's own figures, copied in at each scrape ([`Metrics::observe_broker`]).
    broker: BrokerGauges,
}

/// What `/metrics` shows of the broker (see [`BrokerHealth`]).
#[derive(Debug, Default)]
struct BrokerGauges {
    connected: Gauge<i64, std::sync::atomic::AtomicI64>,
    nodes: Gauge<i64, std::sync::atomic::AtomicI64>,
    published: Gauge<i64, std::sync::atomic::AtomicI64>,
    received: Gauge<i64, std::sync::atomic::AtomicI64>,
    publish_failures: Gauge<i64, std::sync::atomic::AtomicI64>,
    resubscribes: Gauge<i64, std::sync::atomic::AtomicI64>,
    reaped_nodes: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("roomcast");
        let m = Self {
            registry: Registry::default(),
            connections: Gauge::default(),
            authenticated: Gauge::default(),
            rooms: Gauge::default(),
            messages_in: Counter::default(),
            messages_out: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            errors: Family::default(),
            closes: Family::default(),
            queue_drops: Counter::default(),
            slow_consumer_closes: Counter::default(),
            topic_items_superseded: Counter::default(),
            refused: Family::default(),
            gap_repairs: Counter::default(),
            broker: BrokerGauges::default(),
        };
        registry.register(
            "connections",
            "Open WebSocket connections",
            m.connections.clone(),
        );
        registry.register(
            "connections_authenticated",
            "Authenticated connections",
            m.authenticated.clone(),
        );
        registry.register("rooms", "Rooms that exist", m.rooms.clone());
        registry.register(
            "messages_in",
            "Frames received from clients",
            m.messages_in.clone(),
        );
        registry.register(
            "messages_out",
            "Frames written to clients",
            m.messages_out.clone(),
        );
        registry.register(
            "bytes_in",
            "Payload bytes received from clients",
            m.bytes_in.clone(),
        );
        registry.register(
            "bytes_out",
            "Payload bytes written to clients",
            m.bytes_out.clone(),
        );
        registry.register(
            "errors",
            "Error messages sent to clients, by code",
            m.errors.clone(),
        );
        registry.register(
            "closes",
            "Connections closed by the server, by close code",
            m.closes.clone(),
        );
        registry.register(
            "queue_drops",
            "Messages dropped on a full send queue",
            m.queue_drops.clone(),
        );
        registry.register(
            "slow_consumer_closes",
            "Connections closed with 4029 because their send queue overflowed",
            m.slow_consumer_closes.clone(),
        );
        registry.register(
            "topic_items_superseded",
            "Topic items replaced by a newer one of the same key before they were written",
            m.topic_items_superseded.clone(),
        );
        registry.register(
            "upgrades_refused",
            "WebSocket upgrades refused, by HTTP status",
            m.refused.clone(),
        );
        registry.register(
            "gap_repairs",
            "Room chats read back from the store because the bus lost or delayed them",
            m.gap_repairs.clone(),
        );
        let b = &m.broker;
        for (name, help, gauge) in [
            (
                "bus_connected",
                "1 while the bus (Redis) is reachable; always 1 for one node",
                &b.connected,
            ),
            (
                "cluster_nodes",
                "Live nodes of the cluster, this one included",
                &b.nodes,
            ),
            (
                "bus_published",
                "Messages this node published to the bus",
                &b.published,
            ),
            (
                "bus_received",
                "Messages this node received from the bus",
                &b.received,
            ),
            (
                "bus_publish_failures",
                "Messages that could not be published (the bus was away)",
                &b.publish_failures,
            ),
            (
                "bus_resubscribes",
                "Times the bus subscription was restarted",
                &b.resubscribes,
            ),
            (
                "cluster_reaped_nodes",
                "Dead nodes whose presence this node reaped",
                &b.reaped_nodes,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        Self { registry, ..m }
    }

    /// Counts an `error` sent with `code`.
    pub fn error(&self, code: ErrorCode) {
        self.errors
            .get_or_create(&CodeLabel {
                code: code.as_str().to_owned(),
            })
            .inc();
    }

    /// Counts a close with `code`.
    pub fn close(&self, code: u16) {
        self.closes
            .get_or_create(&CodeLabel {
                code: code.to_string(),
            })
            .inc();
    }

    /// Counts a refused upgrade with HTTP `status`.
    pub fn refuse(&self, status: u16) {
        self.refused
            .get_or_create(&CodeLabel {
                code: status.to_string(),
            })
            .inc();
    }

    /// Copies the broker's figures in, before a scrape renders them.
    pub fn observe_broker(&self, health: &BrokerHealth) {
        let b = &self.broker;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        b.connected.set(i64::from(health.connected));
        b.nodes.set(count(health.nodes));
        b.published.set(count(health.published));
        b.received.set(count(health.received));
        b.publish_failures.set(count(health.publish_failures));
        b.resubscribes.set(count(health.resubscribes));
        b.reaped_nodes.set(count(health.reaped_nodes));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A value of a counter or gauge, for `/api/stats`.
    pub fn read(counter: &Counter<u64, AtomicU64>) -> u64 {
        counter.inner().load(Ordering::Relaxed)
    }
}
