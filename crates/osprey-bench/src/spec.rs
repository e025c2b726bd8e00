//! One run's settings: the optional fields a scenario file or the command line
//! gives, and the resolved [`RunSpec`] a run executes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{BenchError, Result};
use crate::target::ApiChoice;
use crate::units::parse_duration;
use crate::workload::WorkloadSpec;

/// How arrivals are spaced in open loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly spaced: exactly `rate` per second.
    Constant,
    /// Exponential gaps with mean 1/rate, as independent users arrive.
    Poisson,
}

impl Arrival {
    pub fn name(self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Poisson => "poisson",
        }
    }
}

/// Closed loop (each worker sends its next request when the last one answers)
/// or open loop (requests are due on a schedule whatever the server does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    Closed {
        concurrency: usize,
    },
    Open {
        rate: f64,
        arrival: Arrival,
        connections: usize,
    },
}

/// Every setting of a run, each optional: a scenario's `[defaults]` and
/// `[[run]]` tables, and the command line, each give some.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunFields {
    pub name: Option<String>,
    pub url: Option<String>,
    pub api: Option<ApiChoice>,
    pub concurrency: Option<usize>,
    pub rate: Option<f64>,
    pub arrival: Option<Arrival>,
    pub connections: Option<usize>,
    pub duration: Option<String>,
    pub requests: Option<u64>,
    pub warmup: Option<String>,
    pub workload: Option<Vec<String>>,
    pub corpus: Option<PathBuf>,
    #[serde(default)]
    pub headers: Vec<String>,
    pub api_key: Option<String>,
    pub model: Option<String>,
    pub timeout: Option<String>,
    #[serde(default, rename = "assert")]
    pub asserts: Vec<String>,
    pub sweep: Option<String>,
    #[serde(default)]
    pub objective: Vec<String>,
    pub pid: Option<u32>,
    pub seed: Option<u64>,
}

impl RunFields {
    /// `over`'s fields where given, else ours. Lists add up (headers, assertions).
    pub fn overlay(&self, over: &RunFields) -> RunFields {
        fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            b.clone().or_else(|| a.clone())
        }
        let mut load = (self.concurrency, self.rate);
        if over.concurrency.is_some() || over.rate.is_some() {
            // A load given above replaces the one below whole.
            load = (over.concurrency, over.rate);
        }
        RunFields {
            name: pick(&self.name, &over.name),
            url: pick(&self.url, &over.url),
            api: pick(&self.api, &over.api),
            concurrency: load.0,
            rate: load.1,
            arrival: pick(&self.arrival, &over.arrival),
            connections: pick(&self.connections, &over.connections),
            duration: pick(&self.duration, &over.duration),
            requests: pick(&self.requests, &over.requests),
            warmup: pick(&self.warmup, &over.warmup),
            workload: pick(&self.workload, &over.workload),
            corpus: pick(&self.corpus, &over.corpus),
            headers: [self.headers.clone(), over.headers.clone()].concat(),
            api_key: pick(&self.api_key, &over.api_key),
            model: pick(&self.model, &over.model),
            timeout: pick(&self.timeout, &over.timeout),
            asserts: [self.asserts.clone(), over.asserts.clone()].concat(),
            sweep: pick(&self.sweep, &over.sweep),
            objective: if over.objective.is_empty() {
                self.objective.clone()
            } else {
                over.objective.clone()
            },
            pid: pick(&self.pid, &over.pid),
            seed: pick(&self.seed, &over.seed),
        }
    }

    /// Makes relative file paths relative to `dir` (a scenario file's folder).
    pub fn rebase(&mut self, dir: &Path) {
        if let Some(c) = self.corpus.as_mut()
            && c.is_relative()
        {
            *c = dir.join(&*c);
        }
        if let Some(w) = self.workload.as_mut() {
            for spec in w.iter_mut() {
                *spec = rebase_files(spec, dir);
            }
        }
    }
}

/// Rewrites `file:REL` parts of a workload spec to `file:DIR/REL`.
fn rebase_files(spec: &str, dir: &Path) -> String {
    spec.split(',')
        .map(|comp| {
            comp.split('+')
                .map(|part| match part.trim().strip_prefix("file:") {
                    Some(p) if Path::new(p).is_relative() => {
                        let (path, weight) = match p.rsplit_once('@') {
                            Some((a, w)) => (a, format!("@{w}")),
                            None => (p, String::new()),
                        };
                        format!("file:{}{weight}", dir.join(path).display())
                    }
                    _ => part.to_string(),
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A run with every setting decided and checked.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub name: String,
    pub url: String,
    pub api: ApiChoice,
    pub load: Load,
    pub duration: Duration,
    pub requests: Option<u64>,
    pub warmup: Duration,
    pub workload: WorkloadSpec,
    pub corpus: Option<PathBuf>,
    pub headers: Vec<(String, String)>,
    pub model: Option<String>,
    pub timeout: Duration,
    pub asserts: Vec<String>,
    pub sweep: Option<String>,
    pub objective: Vec<String>,
    pub pid: Option<u32>,
    pub seed: u64,
}

pub const DEFAULT_CONCURRENCY: usize = 8;

impl RunSpec {
    /// Checks the fields and fills in the defaults.
    pub fn resolve(f: &RunFields, index: usize) -> Result<Self> {
        let url = f.url.clone().ok_or_else(|| {
            BenchError::invalid(
                "--url",
                "no server given (e.g. --url http://127.0.0.1:8080)",
            )
        })?;
        crate::target::parse_url(&url)?;
        let load = resolve_load(f)?;
        let workload_specs = f.workload.clone().unwrap_or_else(|| vec!["unique".into()]);
        let workload = WorkloadSpec::parse_all(&workload_specs)?;
        let headers = resolve_headers(f)?;
        let timeout = duration_or(&f.timeout, Duration::from_secs(30))?;
        if timeout.is_zero() {
            return Err(BenchError::invalid("--timeout", "must be above zero"));
        }
        check_assertions_and_sweep(f)?;
        let duration = resolve_duration(f)?;
        let seed = f.seed.unwrap_or_else(|| time_seed(index));
        let name = f
            .name
            .clone()
            .unwrap_or_else(|| default_name(&load, &workload));
        Ok(Self {
            name,
            url,
            api: f.api.unwrap_or(ApiChoice::Auto),
            load,
            duration,
            requests: f.requests,
            warmup: duration_or(&f.warmup, Duration::ZERO)?,
            workload,
            corpus: f.corpus.clone(),
            headers,
            model: f.model.clone(),
            timeout,
            asserts: f.asserts.clone(),
            sweep: f.sweep.clone(),
            objective: f.objective.clone(),
            pid: f.pid,
            seed,
        })
    }
}

fn duration_or(v: &Option<String>, default: Duration) -> Result<Duration> {
    match v {
        Some(s) => parse_duration(s),
        None => Ok(default),
    }
}

/// Closed loop unless a rate is given; never both.
fn resolve_load(f: &RunFields) -> Result<Load> {
    match (f.concurrency, f.rate) {
        (Some(_), Some(_)) => Err(BenchError::invalid(
            "load",
            "give --concurrency or --rate, not both",
        )),
        (_, Some(rate)) => open_load(f, rate),
        (c, None) => {
            let concurrency = c.unwrap_or(DEFAULT_CONCURRENCY);
            if concurrency == 0 || concurrency > 100_000 {
                return Err(BenchError::invalid("--concurrency", "must be 1 to 100000"));
            }
            Ok(Load::Closed { concurrency })
        }
    }
}

fn open_load(f: &RunFields, rate: f64) -> Result<Load> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(BenchError::invalid(
            "--rate",
            "must be a positive number of requests per second",
        ));
    }
    // Enough connections to absorb normal jitter, not so many that
    // a slow server gets a flood of connects.
    let connections = f
        .connections
        .unwrap_or(((rate / 50.0).ceil() as usize).clamp(16, 256));
    if connections == 0 {
        return Err(BenchError::invalid("--connections", "must be at least 1"));
    }
    Ok(Load::Open {
        rate,
        arrival: f.arrival.unwrap_or(Arrival::Constant),
        connections,
    })
}

/// `Name: value` headers, and the API key as a bearer token.
fn resolve_headers(f: &RunFields) -> Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    for h in &f.headers {
        let (n, v) = h.split_once(':').ok_or_else(|| {
            BenchError::invalid(format!("--header {h:?}"), "expected 'Name: value'")
        })?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    if let Some(key) = &f.api_key {
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    Ok(headers)
}

/// Parses every assertion, objective and sweep now, so a typo fails before any load.
fn check_assertions_and_sweep(f: &RunFields) -> Result<()> {
    for a in f.asserts.iter().chain(&f.objective) {
        crate::assert::Assertion::parse(a)?;
    }
    if let Some(s) = &f.sweep {
        crate::sweep::SweepPlan::parse(s)?;
    }
    if f.sweep.is_some() && f.objective.is_empty() {
        return Err(BenchError::invalid(
            "--sweep",
            "needs an --objective such as 'p99<100ms' to find the highest load meeting it",
        ));
    }
    Ok(())
}

/// The measured duration; with only a request count, the count ends the run
/// (an hour at most).
fn resolve_duration(f: &RunFields) -> Result<Duration> {
    let default_duration = if f.requests.is_some() {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs(10)
    };
    let duration = duration_or(&f.duration, default_duration)?;
    if f.requests == Some(0) {
        return Err(BenchError::invalid("--requests", "must be at least 1"));
    }
    if duration.is_zero() && f.requests.is_none() {
        return Err(BenchError::invalid("--duration", "must be above zero"));
    }
    Ok(duration)
}

/// A seed from the clock, different for each run of a scenario.
fn time_seed(index: usize) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        .wrapping_add(index as u64)
}

fn default_name(load: &Load, workload: &WorkloadSpec) -> String {
    let load_part = match load {
        Load::Closed { concurrency } => format!("c={concurrency}"),
        Load::Open { rate, .. } => format!("rate={rate}"),
    };
    format!("{} {load_part}", workload.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_prefers_the_upper_layer_and_replaces_the_load_whole() {
        let base = RunFields {
            url: Some("http://a".into()),
            concurrency: Some(4),
            asserts: vec!["p99<1s".into()],
            ..Default::default()
        };
        let over = RunFields {
            rate: Some(10.0),
            asserts: vec!["errors<1%".into()],
            ..Default::default()
        };
        let m = base.overlay(&over);
        assert_eq!(m.url.as_deref(), Some("http://a"));
        assert_eq!((m.concurrency, m.rate), (None, Some(10.0)));
        assert_eq!(m.asserts.len(), 2);
    }

    #[test]
    fn resolve_checks_everything_up_front() {
        let ok = RunFields {
            url: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        };
        let spec = RunSpec::resolve(&ok, 0).expect("resolves");
        assert_eq!(
            spec.load,
            Load::Closed {
                concurrency: DEFAULT_CONCURRENCY
            }
        );
        assert_eq!(spec.name, "unique c=8");
        let bad = [
            RunFields {
                url: None,
                ..ok.clone()
            },
            RunFields {
                rate: Some(-1.0),
                ..ok.clone()
            },
            RunFields {
                concurrency: Some(0),
                ..ok.clone()
            },
            RunFields {
                duration: Some("soon".into()),
                ..ok.clone()
            },
            RunFields {
                headers: vec!["no colon".into()],
                ..ok.clone()
            },
            RunFields {
                asserts: vec!["p99 50ms".into()],
                ..ok.clone()
            },
            RunFields {
                workload: Some(vec!["batch:0".into()]),
                ..ok.clone()
            },
            RunFields {
                sweep: Some("speed=1,2".into()),
                objective: vec!["p99<1s".into()],
                ..ok.clone()
            },
            RunFields {
                sweep: Some("rate=1,2".into()),
                ..ok.clone()
            },
            RunFields {
                requests: Some(0),
                ..ok.clone()
            },
        ];
        for f in bad {
            assert!(RunSpec::resolve(&f, 0).is_err(), "{f:?} should be refused");
        }
    }

    #[test]
    fn file_parts_are_rebased_on_the_scenario_folder() {
        assert_eq!(
            rebase_files("file:t.txt+batch:2@3,unique", Path::new("/s")),
            "file:/s/t.txt+batch:2@3,unique"
        );
    }
}
