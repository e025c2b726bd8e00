use std::io::Write as _;

use super::*;
use crate::latency::bucket;

fn second(t: u64, requests: u64, ms: f64, cpu: f64, rss: u64) -> Second {
    let mut s = Second::empty(t);
    s.span = 1;
    s.requests = requests;
    s.items = requests * 2;
    s.latency_us = (ms * 1000.0) as u64 * requests;
    s.hist[bucket(ms * 1000.0)] = requests;
    s.sample.cpu_percent = cpu;
    s.sample.rss_bytes = rss;
    s.sample.cache = vec![TierSecond {
        tier: "memory",
        hits: requests,
        misses: 1,
    }];
    s
}

#[test]
fn a_minute_sums_its_seconds() {
    let a = second(120, 10, 5.0, 50.0, 100);
    let b = second(121, 30, 20.0, 100.0, 300);
    let row = minute_row(2, &[&a, &b]);
    assert_eq!((row.t, row.span), (120, 2));
    assert_eq!((row.requests, row.items), (40, 80));
    assert_eq!(row.latency_us, 650_000);
    assert_eq!(row.hist.iter().sum::<u64>(), 40);
    assert!(
        (row.sample.cpu_percent - 75.0).abs() < 1e-9,
        "mean over seconds"
    );
    assert_eq!(row.sample.rss_bytes, 300, "peak");
    assert_eq!(row.sample.cache[0].hits, 40);
    assert_eq!(row.sample.cache[0].misses, 2);
}

#[test]
fn the_day_is_saved_and_read_back() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sub").join("history.jsonl");
    let now = 10_000_000;
    let day = DayHistory::new(Some(path.clone()));
    // One minute older than a day, then three recent ones.
    let stale = minute_row(minute_of(now) - 1500, &[&second(0, 1, 1.0, 1.0, 1)]);
    day.push(stale, now);
    for back in [3, 2, 1] {
        let m = minute_of(now) - back;
        day.push(minute_row(m, &[&second(m * 60, back, 2.0, 10.0, 7)]), now);
    }
    // The same minute again (a restart within it) is merged, not repeated.
    let m = minute_of(now) - 1;
    day.push(minute_row(m, &[&second(m * 60 + 5, 4, 2.0, 10.0, 9)]), now);
    assert_eq!(day.last(DAY_MINUTES).len(), 3);

    // A torn last line, as after a crash mid-write.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)?
        .write_all(b"{\"t\":12")?;
    let again = DayHistory::new(Some(path));
    let report = again.load(now)?;
    assert_eq!(
        report,
        LoadReport {
            minutes: 3,
            skipped_lines: 1
        }
    );
    let rows = again.last(DAY_MINUTES);
    let requests: Vec<u64> = rows.iter().map(|r| r.requests).collect();
    assert_eq!(requests, [3, 2, 1 + 4]);
    assert_eq!(rows[2].span, 2);
    assert_eq!(rows[2].sample.rss_bytes, 9);
    assert_eq!(rows[2].sample.cache[0].tier, "memory");
    assert_eq!(rows[2].hist.iter().sum::<u64>(), 5);
    Ok(())
}

#[test]
fn the_file_is_rewritten_with_one_day_once_it_holds_two() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("history.jsonl");
    let day = DayHistory::new(Some(path.clone()));
    let start = 1_000_000;
    let total = 2 * DAY_MINUTES as u64 + 10;
    for m in start..start + total {
        day.push(minute_row(m, &[&second(m * 60, 1, 1.0, 1.0, 1)]), m * 60);
    }
    let lines = std::fs::read_to_string(&path)?.lines().count();
    assert!(
        (DAY_MINUTES..2 * DAY_MINUTES).contains(&lines),
        "{lines} lines"
    );
    let again = DayHistory::new(Some(path));
    again.load((start + total) * 60)?;
    let rows = again.last(DAY_MINUTES);
    assert_eq!(rows.len(), DAY_MINUTES);
    assert_eq!(rows.last().map(|r| r.t), Some((start + total - 1) * 60));
    Ok(())
}

#[test]
fn a_missing_file_is_an_empty_history() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let day = DayHistory::new(Some(dir.path().join("none.jsonl")));
    assert_eq!(day.load(1000)?, LoadReport::default());
    assert!(day.last(10).is_empty());
    Ok(())
}

#[test]
fn windows_parse_with_units_within_a_day() {
    assert_eq!(parse_window("90"), Ok(90));
    assert_eq!(parse_window("90s"), Ok(90));
    assert_eq!(parse_window("15m"), Ok(900));
    assert_eq!(parse_window("24h"), Ok(86_400));
    assert_eq!(parse_window("1d"), Ok(86_400));
    for bad in [
        "",
        "0",
        "25h",
        "2d",
        "h",
        "1w",
        "-1h",
        "1.5h",
        "99999999999999999999h",
    ] {
        assert!(parse_window(bad).is_err(), "{bad:?}");
    }
}
