//! Scenario files: a benchmark suite in TOML, run with one command.
//!
//! ```toml
//! label = "osprey"             # optional: names the report
//! [defaults]                   # any run key, for every run
//! url = "http://127.0.0.1:8080"
//! duration = "20s"
//! corpus = "../sentences.txt"  # paths are relative to this file
//! [[run]]
//! name = "unique c=64"
//! workload = ["unique"]
//! concurrency = 64
//! assert = ["errors<0.1%"]
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::error::{BenchError, Result};
use crate::spec::RunFields;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub label: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub defaults: RunFields,
    #[serde(default)]
    pub run: Vec<RunFields>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut value: toml::Table = toml::from_str(text).map_err(|e| BenchError::Scenario {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        normalize_workloads(&mut value);
        let mut scenario: Scenario = value.try_into().map_err(|e| BenchError::Scenario {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        if scenario.run.is_empty() {
            return Err(BenchError::invalid(
                path.display().to_string(),
                "no [[run]] tables",
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        scenario.defaults.rebase(dir);
        for r in &mut scenario.run {
            r.rebase(dir);
        }
        Ok(scenario)
    }

    /// Each run's fields: defaults, then the run's table, then the overrides.
    pub fn runs(&self, overrides: &RunFields) -> Vec<RunFields> {
        self.run
            .iter()
            .map(|r| self.defaults.overlay(r).overlay(overrides))
            .collect()
    }
}

/// Turns `workload = "x"` into `workload = ["x"]` so both spellings work.
fn normalize_workloads(table: &mut toml::Table) {
    let fix = |t: &mut toml::Table| {
        if let Some(toml::Value::String(s)) = t.get("workload") {
            let one = toml::Value::Array(vec![toml::Value::String(s.clone())]);
            t.insert("workload".into(), one);
        }
    };
    if let Some(toml::Value::Table(d)) = table.get_mut("defaults") {
        fix(d);
    }
    if let Some(toml::Value::Array(runs)) = table.get_mut("run") {
        for r in runs {
            if let toml::Value::Table(t) = r {
                fix(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
label = "osprey"
[defaults]
url = "http://127.0.0.1:8080"
duration = "20s"
corpus = "sentences.txt"
assert = ["errors<1%"]

[[run]]
name = "one"
workload = "unique"
concurrency = 1

[[run]]
workload = ["batch:32", "file:texts.txt@2"]
rate = 5.0
arrival = "poisson"
assert = ["p99<5s"]
"#;

    #[test]
    fn scenarios_layer_defaults_runs_and_overrides() {
        let s = Scenario::parse(GOOD, Path::new("bench/scenarios/x.toml")).expect("parses");
        assert_eq!(s.label.as_deref(), Some("osprey"));
        let over = RunFields {
            url: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        let runs = s.runs(&over);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(runs[0].duration.as_deref(), Some("20s"));
        assert_eq!(runs[0].workload, Some(vec!["unique".to_string()]));
        assert_eq!(
            runs[0].corpus.as_deref(),
            Some(Path::new("bench/scenarios/sentences.txt"))
        );
        assert_eq!(runs[1].asserts, vec!["errors<1%", "p99<5s"]);
        assert_eq!((runs[1].concurrency, runs[1].rate), (None, Some(5.0)));
        assert_eq!(
            runs[1].workload.as_ref().map(|w| w[1].clone()),
            Some("file:bench/scenarios/texts.txt@2".to_string())
        );
    }

    #[test]
    fn mistakes_are_reported_with_the_file() {
        let p = Path::new("s.toml");
        let unknown = Scenario::parse("[[run]]\nconcurency = 4\n", p).expect_err("typo");
        assert!(unknown.to_string().contains("concurency"), "{unknown}");
        assert!(unknown.to_string().contains("s.toml"), "{unknown}");
        assert!(Scenario::parse("[[run]\n", p).is_err());
        assert!(Scenario::parse("label = \"x\"\n", p).is_err());
        assert!(Scenario::parse("[[run]]\nconcurrency = \"many\"\n", p).is_err());
    }
}
