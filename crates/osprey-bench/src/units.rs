//! Parsing and printing of durations and latencies (`500ms`, `30s`, `2m`, `1.5s`).

use std::time::Duration;

use crate::error::{BenchError, Result};

/// Parses `250us`, `500ms`, `30s`, `2m`, `1h`; a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        BenchError::invalid(format!("duration {s:?}"), "expected e.g. 500ms, 30s, 2m")
    })?;
    let secs = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(BenchError::invalid(
                format!("duration {s:?}"),
                format!("unknown unit {other:?} (use us, ms, s, m or h)"),
            ));
        }
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(BenchError::invalid(
            format!("duration {s:?}"),
            "out of range",
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The clap value parser for duration flags.
pub fn duration_arg(s: &str) -> std::result::Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Milliseconds with a precision that suits the magnitude.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// A count or rate with thousands separators (`52,310`).
pub fn fmt_count(v: f64) -> String {
    let neg = v < 0.0;
    let whole = v.abs().round() as u64;
    let digits = whole.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if neg { format!("-{out}") } else { out }
}

/// A rate: one decimal below 100, none above.
pub fn fmt_rate(v: f64) -> String {
    if v < 100.0 {
        format!("{v:.1}")
    } else {
        fmt_count(v)
    }
}

/// Bytes in human units.
pub fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m").ok(), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_duration("1.5").ok(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_duration("250us").ok(),
            Some(Duration::from_micros(250))
        );
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn counts_get_separators() {
        assert_eq!(fmt_count(52310.4), "52,310");
        assert_eq!(fmt_count(999.0), "999");
        assert_eq!(fmt_count(1_000_000.0), "1,000,000");
        assert_eq!(fmt_rate(12.345), "12.3");
    }
}
