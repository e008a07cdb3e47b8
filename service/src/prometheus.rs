//! The Prometheus text exposition of `GET /metrics` (api and lb), and the one latency
//! histogram both use, so their figures line up bucket for bucket.
//!
//! Plain atomics, updated with relaxed ordering: a scrape that is a few increments behind
//! is fine, and the hot paths must not pay for anything stronger; the format is simple
//! enough that a metrics crate would cost more than it saves.

use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of every latency histogram's buckets: from the lb's own answer
/// to a payment (tens of µs) to past the api's processor timeout's neighbourhood (10 s).
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// A latency histogram with the [`LATENCY_BUCKETS`] layout.
#[derive(Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last one is +Inf.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[bucket].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
    }
}

/// The type line of a metric family.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A text exposition being written: families (`# HELP`, `# TYPE`), then their samples.
#[derive(Default)]
pub struct Exposition(String);

impl Exposition {
    /// Starts a family; its samples follow with [`Exposition::sample`] or
    /// [`Exposition::histogram`].
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = kind.name();
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample: `name{labels} value`.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> &mut Self {
        let _ = writeln!(self.0, "{name}{} {value}", label_set(labels, None));
        self
    }

    /// A family of one unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        self.family(name, Kind::Counter, help)
            .sample(name, &[], value)
    }

    /// A family of one unlabelled counter each: (name, help, counter).
    pub fn counters(&mut self, counters: &[(&str, &str, &AtomicU64)]) -> &mut Self {
        for (name, help, value) in counters {
            self.counter(name, help, value.load(Relaxed));
        }
        self
    }

    /// A family of one unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl Display) -> &mut Self {
        self.family(name, Kind::Gauge, help)
            .sample(name, &[], value)
    }

    /// The samples of one histogram: cumulative buckets, sum (seconds) and count.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        histogram: &Histogram,
    ) -> &mut Self {
        let mut cumulative = 0;
        for (i, count) in histogram.counts.iter().enumerate() {
            cumulative += count.load(Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), f64::to_string);
            let bucket = label_set(labels, Some(("le", &le)));
            let _ = writeln!(self.0, "{name}_bucket{bucket} {cumulative}");
        }
        let sum = histogram.sum_micros.load(Relaxed) as f64 / 1e6;
        let labels = label_set(labels, None);
        let _ = writeln!(
            self.0,
            "{name}_sum{labels} {sum}\n{name}_count{labels} {cumulative}"
        );
        self
    }

    pub fn finish(self) -> String {
        self.0
    }
}

/// `{a="1",b="2"}`, or nothing without labels.
fn label_set(labels: &[(&str, &str)], extra: Option<(&str, &str)>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .copied()
        .chain(extra)
        .map(|(name, value)| format!("{name}=\"{value}\""))
        .collect();
    match pairs.is_empty() {
        true => String::new(),
        false => format!("{{{}}}", pairs.join(",")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_samples_and_a_cumulative_histogram() {
        let latency = Histogram::default();
        latency.observe(Duration::from_micros(800));
        latency.observe(Duration::from_secs(30));
        let mut text = Exposition::default();
        text.counter("c_total", "A counter.", 3)
            .family("h_seconds", Kind::Histogram, "A histogram.")
            .histogram("h_seconds", &[("p", "x")], &latency);
        let text = text.finish();
        assert!(text.starts_with("# HELP c_total A counter.\n# TYPE c_total counter\nc_total 3\n"));
        assert!(
            text.contains("h_seconds_bucket{p=\"x\",le=\"0.0005\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("h_seconds_bucket{p=\"x\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("h_seconds_bucket{p=\"x\",le=\"10\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("h_seconds_bucket{p=\"x\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("h_seconds_sum{p=\"x\"} 30.0008\nh_seconds_count{p=\"x\"} 2\n"),
            "{text}"
        );
    }
}
