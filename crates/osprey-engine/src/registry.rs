//! The model repository: every served model by name and version, how a request's
//! `model` field finds one, and how traffic is split among the versions of a name.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use osprey_generate::Generator;
use osprey_models::Task;

use crate::{Pipeline, TensorEngine};

/// The engine behind a served model.
pub enum Backing {
    /// Text models (embed, classify, rerank) behind their cache pipeline.
    Text(Arc<Pipeline>),
    Tensor(Arc<TensorEngine>),
    /// Generation models (GGUF) and their decode loop.
    Generate(Arc<Generator>),
}

/// One served model: a name and version, its task, and the engine behind it.
pub struct Served {
    pub name: String,
    pub version: String,
    /// Weight among the versions of the same name; `None` when not configured.
    pub traffic: Option<f64>,
    pub backing: Backing,
    /// `name@version`, what responses name in `x-osprey-model`.
    pub label: String,
    /// When it started serving, in seconds since the Unix epoch.
    pub created: u64,
    /// Requests answered and items computed or served, for per-model metrics.
    pub requests: AtomicU64,
    pub items: AtomicU64,
}

impl Served {
    /// A text model.
    pub fn new(
        name: String,
        version: String,
        traffic: Option<f64>,
        pipeline: Arc<Pipeline>,
    ) -> Self {
        Self::with_backing(name, version, traffic, Backing::Text(pipeline))
    }

    pub fn with_backing(
        name: String,
        version: String,
        traffic: Option<f64>,
        backing: Backing,
    ) -> Self {
        Self {
            label: format!("{name}@{version}"),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            name,
            version,
            traffic,
            backing,
            requests: AtomicU64::new(0),
            items: AtomicU64::new(0),
        }
    }

    /// Counts one answered request of `items` items.
    pub fn answered(&self, items: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items as u64, Ordering::Relaxed);
    }

    pub fn task(&self) -> Task {
        match &self.backing {
            Backing::Text(p) => p.info().task,
            Backing::Tensor(_) => Task::Tensor,
            Backing::Generate(_) => Task::Generate,
        }
    }

    /// The text pipeline; an error for a tensor model.
    pub fn pipeline(&self) -> Result<&Arc<Pipeline>, ResolveError> {
        match &self.backing {
            Backing::Text(p) => Ok(p),
            Backing::Tensor(_) => Err(ResolveError::NotText(self.name.clone())),
            Backing::Generate(_) => Err(ResolveError::WrongTask {
                name: self.name.clone(),
                task: Task::Generate,
                wanted: Task::Embed,
            }),
        }
    }

    /// The generation engine; an error for any other model.
    pub fn generator(&self) -> Result<&Arc<Generator>, ResolveError> {
        match &self.backing {
            Backing::Generate(g) => Ok(g),
            _ => Err(ResolveError::WrongTask {
                name: self.name.clone(),
                task: self.task(),
                wanted: Task::Generate,
            }),
        }
    }

    /// Stops taking work, lets the replicas finish, and joins them. Blocking.
    pub fn shutdown(&self) {
        match &self.backing {
            Backing::Text(p) => p.engine().shutdown(),
            Backing::Tensor(t) => t.shutdown(),
            Backing::Generate(g) => g.shutdown(),
        }
    }
}

/// Why a request's `model` found no model to serve it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("model `{0}` is not served here; GET /v1/models lists the models")]
    Unknown(String),
    #[error("model `{name}` is a {task} model; this route needs a {wanted} model")]
    WrongTask {
        name: String,
        task: Task,
        wanted: Task,
    },
    #[error("no {0} model is served here; GET /v1/models lists the models")]
    NoModel(Task),
    /// A model still loading: by name, or the one model when the name is empty.
    #[error("{}", loading(.0))]
    Loading(String),
    #[error(
        "model `{0}` is a tensor model; it takes KServe v2 requests (POST /v2/models/{0}/infer)"
    )]
    NotText(String),
}

/// Every model served, in the order it was configured or added.
#[derive(Default)]
pub struct Registry {
    models: RwLock<Arc<Vec<Arc<Served>>>>,
    /// Names configured but not loaded yet: asked for, they answer 503, not 404.
    loading: RwLock<HashSet<String>>,
    /// Spreads requests without an A/B key over versions by weight.
    spread: AtomicU64,
}

impl Registry {
    /// The models now, as one consistent list.
    pub fn all(&self) -> Arc<Vec<Arc<Served>>> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Adds a model; `Err` with the model back when its name@version is taken.
    pub fn add(&self, served: Served) -> Result<(), Box<Served>> {
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        if models.iter().any(|m| m.label == served.label) {
            return Err(Box::new(served));
        }
        let mut next = Vec::clone(&models);
        next.push(Arc::new(served));
        *models = Arc::new(next);
        drop(models);
        self.loaded(None);
        Ok(())
    }

    /// Puts `served` in the place of the model with its name@version (a reload);
    /// returns the old one, or `None` (and adds nothing) when there was none.
    pub fn replace(&self, served: Served) -> Option<Arc<Served>> {
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        let at = models.iter().position(|m| m.label == served.label)?;
        let mut next = Vec::clone(&models);
        let old = std::mem::replace(&mut next[at], Arc::new(served));
        *models = Arc::new(next);
        Some(old)
    }

    /// Stops routing to the models `name` or `name@version` names; returns them.
    pub fn remove(&self, name: &str) -> Vec<Arc<Served>> {
        let mut models = self.models.write().unwrap_or_else(|p| p.into_inner());
        let (gone, kept): (Vec<_>, Vec<_>) = models.iter().cloned().partition(|m| names(m, name));
        if !gone.is_empty() {
            *models = Arc::new(kept);
        }
        gone
    }

    /// Marks a configured name as loading (answering 503) until added or `loaded`.
    pub fn loading(&self, name: &str) {
        self.loading
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned());
    }

    /// Names configured and still loading, sorted.
    pub fn still_loading(&self) -> Vec<String> {
        let loading = self.loading.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = loading.iter().cloned().collect();
        names.sort();
        names
    }

    /// Clears loading marks: `name`'s, or with `None` every mark of a name served.
    pub fn loaded(&self, name: Option<&str>) {
        let mut loading = self.loading.write().unwrap_or_else(|p| p.into_inner());
        match name {
            Some(n) => {
                loading.remove(n);
            }
            None => {
                let models = self.all();
                loading.retain(|n| !models.iter().any(|m| &m.name == n));
            }
        }
    }

    /// The model a request asked for (`name` or `name@version`), or the first
    /// model of `task` when it named none. A name with several versions picks one
    /// by their traffic weights: by `ab_key` when given (the same key always gets
    /// the same version), else spread evenly over requests.
    pub fn resolve(
        &self,
        asked: Option<&str>,
        task: Task,
        ab_key: Option<&str>,
    ) -> Result<Arc<Served>, ResolveError> {
        let models = self.all();
        let chosen = match asked {
            Some(name) => self
                .choose(&models, |m| names(m, name), ab_key)
                .ok_or_else(|| self.missing(name))?,
            None => {
                let Some(first) = models.iter().find(|m| m.task() == task) else {
                    let loading = self.loading.read().unwrap_or_else(|p| p.into_inner());
                    return Err(match loading.iter().next() {
                        Some(name) => ResolveError::Loading(name.clone()),
                        None => ResolveError::NoModel(task),
                    });
                };
                self.choose(&models, |m| m.name == first.name, ab_key)
                    .ok_or(ResolveError::NoModel(task))?
            }
        };
        if chosen.task() != task {
            return Err(ResolveError::WrongTask {
                name: chosen.name.clone(),
                task: chosen.task(),
                wanted: task,
            });
        }
        Ok(chosen.clone())
    }

    /// The one model `name` or `name@version` names, whatever its task.
    pub fn get(&self, name: &str) -> Result<Arc<Served>, ResolveError> {
        let models = self.all();
        self.choose(&models, |m| names(m, name), None)
            .cloned()
            .ok_or_else(|| self.missing(name))
    }

    fn missing(&self, name: &str) -> ResolveError {
        let base = name.split_once('@').map_or(name, |(n, _)| n);
        let loading = self.loading.read().unwrap_or_else(|p| p.into_inner());
        if loading.contains(base) {
            ResolveError::Loading(name.to_owned())
        } else {
            ResolveError::Unknown(name.to_owned())
        }
    }

    /// One of the models `keep` selects (by traffic weight when several do), with
    /// no allocation for the usual single match; `None` when none does.
    fn choose<'a>(
        &self,
        models: &'a [Arc<Served>],
        keep: impl Fn(&Served) -> bool,
        ab_key: Option<&str>,
    ) -> Option<&'a Arc<Served>> {
        let mut found = models.iter().filter(|m| keep(m));
        let first = found.next()?;
        let Some(second) = found.next() else {
            return Some(first);
        };
        let all: Vec<&Arc<Served>> = [first, second].into_iter().chain(found).collect();
        self.pick(&all, ab_key)
    }

    /// One of `candidates` (never empty: callers refuse an empty list first).
    fn pick<'a>(
        &self,
        candidates: &[&'a Arc<Served>],
        ab_key: Option<&str>,
    ) -> Option<&'a Arc<Served>> {
        let last = *candidates.last()?;
        Some(self.weighted(candidates, ab_key).unwrap_or(last))
    }

    /// The version traffic weights choose; `None` when no weights are set.
    fn weighted<'a>(
        &self,
        candidates: &[&'a Arc<Served>],
        ab_key: Option<&str>,
    ) -> Option<&'a Arc<Served>> {
        if candidates.len() < 2 {
            return None;
        }
        let weights: Vec<f64> = if candidates.iter().any(|m| m.traffic.is_some()) {
            candidates
                .iter()
                .map(|m| m.traffic.unwrap_or(0.0).max(0.0))
                .collect()
        } else {
            // No weights configured: the newest version serves everything.
            return None;
        };
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let point = match ab_key {
            Some(key) => unit_of(blake3::hash(key.as_bytes()).as_bytes()),
            None => {
                // A low-discrepancy sequence: any run of requests splits close to
                // the weights, with no random source to seed.
                let n = self.spread.fetch_add(1, Ordering::Relaxed);
                (n as f64 * 0.618_033_988_749_894_9).fract()
            }
        } * total;
        let mut sum = 0.0;
        for (m, w) in candidates.iter().zip(&weights) {
            sum += w;
            if point < sum {
                return Some(m);
            }
        }
        None
    }
}

fn loading(name: &str) -> String {
    if name.is_empty() {
        "the model is still loading".into()
    } else {
        format!("model `{name}` is still loading")
    }
}

/// Whether `asked` (`name` or `name@version`) names `m`.
fn names(m: &Served, asked: &str) -> bool {
    match asked.split_once('@') {
        Some((name, version)) => m.name == name && m.version == version,
        None => m.name == asked,
    }
}

/// A hash's first 8 bytes as a number in [0, 1).
fn unit_of(hash: &[u8; 32]) -> f64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash[..8]);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}
