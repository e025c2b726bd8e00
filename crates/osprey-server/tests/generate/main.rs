//! Chat and completions over real HTTP on the real gemma-3-270m GGUF: the openai
//! package, sessions, the result cache, continuous batching, disconnects and the
//! KV budget.

#![allow(clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{client, metric_sum};
use osprey_engine::cache::{CacheConfig, DiskConfig, MemoryConfig, RedisConfig};
use osprey_engine::generate::GenerationConfig;
use osprey_engine::{BackendKind, BatchingConfig, EngineConfig, Task};
use osprey_server::{AppState, ModelSpec, Models, ServerConfig};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Server {
    base: String,
}

/// A server of its own serving the GGUF as `gemma`, with a memory and disk cache
/// (and the Redis tier `redis` describes).
fn start(generation: GenerationConfig) -> Server {
    start_with_redis(generation, RedisConfig::default())
}

fn start_with_redis(generation: GenerationConfig, redis: RedisConfig) -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("osprey-test-generate".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind an ephemeral port");
                let port = listener.local_addr().expect("address").port();
                let dir = tempfile::tempdir().expect("cache dir");
                let cache = CacheConfig {
                    share_across_keys: true,
                    memory: MemoryConfig::default(),
                    disk: DiskConfig {
                        path: Some(dir.path().join("cache.redb")),
                        ..DiskConfig::default()
                    },
                    redis,
                };
                let cache = std::sync::Arc::new(
                    osprey_engine::cache::TieredCache::open(&cache)
                        .await
                        .expect("open the cache"),
                );
                let base = EngineConfig {
                    model_path: PathBuf::new(),
                    backend: BackendKind::Candle,
                    precision: Default::default(),
                    profile: String::new(),
                    onnxruntime_lib: None,
                    onnx_prepack: false,
                    batching: BatchingConfig::default(),
                    admission: Default::default(),
                };
                let state =
                    AppState::new(ServerConfig::default(), osprey_server::install_metrics())
                        .with_models(
                            Models::new(base, Some(cache), false).with_generation(generation),
                        );
                tokio::spawn(osprey_server::serve(
                    listener,
                    state.clone(),
                    std::future::pending(),
                ));
                let spec = ModelSpec {
                    name: "gemma".into(),
                    path: osprey_models::testkit::gguf_path(),
                    task: Some(Task::Generate),
                    backend: None,
                    replicas: None,
                    version: None,
                    traffic: None,
                    autoscale: None,
                };
                state
                    .models
                    .add(&spec)
                    .await
                    .unwrap_or_else(|e| panic!("the GGUF failed to load (run `make gguf`): {e}"));
                tx.send(format!("http://127.0.0.1:{port}"))
                    .expect("report the server");
                let _dir = dir;
                std::future::pending::<()>().await;
            });
        })
        .expect("spawn the server thread");
    Server {
        base: rx
            .recv()
            .expect("the server failed to start (see its panic)"),
    }
}

/// The server most tests share: a window of 4 messages.
fn shared() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        start(GenerationConfig {
            context_messages: 4,
            ..GenerationConfig::default()
        })
    })
}

/// A server whose KV budget two long answers fill.
fn small_budget() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        start(GenerationConfig {
            kv_budget_tokens: 1024,
            context_tokens: 512,
            max_sequences: 4,
            batch_tokens: 256,
            ..GenerationConfig::default()
        })
    })
}

async fn post(base: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .expect("request")
}

async fn get_json(url: &str) -> Value {
    client()
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON body")
}

async fn metrics(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

#[tokio::test]
async fn the_openai_package_completes_chats_streams_and_keeps_sessions() {
    let base = shared().base.clone();
    let script = root().join("crates/osprey-server/tests/clients/openai_chat.py");
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
    let seen: Value = serde_json::from_slice(&out.stdout).expect("client JSON");
    // Greedy, the base model continues the sentence as llama.cpp does (its 8
    // tokens are checked against llama.cpp in osprey-generate's tests; here other
    // tests' sequences share the steps, and a batch's kernels can tip later near
    // ties, so only the start is fixed).
    let completion = &seen["completion"];
    let text = completion["text"].as_str().unwrap_or("");
    assert!(text.starts_with(" the capital of"), "{text}");
    assert_eq!(completion["finish"], "length");
    assert_eq!(completion["usage"], json!([6, 8, 14]));
    assert_eq!(completion["object"], "text_completion");
    // The second turn found the first turn's prompt (and more) in the cache.
    let turns = &seen["turns"];
    let first_prompt = turns[0][0].as_u64().unwrap_or(0);
    let (second_prompt, second_cached) = (
        turns[1][0].as_u64().unwrap_or(0),
        turns[1][1].as_u64().unwrap_or(0),
    );
    assert!(
        second_cached >= first_prompt && second_cached < second_prompt,
        "turns (prompt, cached): {turns}"
    );
    let chat = &seen["chat"];
    assert_eq!(chat["role"], "assistant");
    assert_eq!(chat["object"], "chat.completion");
    assert!(
        !chat["content"].as_str().unwrap_or("").trim().is_empty(),
        "{chat}"
    );
    assert!(matches!(chat["finish"].as_str(), Some("stop" | "length")));
    let u: Vec<u64> = serde_json::from_value(chat["usage"].clone()).expect("usage");
    assert_eq!(u[0] + u[1], u[2]);
    assert!((1..=16).contains(&u[1]));
    let stream = &seen["stream"];
    let pieces = stream["pieces"].as_array().expect("pieces");
    assert!(pieces.len() >= 2, "streamed in one piece: {stream}");
    assert!(matches!(stream["finish"].as_str(), Some("stop" | "length")));
    assert!(
        stream["usage"][1]
            .as_u64()
            .is_some_and(|n| (1..=12).contains(&n))
    );
    assert_eq!(seen["session_answers"].as_array().map(Vec::len), Some(2));
    assert!(
        seen["empty"].as_str().unwrap_or("").starts_with("400"),
        "{}",
        seen["empty"]
    );
    // The session holds both turns, each question with its answer.
    let s: Value = get_json(&format!("{}/v1/sessions/client-session", shared().base)).await;
    let roles: Vec<&str> = s["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(s["messages"][2]["content"], "What is my name?");
}

#[tokio::test]
async fn a_session_keeps_at_most_its_window_and_can_be_deleted() {
    let base = &shared().base;
    for i in 0..3 {
        // The header names the session as the body's `session_id` does.
        let r = client()
            .post(format!("{base}/v1/chat/completions"))
            .header("x-osprey-session", "windowed")
            .json(&json!({"max_tokens": 4, "temperature": 0,
                          "messages": [{"role": "user", "content": format!("question {i}")}]}))
            .send()
            .await
            .expect("chat");
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers().get("x-cache"),
            None,
            "a session is never cached"
        );
        let _ = r.bytes().await;
    }
    let s: Value = get_json(&format!("{base}/v1/sessions/windowed")).await;
    let messages = s["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 4, "{s}");
    assert_eq!(messages[0]["content"], "question 1");
    assert_eq!(messages[2]["content"], "question 2");
    assert_eq!(s["id"], "windowed");
    let del = client()
        .delete(format!("{base}/v1/sessions/windowed"))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), 204);
    let gone = client()
        .get(format!("{base}/v1/sessions/windowed"))
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn a_conversation_without_a_session_reaches_the_model_whole() {
    // More messages than the session window (4) keeps: without a session they
    // are the client's conversation, and none is dropped.
    let mut messages = vec![json!({"role": "system", "content": "You are a terse assistant."})];
    for i in 0..3 {
        messages.push(json!({"role": "user", "content": format!("Question {i}?")}));
        messages.push(json!({"role": "assistant", "content": format!("Answer {i}.")}));
    }
    messages.push(json!({"role": "user", "content": "And the last one?"}));
    let prompt_tokens = |r: Value| r["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    let ask = |messages: &[Value]| {
        let body = json!({"model": "gemma", "max_tokens": 2, "temperature": 0, "seed": 5,
                          "messages": messages});
        async move {
            let r = post(&shared().base, "/v1/chat/completions", body).await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("JSON body")
        }
    };
    let whole = prompt_tokens(ask(&messages).await);
    let last_four = prompt_tokens(ask(&messages[messages.len() - 4..]).await);
    assert!(
        whole > last_four,
        "{whole} prompt tokens for 8 messages, {last_four} for their last 4"
    );
}

#[tokio::test]
async fn deterministic_answers_come_back_from_the_cache_also_streamed() {
    let base = &shared().base;
    let body = json!({"model": "gemma", "max_tokens": 10, "temperature": 0,
                      "messages": [{"role": "user", "content": "Name a colour."}]});
    let first = post(base, "/v1/chat/completions", body.clone()).await;
    assert_eq!(
        first.headers().get("x-cache").map(|v| v.to_str().ok()),
        Some(Some("miss"))
    );
    let timing = first
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(timing.starts_with("ttft;dur="), "{timing}");
    let first: Value = first.json().await.expect("JSON");
    let second = post(base, "/v1/chat/completions", body.clone()).await;
    assert_eq!(
        second.headers().get("x-cache").map(|v| v.to_str().ok()),
        Some(Some("hit-l1"))
    );
    let second: Value = second.json().await.expect("JSON");
    assert_eq!(first["choices"], second["choices"]);
    assert_eq!(first["usage"], second["usage"]);
    // The same answer replayed as a stream.
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let r = post(base, "/v1/chat/completions", streamed).await;
    assert_eq!(
        r.headers().get("x-cache").map(|v| v.to_str().ok()),
        Some(Some("hit-l1"))
    );
    let text = r.text().await.expect("SSE");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let content: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        content,
        first["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("-")
    );
    // Sampling without a seed is not cached.
    let random = post(
        base,
        "/v1/completions",
        json!({"prompt": "Hello", "max_tokens": 2, "temperature": 0.8}),
    )
    .await;
    assert_eq!(random.headers().get("x-cache"), None);
}

#[tokio::test]
async fn eight_concurrent_streams_share_decode_steps() {
    let base = shared().base.clone();
    let before = metrics(&base).await;
    let steps0 = metric_sum(&before, "osprey_generate_steps_total");
    let seqs0 = metric_sum(&before, "osprey_generate_step_sequences_total");
    let streams: Vec<_> = (0..8)
        .map(|i| {
            let base = base.clone();
            tokio::spawn(async move {
                let r = post(
                    &base,
                    "/v1/completions",
                    json!({"prompt": format!("Story number {i}:"), "max_tokens": 24,
                           "temperature": 0.9, "ignore_eos": true, "stream": true}),
                )
                .await;
                assert_eq!(r.status(), 200);
                let text = r.text().await.expect("SSE");
                assert!(text.ends_with("data: [DONE]\n\n"));
                text.matches("data: {").count()
            })
        })
        .collect();
    for s in streams {
        assert!(s.await.expect("stream") >= 2);
    }
    let after = metrics(&base).await;
    let steps = metric_sum(&after, "osprey_generate_steps_total") - steps0;
    let seqs = metric_sum(&after, "osprey_generate_step_sequences_total") - seqs0;
    // 8 × 24 tokens one at a time would be 192 steps or more, 1 sequence each.
    assert!(steps < 150.0, "{steps} steps for 8 × 24 tokens");
    assert!(seqs / steps > 1.5, "{seqs} sequences in {steps} steps");
    assert!(metric_sum(&after, "osprey_generate_max_step_sequences") >= 4.0);
    assert!(metric_sum(&after, "osprey_generate_ttft_seconds_count") >= 8.0);
    // The dashboard's generation table shows the same loop.
    let d: Value = get_json(&format!("{base}/dashboard/data")).await;
    let row = &d["generation"][0];
    assert_eq!(row["model"], "gemma@1");
    assert!(
        row["completion_tokens"]
            .as_u64()
            .is_some_and(|n| n >= 8 * 24)
    );
    assert!(
        row["sequences_per_step"].as_f64().is_some_and(|x| x > 1.0),
        "{row}"
    );
    assert!(row["ttft_mean_ms"].as_f64().is_some_and(|x| x > 0.0));
}

#[tokio::test]
async fn a_disconnect_frees_its_kv_and_over_budget_requests_get_429() {
    let base = &small_budget().base;
    let long = json!({"prompt": "Write a very long story:", "max_tokens": 500,
                      "temperature": 0.9, "ignore_eos": true, "stream": true});
    // Two answers of 500 tokens hold the 1024-token budget.
    let mut a = post(base, "/v1/completions", long.clone()).await;
    let b = post(base, "/v1/completions", long.clone()).await;
    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
    let _ = a.chunk().await.expect("first chunk");
    let refused = post(base, "/v1/completions", long.clone()).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().ok()),
        Some(Some("1"))
    );
    let err: Value = refused.json().await.expect("error JSON");
    assert_eq!(err["error"]["code"], "kv_budget_full");
    let m = metrics(base).await;
    assert!(metric_sum(&m, "osprey_generate_kv_used_tokens") >= 1000.0);
    // Both clients go away mid-answer: their cells come back.
    drop(a);
    drop(b);
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let m = metrics(base).await;
        if metric_sum(&m, "osprey_generate_kv_used_tokens") == 0.0 {
            assert!(metric_sum(&m, "osprey_generate_cancelled_total") >= 2.0);
            assert!(metric_sum(&m, "osprey_generate_rejected_total") >= 1.0);
            break;
        }
        assert!(
            Instant::now() < until,
            "KV still held after the clients left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = post(
        base,
        "/v1/completions",
        json!({"prompt": "Hi", "max_tokens": 4}),
    )
    .await;
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn bad_requests_get_400_in_openai_shape() {
    let base = &small_budget().base;
    let long_prompt = "word ".repeat(600);
    let cases = [
        (
            "/v1/chat/completions",
            json!({"messages": []}),
            "messages must not be empty",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "unknown message role",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 5000}),
            "max_tokens must be between 1 and",
        ),
        (
            "/v1/completions",
            json!({"prompt": long_prompt}),
            "this model's context is 512",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "temperature": 5}),
            "temperature",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "top_p": 0}),
            "top_p",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "n": 2}),
            "n must be 1",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "seed": -1}),
            "seed",
        ),
        (
            "/v1/completions",
            json!({"prompt": ""}),
            "prompt must not be empty",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}),
            "stop takes at most 4",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}], "session_id": "a/b"}),
            "session_id",
        ),
    ];
    for (path, body, what) in cases {
        let r = post(base, path, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.expect("error JSON");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(what), "{body}: {msg}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    // An embedding route's model is not a generation model, and back.
    let r = post(
        base,
        "/v1/embeddings",
        json!({"input": "x", "model": "gemma"}),
    )
    .await;
    assert!(r.status().is_client_error());
}

#[tokio::test]
async fn with_redis_another_instance_continues_the_conversation() {
    let prefix = osprey_cache::testkit::unique_prefix("sessions");
    let redis =
        osprey_cache::testkit::redis_config(&osprey_cache::testkit::shared_redis_url(), &prefix);
    let small = || GenerationConfig {
        kv_budget_tokens: 512,
        context_tokens: 256,
        max_sequences: 2,
        batch_tokens: 128,
        ..GenerationConfig::default()
    };
    let a = start_with_redis(small(), redis.clone());
    let b = start_with_redis(small(), redis);
    let turn = |text: &str| {
        json!({"max_tokens": 4, "temperature": 0, "session_id": "shared-chat",
               "messages": [{"role": "user", "content": text}]})
    };
    let r = post(&a.base, "/v1/chat/completions", turn("Hello from A")).await;
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await;
    let r = post(&b.base, "/v1/chat/completions", turn("Hello from B")).await;
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await;
    // Either instance sees both turns.
    let s: Value = get_json(&format!("{}/v1/sessions/shared-chat", a.base)).await;
    let messages = s["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 4, "{s}");
    assert_eq!(messages[0]["content"], "Hello from A");
    assert_eq!(messages[2]["content"], "Hello from B");
    let del = client()
        .delete(format!("{}/v1/sessions/shared-chat", b.base))
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), 204);
    let gone = client()
        .get(format!("{}/v1/sessions/shared-chat", a.base))
        .send()
        .await
        .expect("get");
    assert_eq!(gone.status(), 404);
}
