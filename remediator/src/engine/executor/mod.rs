//! Runs claimed runs after the webhook has answered, through the lifecycle of
//! [`crate::lifecycle`]: start under a lease (the journal decides the cap and the
//! cooldown, across replicas), plan, journal `applying` with the plan, apply and verify
//! ([`crate::actions::steps`]), journal the end. It names no action: what differs between
//! actions is asked of them (host-local or not, what the central side adds to a forwarded
//! request, how to undo a plan).
//!
//! Every transition is journaled before its effect is reported. When the journal fails
//! mid-run the task ends and the run keeps its state; its lease then runs out and the
//! [`super::reconciler`] resolves it from the world.
//!
//! Split: this file is the lifecycle; `agents` forwards host-local runs to their
//! machine's agent and has escalations of them planned there; `silencing` holds the
//! Alertmanager silence around a fix; `simulation` says what a delivery would do now.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use koji_config::error_chain::error_chain;
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

mod agents;
mod silencing;
pub mod simulation;

use super::silences::Silencer;
use crate::actions::{steps, ActionContext, Plan, Planned};
use crate::config::{Config, Rule};
use crate::journal::runs::{Lease, RunRow, Start, StartGuards, Transition};
use crate::journal::{Journal, JournalError};
use crate::lifecycle::{Conclusion, Effect, Event, Hold, NoticeReason, RunKind, RunState};
use crate::metrics::{ActionLabels, Metrics, OutcomeLabels};

/// Executes runs; cheap to clone, shared by the webhook, the reconciler and approvals.
#[derive(Debug, Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<Config>,
    journal: Journal,
    context: ActionContext,
    metrics: Arc<Metrics>,
    lease: Lease,
    /// Runs this process is working on: their leases are renewed, and a second spawn of
    /// one of them is a no-op.
    in_flight: Mutex<HashSet<i64>>,
    /// Every run task, so a stop can wait for them.
    tasks: TaskTracker,
    silencer: Option<Silencer>,
    /// Whether `[notify]` is configured (notices are queued only then).
    notices: bool,
    /// Wakes the reconciler: a run ended, so a slot may be free.
    run_ended: Arc<Notify>,
    /// Wakes the notice sender: a notice was queued.
    notice_queued: Arc<Notify>,
}

/// Removes a run from the in-flight set when its task ends, however it ends.
struct InFlight {
    inner: Arc<Inner>,
    id: i64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner
            .in_flight
            .lock()
            .expect("in-flight set")
            .remove(&self.id);
        self.inner.run_ended.notify_one();
    }
}

/// How a run's work ended, to journal.
struct Ending {
    event: Event,
    effect: Effect,
    outcome: String,
    plan: Option<Plan>,
    plan_summary: Option<String>,
}

impl Ending {
    fn new(event: Event, effect: Effect, outcome: String) -> Ending {
        Ending {
            event,
            effect,
            outcome,
            plan: None,
            plan_summary: None,
        }
    }
}

/// What the executor needs besides the configuration.
#[derive(Debug, Clone)]
pub struct ExecutorParts {
    /// The journal.
    pub journal: Journal,
    /// What actions use.
    pub context: ActionContext,
    /// Own metrics.
    pub metrics: Arc<Metrics>,
    /// This replica's lease identity.
    pub lease: Lease,
    /// Woken when a run ends.
    pub run_ended: Arc<Notify>,
    /// Woken when a notice is queued.
    pub notice_queued: Arc<Notify>,
}

impl Executor {
    /// An executor for `config`.
    pub fn new(config: Arc<Config>, parts: ExecutorParts) -> Executor {
        let silencer = config.silences.clone().map(Silencer::new);
        let notices = config.notify.is_some();
        Executor {
            inner: Arc::new(Inner {
                config,
                journal: parts.journal,
                context: parts.context,
                metrics: parts.metrics,
                lease: parts.lease,
                in_flight: Mutex::default(),
                tasks: TaskTracker::new(),
                silencer,
                notices,
                run_ended: parts.run_ended,
                notice_queued: parts.notice_queued,
            }),
        }
    }

    /// This replica's lease identity.
    pub fn lease(&self) -> &Lease {
        &self.inner.lease
    }

    /// The runbook rule named `name`, if the runbook still has it.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.inner.config.rules.iter().find(|r| r.name == name)
    }

    /// What actions use.
    pub fn context(&self) -> &ActionContext {
        &self.inner.context
    }

    /// The runs this process is working on now.
    pub fn in_flight(&self) -> Vec<i64> {
        let set = self.inner.in_flight.lock().expect("in-flight set");
        set.iter().copied().collect()
    }

    /// Marks `id` in flight; false when it already was.
    fn claim(&self, id: i64) -> Option<InFlight> {
        let mut set = self.inner.in_flight.lock().expect("in-flight set");
        set.insert(id).then(|| InFlight {
            inner: self.inner.clone(),
            id,
        })
    }

    /// Waits up to `grace` for runs in flight to finish (on SIGTERM). Runs still going then
    /// are cut off; their leases run out and a replica (or this one, restarted) resolves
    /// them from the world.
    pub async fn drain(&self, grace: std::time::Duration) -> bool {
        self.inner.tasks.close();
        tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_ok()
    }

    /// Works on run `id` in the background: starts it if pending (within the cap and the
    /// cooldown), plans an escalation still without a plan. A run this process already
    /// works on is left alone.
    pub fn spawn(&self, id: i64) {
        let Some(guard) = self.claim(id) else { return };
        let executor = self.clone();
        self.inner.tasks.spawn(async move {
            match executor.execute(id).await {
                Ok(()) => {}
                // Another reconciler took the run over (this replica's lease ran out): it
                // resolves the run from the world.
                Err(JournalError::Lost(_)) => {
                    tracing::warn!(run = id, "the run was taken over while this replica held it")
                }
                // The run keeps its journaled state; the reconciler resolves it when the
                // journal answers again.
                Err(error) => {
                    let error = koji_config::error_chain::error_chain(&error);
                    tracing::error!(run = id, %error, "journal failed during a run; the reconciler takes it over")
                }
            }
            drop(guard);
        });
    }

    /// Resolves run `id` (taken over by the reconciler) in the background, holding it in
    /// flight so its lease is renewed meanwhile.
    pub fn spawn_resolution<F>(&self, id: i64, work: F)
    where
        F: std::future::Future<Output = Result<(), JournalError>> + Send + 'static,
    {
        let Some(guard) = self.claim(id) else { return };
        self.inner.tasks.spawn(async move {
            if let Err(error) = work.await {
                tracing::error!(run = id, %error, "journal failed while resolving a run");
            }
            drop(guard);
        });
    }

    async fn execute(&self, id: i64) -> Result<(), JournalError> {
        let journal = &self.inner.journal;
        let Some(run) = journal.run(id).await? else {
            return Ok(());
        };
        let rule = self.inner.config.rules.iter().find(|r| r.name == run.rule);
        match (run.state, rule) {
            (RunState::Pending, None) => {
                let mut skip = Transition::new(run.state, Event::Hold(Hold::RuleGone));
                let outcome = format!("{}; nothing changed", Hold::RuleGone.outcome_opening());
                skip.outcome = Some(&outcome);
                journal.transition(id, None, skip).await?;
                Ok(())
            }
            (RunState::Pending, Some(rule)) => self.run_pending(id, rule).await,
            (RunState::AwaitingApproval, Some(rule)) if run.plan_summary.is_none() => {
                self.prepare_escalation(&run, rule).await
            }
            _ => Ok(()),
        }
    }

    async fn run_pending(&self, id: i64, rule: &Rule) -> Result<(), JournalError> {
        let started = Instant::now();
        let config = &self.inner.config;
        let start = self
            .inner
            .journal
            .start(
                id,
                &self.inner.lease,
                &StartGuards {
                    cap: config.guards.max_concurrent_per_action,
                    cooldown: config.cooldown(rule),
                    restore_after: rule.restore_after,
                    max_runs_per_hour: rule.max_runs_per_hour,
                    notices: self.inner.notices,
                },
            )
            .await?;
        let run = match start {
            Start::Started(run) => *run,
            Start::Held(hold, outcome) => {
                tracing::info!(run = id, ?hold, %outcome, "run held back");
                self.count(rule, RunState::Skipped, started);
                return Ok(());
            }
            // It stays pending: the reconciler starts it when a slot frees or its apply
            // run ends.
            Start::AtCap | Start::Waiting | Start::NotPending => return Ok(()),
        };
        let silence = self.silence(&run, rule).await;
        let work = self.work(&run, rule).await;
        let silence_note = self.end_silence(silence).await;
        let (from, mut ending) = work?;
        ending.outcome.push_str(&silence_note);
        self.finish(id, Some(rule), from, ending, started).await
    }

    /// Journals how a run's work ended, with a notice to on-call when it failed.
    async fn finish(
        &self,
        id: i64,
        rule: Option<&Rule>,
        from: RunState,
        ending: Ending,
        started: Instant,
    ) -> Result<(), JournalError> {
        let to = crate::lifecycle::next(from, ending.event)?;
        let notice = (to == RunState::Failed).then_some(NoticeReason::Failure);
        let moved = self
            .inner
            .journal
            .transition(
                id,
                Some(&self.inner.lease.owner),
                Transition {
                    from,
                    event: ending.event,
                    effect: Some(ending.effect),
                    outcome: Some(&ending.outcome),
                    plan: ending.plan.as_ref(),
                    plan_summary: ending.plan_summary.as_deref(),
                    notice: notice.filter(|_| self.inner.notices),
                },
            )
            .await?;
        if !moved {
            tracing::warn!(
                run = id,
                "the run was taken over before it could be ended here"
            );
            return Ok(());
        }
        if notice.is_some() {
            self.inner.notice_queued.notify_one();
        }
        if let Some(rule) = rule {
            self.count(rule, to, started);
        }
        tracing::info!(run = id, action = rule.map_or("", |rule| rule.action.name()), state = to.name(), outcome = %ending.outcome, "run ended");
        Ok(())
    }

    /// Goes on applying `run`, taken over mid-apply from a replica that stopped, from the
    /// progress its plan saved (see [`Plan::resumes`]); the caller holds it in flight.
    pub async fn resume(&self, run: RunRow, plan: Plan) -> Result<(), JournalError> {
        let started = Instant::now();
        tracing::warn!(run = run.id, summary = %plan.summary(), "resuming a run its replica left applying");
        let applied = steps::apply_and_verify(&plan, &self.inner.context, run.id).await;
        let event = if applied.succeeded {
            Event::Succeed
        } else {
            Event::Fail
        };
        let ending = Ending::new(
            event,
            applied.effect,
            format!("resumed after its replica stopped; {}", applied.outcome),
        );
        let rule = self.rule(&run.rule);
        self.finish(run.id, rule, RunState::Applying, ending, started)
            .await
    }

    /// Plans and applies a started run; returns the state it is in now and how it ended.
    async fn work(&self, run: &RunRow, rule: &Rule) -> Result<(RunState, Ending), JournalError> {
        let context = &self.inner.context;
        if let Some(forwarder) = context
            .forwarder
            .as_ref()
            .filter(|f| f.forwards(rule.action))
        {
            return self.forward(forwarder, run, rule).await;
        }
        let planned = match (run.kind, &run.plan) {
            // An approved escalation applies the plan on-call approved, not a new one.
            (RunKind::Apply, Some(plan)) => Ok(Planned::Change(plan.clone())),
            (RunKind::Apply, None) => rule.action.plan(context, &rule.params, &run.labels).await,
            (RunKind::Restore, _) => {
                let applied = self
                    .inner
                    .journal
                    .applied_plan(run.action, &run.fingerprint, &run.starts_at)
                    .await?;
                match applied {
                    Some(applied) => applied.undo(context).await,
                    None => Ok(Planned::NothingToDo(
                        "nothing was applied for this alert, so nothing to restore".into(),
                    )),
                }
            }
        };
        let from = RunState::Running;
        let plan = match planned {
            Ok(Planned::Change(plan)) => plan,
            Ok(Planned::NothingToDo(reason)) => {
                return Ok((from, conclude(Conclusion::NothingToDo, reason)))
            }
            Ok(Planned::Refused(reason)) => {
                return Ok((from, conclude(Conclusion::Refused, reason)))
            }
            Err(error) => {
                let outcome = format!("planning failed; nothing changed: {}", error_chain(&error));
                return Ok((from, Ending::new(Event::Fail, Effect::None, outcome)));
            }
        };
        if let Some(held) = self.held(rule).await? {
            let said = held.words();
            let mut ending = conclude(held, format!("{said}; not applied: {}", plan.summary()));
            ending.plan_summary = Some(plan.summary());
            ending.plan = Some(plan);
            return Ok((from, ending));
        }
        let mut applying = Transition::new(from, Event::BeginApply);
        applying.plan = Some(&plan);
        let summary = plan.summary();
        applying.plan_summary = Some(&summary);
        if !self
            .inner
            .journal
            .transition(run.id, Some(&self.inner.lease.owner), applying)
            .await?
        {
            return Err(lost(run.id));
        }
        let applied = steps::apply_and_verify(&plan, context, run.id).await;
        let event = if applied.succeeded {
            Event::Succeed
        } else {
            Event::Fail
        };
        Ok((
            RunState::Applying,
            Ending::new(event, applied.effect, applied.outcome),
        ))
    }

    /// Whether the pause switch or dry run keeps this rule's plan from being applied.
    async fn held(&self, rule: &Rule) -> Result<Option<Conclusion>, JournalError> {
        let guards = &self.inner.config.guards;
        let paused = self.inner.journal.paused().await?.unwrap_or(guards.paused);
        Ok(if paused {
            Some(Conclusion::Paused)
        } else if guards.dry_run || rule.dry_run {
            Some(Conclusion::DryRun)
        } else {
            None
        })
    }

    fn count(&self, rule: &Rule, state: RunState, started: Instant) {
        let metrics = &self.inner.metrics;
        metrics
            .actions
            .get_or_create(&OutcomeLabels {
                action: rule.action.name().into(),
                outcome: state.name().into(),
            })
            .inc();
        metrics
            .action_duration
            .get_or_create(&ActionLabels {
                action: rule.action.name().into(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
}

fn conclude(conclusion: Conclusion, outcome: String) -> Ending {
    Ending::new(Event::Conclude(conclusion), Effect::None, outcome)
}

/// The run was taken over while this replica held it (its lease ran out during a journal
/// outage): whoever took it resolves it.
fn lost(id: i64) -> JournalError {
    JournalError::Lost(id)
}
