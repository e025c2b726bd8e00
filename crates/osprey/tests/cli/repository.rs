//! `osprey serve` with `[[models]]`: every model served from the config file, a
//! model that fails to load leaving the others serving, and SIGHUP applying an
//! edited `[[models]]` while the server runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

fn models_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

fn config(port: u16, models: &[(&str, &str)]) -> String {
    let mut text =
        format!("[server]\nhost = \"127.0.0.1\"\nport = {port}\n\n[batching]\nreplicas = 1\n");
    for (name, dir) in models {
        let path = models_dir().join(dir);
        text.push_str(&format!(
            "\n[[models]]\nname = \"{name}\"\npath = \"{}\"\n",
            path.display()
        ));
    }
    text
}

async fn served(client: &reqwest::Client, base: &str) -> Vec<String> {
    let Ok(resp) = client.get(format!("{base}/v1/models")).send().await else {
        return Vec::new();
    };
    let list: Value = resp.json().await.unwrap_or(Value::Null);
    let mut names: Vec<String> = list["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn status_of(client: &reqwest::Client, base: &str, model: &str) -> u16 {
    client
        .post(format!("{base}/embed"))
        .json(&json!({ "inputs": "which model?", "model": model }))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// `osprey serve --config FILE` with `models`, once ready, and that file (in the
/// returned directory) for a test that edits it.
async fn serve_models(models: &[(&str, &str)]) -> (Running, PathBuf, tempfile::TempDir) {
    let dir = tempdir();
    let file = dir.path().join("osprey.toml");
    let port = free_port();
    std::fs::write(&file, config(port, models)).expect("write the config");
    let file_arg = file.to_string_lossy().into_owned();
    let running = ready(spawn_server(&["--config", &file_arg]), port).await;
    (running, file, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_models_from_the_config_and_again_on_sighup() {
    // Ready once every model that can load serves; the broken one is logged.
    let (
        Running {
            mut server,
            client,
            base,
            port,
        },
        file,
        _dir,
    ) = serve_models(&[
        ("minilm", "all-MiniLM-L6-v2"),
        ("missing", "no-such-model"),
        ("polarity", "minilm-polarity-classifier"),
    ])
    .await;
    assert_eq!(served(&client, &base).await, ["minilm", "polarity"]);
    let log = server.log();
    assert!(
        log.contains("missing@1") && log.contains("no-such-model"),
        "the failed model is named with its path:\n{log}"
    );
    assert_eq!(status_of(&client, &base, "minilm").await, 200);
    assert_eq!(status_of(&client, &base, "nope").await, 404);

    // Edit [[models]]: drop the classifier, add a second embedding model.
    std::fs::write(
        &file,
        config(
            port,
            &[
                ("minilm", "all-MiniLM-L6-v2"),
                ("para", "paraphrase-MiniLM-L3-v2"),
            ],
        ),
    )
    .expect("rewrite the config");
    signal(server.child.id(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(60);
    while served(&client, &base).await != ["minilm", "para"] {
        assert!(
            Instant::now() < deadline,
            "SIGHUP not applied in 60 s; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status_of(&client, &base, "para").await, 200);
    assert_eq!(status_of(&client, &base, "polarity").await, 404);

    signal(server.child.id(), "TERM");
    let status = server.wait(Duration::from_secs(60)).await;
    assert!(status.success(), "exit {status}; log:\n{}", server.log());
}

/// A chat assistant or a fraud scorer is a server of one generation or one
/// tensor model, with no text model beside it: it must become ready and serve,
/// and the text routes say that no such model is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_text_model_serves_its_generation_and_tensor_models() {
    let (mut running, _, _dir) = serve_models(&[
        ("gemma", "gemma-3-270m/gemma-3-270m-q4_k_m.gguf"),
        ("risk", "breast-cancer-risk"),
    ])
    .await;
    let ready = running.get_json("/health/ready").await;
    let (client, base) = (&running.client, &running.base);
    let reason = ready["components"]["model"]["reason"]
        .as_str()
        .unwrap_or("");
    assert!(
        reason.contains("gemma@1 (generate)") && reason.contains("risk@1 (tensor)"),
        "{ready}"
    );
    let v2 = client
        .get(format!("{base}/v2/health/ready"))
        .send()
        .await
        .expect("GET /v2/health/ready");
    assert_eq!(v2.status(), 200);

    let completion = client
        .post(format!("{base}/v1/completions"))
        .json(
            &json!({ "model": "gemma", "prompt": "The sea is", "max_tokens": 4, "temperature": 0 }),
        )
        .send()
        .await
        .expect("POST /v1/completions");
    assert_eq!(completion.status(), 200);
    let body: Value = completion.json().await.expect("completion body");
    assert_eq!(body["usage"]["completion_tokens"], 4, "{body}");

    let row: Vec<f64> = (0..30).map(|i| f64::from(i) * 0.5 + 1.0).collect();
    let infer = client
        .post(format!("{base}/v2/models/risk/infer"))
        .json(&json!({ "inputs": [{
            "name": "input", "shape": [1, 30], "datatype": "FP32", "data": row
        }] }))
        .send()
        .await
        .expect("POST /v2/models/risk/infer");
    let status = infer.status();
    let body: Value = infer.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{body}");
    assert!(
        !body["outputs"].as_array().is_none_or(Vec::is_empty),
        "{body}"
    );

    // The text routes: no such model here, not "still loading".
    for (path, send) in [
        ("/info", None),
        ("/embed", Some(json!({ "inputs": "hello" }))),
    ] {
        let resp = match send {
            Some(b) => client.post(format!("{base}{path}")).json(&b).send().await,
            None => client.get(format!("{base}{path}")).send().await,
        }
        .expect("request");
        assert_eq!(resp.status(), 404, "{path}");
        let text = resp.text().await.unwrap_or_default();
        assert!(text.contains("no embed model is served"), "{path}: {text}");
    }

    signal(running.server.child.id(), "TERM");
    let status = running.server.wait(Duration::from_secs(60)).await;
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        running.server.log()
    );
}
