//! The day of per-minute statistics on the real binary: `/admin/stats.csv` with a
//! `window`, the `24h` window of `/admin/stats`, and the history saved at
//! shutdown and read back by the next start.

use std::time::Duration;

use serde_json::json;

use crate::support::{Running, serve_model_with, signal};

async fn csv(s: &Running, window: &str) -> (u16, String) {
    let resp = s
        .client
        .get(format!("{}/admin/stats.csv?window={window}", s.base))
        .send()
        .await
        .expect("GET /admin/stats.csv");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Requests summed over the CSV's rows.
fn requests_in(csv: &str) -> u64 {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "requests")
        .expect("a requests column");
    lines
        .filter_map(|l| l.split(',').nth(col)?.parse::<u64>().ok())
        .sum()
}

async fn day_requests(s: &Running) -> u64 {
    s.get_json("/admin/stats").await["windows"]["24h"]["requests"]
        .as_u64()
        .unwrap_or(0)
}

async fn serve_with_history(path: &str) -> Running {
    serve_model_with(&[], &[("OSPREY_TELEMETRY__HISTORY_PATH", path)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_day_of_statistics_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stats").join("history.jsonl");
    let path_arg = path.to_string_lossy().into_owned();
    let mut s = serve_with_history(&path_arg).await;
    const SENT: u64 = 12;
    for i in 0..SENT {
        let resp = s
            .client
            .post(format!("{}/embed", s.base))
            .json(&json!({ "inputs": [format!("history {i}")] }))
            .send()
            .await
            .expect("POST /embed");
        assert_eq!(resp.status(), 200);
    }
    // The sampler closes each second into the history once a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while day_requests(&s).await < SENT {
        assert!(std::time::Instant::now() < deadline, "no 24h requests");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = csv(&s, "24h").await;
    assert_eq!(status, 200, "{body}");
    assert!(requests_in(&body) >= SENT, "{body}");
    let header = body.lines().next().unwrap_or_default();
    assert!(header.starts_with("unix_time,seconds,requests"), "{header}");
    let rows: Vec<&str> = body.lines().skip(1).collect();
    assert!(
        !rows.is_empty() && rows.len() <= 2,
        "a row a minute: {body}"
    );
    // An hour or less comes a row a second.
    let (_, seconds) = csv(&s, "90s").await;
    assert!(seconds.lines().count() > 2, "{seconds}");
    assert!(requests_in(&seconds) >= SENT);
    for bad in ["25h", "0", "1w", "soon"] {
        let (status, body) = csv(&s, bad).await;
        assert_eq!(status, 400, "window={bad}: {body}");
        assert!(body.contains("window"), "{body}");
    }

    signal(s.server.child.id(), "TERM");
    let status = s.server.wait(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}; log:\n{}", s.server.log());
    let saved = std::fs::read_to_string(&path).expect("the history file");
    assert!(!saved.trim().is_empty(), "nothing saved at shutdown");

    let again = serve_with_history(&path_arg).await;
    // Read back before the sampler has closed a second of the new run.
    let (status, body) = csv(&again, "24h").await;
    assert_eq!(status, 200);
    assert!(
        requests_in(&body) >= SENT,
        "the saved minutes are back after the restart: {body}\nfile:\n{saved}"
    );
    assert!(day_requests(&again).await >= SENT);
}
