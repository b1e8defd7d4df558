//! What an alert would do if it were delivered now, decided as a real delivery is (the
//! runbook's rule, the pause switch and dry-run, the occurrence, the cooldown and the
//! hourly limit, and the plan the action or the machine's agent would make), with nothing
//! claimed, journaled or applied: on-call's "if this fires now, what happens?".

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::agents::EscalationPlan;
use super::Executor;
use crate::journal::runs::RunRow;
use crate::journal::JournalError;
use crate::lifecycle::{Conclusion, Effect, Policy, RunKind, RunState};
use crate::runbook::AlertDecision;

/// What one alert would do.
#[derive(Debug, Clone, Serialize)]
pub struct Simulated {
    /// The alert's name.
    pub alertname: String,
    /// The matching rule, if any.
    pub rule: Option<String>,
    /// The decision a delivery would journal (`run`, `awaiting_approval`, `notified`,
    /// `restore`, `unmatched`, ...).
    pub decision: String,
    /// Why, in words.
    pub detail: String,
    /// The action, when the decision calls for a run.
    pub action: Option<String>,
    /// What it would act on.
    pub target: Option<String>,
    /// What would happen, in one line.
    pub would: String,
    /// The plan, in words, when one would be made.
    pub plan: Option<String>,
    /// The plan in full, when made here (an agent keeps its own).
    pub plan_detail: Option<serde_json::Value>,
}

impl Executor {
    /// Simulates one decided alert (see the module).
    pub async fn simulate(&self, decided: &AlertDecision) -> Result<Simulated, JournalError> {
        let mut simulated = Simulated {
            alertname: decided.alert.alertname().to_owned(),
            rule: decided.rule.clone(),
            decision: decided.decision.name().to_owned(),
            detail: decided.detail.clone(),
            action: None,
            target: None,
            would: "nothing: no run".into(),
            plan: None,
            plan_detail: None,
        };
        let (Some(request), Some(rule)) = (
            &decided.run,
            decided
                .rule
                .as_ref()
                .and_then(|name| self.inner.config.rules.iter().find(|r| &r.name == name)),
        ) else {
            return Ok(simulated);
        };
        simulated.action = Some(request.action.name().to_owned());
        simulated.target = Some(request.target.clone());
        let starts_at: DateTime<Utc> = decided.alert.starts_at;
        let run = RunRow {
            id: 0,
            rule: rule.name.clone(),
            action: request.action,
            kind: request.kind,
            policy: request.policy,
            target: request.target.clone(),
            labels: decided
                .alert
                .labels
                .clone()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            state: RunState::Pending,
            effect: Effect::None,
            plan: None,
            plan_summary: None,
            outcome: String::new(),
            fingerprint: decided.alert.fingerprint.clone(),
            starts_at,
            owner: None,
            attempts: 0,
            applying_at: None,
        };
        if let Some((id, state)) = self.inner.journal.claimed(&run).await? {
            simulated.decision = "duplicate".into();
            simulated.would = format!(
                "nothing new: run {id} was already claimed for this alert occurrence ({state})"
            );
            return Ok(simulated);
        }
        if request.kind == RunKind::Restore {
            simulated.would = format!(
                "undo what {} applied for this alert, once {} has been quiet for {}",
                request.action.name(),
                request.target,
                humantime::format_duration(rule.restore_after)
            );
            return Ok(simulated);
        }
        if request.policy == Policy::Notify {
            simulated.would = "escalate to on-call (no automatic fix)".into();
            return Ok(simulated);
        }
        if let Some((_, why)) = self
            .inner
            .journal
            .would_hold(
                &run,
                self.inner.config.cooldown(rule),
                rule.max_runs_per_hour,
            )
            .await?
        {
            simulated.would = format!("held: {why}");
            return Ok(simulated);
        }
        let planned = self.escalation_plan(&run, rule).await;
        let plan_words = match planned {
            Ok(EscalationPlan::Change(plan)) => {
                simulated.plan = Some(plan.summary());
                simulated.plan_detail = serde_json::to_value(&plan).ok();
                None
            }
            Ok(EscalationPlan::Summary(summary)) => {
                simulated.plan = Some(summary);
                None
            }
            Ok(EscalationPlan::NothingToDo(reason)) => Some(format!("nothing to do: {reason}")),
            Ok(EscalationPlan::Refused(reason)) => Some(format!("refused: {reason}")),
            Err(reason) => Some(format!("planning would fail: {reason}")),
        };
        simulated.would = match (plan_words, request.policy) {
            (Some(words), _) => words,
            (None, Policy::Approve) => "plan, and wait for on-call's approval".into(),
            (None, _) => match self.held(rule).await? {
                Some(Conclusion::Paused) => "plan only: the pause switch is on".into(),
                Some(Conclusion::DryRun) => "plan only: dry run".into(),
                _ => "apply this plan now".into(),
            },
        };
        Ok(simulated)
    }
}
