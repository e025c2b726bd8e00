//! What a run leaves behind: exit outcome from assertions, JSON that parses
//! back, an HTML report that draws what was measured, comparisons, scenarios.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use osprey_bench::report::json;
use osprey_bench::{Outcome, measure, run};
use support::{Behaviour, quiet, start};

#[test]
fn assertions_pass_and_fail_as_they_should() {
    let server = start(Behaviour::tei(Duration::from_millis(20)));
    let url = server.url();
    let ok = run(quiet(
        &url,
        &[
            "-n",
            "30",
            "-c",
            "2",
            "--assert",
            "p99<1s",
            "--assert",
            "errors<0.1%",
        ],
    ))
    .expect("runs");
    assert_eq!(ok, Outcome::Passed);

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("r.json");
    let out_s = out.to_str().expect("utf-8");
    let failed = run(quiet(
        &url,
        &[
            "-n", "30", "-c", "2", "--assert", "p50<5ms", "--assert", "p99<1s", "--json", out_s,
        ],
    ))
    .expect("runs");
    assert_eq!(failed, Outcome::AssertionsFailed(1));
    assert_ne!(
        format!("{:?}", failed.exit_code()),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
    // The report says which one failed and by how much.
    let report = json::read(&out).expect("parses");
    let a = &report.runs[0].assertions;
    assert_eq!(a.len(), 2);
    assert!(!a[0].passed && a[0].expr == "p50<5ms", "{a:?}");
    assert!(a[0].actual.ends_with("ms"));
    assert!(a[1].passed);

    let failing = start(Behaviour {
        fail_every: Some(5),
        ..Behaviour::tei(Duration::ZERO)
    });
    let outcome = run(quiet(
        &failing.url(),
        &[
            "-n",
            "50",
            "--assert",
            "errors<1%",
            "--assert",
            "errors<25%",
        ],
    ))
    .expect("runs");
    assert_eq!(outcome, Outcome::AssertionsFailed(1));
}

fn run_with_reports(dir: &Path) -> (PathBuf, PathBuf) {
    // Every 7th request is slow, every 11th fails, so every chart has something to show.
    let server = start(Behaviour {
        slow_every: Some((7, Duration::from_millis(30))),
        fail_every: Some(11),
        ..Behaviour::tei(Duration::from_millis(2))
    });
    let json_path = dir.join("report.json");
    let html_path = dir.join("report.html");
    let outcome = run(quiet(
        &server.url(),
        &[
            "-c",
            "4",
            "-d",
            "1s",
            "--label",
            "test <server> & co",
            "--json",
            json_path.to_str().expect("utf-8"),
            "--html",
            html_path.to_str().expect("utf-8"),
        ],
    ))
    .expect("runs");
    assert_eq!(outcome, Outcome::Passed);
    (json_path, html_path)
}

#[test]
fn reports_parse_back_and_the_html_draws_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (json_path, html_path) = run_with_reports(dir.path());

    // JSON: parses back into the same structure, and survives a second trip.
    let report = json::read(&json_path).expect("parses back");
    assert_eq!(report.label, "test <server> & co");
    let r = &report.runs[0];
    assert!(r.requests > 20);
    assert!(
        r.errors.get("http 429").is_some_and(|n| *n > 0),
        "{:?}",
        r.errors
    );
    assert_eq!(
        r.histogram.iter().map(|b| b.count).sum::<u64>(),
        r.successes
    );
    let again = dir.path().join("again.json");
    json::write(&again, &report).expect("writes");
    assert_eq!(json::read(&again).expect("parses"), report);
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("read")).expect("JSON");
    for key in [
        "requests_per_s",
        "items_per_s",
        "latency_ms",
        "errors",
        "bytes_sent",
        "timeline",
    ] {
        assert!(raw["runs"][0].get(key).is_some(), "JSON lacks {key}");
    }
    for key in ["p50", "p90", "p95", "p99", "p999", "max"] {
        assert!(
            raw["runs"][0]["latency_ms"][key].is_number(),
            "JSON lacks latency {key}"
        );
    }

    // HTML: well-formed, self-contained, and its charts hold the data.
    let html = std::fs::read_to_string(&html_path).expect("read html");
    let doc = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("the HTML report is well-formed");
    let title = doc
        .descendants()
        .find(|n| n.has_tag_name("title"))
        .and_then(|n| n.text());
    assert_eq!(title, Some("osprey bench: test <server> & co"));
    for n in doc.descendants() {
        assert!(!n.has_tag_name("script") && !n.has_tag_name("link") && !n.has_tag_name("img"));
        for attr in ["href", "src"] {
            if let Some(v) = n.attribute(attr) {
                assert!(v.starts_with('#'), "reference out of the page: {v}");
            }
        }
    }
    let svgs: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("svg"))
        .collect();
    assert_eq!(svgs.len(), 2);
    let class = |n: &roxmltree::Node, c: &str| n.attribute("class") == Some(c);
    let timeline = svgs
        .iter()
        .find(|n| class(n, "timeline"))
        .expect("timeline chart");
    let histogram = svgs
        .iter()
        .find(|n| class(n, "histogram"))
        .expect("histogram chart");

    // The p99 line has a point per interval that completed requests, inside the plot.
    let view: Vec<f64> = timeline
        .attribute("viewBox")
        .expect("viewBox")
        .split(' ')
        .map(|v| v.parse().expect("number"))
        .collect();
    let points: Vec<(f64, f64)> = timeline
        .descendants()
        .filter(|n| class(n, "p99"))
        .filter_map(|n| n.attribute("points"))
        .flat_map(|p| p.split(' ').map(String::from).collect::<Vec<_>>())
        .map(|xy| {
            let (x, y) = xy.split_once(',').expect("x,y");
            (x.parse().expect("x"), y.parse().expect("y"))
        })
        .collect();
    let busy = r.timeline.iter().filter(|p| p.requests > p.errors).count();
    assert_eq!(points.len(), busy);
    assert!(
        points
            .iter()
            .all(|&(x, y)| (0.0..=view[2]).contains(&x) && (0.0..=view[3]).contains(&y))
    );
    assert!(
        points.windows(2).all(|w| w[1].0 > w[0].0),
        "time runs left to right"
    );
    // Errors are marked.
    assert!(timeline.descendants().any(|n| class(&n, "err")));

    // One bar per histogram bucket, the tallest for the most common latency.
    let bars: Vec<_> = histogram
        .descendants()
        .filter(|n| class(n, "bar"))
        .collect();
    assert_eq!(bars.len(), r.histogram.len());
    let heights: Vec<f64> = bars
        .iter()
        .map(|b| {
            b.attribute("height")
                .expect("height")
                .parse()
                .expect("number")
        })
        .collect();
    let tallest = heights
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i);
    let most = r
        .histogram
        .iter()
        .enumerate()
        .max_by_key(|(_, b)| b.count)
        .map(|(i, _)| i);
    assert_eq!(tallest, most);
    let text: String = histogram.descendants().filter_map(|n| n.text()).collect();
    assert!(text.contains("p99"), "percentile markers drawn");
}

#[test]
fn compare_reads_two_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, _) = run_with_reports(dir.path());
    let b = dir.path().join("b.json");
    let mut other = json::read(&a).expect("parses");
    other.label = "faster".into();
    other.runs[0].requests_per_s *= 2.0;
    json::write(&b, &other).expect("writes");
    let outcome = run(support::args(&[
        "--compare",
        a.to_str().expect("utf-8"),
        b.to_str().expect("utf-8"),
    ]))
    .expect("compares");
    assert_eq!(outcome, Outcome::Passed);
    let text = osprey_bench::compare::render(&json::read(&a).expect("a"), &other);
    assert!(
        text.contains("| req/s |") && text.contains("2.00×"),
        "{text}"
    );

    let not_a_report = dir.path().join("x.json");
    std::fs::write(&not_a_report, "{\"hello\": 1}").expect("write");
    let err = run(support::args(&[
        "--compare",
        a.to_str().expect("utf-8"),
        not_a_report.to_str().expect("utf-8"),
    ]))
    .expect_err("not a report")
    .to_string();
    assert!(err.contains("not an osprey bench report"), "{err}");
}

#[test]
fn a_scenario_runs_a_whole_suite() {
    let server = start(Behaviour::tei(Duration::from_millis(1)));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("texts.txt"), "alpha\nbeta\n").expect("write");
    let scenario = dir.path().join("suite.toml");
    std::fs::write(
        &scenario,
        r#"
label = "suite"
[defaults]
url = "http://127.0.0.1:1"   # replaced by --url
requests = 20
assert = ["errors=0"]

[[run]]
name = "singles"
concurrency = 2

[[run]]
name = "file batches"
workload = "file:texts.txt+batch:4"
rate = 100.0
"#,
    )
    .expect("write");
    let report = measure(&quiet(
        &server.url(),
        &["--scenario", scenario.to_str().expect("utf-8")],
    ))
    .expect("runs");
    assert_eq!(report.label, "suite");
    let names: Vec<&str> = report.runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, vec!["singles", "file batches"]);
    assert_eq!(report.runs[1].mode, "open");
    assert_eq!(report.runs[1].items, 80);
    assert!(
        report
            .runs
            .iter()
            .all(|r| r.assertions.len() == 1 && r.assertions[0].passed)
    );
    assert_eq!(server.requests(), 40);

    std::fs::write(&scenario, "[[run]]\nconcurency = 4\n").expect("write");
    let err = measure(&quiet(
        &server.url(),
        &["--scenario", scenario.to_str().expect("utf-8")],
    ))
    .expect_err("typo")
    .to_string();
    assert!(err.contains("concurency"), "{err}");
}

#[test]
fn shipped_scenarios_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("bench/scenarios exists") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let sc = osprey_bench::scenario::Scenario::load(&path).expect("scenario parses");
        for (i, f) in sc.runs(&Default::default()).iter().enumerate() {
            let spec = osprey_bench::spec::RunSpec::resolve(f, i)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Some(c) = &spec.corpus {
                assert!(
                    c.exists(),
                    "{}: corpus {} missing",
                    path.display(),
                    c.display()
                );
            }
        }
        n += 1;
    }
    assert!(n >= 2, "scenarios shipped: {n}");
}
