//! The metric families every request updates, kept outside the `metrics` registry
//! and rendered beside its text: `osprey_requests_total{route,method,status}`,
//! `osprey_request_duration_seconds{route,status}`,
//! `osprey_stage_duration_seconds{stage}` and `osprey_embedded_items_total`; and
//! the cache's `osprey_cache_lookup_duration_seconds{tier}`, kept by each tier.
//! Updating them is a few relaxed atomic adds on this thread's own cache lines;
//! series are found through a per-thread table, the shared one is locked only the
//! first time a thread meets a (route, method, status).
//!
//! Process-wide, like the recorder they sit beside. Kept out of the `metrics`
//! facade on purpose: a recorder histogram keeps every sample with a timestamp in
//! a shared list (an epoch pin and two contended atomics per sample), these are
//! two relaxed adds on the calling thread's own cache lines.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use osprey_metrics::event::name;
use osprey_metrics::{Counter, HistogramSnapshot, LatencyHistogram};

use crate::stats::STAGES;

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

/// Counts and times one finished request. `route` is interned per thread and
/// `method` one of a fixed set of labels, so this thread's table compares them by
/// address.
pub fn request(route: &'static str, method: &'static str, status: u16, elapsed: Duration) {
    type Seen = (*const u8, &'static str, u16, &'static Series);
    thread_local! {
        static SEEN: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
    }
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
pub fn render_cache_lookups<'a>(
    out: &mut String,
    tiers: impl Iterator<Item = (&'a str, &'a HistogramSnapshot)>,
) {
    let family = name::CACHE_LOOKUP_DURATION;
    let _ = writeln!(out, "# TYPE {family} histogram");
    for (tier, lookups) in tiers {
        lookups.render(out, family, &format!("tier=\"{tier}\""));
    }
    out.push('\n');
}

/// Appends every family in Prometheus text format.
pub fn render(out: &mut String) {
    let f = families();
    let reg = registry();
    let _ = writeln!(out, "# TYPE {} counter", name::REQUESTS);
    for s in &reg.series {
        let _ = writeln!(
            out,
            "{}{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}",
            name::REQUESTS,
            s.route,
            s.method,
            s.status,
            s.count.get()
        );
    }
    let _ = writeln!(out, "\n# TYPE {} histogram", name::REQUEST_DURATION);
    let mut labels = String::new();
    for d in &reg.durations {
        labels.clear();
        let _ = write!(labels, "route=\"{}\",status=\"{}\"", d.route, d.status);
        d.histogram.render(out, name::REQUEST_DURATION, &labels);
    }
    let _ = writeln!(out, "\n# TYPE {} histogram", name::STAGE_DURATION);
    for (stage, h) in STAGES.iter().zip(&f.stages) {
        labels.clear();
        let _ = write!(labels, "stage=\"{stage}\"");
        h.render(out, name::STAGE_DURATION, &labels);
    }
    let items = name::EMBEDDED_ITEMS;
    let _ = write!(
        out,
        "\n# TYPE {items} counter\n{items} {}\n\n",
        f.items.get()
    );
}
