//! Agent mode: runs actions a central remediator forwards, on the machine they concern
//! (a builder's build-dir cleanup). The central instance applies the guards and journals;
//! the agent checks the forwarding token, that the action is one it may run, and the
//! action's own safety rules, then plans, applies and verifies, and answers the outcome.

use koji_config::error_chain::error_chain;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::actions::{ActionContext, ActionKind, Planned};
use crate::api_error::ApiError;

/// What the central instance sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    /// The central journal's run id, for the agent's log.
    pub run: i64,
    /// The action.
    pub action: ActionKind,
    /// The rule's parameters (checked again here).
    pub params: toml::Table,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// Plan only (dry run or pause on the central side).
    pub plan_only: bool,
}

/// What the agent answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentResponse {
    /// Final state: `succeeded`, `failed`, `refused`, `nothing_to_do`, `planned`.
    pub state: String,
    /// The plan's summary, when there was one.
    pub plan: Option<String>,
    /// What happened.
    pub outcome: String,
}

/// The agent's shared state.
#[derive(Debug, Clone)]
pub struct AgentState {
    /// Token the central instance must present.
    pub token: crate::token_file::TokenFile,
    /// Actions this agent may run.
    pub actions: Arc<Vec<ActionKind>>,
    /// What actions use here.
    pub context: ActionContext,
}

/// `POST /api/v1/agent/run`.
pub async fn run(
    State(state): State<AgentState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<impl IntoResponse, ApiError> {
    crate::server::authorized(&headers, &state.token.current())?;
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|_| ApiError::too_large(1 << 20))?;
    let request: AgentRequest = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request("malformed_request", error.to_string()))?;
    if !state.actions.contains(&request.action) {
        return Err(ApiError::forbidden(format!(
            "this agent does not run {}",
            request.action.name()
        )));
    }
    request
        .action
        .check_params(&request.params)
        .map_err(|reason| ApiError::bad_request("bad_params", reason))?;
    tracing::info!(
        run = request.run,
        action = request.action.name(),
        "forwarded run"
    );
    let response = execute(&state.context, &request).await;
    Ok((StatusCode::OK, Json(response)))
}

async fn execute(context: &ActionContext, request: &AgentRequest) -> AgentResponse {
    let answer = |state: &str, plan: Option<String>, outcome: String| AgentResponse {
        state: state.into(),
        plan,
        outcome,
    };
    let plan = match request
        .action
        .plan(context, &request.params, &request.labels)
        .await
    {
        Err(error) => {
            return answer(
                "failed",
                None,
                format!("planning failed: {}", error_chain(&error)),
            )
        }
        Ok(Planned::NothingToDo(reason)) => return answer("nothing_to_do", None, reason),
        Ok(Planned::Refused(reason)) => return answer("refused", None, reason),
        Ok(Planned::Change(plan)) => plan,
    };
    let summary = Some(plan.summary());
    if request.plan_only {
        return answer("planned", summary, "planned only; nothing applied".into());
    }
    let applied = match plan.apply(context).await {
        Ok(applied) => applied,
        Err(error) => {
            return answer(
                "failed",
                summary,
                format!("apply failed: {}", error_chain(&error)),
            )
        }
    };
    match plan.verify(context).await {
        Ok(verified) => answer(
            "succeeded",
            summary,
            format!("{applied}; verified: {verified}"),
        ),
        Err(error) => answer(
            "failed",
            summary,
            format!("{applied}; {}", error_chain(&error)),
        ),
    }
}
