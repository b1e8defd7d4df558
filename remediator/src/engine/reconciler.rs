//! Keeps every run moving, on every replica, all the time (not only at start): renews the
//! leases of the runs this process works on; takes over runs whose owner's lease ran out
//! (the owner died, or lost the journal) and resolves them from the world; starts pending
//! runs, within the action's cap, that nobody is working on (claimed while the journal
//! was failing, held at the cap, a restore waiting for its fix); plans escalations whose
//! plan was never stored. Never touches a run under a live lease of another replica.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::executor::Executor;
use crate::agent::protocol::RunKey;
use crate::agent::protocol::{AgentOutcome, RunStatus};
use crate::journal::runs::{RunRow, Transition};
use crate::journal::{Journal, JournalError};
use crate::lifecycle::{Conclusion, Effect, Event, Found, NoticeReason, RunState};

/// The reconciler of one replica.
#[derive(Debug, Clone)]
pub struct Reconciler {
    /// The journal.
    pub journal: Journal,
    /// Starts and resolves runs.
    pub executor: Executor,
    /// The action cap, across replicas.
    pub cap: usize,
    /// Starts of one run at most.
    pub max_attempts: i32,
    /// Pause between rounds.
    pub interval: std::time::Duration,
    /// Woken when a run ends here.
    pub run_ended: Arc<Notify>,
    /// Woken when a notice is queued.
    pub notice_queued: Arc<Notify>,
    /// Whether notices are configured.
    pub notices: bool,
}

impl Reconciler {
    /// Runs the lease renewal and the reconciliation rounds until `stop`.
    pub fn spawn(self, stop: CancellationToken) {
        let renewer = self.clone();
        let stop_renewing = stop.clone();
        tokio::spawn(async move {
            let every = renewer.executor.lease().duration / 3;
            loop {
                tokio::select! {
                    _ = stop_renewing.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                let ids = renewer.executor.in_flight();
                if let Err(error) = renewer
                    .journal
                    .renew_leases(renewer.executor.lease(), &ids)
                    .await
                {
                    tracing::warn!(%error, runs = ids.len(), "cannot renew run leases");
                }
            }
        });
        tokio::spawn(async move {
            loop {
                if let Err(error) = self.round().await {
                    tracing::warn!(%error, "reconciliation round failed; trying again");
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(self.interval) => {}
                    _ = self.run_ended.notified() => {}
                }
            }
        });
    }

    /// One round: expired leases, unplanned escalations, startable runs.
    pub async fn round(&self) -> Result<(), JournalError> {
        for id in self.journal.expired_leases(100).await? {
            if let Some(run) = self
                .journal
                .take_over_expired(id, self.executor.lease(), self.cap)
                .await?
            {
                let this = self.clone();
                self.executor
                    .spawn_resolution(id, async move { this.resolve(run).await });
            }
        }
        for id in self.journal.unplanned_escalations().await? {
            self.executor.spawn(id);
        }
        for id in self.journal.startable(self.cap, 50).await? {
            self.executor.spawn(id);
        }
        Ok(())
    }

    /// Resolves a run taken over from a dead owner: one that had not begun applying is
    /// started again; one caught applying is resolved by asking the world whether its plan
    /// took effect, and escalated with a notice when that cannot be told.
    async fn resolve(&self, run: RunRow) -> Result<(), JournalError> {
        let owner = self.executor.lease().owner.clone();
        let exhausted = run.attempts >= self.max_attempts;
        let (event, effect, outcome, notice) = match run.state {
            RunState::Running if exhausted => (
                Event::Fail,
                Effect::None,
                format!("its replica stopped before applying anything, {} time(s); nothing changed; given up", run.attempts),
                Some(NoticeReason::Failure),
            ),
            RunState::Running => (
                Event::Abandon,
                Effect::None,
                "its replica stopped before applying anything; started again".to_string(),
                None,
            ),
            RunState::Applying if run.plan.as_ref().is_some_and(|plan| plan.resumes()) => {
                let plan = run.plan.clone().expect("checked above");
                return self.executor.resume(run, plan).await;
            }
            RunState::Applying => {
                let found = match (&run.plan, run.applying_at) {
                    (Some(plan), Some(since)) => plan
                        .find_applied(self.executor.context(), since)
                        .await
                        .unwrap_or(Found::Unknown),
                    // A forwarded run's plan is the agent's: the agent is asked.
                    _ => match self.ask_agent(&run).await {
                        AgentSays::Found(found) => found,
                        AgentSays::Ended(event, effect, outcome) => {
                            return self.end(&run, &owner, event, effect, outcome, None).await
                        }
                        AgentSays::StillApplying => return Ok(()),
                    },
                };
                let summary = run.plan_summary.clone().unwrap_or_default();
                match found {
                    Found::Applied => (
                        Event::Reconcile(found),
                        Effect::Changed,
                        format!("its replica stopped mid-apply; the world shows the plan took effect: {summary}"),
                        None,
                    ),
                    Found::NotApplied if exhausted => (
                        Event::Fail,
                        Effect::None,
                        format!("its replica stopped mid-apply {} time(s) and nothing of the plan took effect; given up: {summary}", run.attempts),
                        Some(NoticeReason::Failure),
                    ),
                    Found::NotApplied => (
                        Event::Reconcile(found),
                        Effect::None,
                        "its replica stopped mid-apply before anything took effect; started again".to_string(),
                        None,
                    ),
                    Found::Unknown => (
                        Event::Reconcile(found),
                        Effect::Unknown,
                        format!("INTERRUPTED: its replica stopped mid-apply and whether the plan took effect cannot be told; check by hand: {summary}"),
                        Some(NoticeReason::Interrupted),
                    ),
                }
            }
            _ => return Ok(()),
        };
        self.end(&run, &owner, event, effect, outcome, notice).await
    }

    /// Journals how a taken-over run was resolved.
    async fn end(
        &self,
        run: &RunRow,
        owner: &str,
        event: Event,
        effect: Effect,
        outcome: String,
        notice: Option<NoticeReason>,
    ) -> Result<(), JournalError> {
        let to = crate::lifecycle::next(run.state, event)?;
        let mut transition = Transition::new(run.state, event);
        transition.effect = Some(effect);
        transition.outcome = Some(&outcome);
        transition.notice = notice.filter(|_| self.notices);
        if self
            .journal
            .transition(run.id, Some(owner), transition)
            .await?
        {
            tracing::warn!(run = run.id, state = to.name(), %outcome, "run resolved after its replica stopped");
            if transition.notice.is_some() {
                self.notice_queued.notify_one();
            }
            // Started again: the next round (now) picks it up.
            self.run_ended.notify_one();
        }
        Ok(())
    }

    /// Asks the machine's agent how a forwarded run it may have applied ended.
    async fn ask_agent(&self, run: &RunRow) -> AgentSays {
        let Some(forwarder) = self
            .executor
            .context()
            .forwarder
            .as_ref()
            .filter(|f| f.forwards(run.action))
        else {
            return AgentSays::Found(Found::Unknown);
        };
        let Ok(base) = forwarder.agent_url(&run.labels) else {
            return AgentSays::Found(Found::Unknown);
        };
        let rule = self.executor.rule(&run.rule);
        let knobs = rule
            .and_then(|rule| {
                rule.action
                    .host_request(run.id, &rule.params, &run.labels)
                    .ok()
            })
            .flatten();
        let Some(mut request) = knobs else {
            return AgentSays::Found(Found::Unknown);
        };
        request.journal = self.executor.context().journal_id.clone();
        let status = match forwarder.status(&base, &RunKey::of(&request)).await {
            Ok(status) => status,
            Err(error) => {
                tracing::warn!(run = run.id, %error, "cannot ask the agent how a run ended");
                return AgentSays::Found(Found::Unknown);
            }
        };
        match status {
            RunStatus::NeverApplied => AgentSays::Found(Found::NotApplied),
            RunStatus::InProgress => AgentSays::StillApplying,
            RunStatus::CutOff { found } => AgentSays::Found(found),
            RunStatus::Finished { response } => {
                let event = match response.state {
                    AgentOutcome::Succeeded => Event::Reconcile(Found::Applied),
                    AgentOutcome::NothingToDo => Event::Conclude(Conclusion::NothingToDo),
                    AgentOutcome::Refused => Event::Conclude(Conclusion::Refused),
                    AgentOutcome::Failed | AgentOutcome::Planned => Event::Fail,
                };
                let outcome = format!(
                    "its replica stopped while agent {base} applied it; the agent's record: {}",
                    response.outcome
                );
                AgentSays::Ended(event, response.effect, outcome)
            }
        }
    }
}

/// What a forwarded run's agent says of it.
enum AgentSays {
    /// As the machine shows it.
    Found(Found),
    /// It ended there, so.
    Ended(Event, Effect, String),
    /// It is still being applied: ask again at the next round.
    StillApplying,
}
