//! The executor's side of host-local actions forwarded to a machine's agent: the request
//! (the rule's knobs and what only the central side knows), the forwarded run, and the
//! plan an escalation asks on-call to approve, made by the agent.

use koji_config::error_chain::error_chain;

use super::super::forwarding::{ForwardError, Forwarder};
use super::{conclude, lost, Ending, Executor};
use crate::actions::{Plan, Planned};
use crate::agent::protocol::{AgentOutcome, AgentRequest};
use crate::config::Rule;
use crate::journal::runs::{RunRow, Transition};
use crate::journal::JournalError;
use crate::lifecycle::{Conclusion, Effect, Event, NoticeReason, RunState};

impl Executor {
    /// Has the machine's agent run a host-local action; the central guards (pause, dry run)
    /// travel as `plan_only`, with what only the central side knows (the hub's active
    /// buildroots).
    pub(super) async fn forward(
        &self,
        forwarder: &Forwarder,
        run: &RunRow,
        rule: &Rule,
    ) -> Result<(RunState, Ending), JournalError> {
        let from = RunState::Running;
        let (base, mut request) = match self.agent_request(forwarder, run, rule).await {
            Ok(found) => found,
            Err(reason) => return Ok((from, conclude(Conclusion::Refused, reason))),
        };
        let held = self.held(rule).await?;
        request.plan_only = held.is_some();
        let from = if request.plan_only {
            from
        } else {
            let applying = Transition::new(from, Event::BeginApply);
            if !self
                .inner
                .journal
                .transition(run.id, Some(&self.inner.lease.owner), applying)
                .await?
            {
                return Err(lost(run.id));
            }
            RunState::Applying
        };
        let response = match forwarder.send(&base, &request).await {
            Ok(response) => response,
            Err(ForwardError::Refused(reason)) => {
                let outcome =
                    format!("agent {base} refused the request; nothing changed: {reason}");
                return Ok((from, conclude(Conclusion::Refused, outcome)));
            }
            Err(ForwardError::Unreachable(reason)) => {
                let effect = if request.plan_only {
                    Effect::None
                } else {
                    Effect::Unknown
                };
                return Ok((from, Ending::new(Event::Fail, effect, reason)));
            }
        };
        let event = match (response.state, held) {
            (AgentOutcome::Planned, Some(held)) => Event::Conclude(held),
            (AgentOutcome::Planned, None) => Event::Fail,
            (AgentOutcome::Succeeded, _) => Event::Succeed,
            (AgentOutcome::NothingToDo, _) => Event::Conclude(Conclusion::NothingToDo),
            (AgentOutcome::Refused, _) => Event::Conclude(Conclusion::Refused),
            (AgentOutcome::Failed, _) => Event::Fail,
        };
        let mut outcome = format!("agent {base}: {}", response.outcome);
        for note in &response.recovery {
            outcome.push_str(&format!("; the agent reports: {note}"));
        }
        let mut ending = Ending::new(event, response.effect, outcome);
        ending.plan_summary = response.plan;
        Ok((from, ending))
    }

    /// The agent a host-local run goes to, and the request: the rule's knobs, and what only
    /// the central side knows.
    async fn agent_request(
        &self,
        forwarder: &Forwarder,
        run: &RunRow,
        rule: &Rule,
    ) -> Result<(String, AgentRequest), String> {
        let base = forwarder.agent_url(&run.labels)?;
        let mut request = match rule.action.host_request(run.id, &rule.params, &run.labels) {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => {
                return Err(format!(
                    "{} is not an action agents run",
                    rule.action.name()
                ))
            }
        };
        request.journal = self.inner.context.journal_id.clone();
        rule.action
            .central_knowledge(&self.inner.context, &rule.params, &mut request)
            .await;
        Ok((base, request))
    }

    /// The plan on-call is asked to approve: made here, or for a host-local action by the
    /// machine's agent (plan only), which keeps the plan and sends its summary.
    pub(super) async fn escalation_plan(
        &self,
        run: &RunRow,
        rule: &Rule,
    ) -> Result<EscalationPlan, String> {
        let context = &self.inner.context;
        let Some(forwarder) = context
            .forwarder
            .as_ref()
            .filter(|f| f.forwards(rule.action))
        else {
            return match rule.action.plan(context, &rule.params, &run.labels).await {
                Ok(Planned::Change(plan)) => Ok(EscalationPlan::Change(plan)),
                Ok(Planned::NothingToDo(reason)) => Ok(EscalationPlan::NothingToDo(reason)),
                Ok(Planned::Refused(reason)) => Ok(EscalationPlan::Refused(reason)),
                Err(error) => Err(error_chain(&error)),
            };
        };
        let (base, mut request) = match self.agent_request(forwarder, run, rule).await {
            Ok(found) => found,
            Err(reason) => return Ok(EscalationPlan::Refused(reason)),
        };
        request.plan_only = true;
        match forwarder.send(&base, &request).await {
            Ok(response) => match (response.state, response.plan) {
                (AgentOutcome::Planned, Some(summary)) => {
                    Ok(EscalationPlan::Summary(format!("agent {base}: {summary}")))
                }
                (AgentOutcome::NothingToDo, _) => Ok(EscalationPlan::NothingToDo(response.outcome)),
                (AgentOutcome::Refused, _) => Ok(EscalationPlan::Refused(response.outcome)),
                _ => Err(format!("agent {base}: {}", response.outcome)),
            },
            Err(ForwardError::Refused(reason)) => Ok(EscalationPlan::Refused(format!(
                "agent {base} refused the request: {reason}"
            ))),
            Err(ForwardError::Unreachable(reason)) => Err(reason),
        }
    }

    /// Makes the plan of a run that waits for on-call, so they approve what will be done,
    /// and queues its notice. If there is nothing to do, or the action refuses, no one
    /// needs to be asked.
    pub(super) async fn prepare_escalation(
        &self,
        run: &RunRow,
        rule: &Rule,
    ) -> Result<(), JournalError> {
        let journal = &self.inner.journal;
        let from = RunState::AwaitingApproval;
        let (event, outcome) = match self.escalation_plan(run, rule).await {
            Ok(EscalationPlan::Change(plan)) => {
                let summary = plan.summary();
                self.store_escalation(run.id, Some(&plan), &summary).await?;
                return Ok(());
            }
            Ok(EscalationPlan::Summary(summary)) => {
                self.store_escalation(run.id, None, &summary).await?;
                return Ok(());
            }
            Ok(EscalationPlan::NothingToDo(reason)) => {
                (Event::Conclude(Conclusion::NothingToDo), reason)
            }
            Ok(EscalationPlan::Refused(reason)) => (Event::Conclude(Conclusion::Refused), reason),
            Err(error) => (
                Event::Fail,
                format!("planning failed; nothing changed: {error}"),
            ),
        };
        let mut transition = Transition::new(from, event);
        transition.outcome = Some(&outcome);
        transition.effect = Some(Effect::None);
        if event == Event::Fail && self.inner.notices {
            transition.notice = Some(NoticeReason::Failure);
        }
        journal.transition(run.id, None, transition).await?;
        self.inner.notice_queued.notify_one();
        Ok(())
    }

    /// Stores an escalation's plan and queues its notice.
    async fn store_escalation(
        &self,
        id: i64,
        plan: Option<&Plan>,
        summary: &str,
    ) -> Result<(), JournalError> {
        let stored = self
            .inner
            .journal
            .store_escalation_plan(id, plan, summary, self.inner.notices)
            .await?;
        if stored {
            self.inner.notice_queued.notify_one();
        }
        Ok(())
    }
}

/// What planning an escalation came to.
pub(super) enum EscalationPlan {
    /// A plan made here, stored whole.
    Change(Plan),
    /// A plan an agent made and keeps: its summary.
    Summary(String),
    /// Nothing to ask anyone.
    NothingToDo(String),
    /// The action or the machine's policy refused.
    Refused(String),
}
