//! Matches alerts against the runbook's rules and decides what to do with each: the
//! decision the journal records for the alert, and the run to claim, if any.

use crate::actions::kind::ActionKind;
use crate::alertmanager::{Alert, AlertStatus};
use crate::config::{Config, Rule};
use crate::lifecycle::{Decision, Policy, RunKind, RunState};

/// What the runbook decided for one alert, before journaling.
#[derive(Debug, Clone)]
pub struct AlertDecision {
    /// The alert.
    pub alert: Alert,
    /// The matching rule, if any.
    pub rule: Option<String>,
    /// The decision.
    pub decision: Decision,
    /// Why, in words, for the journal.
    pub detail: String,
    /// The run to claim, when the decision calls for one.
    pub run: Option<RunRequest>,
}

/// A run to claim for an alert occurrence.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The action.
    pub action: ActionKind,
    /// The fix, or its undoing.
    pub kind: RunKind,
    /// The rule's policy.
    pub policy: Policy,
    /// What the action acts on: the key of cooldowns.
    pub target: String,
}

impl RunRequest {
    /// The state the run is claimed in: a restore always runs; the fix as its policy says.
    pub fn initial_state(&self) -> RunState {
        match self.kind {
            RunKind::Restore => RunState::Pending,
            RunKind::Apply => self.policy.initial_state(),
        }
    }
}

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
    let mut decided = decide_unnoted(config, alert);
    if !alert.replaced.is_empty() {
        decided.detail = format!(
            "{} (NUL characters, which PostgreSQL cannot store, were replaced with U+FFFD in: {})",
            decided.detail,
            alert.replaced.join(", ")
        );
    }
    decided
}

fn decide_unnoted(config: &Config, alert: &Alert) -> AlertDecision {
    let decision = |rule: Option<&Rule>, decision, detail: String, run| AlertDecision {
        alert: alert.clone(),
        rule: rule.map(|r| r.name.clone()),
        decision,
        detail,
        run,
    };
    let Some(rule) = matching_rule(config, alert) else {
        return decision(
            None,
            Decision::Unmatched,
            "no runbook rule for this alert".into(),
            None,
        );
    };
    let target = match rule.action.target(&rule.params, &alert.labels) {
        Ok(target) => target,
        Err(reason) => return decision(Some(rule), Decision::Refused, reason, None),
    };
    let request = |kind| RunRequest {
        action: rule.action,
        kind,
        policy: rule.policy,
        target: target.clone(),
    };
    let action = rule.action.name();
    match (alert.status, rule.policy) {
        (AlertStatus::Resolved, _) if rule.restore_on_resolve => decision(
            Some(rule),
            Decision::Restore,
            format!("undo {action} on {target}"),
            Some(request(RunKind::Restore)),
        ),
        (AlertStatus::Resolved, _) => decision(
            Some(rule),
            Decision::ResolvedIgnored,
            "resolved alerts trigger nothing".into(),
            None,
        ),
        (AlertStatus::Firing, Policy::Auto) => decision(
            Some(rule),
            Decision::Run,
            format!("{action} on {target}"),
            Some(request(RunKind::Apply)),
        ),
        (AlertStatus::Firing, Policy::Approve) => decision(
            Some(rule),
            Decision::AwaitingApproval,
            format!("{action} on {target} waits for on-call"),
            Some(request(RunKind::Apply)),
        ),
        (AlertStatus::Firing, Policy::Notify) => decision(
            Some(rule),
            Decision::Notified,
            format!("escalated: {action} on {target} is for a human"),
            Some(request(RunKind::Apply)),
        ),
    }
}
