//! `osprey bench` flags. Every flag also reads an `OSPREY_BENCH__*` variable.

use std::path::PathBuf;

use clap::Args;

use crate::spec::{Arrival, RunFields};
use crate::target::ApiChoice;

#[derive(Args, Clone, Debug, Default)]
#[command(after_help = "\
Workloads: unique (every text a cache miss), zipf[:N[:S]] (N texts, Zipf exponent S), \
batch:K (K texts per request), file:PATH (one text per line, or .jsonl), gen:MEAN[:SD] or \
gen:MIN-MAX (generated texts of that many words); combine with '+' (zipf:1000+batch:8), \
mix with ',' and weight with '@' (unique@9,batch:32@1).

Assertions: p50 p90 p95 p99 p99.9 max mean < or > a latency (50ms, 1s), errors < a rate \
(0.1%) or a count (errors=0), rps or items_per_s > a rate. A failed assertion exits with 3.

Examples:
  osprey bench --url http://127.0.0.1:8080 -c 64 -d 20s --assert 'p99<500ms'
  osprey bench --url http://127.0.0.1:8080 --rate 200 --arrival poisson --html report.html
  osprey bench --url http://127.0.0.1:8080 --sweep concurrency=1..64 --objective 'p99<200ms'
  osprey bench --scenario bench/scenarios/embed.toml --json osprey.json
  osprey bench --compare baseline.json osprey.json")]
pub struct BenchArgs {
    /// Server to load, http only: http://HOST:PORT, optionally ending in /embed or
    /// /v1/embeddings to pick the API.
    #[arg(long, env = "OSPREY_BENCH__URL", value_name = "URL")]
    pub url: Option<String>,
    /// Request shape: tei (/embed), openai (/v1/embeddings), or auto (probe).
    #[arg(long, env = "OSPREY_BENCH__API", value_enum, value_name = "API")]
    pub api: Option<ApiChoice>,
    /// Closed loop: this many connections, each sending its next request when the
    /// last one answers [default: 8].
    #[arg(
        long,
        short = 'c',
        env = "OSPREY_BENCH__CONCURRENCY",
        value_name = "N",
        conflicts_with = "rate"
    )]
    pub concurrency: Option<usize>,
    /// Open loop: this many requests per second whatever the server does; latency
    /// counts from each request's due time.
    #[arg(long, short = 'r', env = "OSPREY_BENCH__RATE", value_name = "PER_S")]
    pub rate: Option<f64>,
    /// Open loop arrivals: constant spacing or poisson.
    #[arg(long, env = "OSPREY_BENCH__ARRIVAL", value_enum, value_name = "KIND")]
    pub arrival: Option<Arrival>,
    /// Open loop: connections to send on [default: rate/50, 16 to 256].
    #[arg(long, env = "OSPREY_BENCH__CONNECTIONS", value_name = "N")]
    pub connections: Option<usize>,
    /// Measured time, after the warm-up (500ms, 30s, 2m) [default: 10s].
    #[arg(long, short = 'd', env = "OSPREY_BENCH__DURATION", value_name = "TIME")]
    pub duration: Option<String>,
    /// Stop after this many measured requests.
    #[arg(long, short = 'n', env = "OSPREY_BENCH__REQUESTS", value_name = "N")]
    pub requests: Option<u64>,
    /// Load before measuring, not recorded [default: 0s].
    #[arg(long, env = "OSPREY_BENCH__WARMUP", value_name = "TIME")]
    pub warmup: Option<String>,
    /// What each request carries (see below) [default: unique].
    #[arg(long, short = 'w', env = "OSPREY_BENCH__WORKLOAD", value_name = "SPEC")]
    pub workload: Vec<String>,
    /// Sentences for unique, zipf and batch texts, one per line or JSONL
    /// [default: 1,000 built-in sentences of 6 to 40 words].
    #[arg(long, env = "OSPREY_BENCH__CORPUS", value_name = "FILE")]
    pub corpus: Option<PathBuf>,
    /// Extra request header, 'Name: value' (repeatable).
    #[arg(
        long = "header",
        short = 'H',
        env = "OSPREY_BENCH__HEADER",
        value_name = "HEADER"
    )]
    pub headers: Vec<String>,
    /// Sent as 'Authorization: Bearer KEY'.
    #[arg(
        long,
        env = "OSPREY_BENCH__API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// Model name for the OpenAI API's "model" field.
    #[arg(long, env = "OSPREY_BENCH__MODEL", value_name = "NAME")]
    pub model: Option<String>,
    /// Per-request timeout; a request due longer ago than this in open loop is
    /// counted as a timeout without being sent [default: 30s].
    #[arg(long, env = "OSPREY_BENCH__TIMEOUT", value_name = "TIME")]
    pub timeout: Option<String>,
    /// Write the report as JSON.
    #[arg(long, env = "OSPREY_BENCH__JSON", value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report (latency over time, histogram).
    #[arg(long, env = "OSPREY_BENCH__HTML", value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// SLA assertion such as 'p99<50ms' or 'errors<0.1%' (repeatable); any failure
    /// exits with 3.
    #[arg(long = "assert", env = "OSPREY_BENCH__ASSERT", value_name = "EXPR")]
    pub asserts: Vec<String>,
    /// Print two JSON reports side by side with ratios B/A, and exit.
    #[arg(long, num_args = 2, value_names = ["A.json", "B.json"], conflicts_with_all = ["url", "scenario"])]
    pub compare: Vec<PathBuf>,
    /// Run every [[run]] of a TOML scenario file. --url and the flags for timing,
    /// headers and outputs override the file.
    #[arg(long, env = "OSPREY_BENCH__SCENARIO", value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Step the load and find the highest level meeting --objective:
    /// concurrency=1,2,4,8 or rate=50..800 (doubling).
    #[arg(long, env = "OSPREY_BENCH__SWEEP", value_name = "AXIS=LEVELS")]
    pub sweep: Option<String>,
    /// Objective for --sweep, same syntax as --assert (repeatable).
    #[arg(long, env = "OSPREY_BENCH__OBJECTIVE", value_name = "EXPR")]
    pub objective: Vec<String>,
    /// Name of what is measured, for reports and --compare (e.g. "python baseline").
    #[arg(long, env = "OSPREY_BENCH__LABEL", value_name = "TEXT")]
    pub label: Option<String>,
    /// Server process id: report its CPU and resident memory (Linux).
    #[arg(long, env = "OSPREY_BENCH__PID", value_name = "PID")]
    pub pid: Option<u32>,
    /// Seed for the random choices (texts, Zipf ranks, Poisson gaps).
    #[arg(long, env = "OSPREY_BENCH__SEED", value_name = "N")]
    pub seed: Option<u64>,
    /// No progress line.
    #[arg(long, short = 'q', env = "OSPREY_BENCH__QUIET")]
    pub quiet: bool,
}

impl BenchArgs {
    /// The run settings the flags give (unset ones stay unset).
    pub fn fields(&self) -> RunFields {
        RunFields {
            name: None,
            url: self.url.clone(),
            api: self.api,
            concurrency: self.concurrency,
            rate: self.rate,
            arrival: self.arrival,
            connections: self.connections,
            duration: self.duration.clone(),
            requests: self.requests,
            warmup: self.warmup.clone(),
            workload: (!self.workload.is_empty()).then(|| self.workload.clone()),
            corpus: self.corpus.clone(),
            headers: self.headers.clone(),
            api_key: self.api_key.clone(),
            model: self.model.clone(),
            timeout: self.timeout.clone(),
            asserts: self.asserts.clone(),
            sweep: self.sweep.clone(),
            objective: self.objective.clone(),
            pid: self.pid,
            seed: self.seed,
        }
    }

    /// The flags that may override a scenario file: the target, timing,
    /// headers and assertions, but not the load levels and workloads that
    /// make up the suite.
    pub fn scenario_overrides(&self) -> RunFields {
        RunFields {
            concurrency: None,
            rate: None,
            arrival: None,
            connections: None,
            workload: None,
            sweep: None,
            ..self.fields()
        }
    }
}
