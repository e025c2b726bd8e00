//! Hostile bodies against the real binary: small compressed bodies that expand
//! into millions of list items are refused while they are decompressed, so the
//! server's memory does not follow them; and many huge inputs at once do not
//! stall the runtime that answers liveness probes.

use std::io::Write;
use std::time::Duration;

use crate::support::*;

/// Resident memory, and its peak since the last reset, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bodies_of_millions_of_empty_inputs_get_413_without_the_memory() {
    let Running {
        server,
        client,
        base,
        ..
    } = serve_model(&[]).await;

    // Just under the 16 MiB decompressed limit: about 5.6 million "" inputs.
    let items = (16 * 1024 * 1024 - 64) / 3;
    let mut json = String::with_capacity(items * 3 + 32);
    json.push_str(r#"{"inputs": ["#);
    for _ in 1..items {
        json.push_str(r#""","#);
    }
    json.push_str(r#""""]}"#);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(json.as_bytes()).expect("compress");
    let bomb = gz.finish().expect("compress");
    assert!(bomb.len() < 64 * 1024, "{} bytes sent", bomb.len());

    // The peak is measured from here (writing 5 to clear_refs resets VmHWM).
    let pid = server.child.id();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak");
    let (before, _) = rss_kib(pid);
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let request = client
            .post(format!("{base}/embed"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb.clone());
        sends.spawn(request.send());
    }
    let mut answers = Vec::new();
    while let Some(resp) = sends.join_next().await {
        let resp = resp.expect("the request task").expect("POST /embed");
        let status = resp.status();
        answers.push((status, resp.text().await.unwrap_or_default()));
    }
    let (_, peak) = rss_kib(pid);
    // Parsed whole, each body would be 16 MiB of JSON and ~130 MiB of strings.
    assert!(
        peak.saturating_sub(before) < 8 * 1024,
        "resident memory rose from {before} KiB to a peak of {peak} KiB"
    );
    for (status, body) in answers {
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("list items"), "{body}");
    }

    // And the server still serves.
    let resp = client
        .post(format!("{base}/embed"))
        .json(&serde_json::json!({"inputs": ["still here"]}))
        .send()
        .await
        .expect("POST /embed");
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_answers_quickly_while_huge_inputs_are_tokenized() {
    let Running {
        server: _server,
        client,
        base,
        ..
    } = serve_model(&[]).await;

    // 120 inputs of about 32K characters each (just under the 4 MiB body limit),
    // unique per request so that nothing comes from the cache.
    let words = [
        "owl", "river", "lantern", "granite", "meadow", "cipher", "harbor",
    ];
    let text: String = (0..6_000)
        .map(|i| words[(i * 7 + i / 3) % words.len()])
        .collect::<Vec<_>>()
        .join(" ");
    let text = &text[..32_000];
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut attackers = tokio::task::JoinSet::new();
    for a in 0..3 {
        let (client, base, sent) = (client.clone(), base.clone(), sent.clone());
        // Serialized once; every request rewrites the 8-digit counter at the start
        // of each input, so each input is new to the server and cheap to the test.
        let inputs: Vec<String> = (0..120)
            .map(|i| format!("00000000 a{a} i{i} {text}"))
            .collect();
        let mut body =
            serde_json::to_vec(&serde_json::json!({ "inputs": inputs })).expect("serialize");
        let counters: Vec<usize> = body
            .windows(9)
            .enumerate()
            .filter(|(_, w)| *w == b"\"00000000")
            .map(|(at, _)| at + 1)
            .collect();
        assert_eq!(counters.len(), 120);
        attackers.spawn(async move {
            for n in 0u32.. {
                let digits = format!("{n:08}");
                for &at in &counters {
                    body[at..at + 8].copy_from_slice(digits.as_bytes());
                }
                let _ = client
                    .post(format!("{base}/embed"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    for _ in 0..80 {
        let started = std::time::Instant::now();
        let resp = client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .expect("GET /health/live");
        assert_eq!(resp.status(), 200);
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The one request admitted may run for long on a debug build: not waited for.
    attackers.shutdown().await;
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent >= 3, "the attack sent only {sent} requests");
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100 - 1];
    assert!(
        p99 <= Duration::from_millis(100),
        "/health/live p99 {p99:?} under attack (max {:?})",
        latencies.last()
    );
}
