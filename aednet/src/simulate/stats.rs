//! Outcomes per arrest and their uncertainty: percentile bootstrap over arrests for each
//! policy's shares and means, and for the paired differences between policies on the same
//! arrests and answers (each resample takes whole arrests, so both policies' outcomes of an
//! arrest stay together).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// What happened in one arrest under one policy (seconds after the call; infinite: never).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ArrestOutcome {
    /// The first AED attached (a fetcher arrived with it).
    pub aed_s: f64,
    /// The first rescuer at the patient: CPR starts.
    pub cpr_s: f64,
    /// When the ambulance arrived.
    pub ems_s: f64,
    pub alerts: u32,
    pub accepted: u32,
    /// Accepted rescuers who were neither the first at the patient nor the first AED.
    pub wasted: u32,
    /// Accepts the engine refused because their offer had timed out.
    pub too_late: u32,
    pub fetch_alerts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Aed4,
    Aed8,
    Cpr4,
    BeforeEms,
    Alerts,
    Wasted,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::Aed4,
        Metric::Aed8,
        Metric::Cpr4,
        Metric::BeforeEms,
        Metric::Alerts,
        Metric::Wasted,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Metric::Aed4 => "AED on scene ≤ 4 min",
            Metric::Aed8 => "AED ≤ 8 min",
            Metric::Cpr4 => "CPR ≤ 4 min",
            Metric::BeforeEms => "volunteer before EMS",
            Metric::Alerts => "alerts / arrest",
            Metric::Wasted => "accepted, not needed / arrest",
        }
    }
    pub fn is_share(self) -> bool {
        !matches!(self, Metric::Alerts | Metric::Wasted)
    }
    pub fn value(self, o: &ArrestOutcome) -> f64 {
        let yes = |b: bool| if b { 1.0 } else { 0.0 };
        match self {
            Metric::Aed4 => yes(o.aed_s <= 240.0),
            Metric::Aed8 => yes(o.aed_s <= 480.0),
            Metric::Cpr4 => yes(o.cpr_s <= 240.0),
            Metric::BeforeEms => yes(o.cpr_s < o.ems_s),
            Metric::Alerts => f64::from(o.alerts),
            Metric::Wasted => f64::from(o.wasted),
        }
    }
    /// The value as printed: shares in per cent.
    pub fn show(self, x: f64) -> String {
        if self.is_share() {
            format!("{:.1}", x * 100.0)
        } else {
            format!("{x:.2}")
        }
    }
}

/// A mean with its 95 % percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    pub fn above_zero(&self) -> bool {
        self.lo > 0.0
    }
}

/// Percentile bootstrap of the means of several per-arrest columns of equal length, with the
/// same resampled arrests for every column (so a column of paired differences gets the paired
/// interval). `reps` resamples, seeded.
pub fn bootstrap(columns: &[Vec<f64>], reps: usize, seed: u64) -> Vec<Interval> {
    let n = columns.first().map_or(0, Vec::len);
    assert!(
        columns.iter().all(|c| c.len() == n),
        "columns of one length"
    );
    if n == 0 {
        return columns
            .iter()
            .map(|_| Interval {
                mean: f64::NAN,
                lo: f64::NAN,
                hi: f64::NAN,
            })
            .collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb007);
    let mut means: Vec<Vec<f64>> = vec![Vec::with_capacity(reps); columns.len()];
    let mut sums = vec![0.0; columns.len()];
    for _ in 0..reps {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for _ in 0..n {
            let i = rng.gen_range(0..n);
            for (s, c) in sums.iter_mut().zip(columns) {
                *s += c[i];
            }
        }
        for (m, s) in means.iter_mut().zip(&sums) {
            m.push(s / n as f64);
        }
    }
    columns
        .iter()
        .zip(means.iter_mut())
        .map(|(c, m)| {
            m.sort_by(f64::total_cmp);
            let q = |p: f64| m[((m.len() - 1) as f64 * p).round() as usize];
            Interval {
                mean: c.iter().sum::<f64>() / n as f64,
                lo: q(0.025),
                hi: q(0.975),
            }
        })
        .collect()
}

/// Per policy, every metric with its interval; then per baseline, the paired difference of
/// the first policy (aednet) minus it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub metrics: Vec<Metric>,
    /// `[policy][metric]`
    pub per_policy: Vec<Vec<Interval>>,
    /// `[baseline - 1][metric]`: policy 0 − policy k, k ≥ 1.
    pub paired: Vec<Vec<Interval>>,
}

pub fn summarize(outcomes: &[&[ArrestOutcome]], reps: usize, seed: u64) -> Summary {
    let metrics = Metric::ALL.to_vec();
    let col = |o: &[ArrestOutcome], m: Metric| o.iter().map(|x| m.value(x)).collect::<Vec<_>>();
    let mut columns = Vec::new();
    for o in outcomes {
        for &m in &metrics {
            columns.push(col(o, m));
        }
    }
    for o in &outcomes[1..] {
        for &m in &metrics {
            let a = col(outcomes[0], m);
            let b = col(o, m);
            columns.push(a.iter().zip(&b).map(|(x, y)| x - y).collect());
        }
    }
    let all = bootstrap(&columns, reps, seed);
    let k = metrics.len();
    let per_policy = (0..outcomes.len())
        .map(|p| all[p * k..(p + 1) * k].to_vec())
        .collect();
    let base = outcomes.len() * k;
    let paired = (1..outcomes.len())
        .map(|p| all[base + (p - 1) * k..base + p * k].to_vec())
        .collect();
    Summary {
        metrics,
        per_policy,
        paired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A share p of n arrests: the bootstrap interval of the mean matches the closed form
    /// p ± 1.96 √(p(1 − p)/n) (the normal approximation is excellent at n = 2 000).
    #[test]
    fn share_interval_matches_the_closed_form() {
        let n = 2000usize;
        let k = 600usize; // p = 0.3
        let col: Vec<f64> = (0..n).map(|i| if i < k { 1.0 } else { 0.0 }).collect();
        let iv = bootstrap(&[col], 4000, 1)[0];
        let p = k as f64 / n as f64;
        let half = 1.96 * (p * (1.0 - p) / n as f64).sqrt(); // 0.0201
        assert!((iv.mean - p).abs() < 1e-12);
        assert!((iv.lo - (p - half)).abs() < 0.003, "{iv:?} vs ±{half}");
        assert!((iv.hi - (p + half)).abs() < 0.003, "{iv:?} vs ±{half}");
    }

    /// Paired difference of two correlated shares: A wins on a = 100 arrests, B on b = 40,
    /// they agree elsewhere. Closed form: d = (a − b)/n, var = ((a + b)/n − d²)/n.
    #[test]
    fn paired_interval_matches_the_closed_form_and_pairing_matters() {
        let n = 2000usize;
        let (a, b) = (100usize, 40usize);
        // Both succeed on a common 500 (pairing removes their shared variance).
        let x: Vec<f64> = (0..n)
            .map(|i| {
                if i < 500 || (500..500 + a).contains(&i) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let y: Vec<f64> = (0..n)
            .map(|i| {
                if i < 500 || (500 + a..500 + a + b).contains(&i) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let s = summarize_columns(&x, &y);
        let d = (a as f64 - b as f64) / n as f64;
        let half = 1.96 * (((a + b) as f64 / n as f64 - d * d) / n as f64).sqrt();
        assert!((s.mean - d).abs() < 1e-12);
        assert!((s.lo - (d - half)).abs() < 0.002, "{s:?} vs {d} ± {half}");
        assert!((s.hi - (d + half)).abs() < 0.002, "{s:?} vs {d} ± {half}");
        assert!(s.above_zero());
        // Unpaired, the interval would be about twice as wide (√(p₁q₁/n + p₂q₂/n) ≈ 0.028).
        assert!(s.hi - s.lo < 0.03);
        // Identical outcomes: exactly zero, no width.
        let z = summarize_columns(&x, &x);
        assert_eq!((z.lo, z.mean, z.hi), (0.0, 0.0, 0.0));
    }

    fn summarize_columns(x: &[f64], y: &[f64]) -> Interval {
        let diff: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
        bootstrap(&[diff], 4000, 2)[0]
    }

    #[test]
    fn summary_pairs_policy_zero_with_each_other() {
        let o = |aed: f64, alerts: u32| ArrestOutcome {
            aed_s: aed,
            cpr_s: 100.0,
            ems_s: 600.0,
            alerts,
            accepted: 1,
            wasted: 0,
            too_late: 0,
            fetch_alerts: 0,
        };
        let a: Vec<ArrestOutcome> = (0..100).map(|_| o(200.0, 5)).collect();
        let b: Vec<ArrestOutcome> = (0..100).map(|_| o(f64::INFINITY, 3)).collect();
        let s = summarize(&[&a, &b], 200, 3);
        let m = |x: Metric| s.metrics.iter().position(|y| *y == x).unwrap();
        assert_eq!(s.per_policy[0][m(Metric::Aed4)].mean, 1.0);
        assert_eq!(s.per_policy[1][m(Metric::Aed4)].mean, 0.0);
        assert_eq!(s.paired[0][m(Metric::Aed4)].lo, 1.0);
        assert_eq!(s.paired[0][m(Metric::Alerts)].mean, 2.0);
        assert_eq!(s.paired[0][m(Metric::Cpr4)].hi, 0.0);
    }
}
