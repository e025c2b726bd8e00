//! The official client packages against the server: openai for embeddings and
//! the models list, checked against the float64 reference.

use crate::{floats, max_diff, reference_embeddings, repo, root, served_specs};

#[tokio::test]
async fn the_openai_client_embeds_and_lists_models() {
    let base = repo().base.clone();
    let script = root().join("crates/osprey-server/tests/clients/openai_client.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(root().join(".venv/bin/python"))
            .arg(script)
            .arg(base)
            .output()
    })
    .await
    .expect("client task")
    .expect("run the openai client (make test installs it: scripts/ensure-clients.sh)");
    assert!(
        out.status.success(),
        "openai client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("client JSON");
    let texts = ["Osprey speaks OpenAI.", "a second text"];
    for (field, dir, inputs) in [
        ("minilm", "all-MiniLM-L6-v2", &texts[..]),
        ("para", "paraphrase-MiniLM-L3-v2", &texts[..1]),
    ] {
        let (reference, _) = reference_embeddings(dir, inputs, false);
        let want: Vec<f64> = reference.into_iter().flatten().collect();
        let got: Vec<f64> = match seen[field].as_array() {
            Some(rows) if rows.first().is_some_and(|r| r.is_array()) => {
                rows.iter().flat_map(floats).collect()
            }
            _ => floats(&seen[field]),
        };
        let diff = max_diff(&got, &want);
        assert!(
            diff < 1e-4,
            "{field} through the openai client differs by {diff}"
        );
    }
    assert_eq!(seen["minilm_model"], "minilm");
    assert!(seen["minilm_tokens"].as_u64().is_some_and(|t| t > 0));
    let listed: Vec<&str> = seen["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    for spec in served_specs() {
        assert!(
            listed.contains(&spec.name.as_str()),
            "{} missing from {listed:?}",
            spec.name
        );
    }
    assert_eq!(seen["polarity"], "polarity");
    let unknown = seen["unknown"].as_str().unwrap_or("");
    assert!(
        unknown.starts_with("404") && unknown.contains("nope"),
        "{unknown}"
    );
}
