//! Small compressed bodies that expand into millions of list items are refused
//! while they are decompressed: the server's memory does not follow them.

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
    let port = free_port();
    let port_arg = port.to_string();
    let mut server = spawn_server(&[
        "--model",
        &model_arg(),
        "--host",
        "127.0.0.1",
        "--port",
        &port_arg,
    ]);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    wait_ready(&mut server, &client, &base).await;

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
