//! Matches alerts against the runbook's rules and decides what to do with each.

use crate::alertmanager::{Alert, AlertStatus};
use crate::config::{Config, Policy, Rule};
use crate::journal::{AlertDecision, RunRequest};

/// The first rule naming the alert whose matchers all hold.
pub fn matching_rule<'c>(config: &'c Config, alert: &Alert) -> Option<&'c Rule> {
    config.rules.iter().find(|rule| {
        rule.alertname == alert.alertname()
            && rule
                .matchers
                .iter()
                .all(|(label, value)| alert.labels.get(label) == Some(value))
    })
}

/// Decides what to do with one alert. Resolved alerts never trigger an action, except the
/// restore a rule asks for.
pub fn decide(config: &Config, alert: &Alert) -> AlertDecision {
    let decision = |rule: Option<&Rule>, verdict: &str, detail: String, run| AlertDecision {
        alert: alert.clone(),
        rule: rule.map(|r| r.name.clone()),
        decision: verdict.to_string(),
        detail,
        run,
    };
    let Some(rule) = matching_rule(config, alert) else {
        return decision(
            None,
            "unmatched",
            "no runbook rule for this alert".into(),
            None,
        );
    };
    let target = match rule.action.target(&rule.params, &alert.labels) {
        Ok(target) => target,
        Err(reason) => return decision(Some(rule), "refused", reason, None),
    };
    let request = |kind, state| RunRequest {
        action: rule.action,
        kind,
        policy: rule.policy.name(),
        target: target.clone(),
        state,
    };
    match (alert.status, rule.policy) {
        (AlertStatus::Resolved, _) if rule.restore_on_resolve => decision(
            Some(rule),
            "restore",
            format!("undo {} on {target}", rule.action.name()),
            Some(request("restore", "pending")),
        ),
        (AlertStatus::Resolved, _) => decision(
            Some(rule),
            "resolved_ignored",
            "resolved alerts trigger nothing".into(),
            None,
        ),
        (AlertStatus::Firing, Policy::Auto) => decision(
            Some(rule),
            "run",
            format!("{} on {target}", rule.action.name()),
            Some(request("apply", "pending")),
        ),
        (AlertStatus::Firing, Policy::Approve) => decision(
            Some(rule),
            "awaiting_approval",
            format!("{} on {target} waits for on-call", rule.action.name()),
            Some(request("apply", "awaiting_approval")),
        ),
        (AlertStatus::Firing, Policy::Notify) => decision(
            Some(rule),
            "notified",
            format!(
                "escalated: {} on {target} is for a human",
                rule.action.name()
            ),
            Some(request("apply", "notified")),
        ),
    }
}
