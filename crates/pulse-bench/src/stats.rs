//! Latency histograms (HDR, microseconds) and their summaries.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A latency histogram in microseconds, 1 µs … 10 min, 3 significant digits.
#[derive(Clone)]
pub struct Latency {
    h: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        Latency {
            h: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
        }
    }

    /// Record one latency in nanoseconds (clamped into the histogram's range).
    pub fn record_ns(&mut self, ns: u64) {
        let us = (ns / 1000).clamp(1, 600_000_000);
        self.h.saturating_record(us);
    }

    /// Its recorded buckets as `(µs, count)` pairs: what a worker process sends
    /// its parent (see `crate::cluster_clients`). Adding them back with
    /// [`Latency::add_counts`] gives the same percentiles.
    pub fn counts(&self) -> Vec<(u64, u64)> {
        self.h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// Add buckets from [`Latency::counts`] (values clamped into the range).
    pub fn add_counts(&mut self, counts: &[(u64, u64)]) {
        for &(us, n) in counts {
            self.h.saturating_record_n(us.clamp(1, 600_000_000), n);
        }
    }

    /// The percentiles the report shows.
    pub fn summary(&self) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            samples: self.h.len(),
            p50_ms: ms(self.h.value_at_quantile(0.50)),
            p90_ms: ms(self.h.value_at_quantile(0.90)),
            p99_ms: ms(self.h.value_at_quantile(0.99)),
            p999_ms: ms(self.h.value_at_quantile(0.999)),
            max_ms: ms(self.h.max()),
            mean_ms: self.h.mean() / 1000.0,
        }
    }
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// How many samples.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// Median of a list (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut l = Latency::new();
        for i in 1..=1000u64 {
            l.record_ns(i * 1_000_000); // 1..=1000 ms
        }
        let s = l.summary();
        assert_eq!(s.samples, 1000);
        assert!((s.p50_ms - 500.0).abs() < 2.0, "{s:?}");
        assert!((s.p99_ms - 990.0).abs() < 2.0, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 2.0, "{s:?}");
        let mut back = Latency::new();
        back.add_counts(&l.counts());
        back.add_counts(&[(0, 1), (u64::MAX, 0)]);
        assert_eq!(back.summary().p99_ms, s.p99_ms, "buckets survive the trip");
        assert_eq!(back.summary().samples, 1001, "a zero is clamped, not lost");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
