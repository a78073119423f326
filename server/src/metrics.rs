//! The server's Prometheus metrics: requests answered by route, method and status, and how
//! long they took (a histogram per route and method), counted by a middleware and rendered
//! as Prometheus text at `/metrics`. The route is the matched route's pattern (ids never
//! become labels), `unmatched` for requests no route took.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the duration histogram's buckets, in seconds.
pub const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How many requests fell into each bucket, their sum and count.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, bucket) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Counts {
    /// (route, method, status) → requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// (route, method) → durations.
    durations: BTreeMap<(String, String), Histogram>,
}

/// The counters, shared by every request.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

impl Metrics {
    /// Counts one request to `route` with `method` answered with `status` after `took`.
    pub fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.requests.entry((route.to_string(), method.to_string(), status)).or_default() += 1;
        counts.durations.entry((route.to_string(), method.to_string())).or_default().observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        out.push_str("# HELP hsm_server_requests_total Requests answered, by route, method and status.\n");
        out.push_str("# TYPE hsm_server_requests_total counter\n");
        for ((route, method, status), n) in &counts.requests {
            let _ = writeln!(
                out,
                "hsm_server_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
        out.push_str(
            "# HELP hsm_server_request_duration_seconds Time from a request to its answer's head, by route and method.\n",
        );
        out.push_str("# TYPE hsm_server_request_duration_seconds histogram\n");
        for ((route, method), histogram) in &counts.durations {
            let labels = format!("route=\"{}\",method=\"{method}\"", label(route));
            for (bound, n) in BUCKETS.iter().zip(histogram.buckets.iter()) {
                let _ = writeln!(out, "hsm_server_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}");
            }
            let count = histogram.count;
            let _ = writeln!(out, "hsm_server_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "hsm_server_request_duration_seconds_sum{{{labels}}} {}", histogram.sum);
            let _ = writeln!(out, "hsm_server_request_duration_seconds_count{{{labels}}} {count}");
        }
        out
    }
}

/// A label value escaped as the exposition format wants.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The middleware: times the request and counts its answer under its matched route.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    let route = route.as_deref().unwrap_or("unmatched");
    metrics.observe(route, &method, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_method_and_status_with_their_durations() {
        let metrics = Metrics::default();
        metrics.observe("/v1/instances/{id}", "GET", 200, Duration::from_millis(3));
        metrics.observe("/v1/instances/{id}", "GET", 200, Duration::from_millis(30));
        metrics.observe("/v1/instances/{id}", "GET", 404, Duration::from_millis(2));
        let text = metrics.render();
        assert!(
            text.contains("hsm_server_requests_total{route=\"/v1/instances/{id}\",method=\"GET\",status=\"200\"} 2\n")
        );
        assert!(
            text.contains("hsm_server_requests_total{route=\"/v1/instances/{id}\",method=\"GET\",status=\"404\"} 1\n")
        );
        let labels = "route=\"/v1/instances/{id}\",method=\"GET\"";
        assert!(
            text.contains(&format!("hsm_server_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("hsm_server_request_duration_seconds_bucket{{{labels},le=\"0.05\"}} 3\n")),
            "{text}"
        );
        assert!(text.contains(&format!("hsm_server_request_duration_seconds_count{{{labels}}} 3\n")), "{text}");
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
