//! The stage timings of one embedding request and its `Server-Timing` header.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderValue;

use osprey_observe::{STAGES, Stage};

/// What a handler learned that the request middleware reports: the stage timings
/// (when timing is on) and how many inputs the request held. Travels back in the
/// response's extensions; a fixed array, so timing a request allocates nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub enabled: bool,
    pub items: usize,
    nanos: [u64; STAGES.len()],
    timed: bool,
    /// `Server-Timing` leaves out the stages that tell a cache hit from a miss.
    concealed: bool,
}

impl Timing {
    pub fn new(enabled: bool, items: usize) -> Self {
        Self {
            enabled,
            items,
            ..Self::default()
        }
    }

    pub fn set(&mut self, stage: Stage, d: Duration) {
        if self.enabled {
            self.nanos[stage as usize] = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            self.timed = true;
        }
    }

    /// Keeps the cache's part out of `Server-Timing` (`telemetry.expose_cache_status
    /// = false`): the lookup's length tells which tier answered, and tokenizing,
    /// queueing and inference are zero on a hit. Only validation and serialization,
    /// which a hit does not change, are sent. The stages are still recorded.
    pub fn conceal_cache(&mut self) {
        self.concealed = true;
    }

    /// Nanoseconds per stage, in [`STAGES`] order, once any stage was timed.
    pub fn stages(&self) -> Option<&[u64; STAGES.len()]> {
        self.timed.then_some(&self.nanos)
    }

    /// `Server-Timing` with every stage in milliseconds to the microsecond
    /// (`validate;dur=0.012, cache;dur=0.031, ...`). Written into one buffer that
    /// becomes the header without a copy: formatting machinery and a second
    /// allocation were a visible share of a cache hit.
    pub fn header(&self) -> Option<HeaderValue> {
        let nanos = self.stages()?;
        let mut out = Vec::with_capacity(STAGES.len() * 28);
        let sent = STAGES
            .iter()
            .zip(nanos)
            .enumerate()
            .filter(|(at, _)| !self.concealed || !reveals_cache(*at))
            .map(|(_, stage)| stage);
        for (i, (name, ns)) in sent.enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b";dur=");
            let us = ns.saturating_add(500) / 1000;
            out.extend_from_slice(itoa::Buffer::new().format(us / 1000).as_bytes());
            out.push(b'.');
            let frac = us % 1000;
            out.extend_from_slice(&[
                b'0' + (frac / 100) as u8,
                b'0' + (frac / 10 % 10) as u8,
                b'0' + (frac % 10) as u8,
            ]);
        }
        HeaderValue::from_maybe_shared(Bytes::from(out)).ok()
    }
}

/// Whether the stage at this place of [`STAGES`] takes a different time on a
/// cache hit than on a miss.
fn reveals_cache(at: usize) -> bool {
    at != Stage::Validate as usize && at != Stage::Serialize as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_every_stage_in_milliseconds() {
        let mut t = Timing::new(true, 1);
        t.set(Stage::Validate, Duration::from_nanos(12_400));
        t.set(Stage::Cache, Duration::from_nanos(1_500));
        t.set(Stage::Inference, Duration::from_micros(12_345_678));
        t.set(Stage::Serialize, Duration::from_millis(7));
        let h = t.header().expect("a header");
        assert_eq!(
            h.to_str().ok(),
            Some(
                "validate;dur=0.012, cache;dur=0.002, tokenize;dur=0.000, queue;dur=0.000, \
                 inference;dur=12345.678, postprocess;dur=0.000, serialize;dur=7.000"
            )
        );
    }

    #[test]
    fn concealed_leaves_out_every_stage_a_hit_changes() {
        let mut t = Timing::new(true, 1);
        t.set(Stage::Validate, Duration::from_nanos(12_400));
        t.set(Stage::Cache, Duration::from_nanos(1_500));
        t.set(Stage::Inference, Duration::from_millis(3));
        t.set(Stage::Serialize, Duration::from_millis(7));
        t.conceal_cache();
        let h = t.header().expect("a header");
        assert_eq!(
            h.to_str().ok(),
            Some("validate;dur=0.012, serialize;dur=7.000")
        );
        assert!(t.stages().is_some(), "still recorded");
    }

    #[test]
    fn off_or_untimed_has_no_header() {
        let mut off = Timing::new(false, 1);
        off.set(Stage::Cache, Duration::from_millis(1));
        assert!(off.header().is_none() && off.stages().is_none());
        assert!(Timing::new(true, 1).header().is_none());
    }
}
