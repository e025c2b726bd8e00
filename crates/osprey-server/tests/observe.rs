//! Observing a real server: the Prometheus scrape (parsed by a Prometheus text
//! parser), request ids and Server-Timing, rolling statistics and their CSV,
//! readiness reasons, the CPU profiler, and the dashboard in headless Chromium.
//!
//! The tests share one server and take turns (they compare counters before and
//! after their own traffic).

#![allow(clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::TestServer;
use common::{Reply, client, get, post_json};
use osprey_engine::cache::CacheConfig;
use osprey_observe::STAGES;
use osprey_server::ObserveConfig;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

static TURN: Mutex<()> = Mutex::const_new(());

async fn server() -> (MutexGuard<'static, ()>, &'static TestServer) {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    let guard = TURN.lock().await;
    let s = SERVER.get_or_init(|| {
        common::start_observed(ObserveConfig::default(), Some(CacheConfig::default()))
    });
    (guard, s)
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!(
        "{tag} sentence number {} about observing servers",
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

async fn scrape(c: &reqwest::Client, base: &str) -> prometheus_parse::Scrape {
    let r = get(c, &format!("{base}/metrics")).await;
    assert_eq!(r.status, 200);
    let lines = r.text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("the scrape parses as Prometheus text")
}

/// The sum of a family's samples whose labels include every `(name, value)` given.
/// Histograms count their observations.
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

fn has(s: &prometheus_parse::Scrape, name: &str) -> bool {
    s.samples.iter().any(|x| x.metric == name)
}

#[tokio::test]
async fn scrape_has_the_design_families_and_counts_known_traffic() {
    let (_turn, server) = server().await;
    let c = client();
    let before = scrape(&c, &server.base).await;
    let repeated = unique("repeated");
    for _ in 0..5 {
        let texts = json!([repeated.clone(), unique("metrics")]);
        let r = post_json(
            &c,
            &format!("{}/embed", server.base),
            json!({"inputs": texts}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let bad = post_json(&c, &format!("{}/embed", server.base), json!({"inputs": 7})).await;
    assert_eq!(bad.status, 422);
    let after = scrape(&c, &server.base).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };

    let ok = [("route", "/embed"), ("status", "200")];
    assert_eq!(delta("osprey_requests_total", &ok), 5.0);
    assert_eq!(
        delta(
            "osprey_requests_total",
            &[("route", "/embed"), ("status", "422")]
        ),
        1.0
    );
    assert_eq!(delta("osprey_request_duration_seconds", &ok), 5.0);
    assert_eq!(delta("osprey_embedded_items_total", &[]), 10.0);
    for stage in STAGES {
        assert_eq!(
            delta("osprey_stage_duration_seconds", &[("stage", stage)]),
            5.0,
            "stage {stage}"
        );
    }
    // Ten lookups in the memory tier: the repeated text hits four times.
    assert_eq!(
        delta(
            "osprey_cache_requests_total",
            &[("tier", "memory"), ("result", "hit")]
        ),
        4.0
    );
    assert_eq!(
        delta(
            "osprey_cache_requests_total",
            &[("tier", "memory"), ("result", "miss")]
        ),
        6.0
    );
    assert!(delta("osprey_batch_size", &[]) >= 1.0);
    assert!(delta("osprey_batch_tokens", &[]) >= 1.0);
    assert!(delta("osprey_batch_padding_ratio", &[]) >= 1.0);
    assert_eq!(
        value(
            &after,
            "osprey_model_info",
            &[("model", "all-MiniLM-L6-v2"), ("backend", "candle")]
        ),
        1.0
    );
    let info = after
        .samples
        .iter()
        .find(|x| x.metric == "osprey_model_info")
        .expect("model info");
    assert!(info.labels.get("revision").is_some_and(|r| !r.is_empty()));
    assert!(value(&after, "osprey_process_resident_memory_bytes", &[]) > 10e6);
    assert!(value(&after, "osprey_process_threads", &[]) >= 2.0);
    assert!(value(&after, "osprey_process_open_fds", &[]) >= 3.0);
    assert!(value(&after, "osprey_process_cpu_seconds_total", &[]) > 0.0);
    // The scrape itself is in flight while it renders.
    assert_eq!(value(&after, "osprey_requests_in_flight", &[]), 1.0);
    assert!(has(&after, "osprey_queue_tokens"));
    for slo in ["latency", "errors"] {
        assert!(
            value(&after, "osprey_slo_objective", &[("slo", slo)]) > 0.9,
            "slo {slo}"
        );
        assert!(has(&after, "osprey_slo_burn_rate"));
        assert!(has(&after, "osprey_slo_compliance"));
    }
    // Low cardinality: no label carries a text or a request id.
    for s in &after.samples {
        for (k, v) in s.labels.iter() {
            assert!(
                !v.contains("sentence number") && k != "request_id",
                "{} has label {k}={v}",
                s.metric
            );
        }
    }
}

fn server_timing(r: &Reply) -> HashMap<String, f64> {
    let header = r.header("server-timing").expect("a Server-Timing header");
    header
        .split(',')
        .map(|part| {
            let (name, dur) = part.trim().split_once(";dur=").expect("name;dur=ms");
            (name.to_owned(), dur.parse::<f64>().expect("a number"))
        })
        .collect()
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_server_timing_adds_up() {
    let (_turn, server) = server().await;
    let c = client();
    let url = format!("{}/v1/embeddings", server.base);
    for cached in [false, true] {
        let text = if cached {
            "the same text twice".to_owned()
        } else {
            unique("timing")
        };
        if cached {
            post_json(&c, &url, json!({"input": text})).await;
        }
        let started = Instant::now();
        let resp = c
            .post(&url)
            .header("x-request-id", "client-chosen-id-42")
            .json(&json!({"input": [text, unique("timing")]}))
            .send()
            .await
            .expect("POST");
        let r = Reply::read(resp).await;
        let total_ms = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-request-id"), Some("client-chosen-id-42"));
        let stages = server_timing(&r);
        let names: Vec<&str> = STAGES.to_vec();
        for n in &names {
            let v = stages
                .get(*n)
                .unwrap_or_else(|| panic!("stage {n} in {stages:?}"));
            assert!(*v >= 0.0, "{n} = {v}");
        }
        assert_eq!(stages.len(), names.len(), "{stages:?}");
        let sum: f64 = stages.values().sum();
        assert!(
            sum <= total_ms,
            "stages add up to {sum} ms, more than the request's {total_ms} ms"
        );
        assert!(stages["inference"] > 0.0, "one input needed the model");
    }
    let r = get(&c, &format!("{}/info", server.base)).await;
    let id = r.header("x-request-id").expect("a generated request id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
}

/// Waits until the statistics have closed the second holding `n` more requests.
async fn wait_for_requests(c: &reqwest::Client, base: &str, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = get(c, &format!("{base}/admin/stats")).await;
        assert_eq!(s.status, 200);
        if s.json["windows"]["1h"]["requests"].as_u64().unwrap_or(0) >= n {
            return s.json;
        }
        assert!(
            Instant::now() < deadline,
            "stats never counted {n}: {}",
            s.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn stats_windows_and_csv_history() {
    let (_turn, server) = server().await;
    let c = client();
    let before = get(&c, &format!("{}/admin/stats", server.base)).await;
    let seen = before.json["windows"]["1h"]["requests"]
        .as_u64()
        .unwrap_or(0);
    for _ in 0..6 {
        post_json(
            &c,
            &format!("{}/embed", server.base),
            json!({"inputs": unique("stats")}),
        )
        .await;
    }
    let stats = wait_for_requests(&c, &server.base, seen + 6).await;
    for w in ["1m", "5m", "1h"] {
        let win = &stats["windows"][w];
        let l = &win["latency_ms"];
        let p = |k: &str| l[k].as_f64().unwrap_or_else(|| panic!("{w} {k}: {win}"));
        assert!(
            p("p50") > 0.0 && p("p50") <= p("p95") && p("p95") <= p("p99"),
            "{win}"
        );
        assert!(p("p99") <= p("p999"), "{win}");
        assert!(win["requests_per_second"].as_f64().unwrap_or(0.0) > 0.0);
        let stages = win["stages_ms"].as_array().expect("stage means");
        assert_eq!(stages.len(), 7, "{win}");
    }
    assert!(stats["slo"]["latency"]["objective"].as_f64() == Some(0.99));

    let csv = get(&c, &format!("{}/admin/stats.csv", server.base)).await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.header("content-type")
            .is_some_and(|t| t.starts_with("text/csv"))
    );
    let mut lines = csv.text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    assert_eq!(header[0], "unix_time");
    let col = header
        .iter()
        .position(|h| *h == "requests")
        .expect("requests column");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let total: u64 = rows
        .iter()
        .map(|r| r[col].parse::<u64>().expect("a count"))
        .sum();
    assert!(total >= seen + 6, "{total} requests in the CSV");
}

#[tokio::test]
async fn ready_gives_each_component_a_status_and_reason() {
    let (_turn, server) = server().await;
    let c = client();
    let r = get(&c, &format!("{}/health/ready", server.base)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for component in ["model", "queue", "cache_memory"] {
        let comp = &r.json["components"][component];
        assert!(comp["status"].is_string(), "{component}: {}", r.text);
        assert!(
            comp["reason"].as_str().is_some_and(|s| !s.is_empty()),
            "{component}: {}",
            r.text
        );
    }
    assert_eq!(r.json["components"]["queue"]["status"], "ok");
}

/// Sends embedding requests until `stop` is set; returns how many.
fn traffic(base: String, stop: &'static AtomicBool) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let c = client();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            // Mostly cache hits, some misses: every chart has something to show.
            let text = if n % 4 == 0 {
                unique("dashboard")
            } else {
                "a cached dashboard sentence".to_owned()
            };
            post_json(&c, &format!("{base}/embed"), json!({"inputs": [text]})).await;
            n += 1;
        }
        n
    })
}

#[tokio::test]
async fn profile_is_an_svg_flame_graph_bounded_and_one_at_a_time() {
    let (_turn, server) = server().await;
    let c = client();
    let other = get(&c, &format!("{}/admin/profile?other=1", server.base)).await;
    other.assert_error(400, "an unknown parameter");
    for bad in ["seconds=0", "seconds=61", "seconds=abc"] {
        let r = get(&c, &format!("{}/admin/profile?{bad}", server.base)).await;
        r.assert_error(422, bad);
    }
    static STOP: AtomicBool = AtomicBool::new(false);
    let load = traffic(server.base.clone(), &STOP);
    let url = format!("{}/admin/profile?seconds=2", server.base);
    let first = tokio::spawn({
        let c = c.clone();
        let url = url.clone();
        async move { Reply::read(c.get(&url).send().await.expect("profile")).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = get(&c, &url).await;
    second.assert_error(409, "a second profile");
    let first = first.await.expect("profile task");
    STOP.store(true, Ordering::Relaxed);
    load.await.expect("traffic");
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("content-type"), Some("image/svg+xml"));
    assert!(
        first.text.contains("<svg"),
        "{}",
        &first.text[..first.text.len().min(300)]
    );
    assert!(first.text.len() > 2000, "a flame graph with frames");
    // The slot is free again.
    let again = get(&c, &format!("{}/admin/profile?seconds=1", server.base)).await;
    assert_eq!(again.status, 200);
}

fn chromium() -> String {
    std::env::var("OSPREY_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// Runs headless Chromium on `url` with `extra` flags; returns its stdout.
fn run_chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().expect("a profile directory");
    let out = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1400,1400",
            // Timers run on virtual time: 4 s of page life, polls included.
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running {} failed ({e}); install it with `make chromium`",
                chromium()
            )
        });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn dashboard_draws_real_data_in_headless_chromium() {
    let (_turn, server) = server().await;
    let c = client();
    let page = get(&c, &format!("{}/dashboard", server.base)).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert!(
        page.text.len() <= 200 * 1024,
        "page weighs {} bytes",
        page.text.len()
    );
    let bad = get(
        &c,
        &format!("{}/dashboard/data?since=yesterday", server.base),
    )
    .await;
    bad.assert_error(422, "a bad since");

    // An action for the page to list.
    let warmed = c
        .post(format!("{}/admin/warmup", server.base))
        .send()
        .await
        .expect("POST /admin/warmup");
    assert_eq!(warmed.status(), 200);

    static STOP: AtomicBool = AtomicBool::new(false);
    let load = traffic(server.base.clone(), &STOP);
    // Two closed seconds of traffic before the page looks.
    let seen =
        get(&c, &format!("{}/admin/stats", server.base)).await.json["windows"]["1h"]["requests"]
            .as_u64()
            .unwrap_or(0);
    wait_for_requests(&c, &server.base, seen + 20).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let url = format!("{}/dashboard", server.base);
    let dom = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run_chromium(&url, &["--dump-dom".into()])
    })
    .await
    .expect("chromium task");
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    tokio::task::spawn_blocking({
        let shot = shot.clone();
        move || run_chromium(&url, &[format!("--screenshot={}", shot.display())])
    })
    .await
    .expect("chromium task");
    STOP.store(true, Ordering::Relaxed);
    load.await.expect("traffic");

    let start = dom
        .find("<pre id=\"selftest\"")
        .expect("the selftest element");
    let body = &dom[start..];
    let json_text = &body[body.find('>').expect("tag end") + 1..body.find("</pre>").expect("end")];
    let json_text = json_text
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let st: Value = serde_json::from_str(&json_text).expect("selftest JSON");
    assert_eq!(st["errors"], json!([]), "console errors: {st}");
    assert!(st["polls"].as_u64().unwrap_or(0) >= 1, "{st}");
    let charts = &st["charts"];
    let v = |chart: &str, series: &str| charts[chart][series].as_f64().unwrap_or(-1.0);
    assert!(v("rps", "req/s") > 0.0, "requests/s: {st}");
    for p in ["p50", "p95", "p99"] {
        assert!(v("latency", p) > 0.0, "{p}: {st}");
    }
    assert!(v("latency", "p50") <= v("latency", "p99"), "{st}");
    assert!(v("stages", "cache") > 0.0, "stage breakdown: {st}");
    assert!(
        (0.0..=100.0).contains(&v("cache", "memory")),
        "memory hit rate: {st}"
    );
    assert!(v("batch", "inputs/batch") >= 1.0, "batch sizes: {st}");
    assert!(v("cpu", "cpu") >= 0.0, "{st}");
    assert!(v("memory", "rss") > 10.0, "MiB resident: {st}");
    assert!(v("burn", "latency") >= 0.0, "{st}");
    assert!(
        st["actions"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("warmed_up"))),
        "the warm-up in the actions table: {st}"
    );
    assert!(st["recommendations"].is_array(), "{st}");
    assert!(
        dom.contains("POST /admin/warmup"),
        "the action's reason is shown"
    );
    let png = std::fs::metadata(&shot).expect("the screenshot was written");
    assert!(png.len() > 10_000, "screenshot of {} bytes", png.len());
}
