//! Runtime control on the real binary: `PUT /admin/config` changing limits and
//! budgets without a restart (and refusing what cannot change), SIGHUP reading
//! the keys file again, `POST /admin/warmup`, and the memory ceiling holding
//! under a long load of unique texts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use osprey_server::auth::digest_hex;
use serde_json::{Value, json};

use crate::support::{
    Running, free_port, model_arg, ready, serve_model_with, signal, spawn_server,
};

async fn put_config(s: &Running, body: &Value) -> (u16, Value) {
    let resp = s
        .client
        .put(format!("{}/admin/config", s.base))
        .json(body)
        .send()
        .await
        .expect("PUT /admin/config");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// One replica of one thread of its own, with `env`; `None` on a machine of
/// one core, where no core is left idle.
async fn serve_one_thread_replica(env: &[(&str, &str)]) -> Option<Running> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    let mut all = vec![("OSPREY_BATCHING__THREAD_POOL", "replica")];
    all.extend_from_slice(env);
    Some(serve_model_with(&["--replicas", "1", "--threads", "1"], &all).await)
}

async fn embed_status(s: &Running, texts: &[String]) -> u16 {
    s.client
        .post(format!("{}/embed", s.base))
        .json(&json!({ "inputs": texts }))
        .send()
        .await
        .expect("POST /embed")
        .status()
        .as_u16()
}

fn actions_named(actions: &Value, name: &str) -> Vec<Value> {
    actions["actions"]
        .as_array()
        .map(|a| a.iter().filter(|x| x["action"] == name).cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_budgets_change_live_and_fixed_keys_are_named() {
    let s = serve_model_with(&[], &[]).await;
    let one = vec!["a live change".to_owned()];
    for _ in 0..4 {
        assert_eq!(embed_status(&s, &one).await, 200);
    }

    let (status, body) = put_config(
        &s,
        &json!({
            "limits": {"requests_per_second": 1, "requests_burst": 1},
            "batching": {"max_batch_requests": 7},
            "telemetry": {"log_level": "debug"},
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let changed: Vec<&str> = body["changed"]
        .as_array()
        .expect("a list of changes")
        .iter()
        .filter_map(|c| c["key"].as_str())
        .collect();
    for k in [
        "limits.requests_per_second",
        "limits.requests_burst",
        "batching.max_batch_requests",
        "telemetry.log_level",
    ] {
        assert!(changed.contains(&k), "{k} missing from {body}");
    }
    let rps = body["changed"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["key"] == "limits.requests_per_second"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (rps["from"].clone(), rps["to"].clone()),
        (json!(0), json!(1))
    );

    // The rate limit holds from the next request, without a restart.
    let mut refused = 0;
    for _ in 0..4 {
        if embed_status(&s, &one).await == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 2, "only {refused} of 4 refused at 1 request/s");
    // After the bucket refills: admin calls are counted too.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let effective = s.get_json("/admin/config").await;
    assert_eq!(effective["limits"]["requests_per_second"], 1, "{effective}");
    assert_eq!(effective["telemetry"]["log_level"], "debug");

    // Back to no limit.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = put_config(&s, &json!({"limits": {"requests_per_second": 0}})).await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..4 {
        assert_eq!(embed_status(&s, &one).await, 200);
    }
    assert_eq!(s.get_json("/info").await["max_batch_requests"], 7);

    // Keys that cannot change live are named; nothing of the change is applied.
    let (status, body) = put_config(
        &s,
        &json!({"server": {"port": 1}, "limits": {"compression": false, "max_in_flight": 9}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let message = body.to_string();
    assert!(
        message.contains("server.port") && message.contains("limits.compression"),
        "{message}"
    );
    assert!(!message.contains("max_in_flight"), "{message}");
    assert_eq!(
        s.get_json("/admin/config").await["limits"]["max_in_flight"],
        1024
    );
    for (bad, names) in [
        (json!({"limits": {"no_such_limit": 1}}), "no_such_limit"),
        (json!({"slo": {"latency_ms": -1.0}}), "slo.latency_ms"),
        (
            json!({"self_heal": {"resume_below": 3.0}}),
            "self_heal.resume_below",
        ),
        (json!({"telemetry": {"log_level": "[[["}}), "log_level"),
        (json!({"batching": {"max_batch_tokens": "many"}}), "invalid"),
        (json!([1, 2]), "JSON object"),
    ] {
        let (status, body) = put_config(&s, &bad).await;
        assert_eq!(status, 422, "{bad} → {body}");
        assert!(body.to_string().contains(names), "{bad} → {body}");
    }

    // The warm-up runs again through the queue.
    let resp = s
        .client
        .post(format!("{}/admin/warmup", s.base))
        .send()
        .await
        .expect("POST /admin/warmup");
    assert_eq!(resp.status(), 200);
    let warmed: Value = resp.json().await.expect("JSON");
    assert!(
        warmed["models"][0]["batches"].as_u64().unwrap_or(0) >= 2,
        "{warmed}"
    );

    warm_the_cache(&s).await;

    let actions = s.get_json("/admin/actions").await;
    assert_eq!(
        actions_named(&actions, "cache_warm_started").len(),
        2,
        "{actions}"
    );
    assert_eq!(
        actions_named(&actions, "config_changed").len(),
        2,
        "{actions}"
    );
    assert_eq!(actions_named(&actions, "warmed_up").len(), 1, "{actions}");
    let metrics = s.get_text("/metrics").await;
    assert!(
        metrics.contains("osprey_self_heal_actions_total{action=\"config_changed\"} 2"),
        "{metrics}"
    );
}

async fn post_warm(s: &Running, body: &Value) -> (u16, Value) {
    let resp = s
        .client
        .post(format!("{}/admin/cache/warm", s.base))
        .json(body)
        .send()
        .await
        .expect("POST /admin/cache/warm");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn warm_done(s: &Running) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = s.get_json("/admin/cache/warm").await;
        if p["state"] == "done" {
            return p;
        }
        assert!(Instant::now() < deadline, "warm-up not done in 60 s: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /admin/cache/warm` from a list and from a file; afterwards those texts
/// are answered from the memory tier.
async fn warm_the_cache(s: &Running) {
    assert_eq!(s.get_json("/admin/cache/warm").await["state"], "idle");
    let texts: Vec<String> = (0..100).map(|i| format!("warmed ahead {i}")).collect();
    let (status, body) = post_warm(s, &json!({ "texts": texts })).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["total"], 100);
    let p = warm_done(s).await;
    assert_eq!(
        (p["done"].clone(), p["failed"].clone()),
        (json!(100), json!(0)),
        "{p}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("texts.txt");
    let lines: Vec<String> = (0..40).map(|i| format!("from a file {i}")).collect();
    std::fs::write(&file, format!("{}\n\n", lines.join("\n\n"))).expect("texts file");
    let (status, body) = post_warm(s, &json!({ "file": file })).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(warm_done(s).await["done"], 40);

    for text in [&texts[7], &lines[39]] {
        let resp = s
            .client
            .post(format!("{}/embed", s.base))
            .json(&json!({ "inputs": [text] }))
            .send()
            .await
            .expect("POST /embed");
        assert_eq!(resp.status(), 200);
        let hit = resp.headers().get("x-cache").and_then(|v| v.to_str().ok());
        assert_eq!(hit, Some("hit-l1"), "{text}");
    }
    for (bad, says) in [
        (json!({}), "texts"),
        (json!({"file": "/no/such/file.txt"}), "cannot be read"),
        (json!({"texts": ["a"], "model": "nope"}), "nope"),
    ] {
        let (status, body) = post_warm(s, &bad).await;
        assert!(matches!(status, 404 | 422), "{bad} → {status} {body}");
        assert!(body.to_string().contains(says), "{bad} → {body}");
    }
    let (status, _) = post_warm(s, &json!({"texts": "not a list"})).await;
    assert_eq!(status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_the_keys_file_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys.toml");
    let entry = |name: &str, key: &str| {
        format!(
            "[[keys]]\nname = \"{name}\"\nscope = \"admin\"\nsha256 = \"{}\"\n",
            digest_hex(key)
        )
    };
    std::fs::write(&keys, entry("first", "key-one-0123456789")).expect("keys file");
    let port = free_port();
    let config = dir.path().join("osprey.toml");
    let write_config = |max_in_flight: u32| {
        std::fs::write(
            &config,
            format!(
                "[server]\nhost = \"127.0.0.1\"\nport = {port}\n\n[model]\npath = \"{}\"\n\n\
                 [auth]\nenabled = true\nkeys_file = \"{}\"\n\n[limits]\nmax_in_flight = {max_in_flight}\n",
                model_arg(),
                keys.display()
            ),
        )
        .expect("config file")
    };
    write_config(100);
    let config_arg = config.to_string_lossy().into_owned();
    let s = ready(spawn_server(&["--config", &config_arg]), port).await;
    let config_with = |key: &'static str| {
        let (client, base) = (s.client.clone(), s.base.clone());
        async move {
            client
                .get(format!("{base}/admin/config"))
                .bearer_auth(key)
                .send()
                .await
                .expect("GET /admin/config")
        }
    };
    let status_with = |key: &'static str| {
        let get = config_with(key);
        async move { get.await.status().as_u16() }
    };
    assert_eq!(status_with("key-one-0123456789").await, 200);
    assert_eq!(status_with("key-two-0123456789").await, 401);

    std::fs::write(&keys, entry("second", "key-two-0123456789")).expect("keys file");
    write_config(77);
    signal(s.server.child.id(), "HUP");
    // The keys take effect a moment before `/admin/config` shows the new file:
    // wait until the new key reads the new file.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = config_with("key-two-0123456789").await;
        if resp.status() == 200 {
            let effective: Value = resp.json().await.expect("JSON");
            if effective["limits"]["max_in_flight"] == 77 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the new key and file were not taken within 30 s; log:\n{}",
            s.server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status_with("key-one-0123456789").await, 401);
    let actions: Value = s
        .client
        .get(format!("{}/admin/actions", s.base))
        .bearer_auth("key-two-0123456789")
        .send()
        .await
        .expect("GET /admin/actions")
        .json()
        .await
        .expect("JSON");
    let reloaded = actions_named(&actions, "config_reloaded");
    assert_eq!(reloaded.len(), 1, "{actions}");
    assert!(
        reloaded[0].to_string().contains("limits.max_in_flight"),
        "{actions}"
    );
}

fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

fn unique_batch(round: usize) -> Vec<String> {
    (0..64)
        .map(|i| format!("unique text {round}-{i}: the osprey circles the estuary at dawn"))
        .collect()
}

async fn memory_cache_bytes(s: &Running) -> u64 {
    let stats = s.get_json("/admin/cache").await;
    stats["tiers"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tier"] == "memory"))
        .and_then(|t| t["bytes"].as_u64())
        .expect("a memory tier")
}

/// Slack over the ceiling: a batch's activations and the allocator's own
/// rounding, which no cache policy can take back.
const SLACK_MB: u64 = 48;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_ceiling_holds_under_a_long_unique_load() {
    // A memory tier far larger than the ceiling will be.
    let s = serve_model_with(&[], &[("OSPREY_CACHE__MEMORY__MAX_BYTES", "1073741824")]).await;
    if !cfg!(target_os = "linux") {
        return;
    }
    let pid = s.server.child.id();
    let mut round = 0;
    while memory_cache_bytes(&s).await < 8 * 1024 * 1024 {
        assert_eq!(embed_status(&s, &unique_batch(round)).await, 200);
        round += 1;
    }
    let filled = memory_cache_bytes(&s).await;
    let ceiling = rss_mb(pid).saturating_sub(2);
    let (status, body) = put_config(
        &s,
        &json!({"self_heal": {"max_rss_mb": ceiling, "check_interval_ms": 100}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let shrunk = loop {
        let found = actions_named(&s.get_json("/admin/actions").await, "cache_shrunk");
        if let Some(a) = found.into_iter().next() {
            break a;
        }
        assert!(Instant::now() < deadline, "no cache_shrunk action in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        shrunk["detail"]["cache_bytes_after"]
            .as_u64()
            .unwrap_or(u64::MAX)
            < filled,
        "{shrunk}"
    );
    let held = memory_cache_bytes(&s).await;
    assert!(
        held < filled,
        "the tier still holds {held} of {filled} bytes"
    );

    // Unique texts keep coming for 8 s: every one is answered, the tier takes
    // none of them, and resident memory stays under the ceiling plus the slack.
    let until = Instant::now() + Duration::from_secs(8);
    let mut peak = 0;
    while Instant::now() < until {
        assert_eq!(embed_status(&s, &unique_batch(round)).await, 200);
        round += 1;
        peak = peak.max(rss_mb(pid));
    }
    assert!(
        peak <= ceiling + SLACK_MB,
        "resident memory peaked at {peak} MiB over a ceiling of {ceiling} MiB"
    );
    let after = memory_cache_bytes(&s).await;
    assert!(
        after <= held,
        "the tier grew from {held} to {after} bytes while memory was over the ceiling"
    );

    // The ceiling lifted, fills resume.
    let (status, _) = put_config(&s, &json!({"self_heal": {"max_rss_mb": 0}})).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert_eq!(embed_status(&s, &unique_batch(round)).await, 200);
        round += 1;
        if memory_cache_bytes(&s).await > after {
            break;
        }
        assert!(Instant::now() < deadline, "fills did not resume in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let actions = s.get_json("/admin/actions").await;
    assert_eq!(
        actions_named(&actions, "cache_restored").len(),
        1,
        "{actions}"
    );
}

/// One server whose settings and load create every recommendation's condition:
/// a one-thread replica on two cores with requests queueing, a memory tier of
/// a few dozen entries under unique texts, a loose padding bound with short
/// and long texts mixed, an in-flight cap below the clients, and a latency
/// objective no request meets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_recommendation_follows_from_its_condition() {
    let Some(s) = serve_one_thread_replica(&[
        ("OSPREY_BATCHING__MAX_PADDING_RATIO", "4"),
        ("OSPREY_CACHE__MEMORY__MAX_BYTES", "200000"),
        ("OSPREY_LIMITS__MAX_IN_FLIGHT", "3"),
        // Only the in-flight cap refuses.
        ("OSPREY_LIMITS__MAX_QUEUE_MS", "0"),
        ("OSPREY_LIMITS__DEADLINE_MS", "0"),
        ("OSPREY_SLO__LATENCY_MS", "0.5"),
    ])
    .await
    else {
        return;
    };
    assert_eq!(s.get_json("/admin/recommendations").await, json!([]));

    let long = "the osprey hovers over the water and dives feet first for fish ".repeat(6);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (client, base, long) = (s.client.clone(), s.base.clone(), long.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    // A short and a long text share every batch.
                    let texts = [format!("short {c}-{i}"), format!("{long} {c}-{i}")];
                    let answered = client
                        .post(format!("{base}/embed"))
                        .json(&json!({ "inputs": texts }))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
                    if !answered {
                        // Refusals take microseconds: spinning on them would
                        // leave the admitted few too few to judge the cache by.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // How many requests get through in a given time depends on how busy the
    // machine is, and the cache rule needs 50 lookups: the load goes on until
    // every condition shows (the statistics roll once a second) or a minute.
    let wanted = [
        "cache.memory.max_bytes",
        "batching.replicas",
        "batching.max_padding_ratio",
        "limits.max_in_flight",
        "model.profile",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let found = s.get_json("/admin/recommendations").await;
        let settings: Vec<&str> = found
            .as_array()
            .map(|l| l.iter().filter_map(|r| r["setting"].as_str()).collect())
            .unwrap_or_default();
        if wanted.iter().all(|w| settings.contains(w)) || Instant::now() > deadline {
            break found;
        }
    };
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }
    let list = found.as_array().expect("a list");
    let settings: Vec<&str> = list.iter().filter_map(|r| r["setting"].as_str()).collect();
    for want in wanted {
        assert!(settings.contains(&want), "{want} missing: {found:#}");
    }
    for r in list {
        for field in ["current", "suggested", "reason", "evidence"] {
            assert!(!r[field].is_null(), "{field} missing: {r}");
        }
    }
    // The dashboard lists the same.
    let page = s.get_json("/dashboard/data").await;
    let shown: Vec<&str> = page["recommendations"]
        .as_array()
        .map(|l| l.iter().filter_map(|r| r["setting"].as_str()).collect())
        .unwrap_or_default();
    assert!(shown.contains(&"batching.replicas"), "{shown:?}");
    let replicas = list
        .iter()
        .find(|r| r["setting"] == "batching.replicas")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (replicas["current"].clone(), replicas["suggested"].clone()),
        (json!(1), json!(2))
    );
}

async fn replicas_now(s: &Running) -> u64 {
    s.get_json("/info").await["replicas"].as_u64().unwrap_or(0)
}

/// Replicas go from the minimum to the maximum under load and back after the
/// queue stays quiet, and every request is answered while they change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_the_load_up_and_back() {
    let Some(s) = serve_one_thread_replica(&[
        ("OSPREY_AUTOSCALE__ENABLED", "true"),
        ("OSPREY_AUTOSCALE__MIN_REPLICAS", "1"),
        ("OSPREY_AUTOSCALE__MAX_REPLICAS", "2"),
        ("OSPREY_AUTOSCALE__TARGET_QUEUE_MS", "5"),
        ("OSPREY_AUTOSCALE__SCALE_UP_AFTER_MS", "500"),
        ("OSPREY_AUTOSCALE__SCALE_DOWN_AFTER_SECS", "2"),
        ("OSPREY_AUTOSCALE__CHECK_INTERVAL_MS", "100"),
        ("OSPREY_CACHE__MEMORY__MAX_BYTES", "0"),
        ("OSPREY_LIMITS__MAX_QUEUE_MS", "0"),
        ("OSPREY_LIMITS__DEADLINE_MS", "0"),
    ])
    .await
    else {
        return;
    };
    assert_eq!(replicas_now(&s).await, 1);

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let (client, base, stop) = (s.client.clone(), s.base.clone(), stop.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let texts: Vec<String> = (0..8)
                        .map(|k| format!("client {c} request {i} text {k} about ospreys and fish"))
                        .collect();
                    let status = client
                        .post(format!("{base}/embed"))
                        .json(&json!({ "inputs": texts }))
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16());
                    statuses.push(status);
                    i += 1;
                }
                statuses
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while replicas_now(&s).await < 2 {
        assert!(
            Instant::now() < deadline,
            "no second replica within 30 s of load; log:\n{}",
            s.server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Keep the load on across the change.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for c in clients {
        for status in c.await.expect("client task") {
            assert_eq!(status, 200, "a request failed while replicas changed");
            answered += 1;
        }
    }
    assert!(answered > 10, "{answered} requests");

    // The removal is recorded once the replica's thread has stopped.
    let deadline = Instant::now() + Duration::from_secs(30);
    while replicas_now(&s).await > 1
        || actions_named(&s.get_json("/admin/actions").await, "replica_removed").is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "still two replicas 30 s after the load"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let actions = s.get_json("/admin/actions").await;
    let added = actions_named(&actions, "replica_added");
    let removed = actions_named(&actions, "replica_removed");
    assert_eq!((added.len(), removed.len()), (1, 1), "{actions}");
    assert_eq!(added[0]["detail"]["replicas_after"], 2, "{actions}");
    assert!(added[0]["model"].is_string(), "{actions}");
    // And the engine still answers with its one replica.
    assert_eq!(embed_status(&s, &["after".to_owned()]).await, 200);
    let metrics = s.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("osprey_replicas{") && l.ends_with(" 1")),
        "{metrics}"
    );
}
