//! The deployment files against the real binary: every metric the Grafana
//! dashboard, the Prometheus rules and the autoscaler rules read exists in a live
//! scrape; and two instances behind a real nginx, configured by
//! `deploy/nginx/nginx.conf`, lose no more than the requests in flight when one
//! is killed, and none when one drains on SIGTERM.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The Redis every instance shares: `REDIS_URL`, else the local default.
fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix of its own, so runs never see each other's entries.
fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("osprey-test:{name}:{}:{nanos}:", std::process::id())
}

/// An instance with all three cache tiers, Redis shared under `prefix`.
async fn instance(prefix: &str, cache_dir: &Path, extra_env: &[(&str, &str)]) -> Running {
    let disk = cache_dir.join("cache.redb").to_string_lossy().into_owned();
    let redis = redis_url();
    let mut env = vec![
        ("OSPREY_CACHE__DISK__PATH", disk.as_str()),
        ("OSPREY_CACHE__REDIS__URL", redis.as_str()),
        ("OSPREY_CACHE__REDIS__KEY_PREFIX", prefix),
        // Debug-build models are slow: queue time is not what is tested here.
        ("OSPREY_LIMITS__MAX_QUEUE_MS", "0"),
    ];
    env.extend_from_slice(extra_env);
    serve_model_with(&[], &env).await
}

/// Every `osprey_*` sample name in `text`: what Prometheus would query.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("osprey_") {
        let start = i + at;
        // `osprey:...` recording rules and words that merely end in `osprey_` are not
        // sample names.
        let inside_word = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || matches!(bytes[start - 1], b'_' | b':'));
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if !inside_word {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_rules_use_is_scraped() {
    let dir = deploy_dir();
    let mut used = BTreeSet::new();
    for file in [
        "grafana/osprey.json",
        "prometheus/rules.yaml",
        "k8s/base/prometheus-adapter.yaml",
        "k8s/overlays/keda/scaledobject.yaml",
    ] {
        let text =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut names = metric_names(&text);
        assert!(!names.is_empty(), "{file} uses no osprey metric");
        // prometheus-adapter serves metrics of its own making (`as: "..."`).
        for line in text.lines() {
            if let Some(made) = line.trim().strip_prefix("as: ") {
                names.remove(made.trim_matches('"'));
            }
        }
        used.extend(names);
    }

    let cache = tempdir();
    let Running {
        server: _server,
        client,
        base,
        ..
    } = instance(&unique_prefix("deploy-metrics"), cache.path(), &[]).await;
    // Traffic that touches every family: misses, a hit, and a batch.
    for _ in 0..2 {
        let resp = client
            .post(format!("{base}/embed"))
            .json(&json!({"inputs": ["scraped once", "scraped twice"]}))
            .send()
            .await
            .expect("POST /embed");
        assert_eq!(resp.status(), 200);
    }
    let scrape = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the scrape");
    let scraped: BTreeSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !scraped.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "used by deploy/ but not in a live scrape: {missing:?}\nscrape:\n{scrape}"
    );
    // The check can fail: a name that is not served is caught.
    assert!(!scraped.contains("osprey_no_such_metric"));
    assert!(used.contains("osprey_model_queue_duration_us_total"));
    assert!(used.contains("osprey_cache_tier_up"));
}

/// nginx as `deploy/nginx/nginx.conf` configures it, in front of `upstreams`.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstreams: [u16; 2]) -> Self {
        let shipped = std::fs::read_to_string(deploy_dir().join("nginx/nginx.conf"))
            .expect("deploy/nginx/nginx.conf");
        let port = free_port();
        let conf = shipped
            .replace("osprey-1:8080", &format!("127.0.0.1:{}", upstreams[0]))
            .replace("osprey-2:8080", &format!("127.0.0.1:{}", upstreams[1]))
            .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
            .replace("worker_processes auto;", "worker_processes 1;")
            .replace("http {", "http {\n    access_log off;");
        assert!(
            conf.contains(&format!("127.0.0.1:{}", upstreams[1])),
            "{conf}"
        );
        let dir = tempdir();
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let prefix = format!("{}/", dir.path().display());
        let nginx = if Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        };
        let child = Command::new(nginx)
            .args(["-p", &prefix, "-c"])
            .arg(&path)
            .args([
                "-e",
                &format!("{prefix}error.log"),
                "-g",
                &format!("daemon off; pid {prefix}nginx.pid;"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx must be installed (scripts/ensure-deploy-tools.sh installs it)");
        let nginx = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a load through nginx saw.
#[derive(Debug, Default)]
struct Outcome {
    ok: usize,
    failed: Vec<String>,
    /// Requests in flight when the instance was stopped.
    in_flight_at_stop: usize,
}

/// `clients` loops of unique texts through nginx for `duration`; `stop` runs once,
/// a third of the way in.
async fn load_through(
    nginx: u16,
    clients: usize,
    duration: Duration,
    stop: impl FnOnce() + Send + 'static,
) -> Outcome {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let url = format!("http://127.0.0.1:{nginx}/embed");
    let in_flight = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, in_flight, done) =
            (http.clone(), url.clone(), in_flight.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0, Vec::new());
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                n += 1;
                in_flight.fetch_add(1, Ordering::SeqCst);
                let r = http
                    .post(&url)
                    .json(&json!({"inputs": format!("client {c} request {n} through nginx")}))
                    .send()
                    .await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                match r {
                    Ok(resp) if resp.status() == 200 => ok += 1,
                    Ok(resp) => failed.push(format!(
                        "{}: {}",
                        resp.status(),
                        resp.text().await.unwrap_or_default()
                    )),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(duration / 3).await;
    let at_stop = in_flight.load(Ordering::SeqCst);
    stop();
    tokio::time::sleep(duration * 2 / 3).await;
    done.store(true, Ordering::SeqCst);
    let mut outcome = Outcome {
        in_flight_at_stop: at_stop,
        ..Outcome::default()
    };
    for t in tasks {
        let (ok, failed) = t.await.expect("a load task");
        outcome.ok += ok;
        outcome.failed.extend(failed);
    }
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_a_killed_instance_loses_at_most_its_requests_in_flight() {
    let prefix = unique_prefix("deploy-kill");
    let (c1, c2) = (tempdir(), tempdir());
    let first = instance(&prefix, c1.path(), &[]).await;
    let second = instance(&prefix, c2.path(), &[]).await;

    // The two share results through Redis: what one computed, the other finds
    // there. Redis writes are queued in the background, and a text the second
    // computed itself would hit its own memory next time: each try is a new text.
    let mut found = false;
    for attempt in 0..20 {
        let text = json!({"inputs": format!("{prefix} computed once, try {attempt}")});
        let x_cache = |resp: &reqwest::Response| {
            resp.headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let resp = first
            .client
            .post(format!("{}/embed", first.base))
            .json(&text)
            .send()
            .await
            .expect("POST /embed to the first");
        assert_eq!(
            (resp.status().as_u16(), x_cache(&resp).as_str()),
            (200, "miss")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let resp = second
            .client
            .post(format!("{}/embed", second.base))
            .json(&text)
            .send()
            .await
            .expect("POST /embed to the second");
        assert_eq!(resp.status(), 200);
        if x_cache(&resp) == "hit-l3" {
            found = true;
            break;
        }
    }
    assert!(
        found,
        "the second instance never found the first one's results in Redis"
    );

    let nginx = Nginx::start([first.port, second.port]);
    let pid = first.server.child.id();
    let outcome = load_through(nginx.port, 8, Duration::from_secs(6), move || {
        signal(pid, "KILL")
    })
    .await;
    assert!(outcome.ok > 0, "{outcome:?}");
    assert!(
        outcome.failed.len() <= outcome.in_flight_at_stop,
        "{} failed, {} were in flight at the kill: {:?}",
        outcome.failed.len(),
        outcome.in_flight_at_stop,
        outcome.failed
    );
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_an_instance_draining_on_sigterm_loses_nothing() {
    let prefix = unique_prefix("deploy-drain");
    let (c1, c2) = (tempdir(), tempdir());
    let drain = [("OSPREY_SERVER__DRAIN_DELAY_SECS", "1")];
    let mut first = instance(&prefix, c1.path(), &drain).await;
    let second = instance(&prefix, c2.path(), &drain).await;
    let nginx = Nginx::start([first.port, second.port]);

    let pid = first.server.child.id();
    let outcome = load_through(nginx.port, 8, Duration::from_secs(6), move || {
        signal(pid, "TERM")
    })
    .await;
    assert!(outcome.ok > 0, "{outcome:?}");
    assert!(
        outcome.failed.is_empty(),
        "{} failed: {:?}",
        outcome.failed.len(),
        outcome.failed
    );
    let status = first.server.wait(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "log:\n{}", first.server.log());
    drop(second);
}
