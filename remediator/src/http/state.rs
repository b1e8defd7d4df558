//! What the HTTP handlers share, and what one process serves.

use std::sync::Arc;

use super::approval_page::sessions::Sessions;
use super::token_file::TokenFile;
use crate::agent::AgentState;
use crate::config::Config;
use crate::engine::executor::Executor;
use crate::journal::Journal;
use crate::metrics::Metrics;

/// Everything the central handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// The journal.
    pub journal: Journal,
    /// Runs claimed runs.
    pub executor: Executor,
    /// Own metrics.
    pub metrics: Arc<Metrics>,
    /// Alertmanager's bearer token.
    pub webhook_token: TokenFile,
    /// On-call's shared bearer token for the journal API and the pause switch.
    pub api_token: TokenFile,
    /// On-call people and their own tokens, the only ones that decide on escalations.
    pub oncall: Arc<Vec<(String, TokenFile)>>,
    /// Log-in sessions of the approval page.
    pub sessions: Arc<Sessions>,
}

/// What one remediator process serves: the webhook and API (central), the agent endpoint,
/// or both.
#[derive(Debug, Clone)]
pub struct App {
    /// The webhook, journal and pause API.
    pub central: Option<AppState>,
    /// The endpoint for forwarded runs.
    pub agent: Option<AgentState>,
    /// Own metrics, shared by both.
    pub metrics: Arc<Metrics>,
    /// Stops the background work (reconciler, notice sender) when cancelled.
    pub background: tokio_util::sync::CancellationToken,
}
