//! Summary statistics over samples (all in the samples' own unit).

pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1), as hyperfine reports it.
    pub stddev: f64,
    pub median: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
}

pub fn summarize(xs: &[f64]) -> Option<Summary> {
    if xs.is_empty() {
        return None;
    }
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let mean = s.iter().sum::<f64>() / n as f64;
    let stddev = if n > 1 {
        (s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Some(Summary {
        n,
        mean,
        stddev,
        median: median_sorted(&s),
        p95: percentile_sorted(&s, 0.95),
        min: s[0],
        max: s[n - 1],
    })
}

fn median_sorted(s: &[f64]) -> f64 {
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile: the smallest sample with at least `q` of the
/// samples at or below it.
fn percentile_sorted(s: &[f64], q: f64) -> f64 {
    let rank = (q * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub fn median(xs: &[f64]) -> Option<f64> {
    summarize(xs).map(|s| s.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic() {
        let s = summarize(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 5.0);
        assert_eq!(s.mean, 3.0);
        assert!((s.stddev - 2.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.p95, 5.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 10.0]), Some(2.5));
    }

    #[test]
    fn p95_nearest_rank() {
        let xs: Vec<f64> = (1..=200).map(|i| i as f64).collect();
        assert_eq!(summarize(&xs).unwrap().p95, 190.0);
        let xs: Vec<f64> = (1..=20).map(|i| i as f64).collect();
        assert_eq!(summarize(&xs).unwrap().p95, 19.0);
    }
}
