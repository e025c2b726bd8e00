//! A self-contained HTML report: no scripts, no fonts, no links out. Charts are
//! inline SVG drawn here, so the file opens anywhere, years later. The markup
//! is also well-formed XML, which lets tests parse it.

use std::fmt::Write as _;

use crate::report::{BenchReport, RunReport, SweepSummary};
use crate::units::{fmt_bytes, fmt_count, fmt_ms, fmt_rate};

const W: f64 = 760.0;
const H: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 64.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 44.0;

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:900px;color:#1d2330;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin:2.2rem 0 .3rem;border-top:1px solid #dde2ea;padding-top:1rem}
.meta{color:#5b6578;margin:.2rem 0 1rem}
table{border-collapse:collapse;margin:.6rem 0}td,th{padding:.2rem .6rem;text-align:right;border-bottom:1px solid #eef1f5}
th{background:#f5f7fa;font-weight:600}td:first-child,th:first-child{text-align:left}
.fail{color:#b3261e;font-weight:600}.pass{color:#1b7f3b;font-weight:600}
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
svg{background:#fbfcfe;border:1px solid #e3e8ef;border-radius:4px;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#4a5366}
.grid{stroke:#e6eaf0;stroke-width:1}.axis{stroke:#9aa3b2;stroke-width:1}
.p50{stroke:#2563eb;fill:none;stroke-width:1.8}.p99{stroke:#ea7a10;fill:none;stroke-width:1.8}
.max{stroke:#8b93a3;fill:none;stroke-width:1;stroke-dasharray:4 3}
.rps{fill:#c7d7f5;opacity:.55}.err{fill:#d93025}.bar{fill:#5b8def}.mark{stroke-width:1.5;stroke-dasharray:3 2}
";

/// Escapes text for HTML and XML alike.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A 1, 2 or 5 × 10^k step giving about `n` ticks over `range`.
fn nice_step(range: f64, n: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// Tick values from 0 to `max` (and a hair over, for rounding), about `n` of them.
fn ticks(max: f64, n: f64) -> impl Iterator<Item = f64> {
    let step = nice_step(max, n);
    (0..)
        .map(move |i| f64::from(i) * step)
        .take_while(move |v| *v <= max + step * 0.01)
}

/// The CSS class of a check's result cell.
fn result_class(passed: bool) -> &'static str {
    if passed { "pass" } else { "fail" }
}

fn nice_max(v: f64) -> f64 {
    let step = nice_step(v, 5.0);
    ((v / step).ceil() * step).max(step)
}

fn num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

/// Latency per interval (p50, p99, max) over requests/s bars, errors marked.
pub fn timeline_svg(r: &RunReport) -> String {
    let mut s = String::new();
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let t_max = r.timeline.last().map_or(r.duration_s, |p| p.t_s).max(1e-3);
    let y_max = nice_max(
        r.timeline
            .iter()
            .map(|p| p.max_ms)
            .fold(0.0, f64::max)
            .max(0.001),
    );
    let rps: Vec<f64> = r
        .timeline
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let start = if i == 0 { 0.0 } else { r.timeline[i - 1].t_s };
            p.requests as f64 / (p.t_s - start).max(1e-3)
        })
        .collect();
    let rps_max = nice_max(rps.iter().copied().fold(0.0, f64::max).max(1.0));
    let x = |t: f64| LEFT + t / t_max * pw;
    let y = |ms: f64| TOP + ph - (ms / y_max).min(1.0) * ph;
    let _ = write!(
        s,
        r#"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="latency over time">"#
    );
    // Grid and left axis (latency).
    for v in ticks(y_max, 5.0) {
        let yy = y(v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT + pw,
            LEFT - 6.0,
            yy + 4.0,
            num(v)
        );
    }
    // Right axis (requests/s).
    for v in ticks(rps_max, 5.0) {
        let yy = TOP + ph - v / rps_max * ph;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="start">{}</text>"#,
            LEFT + pw + 6.0,
            yy + 4.0,
            num(v)
        );
    }
    // Time axis.
    for t in ticks(t_max, 8.0) {
        let xx = x(t);
        let _ = write!(
            s,
            r#"<line class="axis" x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + ph,
            TOP + ph + 4.0,
            TOP + ph + 16.0,
            num(t)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds</text><text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">latency ms</text><text x="{:.1}" y="{:.1}" transform="rotate(90 {:.1} {:.1})" text-anchor="middle">requests/s</text>"#,
        LEFT + pw / 2.0,
        H - 8.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        W - 14.0,
        TOP + ph / 2.0,
        W - 14.0,
        TOP + ph / 2.0
    );
    // Requests/s bars behind the lines.
    for (i, p) in r.timeline.iter().enumerate() {
        let start = if i == 0 { 0.0 } else { r.timeline[i - 1].t_s };
        let h = rps[i] / rps_max * ph;
        let _ = write!(
            s,
            r#"<rect class="rps" x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{}–{} s: {} req/s</title></rect>"#,
            x(start),
            TOP + ph - h,
            (x(p.t_s) - x(start)).max(0.5),
            num(start),
            num(p.t_s),
            fmt_rate(rps[i])
        );
    }
    // Latency lines, broken where an interval completed nothing.
    for (class, get) in [
        (
            "max",
            (|p: &crate::report::TimelinePoint| p.max_ms)
                as fn(&crate::report::TimelinePoint) -> f64,
        ),
        ("p99", |p| p.p99_ms),
        ("p50", |p| p.p50_ms),
    ] {
        let mut run: Vec<String> = Vec::new();
        let flush = |run: &mut Vec<String>, s: &mut String| {
            if !run.is_empty() {
                let _ = write!(
                    s,
                    r#"<polyline class="{class}" points="{}"/>"#,
                    run.join(" ")
                );
                run.clear();
            }
        };
        for (i, p) in r.timeline.iter().enumerate() {
            if p.requests == p.errors {
                flush(&mut run, &mut s);
                continue;
            }
            let start = if i == 0 { 0.0 } else { r.timeline[i - 1].t_s };
            run.push(format!("{:.1},{:.1}", x((start + p.t_s) / 2.0), y(get(p))));
        }
        flush(&mut run, &mut s);
    }
    for (i, p) in r.timeline.iter().enumerate().filter(|(_, p)| p.errors > 0) {
        let start = if i == 0 { 0.0 } else { r.timeline[i - 1].t_s };
        let _ = write!(
            s,
            r#"<circle class="err" cx="{:.1}" cy="{:.1}" r="3.5"><title>{} errors</title></circle>"#,
            x((start + p.t_s) / 2.0),
            TOP + ph - 4.0,
            p.errors
        );
    }
    // Legend.
    let _ = write!(
        s,
        r#"<g transform="translate({LEFT},12)"><line class="p50" x1="0" x2="18" y1="0" y2="0"/><text x="22" y="4">p50</text><line class="p99" x1="60" x2="78" y1="0" y2="0"/><text x="82" y="4">p99</text><line class="max" x1="120" x2="138" y1="0" y2="0"/><text x="142" y="4">max</text><rect class="rps" x="180" y="-5" width="14" height="10"/><text x="198" y="4">requests/s</text><circle class="err" cx="280" cy="0" r="3.5"/><text x="288" y="4">errors</text></g>"#
    );
    s.push_str("</svg>");
    s
}

/// Request counts on log-spaced latency buckets, with p50 and p99 marked.
pub fn histogram_svg(r: &RunReport) -> String {
    let mut s = String::new();
    let pw = W - LEFT - 24.0;
    let ph = H - TOP - BOTTOM;
    let _ = write!(
        s,
        r#"<svg class="histogram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="latency histogram">"#
    );
    let buckets = &r.histogram;
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no successful requests</text></svg>"#,
            W / 2.0,
            H / 2.0
        );
        return s;
    };
    // The first bucket's lower edge is a tenth of a decade below its upper one.
    let lo = (first.le_ms / 10f64.powf(0.1)).max(1e-4).log10();
    let hi = last.le_ms.max(first.le_ms * 1.0001).log10();
    let x = |ms: f64| LEFT + (ms.max(1e-4).log10() - lo) / (hi - lo) * pw;
    let c_max = nice_max(buckets.iter().map(|b| b.count).max().unwrap_or(1) as f64);
    let y = |c: f64| TOP + ph - c / c_max * ph;
    for v in ticks(c_max, 5.0) {
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT + pw,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            fmt_count(v)
        );
    }
    let mut prev = 10f64.powf(lo);
    for b in buckets {
        let (x0, x1) = (x(prev), x(b.le_ms));
        let _ = write!(
            s,
            r#"<rect class="bar" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{}–{} ms: {}</title></rect>"#,
            y(b.count as f64),
            (x1 - x0 - 0.5).max(0.5),
            TOP + ph - y(b.count as f64),
            fmt_ms(prev),
            fmt_ms(b.le_ms),
            b.count
        );
        prev = b.le_ms;
    }
    // Decade ticks.
    let mut d = lo.floor();
    while d <= hi.ceil() {
        let ms = 10f64.powf(d);
        if d >= lo && d <= hi {
            let xx = x(ms);
            let _ = write!(
                s,
                r#"<line class="axis" x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + ph,
                TOP + ph + 4.0,
                TOP + ph + 16.0,
                num(ms)
            );
        }
        d += 1.0;
    }
    for (label, ms, color) in [
        ("p50", r.latency_ms.p50, "#2563eb"),
        ("p99", r.latency_ms.p99, "#ea7a10"),
    ] {
        let xx = x(ms).clamp(LEFT, LEFT + pw);
        let _ = write!(
            s,
            r#"<line class="mark" stroke="{color}" x1="{xx:.1}" x2="{xx:.1}" y1="{TOP}" y2="{:.1}"/><text x="{:.1}" y="{:.1}" style="fill:{color}">{label} {} ms</text>"#,
            TOP + ph,
            xx + 4.0,
            TOP + 10.0 + if label == "p99" { 14.0 } else { 0.0 },
            fmt_ms(ms)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">latency ms (log scale)</text><text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">requests</text></svg>"#,
        LEFT + pw / 2.0,
        H - 8.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    s
}

fn stats_table(r: &RunReport) -> String {
    let l = &r.latency_ms;
    let mut s = String::from("<table class=\"stats\"><tr><th>figure</th><th>value</th></tr>");
    let mut row = |k: &str, v: String| {
        let _ = write!(s, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    };
    row(
        "requests",
        format!("{} in {:.1} s", fmt_count(r.requests as f64), r.duration_s),
    );
    row("requests/s", fmt_rate(r.requests_per_s));
    row("items/s", fmt_rate(r.items_per_s));
    if let Some(sent) = r.sent_per_s {
        row("sent/s (open loop)", fmt_rate(sent));
    }
    for (k, v) in [
        ("p50 ms", l.p50),
        ("p90 ms", l.p90),
        ("p95 ms", l.p95),
        ("p99 ms", l.p99),
        ("p99.9 ms", l.p999),
        ("max ms", l.max),
        ("mean ms", l.mean),
    ] {
        row(k, fmt_ms(v));
    }
    if let Some(sv) = &r.service_ms {
        row("service p99 ms (from actual send)", fmt_ms(sv.p99));
    }
    row(
        "errors",
        format!("{} ({:.3}%)", r.error_count, r.error_rate * 100.0),
    );
    for (k, v) in &r.errors {
        row(&format!("  {k}"), v.to_string());
    }
    row(
        "bytes sent / received",
        format!(
            "{} / {}",
            fmt_bytes(r.bytes_sent),
            fmt_bytes(r.bytes_received)
        ),
    );
    if let Some(sv) = &r.server {
        row(
            "server CPU / RSS",
            format!("{:.0}% / {:.0} MB", sv.cpu_percent, sv.rss_mb),
        );
    }
    s.push_str("</table>");
    if !r.assertions.is_empty() {
        s.push_str(
            "<table class=\"assertions\"><tr><th>assertion</th><th>actual</th><th>result</th></tr>",
        );
        for a in &r.assertions {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                esc(&a.expr),
                esc(&a.actual),
                result_class(a.passed),
                if a.passed { "pass" } else { "FAIL" }
            );
        }
        s.push_str("</table>");
    }
    s
}

fn sweep_table(sw: &SweepSummary) -> String {
    let mut s = format!(
        "<h2>Sweep: {} over {}</h2><p class=\"meta\">objective: {}; highest level meeting it: {}</p><table class=\"sweep\"><tr><th>{}</th><th>req/s</th><th>p99 ms</th><th>objective</th></tr>",
        esc(&sw.name),
        esc(&sw.axis),
        esc(&sw.objective.join(", ")),
        sw.best.map_or_else(|| "none".to_string(), fmt_rate),
        esc(&sw.axis)
    );
    for st in &sw.steps {
        let [load, rps, p99] = st.figures();
        let _ = write!(
            s,
            "<tr><td>{load}</td><td>{rps}</td><td>{p99}</td><td class=\"{}\">{}</td></tr>",
            result_class(st.passed),
            st.verdict()
        );
    }
    s.push_str("</table>");
    s
}

/// The whole page.
pub fn render(report: &BenchReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/><title>osprey bench: {}</title><style>{STYLE}</style></head><body>",
        esc(&report.label)
    );
    let _ = write!(
        s,
        "<h1>osprey bench: {}</h1><p class=\"meta\">{} run(s), started at Unix time {}. Latency in open loop counts from each request's due time.</p>",
        esc(&report.label),
        report.runs.len(),
        report.started_unix_s
    );
    s.push_str("<table class=\"summary\"><tr><th>run</th><th>load</th><th>req/s</th><th>items/s</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>errors</th></tr>");
    for (i, r) in report.runs.iter().enumerate() {
        let _ = write!(
            s,
            "<tr><td><a href=\"#run-{i}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.name),
            esc(&r.load_label()),
            fmt_rate(r.requests_per_s),
            fmt_rate(r.items_per_s),
            fmt_ms(r.latency_ms.p50),
            fmt_ms(r.latency_ms.p99),
            fmt_ms(r.latency_ms.max),
            r.error_count
        );
    }
    s.push_str("</table>");
    for sw in &report.sweeps {
        s.push_str(&sweep_table(sw));
    }
    for (i, r) in report.runs.iter().enumerate() {
        let _ = write!(
            s,
            "<section class=\"run\" id=\"run-{i}\"><h2>{}</h2><p class=\"meta\">{} ({}), {} loop, {}, workload {}</p>",
            esc(&r.name),
            esc(&r.url),
            esc(&r.api),
            esc(&r.mode),
            esc(&r.load_label()),
            esc(&r.workload)
        );
        s.push_str(&stats_table(r));
        let _ = write!(
            s,
            "<figure><figcaption>Latency over time ({} s intervals)</figcaption>{}</figure><figure><figcaption>Latency histogram</figcaption>{}</figure></section>",
            num(r.interval_s),
            timeline_svg(r),
            histogram_svg(r)
        );
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(0.7, 5.0), 0.2);
        assert_eq!(nice_max(37.0), 40.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
    }
}
