//! Twenty-four hours of statistics: each minute of the per-second history summed
//! into one row, kept in memory and, when `telemetry.history_path` is set,
//! appended to a file that the next start reads back. The file is JSON lines, one
//! minute each, so a line torn by a crash costs that minute only; it is rewritten
//! with the last day once it holds two.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::latency::BUCKETS;
use crate::stats::{STAGES, Sample, Second, TierSecond};

/// Minutes of history kept: a day.
pub const DAY_MINUTES: usize = 24 * 60;

/// A window such as `90`, `90s`, `15m`, `24h` or `1d`, in seconds: at least one
/// second and at most the day kept.
pub fn parse_window(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("window {text:?}: the unit must be s, m, h or d")),
    };
    let secs = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("window {text:?}: expected a whole number and a unit, like 24h"))?;
    if secs == 0 || secs > DAY_MINUTES as u64 * 60 {
        return Err(format!(
            "window {text:?}: between 1 s and 24 h of history are kept"
        ));
    }
    Ok(secs)
}

/// The minute (unix time / 60) a second belongs to.
pub fn minute_of(t: u64) -> u64 {
    t / 60
}

/// Adds `s` into `into` (counters summed, CPU averaged over the seconds covered,
/// memory and queue at their peak).
pub fn merge(into: &mut Second, s: &Second) {
    let span = into.span + s.span;
    into.requests += s.requests;
    into.errors += s.errors;
    into.slow += s.slow;
    into.items += s.items;
    into.latency_us += s.latency_us;
    into.timed += s.timed;
    for (a, b) in into.hist.iter_mut().zip(s.hist) {
        *a += b;
    }
    for (a, b) in into.stage_us.iter_mut().zip(s.stage_us) {
        *a += b;
    }
    let (a, b) = (&mut into.sample, &s.sample);
    if span > 0 {
        a.cpu_percent =
            (a.cpu_percent * into.span as f64 + b.cpu_percent * s.span as f64) / span as f64;
    }
    a.rss_bytes = a.rss_bytes.max(b.rss_bytes);
    a.queue_tokens = a.queue_tokens.max(b.queue_tokens);
    a.in_flight = a.in_flight.max(b.in_flight);
    a.batches += b.batches;
    a.batch_items += b.batch_items;
    for t in &b.cache {
        match a.cache.iter_mut().find(|c| c.tier == t.tier) {
            Some(c) => {
                c.hits += t.hits;
                c.misses += t.misses;
            }
            None => a.cache.push(t.clone()),
        }
    }
    into.span = span;
}

/// The seconds of one minute summed into a row stamped with the minute's start.
pub fn minute_row(minute: u64, seconds: &[&Second]) -> Second {
    let mut row = Second::empty(minute * 60);
    for s in seconds {
        merge(&mut row, s);
    }
    row
}

pub struct DayHistory {
    rows: Mutex<VecDeque<Second>>,
    file: Option<Mutex<HistoryFile>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DayHistory {
    /// In memory only, or also on disk at `path` (not read until [`Self::load`]).
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            rows: Mutex::new(VecDeque::with_capacity(DAY_MINUTES)),
            file: path.map(|path| {
                Mutex::new(HistoryFile {
                    path,
                    lines: 0,
                    out: None,
                })
            }),
        }
    }

    /// Reads what an earlier run saved (blocking: call it off the runtime). Rows
    /// older than a day before `now` (unix seconds) are dropped; an unreadable
    /// line is skipped and counted.
    pub fn load(&self, now: u64) -> std::io::Result<LoadReport> {
        let Some(file) = &self.file else {
            return Ok(LoadReport::default());
        };
        let mut file = lock(file);
        let (saved, report) = file.read(now)?;
        let mut rows = lock(&self.rows);
        // Minutes closed since the start come after the saved ones.
        let newer: Vec<Second> = rows.drain(..).collect();
        for row in saved.into_iter().chain(newer) {
            push_row(&mut rows, row, now);
        }
        Ok(report)
    }

    /// Adds a closed minute (merged into the last row when it is the same minute,
    /// as after a restart within it) and appends it to the file. The write is a
    /// few hundred bytes a minute, from the sampler's once-a-second task.
    pub fn push(&self, row: Second, now: u64) {
        if let Some(file) = &self.file {
            let mut file = lock(file);
            let saved = if file.lines >= 2 * DAY_MINUTES {
                file.rewrite(&self.last(DAY_MINUTES))
            } else {
                Ok(())
            };
            if let Err(e) = saved.and_then(|()| file.append(&row)) {
                tracing::warn!(error = %e, "saving the statistics history");
            }
        }
        push_row(&mut lock(&self.rows), row, now);
    }

    /// The rows of the last `minutes`, oldest first.
    pub fn last(&self, minutes: usize) -> Vec<Second> {
        let rows = lock(&self.rows);
        rows.iter()
            .skip(rows.len().saturating_sub(minutes))
            .cloned()
            .collect()
    }
}

fn push_row(rows: &mut VecDeque<Second>, row: Second, now: u64) {
    match rows.back_mut() {
        Some(last) if last.t == row.t => merge(last, &row),
        // A clock that went back: keep the rows in time order.
        Some(last) if last.t > row.t => {}
        _ => rows.push_back(row),
    }
    let oldest = now.saturating_sub(DAY_MINUTES as u64 * 60);
    while rows.front().is_some_and(|r| r.t < oldest) || rows.len() > DAY_MINUTES {
        rows.pop_front();
    }
}

/// What [`DayHistory::load`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoadReport {
    pub minutes: usize,
    pub skipped_lines: usize,
}

struct HistoryFile {
    path: PathBuf,
    /// Lines in the file; past two days' worth it is rewritten with one.
    lines: usize,
    out: Option<File>,
}

impl HistoryFile {
    fn read(&mut self, now: u64) -> std::io::Result<(Vec<Second>, LoadReport)> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), LoadReport::default()));
            }
            Err(e) => return Err(e),
        };
        let mut rows = VecDeque::new();
        let mut report = LoadReport::default();
        for line in BufReader::new(file).lines() {
            let line = line?;
            self.lines += 1;
            match serde_json::from_str::<SavedMinute>(&line) {
                Ok(m) => push_row(&mut rows, m.into_second(), now),
                Err(_) => report.skipped_lines += 1,
            }
        }
        report.minutes = rows.len();
        Ok((rows.into(), report))
    }

    fn append(&mut self, row: &Second) -> std::io::Result<()> {
        let out = match &mut self.out {
            Some(out) => out,
            None => self.out.insert(open_append(&self.path)?),
        };
        let mut line = serde_json::to_vec(&SavedMinute::of(row)).map_err(std::io::Error::other)?;
        line.push(b'\n');
        out.write_all(&line)?;
        self.lines += 1;
        Ok(())
    }

    /// Replaces the file with `rows`, through a temporary file and a rename so a
    /// crash leaves the old file or the new one.
    fn rewrite(&mut self, rows: &[Second]) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut out = File::create(&tmp)?;
        for row in rows {
            let mut line =
                serde_json::to_vec(&SavedMinute::of(row)).map_err(std::io::Error::other)?;
            line.push(b'\n');
            out.write_all(&line)?;
        }
        out.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        self.out = None;
        self.lines = rows.len();
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// One minute as saved: the row with its arrays as lists and its cache tiers by
/// name.
#[derive(Serialize, Deserialize)]
struct SavedMinute {
    t: u64,
    span: u64,
    requests: u64,
    errors: u64,
    slow: u64,
    items: u64,
    latency_us: u64,
    hist: Vec<u64>,
    stage_us: Vec<u64>,
    timed: u64,
    cpu_percent: f64,
    rss_bytes: u64,
    queue_tokens: u64,
    in_flight: u64,
    batches: u64,
    batch_items: u64,
    cache: Vec<(String, u64, u64)>,
}

impl SavedMinute {
    fn of(s: &Second) -> Self {
        let smp = &s.sample;
        Self {
            t: s.t,
            span: s.span,
            requests: s.requests,
            errors: s.errors,
            slow: s.slow,
            items: s.items,
            latency_us: s.latency_us,
            hist: s.hist.to_vec(),
            stage_us: s.stage_us.to_vec(),
            timed: s.timed,
            cpu_percent: smp.cpu_percent,
            rss_bytes: smp.rss_bytes,
            queue_tokens: smp.queue_tokens,
            in_flight: smp.in_flight,
            batches: smp.batches,
            batch_items: smp.batch_items,
            cache: smp
                .cache
                .iter()
                .map(|c| (c.tier.to_string(), c.hits, c.misses))
                .collect(),
        }
    }

    fn into_second(self) -> Second {
        // Shorter or longer lists (a file from another version) fill what they can.
        let fill = |dst: &mut [u64], src: &[u64]| {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *s;
            }
        };
        let mut hist = [0u64; BUCKETS];
        fill(&mut hist, &self.hist);
        let mut stage_us = [0u64; STAGES.len()];
        fill(&mut stage_us, &self.stage_us);
        Second {
            t: self.t,
            span: self.span,
            requests: self.requests,
            errors: self.errors,
            slow: self.slow,
            items: self.items,
            latency_us: self.latency_us,
            hist,
            stage_us,
            timed: self.timed,
            sample: Sample {
                cpu_percent: self.cpu_percent,
                rss_bytes: self.rss_bytes,
                queue_tokens: self.queue_tokens,
                in_flight: self.in_flight,
                batches: self.batches,
                batch_items: self.batch_items,
                cache: self
                    .cache
                    .into_iter()
                    .filter_map(|(tier, hits, misses)| {
                        Some(TierSecond {
                            tier: tier_label(&tier)?,
                            hits,
                            misses,
                        })
                    })
                    .collect(),
            },
        }
    }
}

/// The cache tiers a saved row may name.
fn tier_label(name: &str) -> Option<&'static str> {
    ["memory", "disk", "redis"].into_iter().find(|t| *t == name)
}

#[cfg(test)]
mod tests;
