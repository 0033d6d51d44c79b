//! The API's requests: counts and latency by method, matched route and status.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// HTTP methods kept as a label value; anything else is `other` (labels stay bounded whatever
/// clients send).
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabel, Counter>,
    latency: Family<RequestLabel, Histogram>,
}

impl HttpMetrics {
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
        };
        r.register(
            "http_requests",
            "API requests by method, route (the matched pattern) and status",
            m.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "API request latency by method, route and status",
            m.latency.clone(),
        );
        m
    }

    /// Counts one answered API request. `route` is the matched pattern (`None`: no route
    /// matched), so that label values stay bounded.
    pub fn request(&self, method: &str, route: Option<String>, status: u16, seconds: f64) {
        let method = METHODS
            .into_iter()
            .find(|m| *m == method)
            .unwrap_or("other");
        let label = RequestLabel {
            method,
            route: route.unwrap_or_else(|| "unmatched".to_owned()),
            status,
        };
        self.latency.get_or_create(&label).observe(seconds);
        self.requests.get_or_create(&label).inc();
    }
}
