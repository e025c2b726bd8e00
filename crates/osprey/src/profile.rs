//! Optimization profiles: named presets of threads, replicas, batching and
//! weights. A preset sits between the defaults and the configuration file, so any
//! setting written out in the file, the environment or a flag still wins.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The defaults: all cores for a lone request, concurrent batches when busy.
    #[default]
    Balanced,
    /// Small batches, so no request waits behind a large one.
    Latency,
    /// One single-threaded replica per core and large batches: most inputs per
    /// second under sustained load, at the cost of a lone request's latency.
    Throughput,
    /// One replica without repacked weights, smaller batches whose activations
    /// go back to the system, and a small memory tier.
    Memory,
    /// int8 weights (dynamic quantization, per channel), accuracy against fp32
    /// measured at start-up; otherwise as `balanced`.
    Speed,
}

impl Profile {
    pub const ALL: [Profile; 5] = [
        Self::Balanced,
        Self::Latency,
        Self::Throughput,
        Self::Memory,
        Self::Speed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Balanced => "balanced",
            Self::Latency => "latency",
            Self::Throughput => "throughput",
            Self::Memory => "memory",
            Self::Speed => "speed",
        }
    }

    /// The settings this profile changes, as a TOML document.
    pub fn preset(self) -> String {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match self {
            Self::Balanced => String::new(),
            Self::Latency => "[batching]\nmax_batch_requests = 8\nmax_batch_tokens = 1024\n".into(),
            Self::Throughput => format!(
                "[batching]\nthread_pool = \"replica\"\nthreads = 1\nreplicas = {cores}\n\
                 max_batch_requests = 64\nmax_batch_tokens = 8192\n"
            ),
            Self::Memory => "[model]\nlow_memory = true\nonnx_prepack = false\n\
                 [batching]\nreplicas = 1\nmax_batch_tokens = 2048\n\
                 [cache.memory]\nmax_bytes = 16777216\n"
                .into(),
            Self::Speed => "[model]\nprecision = \"int8\"\n".into(),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown profile `{s}` ({})", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Profile;

    #[test]
    fn every_preset_is_valid_toml_and_names_parse_back() {
        for p in Profile::ALL {
            toml::from_str::<toml::Table>(&p.preset()).expect("preset parses");
            assert_eq!(p.as_str().parse::<Profile>(), Ok(p));
        }
        assert!("fast".parse::<Profile>().is_err());
    }
}
