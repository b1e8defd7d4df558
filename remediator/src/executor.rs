//! Runs claimed actions after the webhook has answered: guards, plan, apply, verify, and
//! the journal and metrics at every step.
//!
//! Order of the guards: idempotency already held at claim time (unique key); here the
//! concurrency cap (per action), the cooldown (per action and target, in the journal under
//! an advisory lock), then after planning the pause switch and dry-run, which keep the plan
//! and apply nothing.

use koji_config::error_chain::error_chain;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::actions::{lower_capacity, ActionContext, ActionKind, Plan, Planned};
use crate::agent::AgentRequest;
use crate::config::Config;
use crate::forwarding::Forwarder;
use crate::journal::{ClaimedRun, Journal, JournalError, RunInfo, RunStart};
use crate::metrics::{ActionLabels, Metrics, OutcomeLabels};
use crate::notify::{NoticeContext, Notifier};
use crate::silences::{Silence, Silencer};

/// Executes runs.
#[derive(Debug, Clone)]
pub struct Executor {
    config: Arc<Config>,
    journal: Journal,
    context: ActionContext,
    metrics: Arc<Metrics>,
    slots: Arc<HashMap<ActionKind, Arc<Semaphore>>>,
    /// Every run in flight, so a stop can wait for them.
    tasks: TaskTracker,
    /// Sends runs of forwarded actions to agents.
    forwarder: Option<Forwarder>,
    /// Sends outage notices for escalations.
    notifier: Option<Notifier>,
    /// Silences alerts in Alertmanager while their fix runs.
    silencer: Option<Silencer>,
}

impl Executor {
    /// An executor for `config`.
    pub fn new(
        config: Arc<Config>,
        journal: Journal,
        context: ActionContext,
        metrics: Arc<Metrics>,
        forwarder: Option<Forwarder>,
        notifier: Option<Notifier>,
    ) -> Executor {
        let slots = ActionKind::ALL
            .iter()
            .map(|&kind| {
                let cap = config.guards.max_concurrent_per_action;
                (kind, Arc::new(Semaphore::new(cap)))
            })
            .collect();
        let silencer = config.silences.clone().map(Silencer::new);
        Executor {
            config,
            journal,
            context,
            metrics,
            slots: Arc::new(slots),
            tasks: TaskTracker::new(),
            forwarder,
            notifier,
            silencer,
        }
    }

    /// Waits up to `grace` for runs in flight to finish (on SIGTERM). Runs still going then
    /// are cut off and found `running` at the next start, which marks them interrupted.
    pub async fn drain(&self, grace: std::time::Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }

    /// Runs `run` in the background.
    pub fn spawn(&self, run: ClaimedRun) -> tokio::task::JoinHandle<()> {
        let executor = self.clone();
        self.tasks.spawn(async move {
            if let Err(error) = executor.execute(&run).await {
                // The run stays pending or running in the journal; recovery at the next
                // start picks pending runs up again.
                tracing::error!(run = run.id, %error, "journal failed during a run");
            }
        })
    }

    /// Resumes a run claimed before a restart (its rule is read from the journal row).
    pub fn resume(&self, id: i64) -> tokio::task::JoinHandle<()> {
        let executor = self.clone();
        self.tasks.spawn(async move {
            match executor.journal.run_rule(id).await {
                Ok(Some(rule)) => {
                    let run = ClaimedRun { id, rule };
                    if let Err(error) = executor.execute(&run).await {
                        tracing::error!(run = id, %error, "journal failed during a resumed run");
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::error!(run = id, %error, "cannot resume run"),
            }
        })
    }

    /// Runs one claimed run to its end.
    pub async fn execute(&self, run: &ClaimedRun) -> Result<(), JournalError> {
        let Some(rule) = self.config.rules.iter().find(|rule| rule.name == run.rule) else {
            return self
                .journal
                .finish_run(run.id, "skipped", "its rule is no longer in the runbook")
                .await;
        };
        match self.journal.run_state(run.id).await?.as_deref() {
            Some("awaiting_approval") => {
                self.prepare_escalation(run.id, rule).await?;
                return self.notice(run.id, rule).await;
            }
            Some("notified") => return self.notice(run.id, rule).await,
            _ => {}
        }
        let slot = self.slots[&rule.action].clone();
        let _permit = slot
            .acquire_owned()
            .await
            .expect("semaphores are never closed");
        let started = Instant::now();
        let info = match self
            .journal
            .begin_run(run.id, self.config.cooldown(rule))
            .await?
        {
            RunStart::Started(info) => info,
            RunStart::Cooldown(_) => {
                self.count(rule.action, "skipped", started);
                return Ok(());
            }
            RunStart::Gone => return Ok(()),
        };
        let silence = self.silence(run.id, rule, &info).await;
        let result = self.plan_and_apply(run.id, rule, &info).await;
        let silence_note = self.end_silence(silence).await;
        let (state, mut outcome) = result?;
        outcome.push_str(&silence_note);
        self.journal.finish_run(run.id, state, &outcome).await?;
        self.count(rule.action, state, started);
        tracing::info!(run = run.id, action = rule.action.name(), state, %outcome, "run finished");
        if state == "failed" {
            // A fix that failed (a restart step, a cleanup cut short) is escalated.
            return self.notice(run.id, rule).await;
        }
        Ok(())
    }

    async fn plan_and_apply(
        &self,
        id: i64,
        rule: &crate::config::Rule,
        info: &RunInfo,
    ) -> Result<(&'static str, String), JournalError> {
        if let Some(forwarder) = self.forwarder.as_ref().filter(|f| f.forwards(rule.action)) {
            return self.forward(forwarder, id, rule, info).await;
        }
        // An approved escalation applies the plan on-call approved, not a new one.
        let stored = match info.kind.as_str() {
            "apply" => self.journal.stored_plan(id).await?,
            _ => None,
        };
        let planned = match stored {
            Some(plan) => Planned::Change(plan),
            None => match self.plan(rule, info).await? {
                Ok(planned) => planned,
                Err(error) => {
                    return Ok((
                        "failed",
                        format!("planning failed: {}", error_chain(&error)),
                    ))
                }
            },
        };
        let plan = match planned {
            Planned::Change(plan) => plan,
            Planned::NothingToDo(reason) => return Ok(("nothing_to_do", reason)),
            Planned::Refused(reason) => return Ok(("refused", reason)),
        };
        self.journal.record_plan(id, &plan).await?;
        let paused = self
            .journal
            .paused()
            .await?
            .unwrap_or(self.config.guards.paused);
        if paused {
            return Ok(("paused", format!("paused; not applied: {}", plan.summary())));
        }
        if self.config.guards.dry_run || rule.dry_run {
            return Ok((
                "dry_run",
                format!("dry run; not applied: {}", plan.summary()),
            ));
        }
        let applied = match plan.apply(&self.context).await {
            Ok(applied) => applied,
            Err(error) => return Ok(("failed", format!("apply failed: {}", error_chain(&error)))),
        };
        Ok(match plan.verify(&self.context).await {
            Ok(verified) => ("succeeded", format!("{applied}; verified: {verified}")),
            Err(error) => ("failed", format!("{applied}; {}", error_chain(&error))),
        })
    }

    /// Silences the alert while its fix runs, where configured and safe (see
    /// [`crate::silences`]). `None` when no silence was asked for.
    async fn silence(
        &self,
        id: i64,
        rule: &crate::config::Rule,
        info: &RunInfo,
    ) -> Option<Result<Silence, String>> {
        let silencer = self.silencer.as_ref()?;
        if info.kind != "apply" || rule.action.restores_on_resolve() {
            return None;
        }
        let comment = format!(
            "koji-remediator run {id}: {} ({}) in progress",
            rule.action.name(),
            rule.name
        );
        let created = silencer.create(&info.labels, &comment).await;
        self.count_silence("create", created.is_ok());
        match &created {
            Ok(silence) => {
                tracing::info!(run = id, silence = %silence.id, "alert silenced while the fix runs")
            }
            Err(error) => {
                tracing::warn!(run = id, %error, "cannot silence the alert; fixing anyway")
            }
        }
        Some(created)
    }

    /// Removes the run's silence; returns what the run's outcome should say about it.
    async fn end_silence(&self, silence: Option<Result<Silence, String>>) -> String {
        let (Some(silencer), Some(silence)) = (&self.silencer, silence) else {
            return String::new();
        };
        let silence = match silence {
            Ok(silence) => silence,
            Err(error) => return format!("; no Alertmanager silence ({error})"),
        };
        let removed = silencer.remove(&silence).await;
        self.count_silence("remove", removed.is_ok());
        match removed {
            Ok(()) => format!(
                "; alert silenced in Alertmanager while it ran ({})",
                silence.id
            ),
            Err(error) => {
                tracing::warn!(silence = %silence.id, %error, "cannot remove a silence; it expires by itself");
                format!(
                    "; Alertmanager silence {} not removed ({error}); it expires by itself",
                    silence.id
                )
            }
        }
    }

    fn count_silence(&self, operation: &str, ok: bool) {
        self.metrics
            .silence_requests
            .get_or_create(&crate::metrics::SilenceLabels {
                operation: operation.into(),
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }

    /// Sends the outage notice for an escalation (still waiting, notify-only, or a failed
    /// fix), and journals how its delivery went.
    async fn notice(&self, id: i64, rule: &crate::config::Rule) -> Result<(), JournalError> {
        let Some(notifier) = &self.notifier else {
            return Ok(());
        };
        let state = self.journal.run_state(id).await?;
        if !matches!(
            state.as_deref(),
            Some("awaiting_approval" | "notified" | "failed")
        ) {
            return Ok(());
        }
        let Some(info) = self.journal.run_info(id).await? else {
            return Ok(());
        };
        let annotations = self
            .journal
            .annotations(&info.fingerprint, &info.starts_at)
            .await?;
        let plan = match (state.as_deref(), self.journal.stored_plan(id).await?) {
            (Some("failed"), _) => format!(
                "the automatic fix FAILED and needs a human: {}",
                self.journal.run_outcome(id).await?
            ),
            (_, Some(plan)) => plan.summary(),
            (_, None) => format!(
                "{} needs a human: no automatic fix is configured",
                rule.alertname
            ),
        };
        let context = NoticeContext {
            run: id,
            alertname: rule.alertname.clone(),
            labels: info.labels.clone(),
            summary: annotations.get("summary").cloned().unwrap_or_default(),
            description: annotations.get("description").cloned().unwrap_or_default(),
            since: info.starts_at.to_rfc3339(),
            plan,
            policy: rule.policy.name().into(),
            contact: notifier.contact().into(),
        };
        let result = match notifier.send(&context).await {
            Ok(delivered) => delivered,
            Err(failed) => {
                tracing::error!(run = id, %failed, "outage notice not delivered");
                failed
            }
        };
        let text = notifier.render(&context).unwrap_or_default();
        self.journal
            .record_notice(id, &format!("{result}\n{text}"))
            .await
    }

    /// Makes the plan of a run that waits for on-call, so they approve what will be done.
    /// If there is nothing to do, or the action refuses, no one needs to be asked.
    async fn prepare_escalation(
        &self,
        id: i64,
        rule: &crate::config::Rule,
    ) -> Result<(), JournalError> {
        let Some(info) = self.journal.run_info(id).await? else {
            return Ok(());
        };
        match self.plan(rule, &info).await? {
            Ok(Planned::Change(plan)) => self.journal.record_plan(id, &plan).await,
            Ok(Planned::NothingToDo(reason)) => {
                self.journal.finish_run(id, "nothing_to_do", &reason).await
            }
            Ok(Planned::Refused(reason)) => self.journal.finish_run(id, "refused", &reason).await,
            Err(error) => {
                let outcome = format!("planning failed: {}", error_chain(&error));
                self.journal.finish_run(id, "failed", &outcome).await
            }
        }
    }

    /// Has an agent run the action; the central guards (pause, dry run) travel as
    /// `plan_only`, and for a build-dir cleanup the hub's active buildroots as ids to keep.
    async fn forward(
        &self,
        forwarder: &Forwarder,
        id: i64,
        rule: &crate::config::Rule,
        info: &RunInfo,
    ) -> Result<(&'static str, String), JournalError> {
        let base = match forwarder.agent_url(&info.labels) {
            Ok(base) => base,
            Err(reason) => return Ok(("refused", reason)),
        };
        let mut params = rule.params.clone();
        if rule.action == ActionKind::CleanBuildDirs {
            let host_label = params
                .get("host_label")
                .and_then(|v| v.as_str())
                .unwrap_or("host")
                .to_string();
            if let Some(host) = info.labels.get(&host_label) {
                if let Some(active) =
                    crate::actions::clean_build_dirs::active_buildroots(&self.context, host).await
                {
                    let keep = active.into_iter().map(|id| toml::Value::Integer(id.into()));
                    params.insert("keep_buildroots".into(), toml::Value::Array(keep.collect()));
                }
            }
            params.insert("check_hub_buildroots".into(), toml::Value::Boolean(false));
        }
        let paused = self
            .journal
            .paused()
            .await?
            .unwrap_or(self.config.guards.paused);
        let plan_only = paused || self.config.guards.dry_run || rule.dry_run;
        let request = AgentRequest {
            run: id,
            action: rule.action,
            params,
            labels: info.labels.clone(),
            plan_only,
        };
        let response = match forwarder.send(&base, &request).await {
            Ok(response) => response,
            Err(error) => return Ok(("failed", error)),
        };
        if let Some(plan) = &response.plan {
            self.journal.record_plan_summary(id, plan).await?;
        }
        let state = match response.state.as_str() {
            "planned" if paused => "paused",
            "planned" => "dry_run",
            "succeeded" => "succeeded",
            "nothing_to_do" => "nothing_to_do",
            "refused" => "refused",
            _ => "failed",
        };
        Ok((state, format!("agent {base}: {}", response.outcome)))
    }

    /// The plan for a run: the rule's action, or for a restore the undoing of what this
    /// alert occurrence's apply run did.
    async fn plan(
        &self,
        rule: &crate::config::Rule,
        info: &RunInfo,
    ) -> Result<Result<Planned, crate::actions::ActionError>, JournalError> {
        if info.kind != "restore" {
            return Ok(rule
                .action
                .plan(&self.context, &rule.params, &info.labels)
                .await);
        }
        let applied = self
            .journal
            .applied_plan(rule.action, &info.fingerprint, &info.starts_at)
            .await?;
        Ok(match applied {
            Some(Plan::LowerCapacity(applied)) => {
                lower_capacity::plan_restore(&self.context, &applied).await
            }
            Some(_) | None => Ok(Planned::NothingToDo(
                "nothing was applied for this alert, so nothing to restore".into(),
            )),
        })
    }

    fn count(&self, action: ActionKind, outcome: &str, started: Instant) {
        self.metrics
            .actions
            .get_or_create(&OutcomeLabels {
                action: action.name().into(),
                outcome: outcome.into(),
            })
            .inc();
        self.metrics
            .action_duration
            .get_or_create(&ActionLabels {
                action: action.name().into(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
}
