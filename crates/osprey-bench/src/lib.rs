//! `osprey bench`: a load generator for embedding servers that speak `/embed`
//! (text-embeddings-inference) or `/v1/embeddings` (OpenAI). Closed and open
//! loop, sweeps, workloads from unique texts to Zipf-repeated mixes, SLA
//! assertions for CI, and JSON, text and HTML reports.
//!
//! It is a client only: it depends on none of Osprey's server crates, so it
//! measures Osprey and its rivals the same way.

#![forbid(unsafe_code)]

pub mod assert;
pub mod cli;
pub mod client;
pub mod compare;
pub mod corpus;
pub mod error;
pub mod load;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod scenario;
pub mod spec;
pub mod sweep;
pub mod target;
pub mod units;
pub mod workload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

pub use error::{BenchError, Result};

use crate::cli::BenchArgs;
use crate::report::{BenchReport, FORMAT, RunReport};
use crate::spec::RunSpec;

/// How a benchmark ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every run finished and every assertion held.
    Passed,
    /// Some assertions failed (how many).
    AssertionsFailed(usize),
}

impl Outcome {
    /// 0 when everything held, 3 when an assertion failed (1 is left for errors,
    /// 2 for bad flags).
    pub fn exit_code(self) -> std::process::ExitCode {
        match self {
            Self::Passed => std::process::ExitCode::SUCCESS,
            Self::AssertionsFailed(_) => std::process::ExitCode::from(3),
        }
    }
}

/// Runs `osprey bench` as the flags say: prints the results, writes the
/// reports, and tells whether the assertions held.
pub fn run(args: BenchArgs) -> Result<Outcome> {
    if let [a, b] = args.compare.as_slice() {
        let ra = report::json::read(a)?;
        let rb = report::json::read(b)?;
        print!("{}", compare::render(&ra, &rb));
        return Ok(Outcome::Passed);
    }
    let report = measure(&args)?;
    if report.runs.len() > 1 {
        println!("{}", report::table::markdown(&report));
    }
    if let Some(path) = &args.json {
        report::json::write(path, &report)?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, report::html::render(&report)).map_err(|e| BenchError::io(path, e))?;
    }
    Ok(match report.assertions_failed() {
        0 => Outcome::Passed,
        n => {
            eprintln!("{n} assertion(s) failed");
            Outcome::AssertionsFailed(n)
        }
    })
}

/// Runs every run the flags (or the scenario file) describe and collects the report.
pub fn measure(args: &BenchArgs) -> Result<BenchReport> {
    let (label, fields) = match &args.scenario {
        Some(path) => {
            let sc = scenario::Scenario::load(path)?;
            let label = args.label.clone().or(sc.label.clone());
            (label, sc.runs(&args.scenario_overrides()))
        }
        None => (args.label.clone(), vec![args.fields()]),
    };
    // Check every run before sending anything.
    let specs: Vec<RunSpec> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| RunSpec::resolve(f, i))
        .collect::<Result<_>>()?;
    let label = label.unwrap_or_else(|| specs.first().map(|s| s.url.clone()).unwrap_or_default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        // Ctrl-C stops the load and still reports what was measured; a second
        // one quits at once.
        let watcher = tokio::task::spawn_local(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing the requests in flight (Ctrl-C again to quit)");
                load::interrupt();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let report = execute(specs, label, args.quiet).await;
        watcher.abort();
        report
    })
}

async fn execute(specs: Vec<RunSpec>, label: String, quiet: bool) -> Result<BenchReport> {
    let started_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut corpora: HashMap<Option<PathBuf>, Rc<Vec<String>>> = HashMap::new();
    let mut runs = Vec::new();
    let mut sweeps = Vec::new();
    for spec in specs {
        if load::interrupted() {
            break;
        }
        let corpus = match corpora.get(&spec.corpus) {
            Some(c) => c.clone(),
            None => {
                let c = Rc::new(match &spec.corpus {
                    Some(path) => corpus::load(path)?,
                    None => corpus::builtin(),
                });
                corpora.insert(spec.corpus.clone(), c.clone());
                c
            }
        };
        let target = target::resolve(&spec).await?;
        match &spec.sweep {
            None => {
                let mut r = one_run(&spec, &target, &corpus, quiet).await?;
                r.assertions = assert::check_all(&r, &spec.asserts)?;
                print!("{}", report::table::run_block(&r));
                println!();
                runs.push(r);
            }
            Some(sweep) => {
                let plan = sweep::SweepPlan::parse(sweep)?;
                let mut steps: Vec<(f64, RunReport)> = Vec::new();
                for &level in &plan.levels {
                    let step = plan.step_spec(&spec, level);
                    let mut r = one_run(&step, &target, &corpus, quiet).await?;
                    r.objective = assert::check_all(&r, &spec.objective)?;
                    let met = r.objective.iter().all(|a| a.passed);
                    print!("{}", report::table::run_block(&r));
                    println!();
                    steps.push((level, r));
                    if !met || load::interrupted() {
                        break;
                    }
                }
                let refs: Vec<(f64, &RunReport)> = steps.iter().map(|(l, r)| (*l, r)).collect();
                let summary = sweep::summarize(&spec.name, &plan, &spec.objective, &refs);
                print!("{}", report::table::sweep_block(&summary));
                println!();
                // --assert applies to the best level; with none, it fails.
                if !spec.asserts.is_empty() {
                    match steps
                        .iter_mut()
                        .take_while(|(_, r)| r.objective.iter().all(|a| a.passed))
                        .last()
                    {
                        Some((_, best)) => {
                            best.assertions = assert::check_all(best, &spec.asserts)?
                        }
                        None => {
                            if let Some((_, first)) = steps.first_mut() {
                                first.assertions = vec![report::AssertionResult {
                                    expr: format!(
                                        "a level of {} meeting the objective",
                                        plan.axis_name()
                                    ),
                                    actual: "none".into(),
                                    passed: false,
                                }];
                            }
                        }
                    }
                }
                runs.extend(steps.into_iter().map(|(_, r)| r));
                sweeps.push(summary);
            }
        }
    }
    Ok(BenchReport {
        format: FORMAT.into(),
        label,
        started_unix_s,
        runs,
        sweeps,
    })
}

async fn one_run(
    spec: &RunSpec,
    target: &target::Target,
    corpus: &[String],
    quiet: bool,
) -> Result<RunReport> {
    let workload = workload::Workload::new(
        &spec.workload,
        corpus,
        target.api,
        spec.model.as_deref(),
        spec.seed,
    )?;
    let progress = progress::Progress::new(!quiet, &spec.name);
    Ok(load::run(spec, target, workload, &progress).await)
}
