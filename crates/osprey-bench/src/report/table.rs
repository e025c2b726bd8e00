//! The text printed at the end of a run, and a Markdown summary of a suite.

use std::fmt::Write as _;

use crate::report::{BenchReport, RunReport, SweepSummary};
use crate::units::{fmt_bytes, fmt_count, fmt_ms, fmt_rate};

/// The block printed after one run.
pub fn run_block(r: &RunReport) -> String {
    let mut s = String::new();
    let l = &r.latency_ms;
    let _ = writeln!(s, "{}", r.name);
    let _ = writeln!(
        s,
        "  target       {} ({}), {} loop, {}, workload {}",
        r.url,
        r.api,
        r.mode,
        r.load_label(),
        r.workload
    );
    let _ = writeln!(
        s,
        "  requests     {} in {:.1} s: {} req/s, {} items/s{}",
        fmt_count(r.requests as f64),
        r.duration_s,
        fmt_rate(r.requests_per_s),
        fmt_rate(r.items_per_s),
        match r.sent_per_s {
            Some(sent) => format!(" (sent {} req/s)", fmt_rate(sent)),
            None => String::new(),
        }
    );
    let _ = writeln!(
        s,
        "  latency ms   p50 {}  p90 {}  p95 {}  p99 {}  p99.9 {}  max {}  (mean {} ± {})",
        fmt_ms(l.p50),
        fmt_ms(l.p90),
        fmt_ms(l.p95),
        fmt_ms(l.p99),
        fmt_ms(l.p999),
        fmt_ms(l.max),
        fmt_ms(l.mean),
        fmt_ms(l.stdev)
    );
    if let Some(sv) = &r.service_ms {
        let _ = writeln!(
            s,
            "  service ms   p50 {}  p99 {}  max {}  (from the actual send; latency counts from the due time)",
            fmt_ms(sv.p50),
            fmt_ms(sv.p99),
            fmt_ms(sv.max)
        );
    }
    let kinds: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(
        s,
        "  errors       {} ({:.3}%){}",
        r.error_count,
        r.error_rate * 100.0,
        if kinds.is_empty() {
            String::new()
        } else {
            format!("  [{}]", kinds.join(", "))
        }
    );
    let _ = writeln!(
        s,
        "  bytes        sent {}, received {} (bodies)",
        fmt_bytes(r.bytes_sent),
        fmt_bytes(r.bytes_received)
    );
    if let Some(sv) = &r.server {
        let _ = writeln!(
            s,
            "  server       CPU {:.0}%, RSS {:.0} MB",
            sv.cpu_percent, sv.rss_mb
        );
    }
    // Objectives read meets/misses and assertions ok/FAIL, in one aligned column.
    for (label, checks, [yes, no]) in [
        ("objective", &r.objective, ["meets", "misses"]),
        ("assert", &r.assertions, ["ok", "FAIL"]),
    ] {
        let width = yes.len().max(no.len());
        for a in checks {
            let verdict = if a.passed { yes } else { no };
            let _ = writeln!(
                s,
                "  {label:<13}{verdict:<width$} {} (actual {})",
                a.expr, a.actual
            );
        }
    }
    s
}

/// A sweep's steps and its answer.
pub fn sweep_block(sw: &SweepSummary) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "sweep {} over {} (objective: {})",
        sw.name,
        sw.axis,
        sw.objective.join(", ")
    );
    for st in &sw.steps {
        let [load, rps, p99] = st.figures();
        let _ = writeln!(
            s,
            "  {load:>10}  {rps:>10} req/s  p99 {p99:>8} ms  {}",
            st.verdict()
        );
    }
    let _ = match sw.best {
        Some(b) => writeln!(
            s,
            "  highest {} meeting the objective: {}",
            sw.axis,
            fmt_rate(b)
        ),
        None => writeln!(s, "  no {} level met the objective", sw.axis),
    };
    s
}

/// One Markdown row per run, ready for BENCHMARKS.md.
pub fn markdown(report: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| {} | load | req/s | items/s | p50 ms | p90 ms | p95 ms | p99 ms | p99.9 ms | max ms | errors |",
        report.label
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &report.runs {
        let l = &r.latency_ms;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.load_label(),
            fmt_rate(r.requests_per_s),
            fmt_rate(r.items_per_s),
            fmt_ms(l.p50),
            fmt_ms(l.p90),
            fmt_ms(l.p95),
            fmt_ms(l.p99),
            fmt_ms(l.p999),
            fmt_ms(l.max),
            r.error_count
        );
    }
    s
}
