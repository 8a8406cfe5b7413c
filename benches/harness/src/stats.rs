//! The two summaries the harness makes: the median of a few repetitions, and the latency
//! quantiles of a run of round trips (an HDR histogram, from the `hdrhistogram` crate).

use hdrhistogram::Histogram;

/// The median of a few measurements, with the smallest and largest.
pub fn median_range(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => (0.0, 0.0, 0.0),
        n => (v[n / 2], v[0], v[n - 1]),
    }
}

/// Significant digits the latency histogram keeps: a quantile is exact to 0.1%, far below
/// the noise of one run.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The longest round trip the histogram tells apart, an hour; a longer one counts as an
/// hour (every wait of the harness ends long before).
const LONGEST_NS: u64 = 3_600_000_000_000;

/// Round trips made one after another: how many, over how long, and how long each took.
#[derive(Debug, Clone)]
pub struct RoundTrips {
    pub count: u64,
    pub seconds: f64,
    /// Every round trip's time, in nanoseconds.
    pub latencies_ns: Histogram<u64>,
}

impl RoundTrips {
    /// An empty run, ready to [`record`](RoundTrips::record) into.
    pub fn new() -> RoundTrips {
        RoundTrips {
            count: 0,
            seconds: 0.0,
            // Cannot fail: the range is at least twice the lowest value (1 ns), and 3
            // significant digits is within the 0 to 5 allowed.
            latencies_ns: Histogram::new_with_max(LONGEST_NS, SIGNIFICANT_DIGITS)
                .expect("a valid range and precision"),
        }
    }

    /// Round trips from their times in nanoseconds (any order) and the span they took.
    pub fn from_samples(latencies_ns: impl IntoIterator<Item = u64>, seconds: f64) -> RoundTrips {
        let mut rt = RoundTrips::new();
        for ns in latencies_ns {
            rt.record(ns);
        }
        rt.seconds = seconds;
        rt
    }

    /// One more round trip, `ns` nanoseconds long.
    pub fn record(&mut self, ns: u64) {
        // Clamped to LONGEST_NS, not refused.
        self.latencies_ns.saturating_record(ns);
        self.count += 1;
    }

    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.seconds.max(1e-9)
    }

    /// The `q` quantile (0..=1) in microseconds (0 with no round trips).
    pub fn quantile_us(&self, q: f64) -> f64 {
        self.latencies_ns.value_at_quantile(q.clamp(0.0, 1.0)) as f64 / 1000.0
    }
}

impl Default for RoundTrips {
    fn default() -> RoundTrips {
        RoundTrips::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median_range(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(median_range(&[4.0, 1.0, 3.0, 2.0]), (3.0, 1.0, 4.0));
    }

    #[test]
    fn quantiles_within_a_thousandth() {
        // 1 to 100 microseconds.
        let rt = RoundTrips::from_samples((1..=100).map(|us| us * 1000), 1.0);
        assert_eq!(rt.count, 100);
        for (q, want) in [(0.5, 50.0), (0.99, 99.0), (0.999, 100.0), (0.0, 1.0)] {
            let got = rt.quantile_us(q);
            assert!((got - want).abs() <= want / 1000.0, "q {q}: {got} µs");
        }
        assert_eq!(RoundTrips::new().quantile_us(0.5), 0.0);
    }
}
