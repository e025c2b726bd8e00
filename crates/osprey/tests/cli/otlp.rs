//! Request spans over the real OTLP/HTTP protocol: a receiver decoding each export
//! with the official protobuf definitions (opentelemetry-proto, Python) gets a
//! server span per request, in the caller's trace when it sent `traceparent`,
//! with the stages as its children.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// The receiver, and the spans it printed, one JSON object each.
struct Receiver {
    child: Child,
    port: u16,
    spans: mpsc::Receiver<Value>,
}

impl Receiver {
    fn start() -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut child = Command::new(root.join(".venv/bin/python"))
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cli/otlp_receiver.py"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the venv's python (make clients installs opentelemetry-proto)");
        let stdout: ChildStdout = child.stdout.take().expect("the receiver's stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| l.trim().parse().ok())
            .expect("the receiver prints its port first");
        let (tx, spans) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(span) = serde_json::from_str(&line)
                    && tx.send(span).is_err()
                {
                    break;
                }
            }
        });
        Self { child, port, spans }
    }

    /// Spans received until `done` holds for what came so far (30 s at most).
    fn until(&self, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !done(&got) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.spans.recv_timeout(left) {
                Ok(span) => got.push(span),
                Err(_) => panic!("spans received so far: {got:#?}"),
            }
        }
        got
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn children<'a>(spans: &'a [Value], parent: &Value) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["parent_span_id"] == parent["span_id"] && s["trace_id"] == parent["trace_id"])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_continue_the_callers_trace_with_the_stages_as_children() {
    let receiver = Receiver::start();
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let Running {
        mut server,
        client,
        base,
        ..
    } = serve_model_with(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OSPREY_LIMITS__MAX_QUEUE_MS", "0"),
        ],
    )
    .await;
    assert!(server.log().contains("OTLP"), "{}", server.log());

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let resp = client
        .post(format!("{base}/embed"))
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
        .header("x-request-id", "traced-request-1")
        .json(&json!({"inputs": ["a traced request", "and its second input"]}))
        .send()
        .await
        .expect("POST /embed");
    assert_eq!(resp.status(), 200);
    // Without a traceparent, a request starts a trace of its own.
    let resp = client
        .post(format!("{base}/embed"))
        .json(&json!({"inputs": "an untraced request"}))
        .send()
        .await
        .expect("POST /embed");
    assert_eq!(resp.status(), 200);

    let is_request = |s: &Value| s["name"] == "POST /embed";
    let spans = receiver.until(|got| {
        got.iter().filter(|s| is_request(s)).count() >= 2
            && got
                .iter()
                .filter(|s| s["trace_id"] == trace_id && !is_request(s))
                .count()
                >= 4
    });

    let request = spans
        .iter()
        .find(|s| is_request(s) && s["trace_id"] == trace_id)
        .unwrap_or_else(|| panic!("no span in the caller's trace: {spans:#?}"));
    assert_eq!(request["parent_span_id"], parent_id);
    assert_eq!(request["service"], "osprey");
    assert_eq!(request["kind"], 2, "a server span: {request}");
    let attributes = &request["attributes"];
    assert_eq!(attributes["http.route"], "/embed");
    assert_eq!(attributes["http.request.method"], "POST");
    assert_eq!(attributes["http.response.status_code"], 200);
    assert_eq!(attributes["osprey.request_id"], "traced-request-1");
    assert_eq!(attributes["osprey.items"], 2);

    // A miss goes through every stage up to inference; each is a child, inside
    // the request's span.
    let stages = children(&spans, request);
    let names: Vec<&str> = stages.iter().filter_map(|s| s["name"].as_str()).collect();
    for stage in ["validate", "tokenize", "inference"] {
        assert!(names.contains(&stage), "{stage} missing from {names:?}");
    }
    let (start, end) = (
        request["start_ns"].as_u64().unwrap_or(0),
        request["end_ns"].as_u64().unwrap_or(0),
    );
    assert!(start > 0 && end >= start, "{request}");
    for s in &stages {
        let (s0, s1) = (
            s["start_ns"].as_u64().unwrap_or(0),
            s["end_ns"].as_u64().unwrap_or(0),
        );
        assert!(
            start <= s0 && s0 <= s1 && s1 <= end,
            "{s} outside {request}"
        );
    }

    let own = spans
        .iter()
        .find(|s| is_request(s) && s["trace_id"] != trace_id)
        .unwrap_or_else(|| panic!("no span for the untraced request: {spans:#?}"));
    assert_eq!(own["parent_span_id"], "", "a root span: {own}");

    // What is still batched at shutdown is sent before the process exits.
    signal(server.child.id(), "TERM");
    let status = server.wait(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", server.log());
}

#[tokio::test]
async fn an_otlp_protocol_osprey_does_not_speak_is_refused_at_start() {
    let mut server = spawn_server_with(
        &["--model", &model_arg(), "--port", "0"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    let status = server.wait(Duration::from_secs(60)).await;
    assert!(!status.success());
    assert!(server.log().contains("http/protobuf"), "{}", server.log());
}
