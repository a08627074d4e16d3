//! Pass/fail rules in two tiers: `seed` (the seeds' own targets, cited) and
//! `goal` (ours, from the load-suite issue, for this 2-core machine with the
//! load generator co-located). A rule names a metric of the scenario's flat
//! metric map (see [`crate::results`]); a metric with no samples fails.

use crate::{
    profile::{Load, Profile, RATE_HEADROOM, Tier},
    results::{OtherTier, ScenarioResult, ThresholdOutcome},
    scenarios::Scenario,
};

use Op::{Ge, Gt, Le, Lt};

/// How a rule's observed value must compare with its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `≤`: at most the limit.
    Le,
    /// `<`: below the limit.
    Lt,
    /// `≥`: at least the limit.
    Ge,
    /// `>`: above the limit.
    Gt,
}

impl Op {
    const ALL: [Op; 4] = [Le, Lt, Ge, Gt];

    /// How the report prints it, and how a declared rule writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            Le => "≤",
            Lt => "<",
            Ge => "≥",
            Gt => ">",
        }
    }

    fn passes(self, observed: f64, limit: f64) -> bool {
        match self {
            Le => observed <= limit,
            Lt => observed < limit,
            Ge => observed >= limit,
            Gt => observed > limit,
        }
    }
}

/// A pass/fail rule: a metric held to a limit, with where the limit comes
/// from.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The name, in [`ScenarioResult::metrics`], of the metric it reads.
    pub metric: &'static str,
    /// How the observed value must compare with `limit`.
    pub op: Op,
    /// The limit, in the metric's own unit.
    pub limit: f64,
    /// Where the number comes from.
    pub source: &'static str,
}

impl Rule {
    /// A rule whose limit is computed (from the users, or the rate asked).
    pub const fn new(metric: &'static str, op: Op, limit: f64, source: &'static str) -> Rule {
        Rule {
            metric,
            op,
            limit,
            source,
        }
    }
}

/// A scenario's declared rule, written as the report prints it:
/// `rule("http.p95_ms < 100", "seed 000 §4: query response time")`. The
/// limit is written once, in `check`; `source` says where it comes from.
/// A malformed `check` is a bug in the declaration (every scenario's rules
/// are read in this module's tests).
pub fn rule(check: &'static str, source: &'static str) -> Rule {
    let (metric, op, limit) = read(check).unwrap_or_else(|| panic!("malformed rule {check:?}"));
    Rule::new(metric, op, limit, source)
}

/// A paced scenario's rate rule, `rate.achieved ≥` the rate `load` targets:
/// the limit is the rate the scenario is declared to run at (offered with
/// [`RATE_HEADROOM`] more), not a second copy of that number.
pub fn target_rate(load: Load, source: &'static str) -> Rule {
    let Some(target) = load.rate else {
        panic!("a rate rule for a load with no rate ({source})");
    };
    Rule::new("rate.achieved", Ge, target, source)
}

/// `check` read as `metric op limit`, one space apart: the metric may hold
/// spaces, the operator is one the report prints (`<`, `≤`, `>`, `≥`), and
/// the limit may group its digits with `_`.
fn read(check: &str) -> Option<(&str, Op, f64)> {
    let (rest, limit) = check.rsplit_once(' ')?;
    let (metric, symbol) = rest.rsplit_once(' ')?;
    let op = Op::ALL.into_iter().find(|op| op.symbol() == symbol)?;
    let limit: f64 = limit.replace('_', "").parse().ok()?;
    let well_formed = !metric.is_empty() && metric.trim() == metric && limit.is_finite();
    well_formed.then_some((metric, op, limit))
}

/// The rules of `scenario` in `tier`: its own, then what every scenario
/// shares. `users` sizes per-user limits.
pub fn rules(scenario: Scenario, tier: Tier, users: usize) -> Vec<Rule> {
    let mut rules = scenario.spec().rules(tier);
    // Memory: the seed allows 512 MB per user (our goal's total, where
    // there is one, is the scenario's own rule).
    if tier == Tier::Seed {
        rules.push(Rule::new(
            "stack.peak_rss_mib",
            Lt,
            512.0 * users.max(1) as f64,
            "seed 000: memory < 512 MB per user",
        ));
    }
    rules
}

/// Every rule of `tier` applied to the result's figures.
pub fn evaluate(
    result: &ScenarioResult,
    scenario: Scenario,
    tier: Tier,
    users: usize,
) -> Vec<ThresholdOutcome> {
    let mut rules = rules(scenario, tier, users);
    if scenario.about().open_model
        && let Some(offered) = result.target_rate
    {
        // The open-model workday (`--rate`, the peak profile): the
        // requested rate, without the headroom it was offered with.
        rules.push(Rule::new(
            "rate.achieved",
            Ge,
            (offered / RATE_HEADROOM).round(),
            "the requested rate (seed 003 §2 peak: 250 requests/s)",
        ));
    }
    rules
        .into_iter()
        .filter(|rule| {
            // Without a stack of ours there are no resource figures, and no
            // database of ours to count unplayed calls in, to judge.
            let ours = rule.metric.starts_with("stack.") || rule.metric.starts_with("flow.");
            !(ours && result.resources.is_none())
        })
        .map(|rule| {
            let observed = result.metrics.get(rule.metric).copied();
            ThresholdOutcome {
                rule: format!(
                    "{} {} {} ({})",
                    rule.metric,
                    rule.op.symbol(),
                    rule.limit,
                    rule.source
                ),
                metric: rule.metric.to_string(),
                observed,
                passed: observed.is_some_and(|v| rule.op.passes(v, rule.limit)),
            }
        })
        .collect()
}

/// Judges every rule; the outcomes go into the result.
pub fn judge(result: &mut ScenarioResult, scenario: Scenario, tier: Tier, users: usize) {
    result.thresholds = evaluate(result, scenario, tier, users);
}

/// The other tier's rules on the same figures, for information (they never
/// set the exit code). Only where `profile` drives `scenario` identically in
/// both tiers (the workday, voice, database, ...): a rate-targeted scenario
/// runs another load under each tier, so the other tier's verdict needs a
/// run of its own.
pub fn judge_other_tier(
    result: &mut ScenarioResult,
    scenario: Scenario,
    profile: Profile,
    tier: Tier,
    users: usize,
) {
    let other = tier.other();
    result.other_tier = if scenario.shape(profile, tier) == scenario.shape(profile, other) {
        Some(OtherTier {
            tier: other.name().to_string(),
            thresholds: evaluate(result, scenario, other, users),
        })
    } else {
        None
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_rules_in_both_tiers() {
        for sc in Scenario::ALL {
            assert!(!rules(sc, Tier::Seed, 30).is_empty(), "{sc}");
            assert!(!rules(sc, Tier::Goal, 30).is_empty(), "{sc}");
        }
    }

    #[test]
    fn a_declared_rule_is_read_as_metric_operator_limit() {
        assert_eq!(read("http.p95_ms < 100"), Some(("http.p95_ms", Lt, 100.0)));
        assert_eq!(
            read("rate.achieved ≥ 20_000"),
            Some(("rate.achieved", Ge, 20_000.0))
        );
        assert_eq!(
            read("SCHED schedule call (from schedule).p95_ms ≤ 0.5"),
            Some(("SCHED schedule call (from schedule).p95_ms", Le, 0.5))
        );
        for malformed in [
            "http.p95_ms 100",
            "http.p95_ms <= 100",
            "< 100",
            "http.p95_ms < ",
            "http.p95_ms < 1 s",
            "http.p95_ms > NaN",
        ] {
            assert_eq!(read(malformed), None, "{malformed}");
        }
    }

    #[test]
    fn every_declared_rule_reads_back_as_the_report_prints_it() {
        for sc in Scenario::ALL {
            for tier in [Tier::Seed, Tier::Goal] {
                // `rule` panics on a check it cannot read.
                for declared in sc.spec().rules(tier) {
                    let printed = format!(
                        "{} {} {}",
                        declared.metric,
                        declared.op.symbol(),
                        declared.limit
                    );
                    assert_eq!(
                        read(&printed),
                        Some((declared.metric, declared.op, declared.limit)),
                        "{sc} {tier:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_missing_metric_fails_its_rule() {
        let mut result = ScenarioResult::default();
        judge(&mut result, Scenario::Health, Tier::Goal, 1);
        assert!(!result.thresholds[0].passed);
        result.metrics.insert("rate.achieved".into(), 25_000.0);
        judge(&mut result, Scenario::Health, Tier::Goal, 1);
        assert!(result.thresholds[0].passed);
    }

    #[test]
    fn an_open_model_workday_is_judged_on_the_rate_it_was_asked_for() {
        let offered = Scenario::Workday.shape(Profile::Peak, Tier::Seed).rate;
        let mut result = ScenarioResult {
            target_rate: offered,
            ..Default::default()
        };
        let verdict = |result: &mut ScenarioResult, achieved: f64| {
            result.metrics.insert("rate.achieved".into(), achieved);
            judge(result, Scenario::Workday, Tier::Seed, 220);
            result
                .thresholds
                .iter()
                .find(|t| t.metric == "rate.achieved")
                .map(|t| (t.passed, t.rule.clone()))
                .unwrap_or_else(|| panic!("no rate rule"))
        };
        let (passed, rule) = verdict(&mut result, 240.0);
        assert!(!passed && rule.contains("≥ 250 "), "{rule}");
        assert!(verdict(&mut result, 251.0).0);
        // A closed-model workday has no rate to meet.
        result.target_rate = None;
        judge(&mut result, Scenario::Workday, Tier::Seed, 30);
        assert!(
            result
                .thresholds
                .iter()
                .all(|t| t.metric != "rate.achieved")
        );
    }

    #[test]
    fn the_other_tier_is_judged_only_under_the_same_load() {
        let mut result = ScenarioResult::default();
        result.metrics.insert("http.p95_ms".into(), 30.0);
        judge_other_tier(
            &mut result,
            Scenario::Workday,
            Profile::Stress,
            Tier::Seed,
            150,
        );
        let other = result
            .other_tier
            .clone()
            .unwrap_or_else(|| panic!("no goal verdicts"));
        assert_eq!(other.tier, "goal");
        assert!(
            other
                .thresholds
                .iter()
                .any(|t| t.metric == "http.p95_ms" && !t.passed)
        );
        // The storm runs at 500/s under the seeds' tier and 5 000/s under ours.
        judge_other_tier(
            &mut result,
            Scenario::Storm,
            Profile::Average,
            Tier::Seed,
            32,
        );
        assert!(result.other_tier.is_none());
    }
}
