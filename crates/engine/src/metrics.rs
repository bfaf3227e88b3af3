//! Prometheus metrics: HTTP requests, inbound messages, deliveries by outcome, queue depth,
//! render workers killed.

use std::sync::atomic::AtomicI64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    channel_kind: String,
}

/// Why a render worker was killed: `memory`, `timeout`, `cancelled` (its caller went away),
/// `failed` (it ended without answering), `bad_answer`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KillLabels {
    pub reason: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    http: Family<HttpLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    inbound: Family<ChannelLabels, Counter>,
    queue_depth: Gauge<i64, AtomicI64>,
    render_kills: Family<KillLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("okno");
        let http = Family::<HttpLabels, Counter>::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let inbound = Family::<ChannelLabels, Counter>::default();
        let queue_depth = Gauge::<i64, AtomicI64>::default();
        let render_kills = Family::<KillLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served, by method and status", http.clone());
        registry.register("deliveries", "Outbox jobs finished, by kind and outcome", deliveries.clone());
        registry.register("inbound_messages", "Inbound messages recorded, by channel kind", inbound.clone());
        registry.register("queue_depth", "Jobs waiting in the outbox", queue_depth.clone());
        registry.register(
            "render_workers_killed",
            "Template render workers killed, by reason (memory, timeout, cancelled)",
            render_kills.clone(),
        );
        Self { registry: Mutex::new(registry), http, deliveries, inbound, queue_depth, render_kills }
    }

    /// The counter of killed render workers, for the render pool to count on.
    pub fn render_kills(&self) -> Family<KillLabels, Counter> {
        self.render_kills.clone()
    }

    pub fn http(&self, method: &str, status: u16) {
        self.http.get_or_create(&HttpLabels { method: method.to_string(), status }).inc();
    }

    /// `outcome`: `sent`, `retry`, `failed`.
    pub fn delivery(&self, kind: &str, outcome: &str) {
        self.deliveries.get_or_create(&DeliveryLabels { kind: kind.to_string(), outcome: outcome.to_string() }).inc();
    }

    pub fn inbound(&self, channel_kind: &str) {
        self.inbound.get_or_create(&ChannelLabels { channel_kind: channel_kind.to_string() }).inc();
    }

    /// The exposition text, with the queue depth as read just now.
    pub fn render(&self, queue_depth: i64) -> String {
        self.queue_depth.set(queue_depth);
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}
