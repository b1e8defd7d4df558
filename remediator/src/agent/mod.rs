//! Agent mode: runs host-local actions on the machine they concern, under that machine's
//! own policy (`[agent]` and its `[agent.<action>]` tables). The central instance applies
//! the guards and journals; the agent checks the action is one it runs, that the request
//! is about this machine and within its policy's bounds, then plans, applies and verifies
//! through the same steps as the central executor, and answers the outcome.
//!
//! - [`protocol`]: what the two say to each other.
//! - [`stopped_services`]: the durable record that restarts services a crash left stopped.

pub mod protocol;
pub mod stopped_services;

use std::sync::Arc;

use koji_config::error_chain::error_chain;

use crate::actions::{plan_host_local, steps, ActionContext, Planned};
use crate::config::sections::AgentConfig;
use crate::lifecycle::Effect;
use protocol::{AgentOutcome, AgentRequest, AgentResponse};

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

/// Runs a forwarded request to its end.
pub async fn execute(state: &AgentState, request: &AgentRequest) -> AgentResponse {
    let answer =
        |state: AgentOutcome, effect, plan: Option<String>, outcome: String| AgentResponse {
            state,
            effect,
            plan,
            outcome,
            recovery: Vec::new(),
        };
    let context = &state.context;
    let mut response = match plan_host_local(context, request).await {
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
    };
    response.recovery = state.recovery.to_vec();
    response
}
