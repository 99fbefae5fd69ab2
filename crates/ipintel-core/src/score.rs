//! Threat score arithmetic and level cut-points.

use serde::Serialize;

/// Coarse threat level derived from the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreatLevel {
    /// Score 0-19.
    Clean,
    /// Score 20-39.
    Low,
    /// Score 40-59.
    Medium,
    /// Score 60-79.
    High,
    /// Score 80-100.
    Critical,
}

impl ThreatLevel {
    /// The level for a score (`0..=100`; larger values count as 100).
    pub fn from_score(score: u8) -> ThreatLevel {
        match score {
            0..=19 => ThreatLevel::Clean,
            20..=39 => ThreatLevel::Low,
            40..=59 => ThreatLevel::Medium,
            60..=79 => ThreatLevel::High,
            _ => ThreatLevel::Critical,
        }
    }

    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreatLevel::Clean => "clean",
            ThreatLevel::Low => "low",
            ThreatLevel::Medium => "medium",
            ThreatLevel::High => "high",
            ThreatLevel::Critical => "critical",
        }
    }
}

/// Noisy-OR of weights: `round(100 * (1 - prod(1 - w/100)))`, weights
/// clamped to `0..=100`.
pub fn noisy_or<I: IntoIterator<Item = u8>>(weights: I) -> u8 {
    let miss: f64 = weights
        .into_iter()
        .map(|w| 1.0 - f64::from(w.min(100)) / 100.0)
        .product();
    let score = (100.0 * (1.0 - miss)).round();
    // `score` is within 0..=100 by construction.
    score.clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_cut_points() {
        let cases = [
            (0, ThreatLevel::Clean),
            (19, ThreatLevel::Clean),
            (20, ThreatLevel::Low),
            (39, ThreatLevel::Low),
            (40, ThreatLevel::Medium),
            (59, ThreatLevel::Medium),
            (60, ThreatLevel::High),
            (72, ThreatLevel::High),
            (79, ThreatLevel::High),
            (80, ThreatLevel::Critical),
            (100, ThreatLevel::Critical),
        ];
        for (score, level) in cases {
            assert_eq!(ThreatLevel::from_score(score), level, "score {score}");
        }
    }

    #[test]
    fn noisy_or_combines() {
        assert_eq!(noisy_or([]), 0);
        assert_eq!(noisy_or([10]), 10);
        assert_eq!(noisy_or([100, 3]), 100);
        // 1 - 0.15 * 0.30 = 0.955 -> 96 (round half away from zero)
        assert_eq!(noisy_or([85, 70]), 96);
        // 1 - 0.55 * 0.75 = 0.5875 -> 59
        assert_eq!(noisy_or([45, 25]), 59);
        assert_eq!(noisy_or([0, 0]), 0);
    }
}
