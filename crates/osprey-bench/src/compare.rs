//! `--compare A.json B.json`: two reports side by side, run by run, with the
//! ratio B/A for each figure.

use std::fmt::Write as _;

use crate::report::{BenchReport, RunReport};
use crate::units::{fmt_ms, fmt_rate};

/// Pairs runs by name; runs without a namesake pair by position.
pub fn pair<'a>(a: &'a BenchReport, b: &'a BenchReport) -> Vec<(&'a RunReport, &'a RunReport)> {
    let by_name: Vec<_> = a
        .runs
        .iter()
        .filter_map(|ra| {
            b.runs
                .iter()
                .find(|rb| rb.name == ra.name)
                .map(|rb| (ra, rb))
        })
        .collect();
    if !by_name.is_empty() {
        return by_name;
    }
    a.runs.iter().zip(&b.runs).collect()
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 {
        format!("{:.2}×", b / a)
    } else {
        "-".into()
    }
}

/// The comparison as a Markdown table.
pub fn render(a: &BenchReport, b: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "A: {}    B: {}\n", a.label, b.label);
    let pairs = pair(a, b);
    if pairs.is_empty() {
        let _ = writeln!(s, "no runs to compare");
        return s;
    }
    let _ = writeln!(s, "| run | figure | A | B | B/A |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for (ra, rb) in pairs {
        let rows: [(&str, f64, f64, bool); 9] = [
            ("req/s", ra.requests_per_s, rb.requests_per_s, false),
            ("items/s", ra.items_per_s, rb.items_per_s, false),
            ("p50 ms", ra.latency_ms.p50, rb.latency_ms.p50, true),
            ("p90 ms", ra.latency_ms.p90, rb.latency_ms.p90, true),
            ("p95 ms", ra.latency_ms.p95, rb.latency_ms.p95, true),
            ("p99 ms", ra.latency_ms.p99, rb.latency_ms.p99, true),
            ("p99.9 ms", ra.latency_ms.p999, rb.latency_ms.p999, true),
            ("max ms", ra.latency_ms.max, rb.latency_ms.max, true),
            (
                "error %",
                ra.error_rate * 100.0,
                rb.error_rate * 100.0,
                false,
            ),
        ];
        let name = if ra.name == rb.name {
            ra.name.clone()
        } else {
            format!("{} / {}", ra.name, rb.name)
        };
        for (i, (fig, va, vb, is_ms)) in rows.into_iter().enumerate() {
            let f = |v: f64| if is_ms { fmt_ms(v) } else { fmt_rate(v) };
            let _ = writeln!(
                s,
                "| {} | {fig} | {} | {} | {} |",
                if i == 0 { name.as_str() } else { "" },
                f(va),
                f(vb),
                ratio(va, vb)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assert::tests::run_with;

    fn report(label: &str, runs: Vec<RunReport>) -> BenchReport {
        BenchReport {
            format: crate::report::FORMAT.into(),
            label: label.into(),
            started_unix_s: 0,
            runs,
            sweeps: vec![],
        }
    }

    #[test]
    fn ratios_are_b_over_a() {
        let mut fast = run_with(10.0, 0, 2000);
        fast.name = "unique c=1".into();
        let mut slow = run_with(40.0, 0, 1000);
        slow.name = "unique c=1".into();
        let out = render(&report("slow", vec![slow]), &report("fast", vec![fast]));
        assert!(
            out.contains("| unique c=1 | req/s | 1,000 | 2,000 | 2.00× |"),
            "{out}"
        );
        assert!(out.contains("| p99 ms | 40.0 | 10.0 | 0.25× |"), "{out}");
    }

    #[test]
    fn runs_pair_by_name_then_position() {
        let mut a1 = run_with(1.0, 0, 10);
        a1.name = "x".into();
        let mut b1 = run_with(1.0, 0, 10);
        b1.name = "y".into();
        let ra = report("a", vec![a1.clone()]);
        let rb = report("b", vec![b1]);
        assert_eq!(pair(&ra, &rb).len(), 1);
        let mut b2 = run_with(1.0, 0, 10);
        b2.name = "x".into();
        let rb = report("b", vec![run_with(1.0, 0, 10), b2]);
        let p = pair(&ra, &rb);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].1.name, "x");
    }
}
