//! Prometheus metrics, served on their own listener so they are never exposed on the public
//! port. HTTP metrics are labelled by the matched route template (`/api/v1/aeds/{id}`), never
//! the raw path, so cardinality stays bounded.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `aednet_http_requests_total` | counter | method, route, status |
//! | `aednet_http_request_duration_seconds` | histogram | method, route |
//! | `aednet_aeds` | gauge | — (set at start-up and after imports) |
//! | `aednet_rescuers_located` | gauge | — rescuers with a live position in this node's memory (a count only; with several nodes each counts the positions shared with it, so all nodes agree once they have caught up) |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds`, `process_threads` | counter/gauges | — the standard Prometheus process metrics (Linux, read from `/proc/self` when scraped) |
//!
//! Registered on the same registry by the crates that own them: `aednet_device_*` and
//! `aednet_aeds_by_status` (device gateway, see docs/device-protocol.md),
//! `aednet_dispatch_offer_seconds` (histogram: incident intake → first offers on rescuers'
//! sockets, dispatch engine), `aednet_coverage_population_share` (gauge: the live coverage
//! map's covered share, `crate::coverage`). deploy/prometheus/alerts.yml uses them; a test
//! checks that every name it uses is exported.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::state::AppState;

#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub aeds: IntGauge,
    pub rescuers_located: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "aednet_http_requests_total",
                "HTTP requests by route template and status",
            ),
            &["method", "route", "status"],
        )
        .expect("static metric definition");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "aednet_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route"],
        )
        .expect("static metric definition");
        let aeds =
            IntGauge::new("aednet_aeds", "AEDs in the registry").expect("static metric definition");
        let rescuers_located = IntGauge::new(
            "aednet_rescuers_located",
            "Rescuers with a live position in this node's memory (set when scraped)",
        )
        .expect("static metric definition");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(aeds.clone()),
            Box::new(rescuers_located.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        // The standard `process_*` metrics (CPU, memory, file descriptors, threads) every
        // Prometheus exporter provides; only Linux has them (`/proc`).
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process collector registered once");
        Self {
            registry,
            http_requests,
            http_duration,
            aeds,
            rescuers_located,
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware recording count and latency per matched route.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // MatchedPath and Method clone without allocating (shared string, inline method).
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let start = Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.http_duration
        .with_label_values(&[method.as_str(), route])
        .observe(start.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[method.as_str(), route, resp.status().as_str()])
        .inc();
    resp
}

pub async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    let located = i64::try_from(state.geo.rescuer_count()).unwrap_or(i64::MAX);
    state.metrics.rescuers_located.set(located);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}
