//! The metric families every request updates, kept outside the `metrics` registry
//! and rendered beside its text: `osprey_requests_total{route,method,status}`,
//! `osprey_request_duration_seconds{route,status}`,
//! `osprey_stage_duration_seconds{stage}` and `osprey_embedded_items_total`; and
//! the cache's `osprey_cache_lookup_duration_seconds{tier}`, kept by each tier.
//! Updating them is a few relaxed atomic adds on this thread's own cache lines;
//! series are found through a per-thread table, the shared one is locked only the
//! first time a thread meets a (route, method, status).
//!
//! Process-wide, like the recorder they sit beside.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::http::Method;

use osprey_engine::cache::CacheStats;
use osprey_metrics::{Counter, LatencyHistogram};

use super::stats::STAGES;

/// The method label: the standard methods by name, any other as `other` (a client
/// picks the method, and each label value is a series kept for good).
fn method_label(m: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::POST,
        Method::GET,
        Method::DELETE,
        Method::HEAD,
        Method::PUT,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|k| *k == m)
        .map_or("other", |k| k.as_str())
}

/// One (route, method, status): its counter, and the duration histogram it shares
/// with the route's other methods of that status.
struct Series {
    route: &'static str,
    method: &'static str,
    status: u16,
    count: Counter,
    duration: &'static RouteDuration,
}

/// `osprey_request_duration_seconds` of one (route, status).
struct RouteDuration {
    route: &'static str,
    status: u16,
    histogram: LatencyHistogram,
}

#[derive(Default)]
struct Registry {
    series: Vec<&'static Series>,
    durations: Vec<&'static RouteDuration>,
}

struct Families {
    registry: Mutex<Registry>,
    stages: [LatencyHistogram; STAGES.len()],
    items: Counter,
}

fn families() -> &'static Families {
    static FAMILIES: OnceLock<Families> = OnceLock::new();
    FAMILIES.get_or_init(|| Families {
        registry: Mutex::default(),
        stages: Default::default(),
        items: Counter::default(),
    })
}

fn registry() -> MutexGuard<'static, Registry> {
    // Only ever pushed to: a panic elsewhere leaves it whole.
    families()
        .registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The shared series of (route, method, status), made on first sight. Routes are
/// the router's patterns, methods nine names and `other`, statuses the server's
/// own: a small set, so series are never freed.
fn series(route: &'static str, method: &'static str, status: u16) -> &'static Series {
    let mut reg = registry();
    if let Some(s) = reg
        .series
        .iter()
        .find(|s| s.route == route && s.method == method && s.status == status)
    {
        return s;
    }
    let duration = match reg
        .durations
        .iter()
        .find(|d| d.route == route && d.status == status)
    {
        Some(d) => *d,
        None => {
            let d: &'static RouteDuration = Box::leak(Box::new(RouteDuration {
                route,
                status,
                histogram: LatencyHistogram::default(),
            }));
            reg.durations.push(d);
            d
        }
    };
    let s: &'static Series = Box::leak(Box::new(Series {
        route,
        method,
        status,
        count: Counter::default(),
        duration,
    }));
    reg.series.push(s);
    s
}

/// Counts and times one finished request. `route` is interned per thread, so this
/// thread's table compares it by address.
pub fn request(route: &'static str, method: &Method, status: u16, elapsed: Duration) {
    type Seen = (*const u8, &'static str, u16, &'static Series);
    thread_local! {
        static SEEN: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
    }
    let method = method_label(method);
    let s = SEEN.with(|cell| {
        let mut seen = cell.borrow_mut();
        let found = seen
            .iter()
            .find(|(r, m, st, _)| {
                std::ptr::eq(*r, route.as_ptr()) && std::ptr::eq(*m, method) && *st == status
            })
            .map(|e| e.3);
        match found {
            Some(s) => s,
            None => {
                let s = series(route, method, status);
                seen.push((route.as_ptr(), method, status, s));
                s
            }
        }
    });
    s.count.add(1);
    s.duration.histogram.record(elapsed);
}

/// Times one request's stages, in nanoseconds in [`STAGES`] order.
pub fn stages(nanos: &[u64; STAGES.len()]) {
    for (h, ns) in families().stages.iter().zip(nanos) {
        h.record_ns(*ns);
    }
}

/// Counts inputs embedded (`osprey_embedded_items_total`).
pub fn embedded_items(n: usize) {
    families().items.add(n as u64);
}

/// `osprey_cache_lookup_duration_seconds{tier}`, from each tier's own histogram.
pub fn render_cache_lookups(out: &mut String, cache: &CacheStats) {
    out.push_str("# TYPE osprey_cache_lookup_duration_seconds histogram\n");
    for t in &cache.tiers {
        let labels = format!("tier=\"{}\"", t.tier.label());
        t.lookup_seconds
            .render(out, "osprey_cache_lookup_duration_seconds", &labels);
    }
    out.push('\n');
}

/// Appends every family in Prometheus text format.
pub fn render(out: &mut String) {
    let f = families();
    let reg = registry();
    out.push_str("# TYPE osprey_requests_total counter\n");
    for s in &reg.series {
        let _ = writeln!(
            out,
            "osprey_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}",
            s.route,
            s.method,
            s.status,
            s.count.get()
        );
    }
    out.push_str("\n# TYPE osprey_request_duration_seconds histogram\n");
    let mut labels = String::new();
    for d in &reg.durations {
        labels.clear();
        let _ = write!(labels, "route=\"{}\",status=\"{}\"", d.route, d.status);
        d.histogram
            .render(out, "osprey_request_duration_seconds", &labels);
    }
    out.push_str("\n# TYPE osprey_stage_duration_seconds histogram\n");
    for (name, h) in STAGES.iter().zip(&f.stages) {
        labels.clear();
        let _ = write!(labels, "stage=\"{name}\"");
        h.render(out, "osprey_stage_duration_seconds", &labels);
    }
    let _ = write!(
        out,
        "\n# TYPE osprey_embedded_items_total counter\nosprey_embedded_items_total {}\n\n",
        f.items.get()
    );
}
