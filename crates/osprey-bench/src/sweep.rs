//! Sweeps: run the same workload at rising load levels (concurrency or rate)
//! and find the highest one that meets the objective, stopping at the first
//! level that misses it.

use crate::error::{BenchError, Result};
use crate::report::{RunReport, SweepStep, SweepSummary};
use crate::spec::{Arrival, DEFAULT_CONCURRENCY, Load, RunSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Concurrency,
    Rate,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    pub axis: Axis,
    pub levels: Vec<f64>,
}

impl SweepPlan {
    /// `concurrency=1,2,4,8`, `rate=100,200`, or `A..B` doubling from A up to B.
    pub fn parse(text: &str) -> Result<Self> {
        let err = |m: &str| BenchError::invalid(format!("--sweep {text:?}"), m.to_string());
        let (axis, levels) = text
            .split_once('=')
            .ok_or_else(|| err("expected concurrency=LEVELS or rate=LEVELS"))?;
        let axis = match axis.trim() {
            "concurrency" | "c" => Axis::Concurrency,
            "rate" | "r" => Axis::Rate,
            _ => return Err(err("the axis is concurrency or rate")),
        };
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| err("levels are positive numbers"))
        };
        let levels: Vec<f64> = if let Some((a, b)) = levels.split_once("..") {
            let (mut v, end) = (num(a)?, num(b)?);
            if end < v {
                return Err(err("a range goes up: A..B with A ≤ B"));
            }
            let mut out = Vec::new();
            while v <= end && out.len() < 64 {
                out.push(v);
                v *= 2.0;
            }
            if out.last().is_some_and(|l| *l < end) {
                out.push(end);
            }
            out
        } else {
            levels.split(',').map(num).collect::<Result<_>>()?
        };
        if levels.is_empty() || levels.windows(2).any(|w| w[1] <= w[0]) {
            return Err(err("levels must rise"));
        }
        if axis == Axis::Concurrency && levels.iter().any(|l| l.fract() != 0.0) {
            return Err(err("concurrency levels are whole numbers"));
        }
        Ok(Self { axis, levels })
    }

    /// The run spec of one step.
    pub fn step_spec(&self, base: &RunSpec, level: f64) -> RunSpec {
        let mut spec = base.clone();
        match self.axis {
            Axis::Concurrency => {
                spec.load = Load::Closed {
                    concurrency: level as usize,
                };
                spec.name = format!("{} c={}", base.name, level as usize);
            }
            Axis::Rate => {
                let (arrival, connections) = match base.load {
                    Load::Open {
                        arrival,
                        connections,
                        ..
                    } => (arrival, connections),
                    Load::Closed { concurrency } => {
                        (Arrival::Constant, concurrency.max(DEFAULT_CONCURRENCY))
                    }
                };
                // Enough connections for the rate, as for a plain open-loop run.
                let connections = connections.max(((level / 50.0).ceil() as usize).clamp(16, 256));
                spec.load = Load::Open {
                    rate: level,
                    arrival,
                    connections,
                };
                spec.name = format!("{} rate={level}", base.name);
            }
        }
        spec
    }

    pub fn axis_name(&self) -> &'static str {
        match self.axis {
            Axis::Concurrency => "concurrency",
            Axis::Rate => "rate",
        }
    }
}

/// Builds the summary once the steps have run (each with its objective checked
/// into `assertions`).
pub fn summarize(
    name: &str,
    plan: &SweepPlan,
    objective: &[String],
    runs: &[(f64, &RunReport)],
) -> SweepSummary {
    let steps: Vec<SweepStep> = runs
        .iter()
        .map(|(level, r)| SweepStep {
            load: *level,
            run: r.name.clone(),
            passed: r.objective.iter().all(|a| a.passed),
            requests_per_s: r.requests_per_s,
            p99_ms: r.latency_ms.p99,
        })
        .collect();
    let best = steps.iter().take_while(|s| s.passed).last().map(|s| s.load);
    SweepSummary {
        name: name.to_string(),
        axis: plan.axis_name().into(),
        objective: objective.to_vec(),
        steps,
        best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse() {
        let p = SweepPlan::parse("concurrency=1..64").expect("parses");
        assert_eq!(p.levels, vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        let p = SweepPlan::parse("rate=100..500").expect("parses");
        assert_eq!(p.levels, vec![100.0, 200.0, 400.0, 500.0]);
        let p = SweepPlan::parse("rate=5,10,20").expect("parses");
        assert_eq!((p.axis, p.levels.len()), (Axis::Rate, 3));
        for bad in [
            "",
            "c",
            "speed=1,2",
            "c=4,2",
            "c=1.5",
            "rate=0..10",
            "rate=9..3",
            "c=a,b",
        ] {
            assert!(SweepPlan::parse(bad).is_err(), "{bad}");
        }
    }
}
