//! Plans and their daily lookup limits.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A key's plan. A key is created without one and gets [`Plan::Free`] at
/// its first counted lookup, unless an operator chose a plan before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// The default plan.
    Free,
    /// Paid plan with a higher limit.
    Professional,
    /// Paid plan with the highest standard limit.
    Enterprise,
    /// A limit set per key (`daily_limit_override`), else [`PlanLimits::custom`].
    Custom,
}

impl Plan {
    /// Every plan, in ascending order of default limit.
    pub const ALL: [Plan; 4] = [
        Plan::Free,
        Plan::Professional,
        Plan::Enterprise,
        Plan::Custom,
    ];

    /// The lowercase name used in JSON, the CLI and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Professional => "professional",
            Plan::Enterprise => "enterprise",
            Plan::Custom => "custom",
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plan name that is not one of `free`, `professional`, `enterprise`, `custom`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown plan {name:?}: expected free, professional, enterprise or custom")]
pub struct UnknownPlan {
    /// The name given.
    pub name: String,
}

impl FromStr for Plan {
    type Err = UnknownPlan;

    /// Accepts the lowercase names, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plan::ALL
            .into_iter()
            .find(|plan| plan.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPlan { name: s.to_owned() })
    }
}

/// Daily limits per plan: lookups and abuse reports per UTC day. The two
/// are counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLimits {
    /// Limit of [`Plan::Free`] (and of keys not yet provisioned).
    pub free: u64,
    /// Limit of [`Plan::Professional`].
    pub professional: u64,
    /// Limit of [`Plan::Enterprise`].
    pub enterprise: u64,
    /// Limit of [`Plan::Custom`] keys without a `daily_limit_override`.
    pub custom: u64,
    /// Reports a [`Plan::Free`] key may file per UTC day.
    pub free_reports: u64,
    /// Reports of a [`Plan::Professional`] key.
    pub professional_reports: u64,
    /// Reports of a [`Plan::Enterprise`] key.
    pub enterprise_reports: u64,
    /// Reports of a [`Plan::Custom`] key.
    pub custom_reports: u64,
}

impl Default for PlanLimits {
    fn default() -> Self {
        Self {
            free: 100,
            professional: 10_000,
            enterprise: 1_000_000,
            custom: 100_000,
            free_reports: 20,
            professional_reports: 1_000,
            enterprise_reports: 50_000,
            custom_reports: 10_000,
        }
    }
}

impl PlanLimits {
    /// The daily limit of a key. `plan` `None` (not yet provisioned) counts
    /// as free; `daily_limit_override` applies to [`Plan::Custom`] only.
    pub fn daily_limit(&self, plan: Option<Plan>, daily_limit_override: Option<u64>) -> u64 {
        match plan.unwrap_or(Plan::Free) {
            Plan::Free => self.free,
            Plan::Professional => self.professional,
            Plan::Enterprise => self.enterprise,
            Plan::Custom => daily_limit_override.unwrap_or(self.custom),
        }
    }

    /// Abuse reports a key may file per UTC day. `None` (not yet
    /// provisioned) counts as free.
    // TODO(per-key report limits): custom keys take `custom_reports`; a
    // per-key override needs its own column and a CLI flag, not asked yet.
    pub fn daily_report_limit(&self, plan: Option<Plan>) -> u64 {
        match plan.unwrap_or(Plan::Free) {
            Plan::Free => self.free_reports,
            Plan::Professional => self.professional_reports,
            Plan::Enterprise => self.enterprise_reports,
            Plan::Custom => self.custom_reports,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for plan in Plan::ALL {
            assert_eq!(plan.as_str().parse::<Plan>().unwrap(), plan);
            let json = serde_json::to_string(&plan).unwrap();
            assert_eq!(json, format!("\"{}\"", plan.as_str()));
        }
        assert_eq!("PROFESSIONAL".parse::<Plan>().unwrap(), Plan::Professional);
        assert!("gold".parse::<Plan>().is_err());
        assert!("".parse::<Plan>().is_err());
    }

    #[test]
    fn limits_follow_plan_and_override() {
        let limits = PlanLimits::default();
        assert_eq!(limits.daily_limit(None, None), 100);
        assert_eq!(limits.daily_limit(Some(Plan::Free), Some(5)), 100);
        assert_eq!(limits.daily_limit(Some(Plan::Professional), None), 10_000);
        assert_eq!(limits.daily_limit(Some(Plan::Enterprise), None), 1_000_000);
        assert_eq!(limits.daily_limit(Some(Plan::Custom), None), 100_000);
        assert_eq!(limits.daily_limit(Some(Plan::Custom), Some(7)), 7);
    }

    #[test]
    fn report_limits_are_separate_per_plan() {
        let limits = PlanLimits::default();
        assert_eq!(limits.daily_report_limit(None), 20);
        assert_eq!(limits.daily_report_limit(Some(Plan::Professional)), 1_000);
        assert_eq!(limits.daily_report_limit(Some(Plan::Enterprise)), 50_000);
        assert_eq!(limits.daily_report_limit(Some(Plan::Custom)), 10_000);
    }
}
