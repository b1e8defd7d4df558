//! Agent mode: runs host-local actions on the machine they concern, under that machine's
//! own policy (`[agent]` and its `[agent.<action>]` tables). The central instance applies
//! the guards and journals; the agent checks the action is one it runs, that the request
//! is about this machine and within its policy's bounds, then plans, applies and verifies
//! through the same steps as the central executor, and answers the outcome.
//!
//! - [`protocol`]: what the two say to each other.
//! - [`stopped_services`]: the durable record that restarts services a crash left stopped.
//! - [`run_records`]: the durable record of each forwarded run, so a retried request is
//!   answered from it and a central replica can ask how a run it lost track of ended.

pub mod protocol;
pub mod run_records;
pub mod stopped_services;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use koji_config::error_chain::error_chain;

use crate::actions::{plan_host_local, steps, ActionContext, Planned};
use crate::config::sections::AgentConfig;
use crate::lifecycle::Effect;
use crate::lifecycle::Found;
use protocol::{AgentOutcome, AgentRequest, AgentResponse, RunStatus};
use run_records::{RunKey, RunRecord, RunRecords};

/// The agent's shared state.
#[derive(Debug, Clone)]
pub struct AgentState {
    /// Token the central instance must present.
    pub token: crate::http::token_file::TokenFile,
    /// This machine's policy.
    pub config: Arc<AgentConfig>,
    /// What actions use here.
    pub context: ActionContext,
    /// What the agent did on its own when it started (services restarted), reported with
    /// every answer.
    pub recovery: Arc<Vec<String>>,
    /// Forwarded requests being applied here now.
    pub in_flight: Arc<Mutex<HashSet<RunKey>>>,
}

impl AgentState {
    /// The durable records of forwarded runs.
    pub fn records(&self) -> RunRecords {
        RunRecords::new(&self.config.state_dir)
    }
}

/// A run being applied here: refused a second time until it ends.
struct Applying<'a> {
    state: &'a AgentState,
    key: RunKey,
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        self.state
            .in_flight
            .lock()
            .expect("in-flight set")
            .remove(&self.key);
    }
}

/// Why a request was not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRun {
    /// The same run is being applied here right now.
    #[error("run {0} is being applied on this agent right now")]
    InProgress(i64),
}

/// What the agent knows of the forwarded request `key` names.
pub async fn status(state: &AgentState, key: &RunKey) -> RunStatus {
    let in_flight = state.in_flight.lock().expect("in-flight set").contains(key);
    match state.records().get(key) {
        Ok(None) => RunStatus::NeverApplied,
        Ok(Some(RunRecord::Finished(response))) => RunStatus::Finished { response },
        Ok(Some(RunRecord::Started(_))) if in_flight => RunStatus::InProgress,
        Ok(Some(RunRecord::Started(plan))) => RunStatus::CutOff {
            found: plan
                .find_applied(&state.context, chrono::Utc::now())
                .await
                .unwrap_or(Found::Unknown),
        },
        Err(error) => {
            tracing::warn!(run = key.run, %error, "cannot read a run record");
            RunStatus::CutOff {
                found: Found::Unknown,
            }
        }
    }
}

/// After a restart: starts every service a cut-off cleanup left stopped, as the durable
/// record says; returns what it did.
pub async fn recover(config: &AgentConfig) -> Vec<String> {
    let Some(policy) = &config.clean_build_dirs else {
        return Vec::new();
    };
    let notes =
        crate::actions::clean_build_dirs::start_left_stopped(policy, &config.state_dir).await;
    for note in &notes {
        tracing::warn!(%note, "agent recovery");
    }
    notes
}

/// Runs a forwarded request to its end. A run that already ended here is answered from its
/// record; one cut off mid-apply by a crash of this agent is resolved from the machine.
pub async fn execute(state: &AgentState, request: &AgentRequest) -> Result<AgentResponse, NotRun> {
    let key = RunKey::of(request);
    let guard = if request.plan_only {
        None
    } else {
        // What became of this request before, asked before it counts as in progress.
        let before = status(state, &key).await;
        if !state
            .in_flight
            .lock()
            .expect("in-flight set")
            .insert(key.clone())
        {
            return Err(NotRun::InProgress(request.run));
        }
        Some((
            Applying {
                state,
                key: key.clone(),
            },
            before,
        ))
    };
    let records = state.records();
    if let Some((_, before)) = &guard {
        records.prune();
        match before.clone() {
            RunStatus::Finished { mut response } => {
                response.outcome = format!(
                    "{} (answered from this agent's record: the run had ended here already)",
                    response.outcome
                );
                return Ok(with_recovery(state, response));
            }
            RunStatus::CutOff {
                found: found @ (Found::Applied | Found::Unknown),
            } => {
                let response = cut_off(found);
                record(&records, &key, &RunRecord::Finished(response.clone()));
                return Ok(with_recovery(state, response));
            }
            RunStatus::CutOff {
                found: Found::NotApplied,
            }
            | RunStatus::NeverApplied
            | RunStatus::InProgress => {}
        }
    }
    let response = run(state, request, &key, &records).await;
    if guard.is_some() {
        record(&records, &key, &RunRecord::Finished(response.clone()));
    }
    Ok(with_recovery(state, response))
}

/// The answer for a run this agent was cut off from mid-apply, as the machine shows it.
fn cut_off(found: Found) -> AgentResponse {
    let (state, effect, outcome) = match found {
        Found::Applied => (
            AgentOutcome::Succeeded,
            Effect::Changed,
            "the agent was cut off mid-apply; the machine shows the plan took effect",
        ),
        _ => (
            AgentOutcome::Failed,
            Effect::Unknown,
            "the agent was cut off mid-apply and the machine cannot tell whether the plan took effect; check by hand",
        ),
    };
    AgentResponse {
        state,
        effect,
        plan: None,
        outcome: outcome.into(),
        recovery: Vec::new(),
    }
}

fn record(records: &RunRecords, key: &RunKey, record: &RunRecord) {
    if let Err(error) = records.put(key, record) {
        tracing::warn!(run = key.run, %error, "cannot record a forwarded run");
    }
}

fn with_recovery(state: &AgentState, mut response: AgentResponse) -> AgentResponse {
    response.recovery = state.recovery.to_vec();
    response
}

async fn run(
    state: &AgentState,
    request: &AgentRequest,
    key: &RunKey,
    records: &RunRecords,
) -> AgentResponse {
    let answer =
        |state: AgentOutcome, effect, plan: Option<String>, outcome: String| AgentResponse {
            state,
            effect,
            plan,
            outcome,
            recovery: Vec::new(),
        };
    let context = &state.context;
    match plan_host_local(context, request).await {
        Err(error) => answer(
            AgentOutcome::Failed,
            Effect::None,
            None,
            format!("planning failed; nothing changed: {}", error_chain(&error)),
        ),
        Ok(Planned::NothingToDo(reason)) => {
            answer(AgentOutcome::NothingToDo, Effect::None, None, reason)
        }
        Ok(Planned::Refused(reason)) => answer(AgentOutcome::Refused, Effect::None, None, reason),
        Ok(Planned::Change(plan)) if request.plan_only => answer(
            AgentOutcome::Planned,
            Effect::None,
            Some(plan.summary()),
            "planned only; nothing applied".into(),
        ),
        Ok(Planned::Change(plan)) => {
            // Durable before anything changes: a crash from here on is resolved from it.
            if let Err(error) = records.put(key, &RunRecord::Started(plan.clone())) {
                return answer(
                    AgentOutcome::Failed,
                    Effect::None,
                    Some(plan.summary()),
                    format!("cannot record the run before applying it; nothing changed: {error}"),
                );
            }
            let applied = steps::apply_and_verify(&plan, context, request.run).await;
            answer(
                if applied.succeeded {
                    AgentOutcome::Succeeded
                } else {
                    AgentOutcome::Failed
                },
                applied.effect,
                Some(plan.summary()),
                applied.outcome,
            )
        }
    }
}
