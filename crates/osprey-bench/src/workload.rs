//! What each request carries: the workload spec (`unique`, `zipf:N[:S]`,
//! `batch:K`, `file:PATH`, `gen:MEAN[:SD]` or `gen:MIN-MAX`, combined with `+`,
//! mixed with `,` and weighted with `@W`) and the generator that turns it into
//! request bodies.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::rc::Rc;

use bytes::Bytes;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Normal, Zipf};

use crate::corpus;
use crate::error::{BenchError, Result};
use crate::target::Api;

/// Where the texts of one component come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// Corpus sentences with a unique suffix: every input a cache miss.
    Unique,
    /// A fixed set of `n` texts drawn with Zipf exponent `s`: a few are hot.
    Zipf { n: usize, s: f64 },
    /// Texts of a file in order, repeated when it runs out.
    File(PathBuf),
    /// Random words, length in words from a normal distribution.
    GenNormal { mean: f64, sd: f64 },
    /// Random words, length in words uniform in `min..=max`.
    GenUniform { min: usize, max: usize },
}

/// One weighted component of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    pub name: String,
    pub source: SourceSpec,
    pub batch: usize,
    pub weight: f64,
}

/// A parsed `--workload`: one component, or a weighted mix.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    pub components: Vec<ComponentSpec>,
}

impl WorkloadSpec {
    /// Parses one or more specs (each may itself be a `,`-separated mix).
    pub fn parse_all(specs: &[String]) -> Result<Self> {
        let mut components = Vec::new();
        for spec in specs {
            for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                components.push(parse_component(part)?);
            }
        }
        if components.is_empty() {
            components.push(parse_component("unique")?);
        }
        Ok(Self { components })
    }

    pub fn parse(spec: &str) -> Result<Self> {
        Self::parse_all(&[spec.to_string()])
    }

    /// The spec written back, for reports.
    pub fn describe(&self) -> String {
        if self.components.len() == 1 {
            return self.components[0].name.clone();
        }
        self.components
            .iter()
            .map(|c| format!("{}@{}", c.name, c.weight))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn parse_component(text: &str) -> Result<ComponentSpec> {
    let err = |m: String| BenchError::invalid(format!("--workload {text:?}"), m);
    let (body, weight) = match text.rsplit_once('@') {
        Some((b, w)) => {
            let w: f64 = w
                .trim()
                .parse()
                .map_err(|_| err(format!("weight {w:?} is not a number")))?;
            if !(w.is_finite() && w > 0.0) {
                return Err(err("weights must be positive".into()));
            }
            (b.trim(), w)
        }
        None => (text, 1.0),
    };
    let mut source = None;
    let mut batch = 1usize;
    for part in body.split('+').map(str::trim) {
        let (kind, arg) = match part.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (part, None),
        };
        let set = |s: SourceSpec, source: &mut Option<SourceSpec>| {
            if source.is_some() {
                return Err(err(
                    "one text source per component (unique, zipf, file or gen); mix with ','"
                        .into(),
                ));
            }
            *source = Some(s);
            Ok(())
        };
        match (kind, arg) {
            ("unique", None) => set(SourceSpec::Unique, &mut source)?,
            ("zipf", arg) => {
                let mut it = arg.unwrap_or("").split(':').filter(|s| !s.is_empty());
                let n = match it.next() {
                    Some(n) => n.parse().map_err(|_| err(format!("zipf set size {n:?}")))?,
                    None => 1000,
                };
                let s = match it.next() {
                    Some(s) => s.parse().map_err(|_| err(format!("zipf exponent {s:?}")))?,
                    None => 1.0,
                };
                if n == 0 || !(s > 0.0 && f64::is_finite(s)) {
                    return Err(err("zipf needs N ≥ 1 and an exponent > 0".into()));
                }
                set(SourceSpec::Zipf { n, s }, &mut source)?;
            }
            ("batch", Some(k)) => {
                batch = k.parse().map_err(|_| err(format!("batch size {k:?}")))?;
                if batch == 0 || batch > 100_000 {
                    return Err(err("batch size must be 1 to 100000".into()));
                }
            }
            ("file", Some(p)) if !p.is_empty() => {
                set(SourceSpec::File(PathBuf::from(p)), &mut source)?
            }
            ("gen", Some(a)) => {
                let spec = if let Some((lo, hi)) = a.split_once('-') {
                    let min: usize = lo.parse().map_err(|_| err(format!("gen length {lo:?}")))?;
                    let max: usize = hi.parse().map_err(|_| err(format!("gen length {hi:?}")))?;
                    if min == 0 || max < min {
                        return Err(err("gen:MIN-MAX needs 1 ≤ MIN ≤ MAX words".into()));
                    }
                    SourceSpec::GenUniform { min, max }
                } else {
                    let (m, sd) = a.split_once(':').unwrap_or((a, "0"));
                    let mean: f64 = m.parse().map_err(|_| err(format!("gen mean {m:?}")))?;
                    let sd: f64 = sd
                        .parse()
                        .map_err(|_| err(format!("gen deviation {sd:?}")))?;
                    if !(mean >= 1.0 && sd >= 0.0 && mean.is_finite() && sd.is_finite()) {
                        return Err(err("gen:MEAN[:SD] needs MEAN ≥ 1 word and SD ≥ 0".into()));
                    }
                    SourceSpec::GenNormal { mean, sd }
                };
                set(spec, &mut source)?;
            }
            _ => {
                return Err(err(format!(
                    "unknown part {part:?}; expected unique, zipf[:N[:S]], batch:K, file:PATH, gen:MEAN[:SD] or gen:MIN-MAX"
                )));
            }
        }
    }
    Ok(ComponentSpec {
        name: body.to_string(),
        source: source.unwrap_or(SourceSpec::Unique),
        batch,
        weight,
    })
}

/// The JSON around the list of texts, per API.
#[derive(Debug, Clone)]
struct BodyFormat {
    prefix: String,
    suffix: String,
}

impl BodyFormat {
    fn new(api: Api, model: Option<&str>) -> Self {
        match api {
            Api::Tei => Self {
                prefix: r#"{"inputs":["#.into(),
                suffix: r#"],"normalize":true}"#.into(),
            },
            Api::OpenAi => Self {
                prefix: r#"{"input":["#.into(),
                suffix: match model {
                    Some(m) => format!(r#"],"model":"{}"}}"#, corpus::json_escape(m)),
                    None => "]}".into(),
                },
            },
        }
    }
}

enum Source {
    Unique(Rc<[String]>),
    Zipf { texts: Vec<String>, dist: Zipf<f64> },
    File { texts: Rc<[String]>, pos: usize },
    GenNormal(Normal<f64>),
    GenUniform(usize, usize),
}

struct Component {
    source: Source,
    batch: usize,
}

/// One request body and how many texts it holds.
pub struct NextBody {
    pub body: Bytes,
    pub items: u32,
}

/// Turns a [`WorkloadSpec`] into request bodies. Texts are JSON-escaped once up
/// front, so a request costs one allocation and a few copies.
pub struct Workload {
    components: Vec<Component>,
    chooser: Option<WeightedIndex<f64>>,
    rng: SmallRng,
    format: BodyFormat,
    /// Distinguishes this run's unique texts from every earlier run's, so a
    /// server's cache never serves them.
    nonce: String,
    counter: u64,
}

impl Workload {
    pub fn new(
        spec: &WorkloadSpec,
        corpus_texts: &[String],
        api: Api,
        model: Option<&str>,
        seed: u64,
    ) -> Result<Self> {
        let escaped: Rc<[String]> = corpus_texts
            .iter()
            .map(|t| corpus::json_escape(t))
            .collect();
        if escaped.is_empty() {
            return Err(BenchError::invalid("corpus", "no texts"));
        }
        let mut components = Vec::new();
        for c in &spec.components {
            let source = match &c.source {
                SourceSpec::Unique => Source::Unique(escaped.clone()),
                SourceSpec::Zipf { n, s } => Source::Zipf {
                    texts: (0..*n)
                        .map(|i| format!("{} z{i}", escaped[i % escaped.len()]))
                        .collect(),
                    dist: Zipf::new(*n as f64, *s).map_err(|e| {
                        BenchError::invalid(format!("workload {:?}", c.name), e.to_string())
                    })?,
                },
                SourceSpec::File(path) => Source::File {
                    texts: corpus::load(path)?
                        .iter()
                        .map(|t| corpus::json_escape(t))
                        .collect(),
                    pos: 0,
                },
                SourceSpec::GenNormal { mean, sd } => {
                    Source::GenNormal(Normal::new(*mean, *sd).map_err(|e| {
                        BenchError::invalid(format!("workload {:?}", c.name), e.to_string())
                    })?)
                }
                SourceSpec::GenUniform { min, max } => Source::GenUniform(*min, *max),
            };
            components.push(Component {
                source,
                batch: c.batch,
            });
        }
        let chooser = if components.len() > 1 {
            let weights: Vec<f64> = spec.components.iter().map(|c| c.weight).collect();
            Some(
                WeightedIndex::new(weights)
                    .map_err(|e| BenchError::invalid("workload weights", e.to_string()))?,
            )
        } else {
            None
        };
        let mut rng = SmallRng::seed_from_u64(seed);
        let nonce = format!("{:08x}", rng.random::<u32>());
        Ok(Self {
            components,
            chooser,
            rng,
            format: BodyFormat::new(api, model),
            nonce,
            counter: 0,
        })
    }

    /// The next request body.
    pub fn next_body(&mut self) -> NextBody {
        let idx = match &self.chooser {
            Some(w) => w.sample(&mut self.rng),
            None => 0,
        };
        let Self {
            components,
            rng,
            format,
            nonce,
            counter,
            ..
        } = self;
        let Some(comp) = components.get_mut(idx) else {
            return NextBody {
                body: Bytes::new(),
                items: 0,
            };
        };
        let mut out =
            String::with_capacity(format.prefix.len() + format.suffix.len() + comp.batch * 200);
        out.push_str(&format.prefix);
        for i in 0..comp.batch {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            match &mut comp.source {
                Source::Unique(texts) => {
                    out.push_str(&texts[(*counter % texts.len() as u64) as usize]);
                    let _ = write!(out, " r{nonce}x{counter}");
                    *counter += 1;
                }
                Source::Zipf { texts, dist } => {
                    // Zipf samples ranks 1..=n; rank 1 is the hottest text.
                    let rank = dist.sample(rng) as usize;
                    let i = rank.clamp(1, texts.len()) - 1;
                    out.push_str(&texts[i]);
                }
                Source::File { texts, pos } => {
                    out.push_str(&texts[*pos % texts.len()]);
                    *pos = (*pos + 1) % texts.len();
                }
                Source::GenNormal(dist) => {
                    let n = dist.sample(rng).round().clamp(1.0, 4096.0) as usize;
                    push_words(&mut out, rng, n);
                    let _ = write!(out, " r{nonce}x{counter}");
                    *counter += 1;
                }
                Source::GenUniform(min, max) => {
                    let n = rng.random_range(*min..=*max);
                    push_words(&mut out, rng, n);
                    let _ = write!(out, " r{nonce}x{counter}");
                    *counter += 1;
                }
            }
            out.push('"');
        }
        out.push_str(&format.suffix);
        NextBody {
            body: Bytes::from(out),
            items: comp.batch as u32,
        }
    }
}

fn push_words(out: &mut String, rng: &mut SmallRng, n: usize) {
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(corpus::WORDS[rng.random_range(0..corpus::WORDS.len())]);
    }
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;
