//! Collections over Qdrant's API against the real binary: the official
//! qdrant-client package for every call it makes (checked against exact numpy
//! search), and acknowledged writes surviving `kill -9`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn venv_python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

async fn serve_collections(path: &str) -> Running {
    serve_model_with(
        &[],
        &[
            ("OSPREY_COLLECTIONS__PATH", path),
            ("OSPREY_LIMITS__MAX_QUEUE_MS", "0"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_qdrant_client_works_for_every_call() {
    let data = tempdir();
    let running = serve_collections(&data.path().to_string_lossy()).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cli/qdrant_check.py");
    let out = tokio::task::spawn_blocking({
        let base = running.base.clone();
        move || {
            run(
                Command::new(venv_python()).arg(script).arg(base),
                Duration::from_secs(600),
            )
        }
    })
    .await
    .expect("the check");
    assert!(
        out.status.success() && stdout(&out).trim_end().ends_with("ok"),
        "qdrant-client check failed:\n{}\n{}\nserver log:\n{}",
        stdout(&out),
        stderr(&out),
        running.server.log()
    );
}

async fn call(c: &reqwest::Client, method: reqwest::Method, url: String, body: Value) -> Value {
    let resp = c
        .request(method, url)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    let v: Value = resp.json().await.expect("JSON");
    assert!(status.is_success(), "{status}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    let data = tempdir();
    let path = data.path().to_string_lossy().into_owned();
    let first = serve_collections(&path).await;
    let (c, base) = (first.client.clone(), first.base.clone());
    call(
        &c,
        reqwest::Method::PUT,
        format!("{base}/collections/durable"),
        json!({"vectors": {"size": 16, "distance": "Dot"}}),
    )
    .await;

    // Writers keep upserting; what was acknowledged is recorded.
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let (c, base, acked) = (c.clone(), base.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for batch in 0u64.. {
                let ids: Vec<u64> = (0..50).map(|i| w * 1_000_000 + batch * 50 + i).collect();
                let points: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"id": id, "vector": vec![*id as f32 / 1e6; 16], "payload": {"w": w}}))
                    .collect();
                let r = c
                    .put(format!("{base}/collections/durable/points?wait=true"))
                    .json(&json!({ "points": points }))
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status() == 200 => {
                        acked.lock().expect("acked").extend(ids);
                    }
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(first.server.child.id(), "KILL");
    for w in writers {
        let _ = w.await;
    }
    drop(first);
    let acked = acked.lock().expect("acked").clone();
    assert!(
        acked.len() >= 100,
        "only {} points acknowledged",
        acked.len()
    );

    let second = serve_collections(&path).await;
    let count = call(
        &second.client,
        reqwest::Method::POST,
        format!("{}/collections/durable/points/count", second.base),
        json!({}),
    )
    .await;
    let n = count["result"]["count"].as_u64().unwrap_or(0);
    assert!(
        n >= acked.len() as u64,
        "{n} points after the restart, {} acknowledged",
        acked.len()
    );
    for chunk in acked.chunks(1000) {
        let got = call(
            &second.client,
            reqwest::Method::POST,
            format!("{}/collections/durable/points", second.base),
            json!({"ids": chunk, "with_vector": true}),
        )
        .await;
        let points = got["result"].as_array().cloned().unwrap_or_default();
        assert_eq!(points.len(), chunk.len(), "acknowledged points missing");
        for p in points {
            let id = p["id"].as_u64().unwrap_or(u64::MAX);
            let v = p["vector"][0].as_f64().unwrap_or(f64::NAN);
            assert!((v - id as f64 / 1e6).abs() < 1e-6, "{p}");
        }
    }
    // And it searches: the index came back with the points.
    let hits = call(
        &second.client,
        reqwest::Method::POST,
        format!("{}/collections/durable/points/query", second.base),
        json!({"query": vec![1.0f32; 16], "limit": 3}),
    )
    .await;
    assert_eq!(hits["result"]["points"].as_array().map(Vec::len), Some(3));
}
