//! The live progress line: elapsed, requests/s, p50/p99 and errors, redrawn a
//! few times a second on stderr, and absent when stderr is not a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::recorder::Snapshot;
use crate::units::{fmt_ms, fmt_rate};

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(enabled: bool, prefix: &str) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Self {
                bar: ProgressBar::hidden(),
            };
        }
        let style = ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = ProgressBar::new_spinner().with_style(style);
        bar.set_prefix(prefix.to_string());
        Self { bar }
    }

    pub fn update(
        &self,
        elapsed: Duration,
        total: Duration,
        warmup: bool,
        rate: f64,
        s: &Snapshot,
    ) {
        if self.bar.is_hidden() {
            return;
        }
        let phase = if warmup { " warm-up" } else { "" };
        self.bar.set_message(format!(
            "{:>5.1}s/{:.0}s{phase}  {:>9} req/s  p50 {} ms  p99 {} ms  errors {}",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            fmt_rate(rate),
            fmt_ms(s.p50_ms),
            fmt_ms(s.p99_ms),
            s.errors
        ));
        self.bar.tick();
    }

    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
