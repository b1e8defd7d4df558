//! koji-remediator: receives Alertmanager's webhooks and applies the Koji runbook's fixes.
//!
//! - [`config`]: the configuration and runbook rules, parsed strictly.
//! - [`alertmanager`]: the webhook payload (version 4).
//! - [`runbook`]: which rule an alert matches and what to do with it.
//! - [`journal`]: every alert, decision, plan and outcome in PostgreSQL; the idempotency key.
//! - [`executor`]: runs claimed actions behind the central guards.
//! - [`actions`]: the fixes, one file each, as plan, apply, verify.
//! - [`database`]: connection pools.
//! - [`server`], [`api_error`]: the HTTP surface.
//! - [`metrics`]: the remediator's own metrics.
//!
//! [`start`] builds everything from a configuration for `main` and for tests.

pub mod actions;
pub mod alertmanager;
pub mod api_error;
pub mod config;
pub mod database;
pub mod executor;
pub mod journal;
pub mod metrics;
pub mod runbook;
pub mod server;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::actions::ActionContext;
use crate::config::{Config, HUB_URL_ENV, JOURNAL_URL_ENV};
use crate::executor::Executor;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::server::AppState;

fn read_token(path: &Path, key: &str) -> anyhow::Result<Arc<str>> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {key} {}", path.display()))?;
    let token = token.trim();
    anyhow::ensure!(
        token.len() >= 16,
        "{key} {} holds a token shorter than 16 characters",
        path.display()
    );
    Ok(Arc::from(token))
}

/// Builds the application: reads the tokens, connects the pools, migrates the journal and
/// resumes runs claimed before a restart.
pub async fn start(config: Config) -> anyhow::Result<AppState> {
    let webhook_token = read_token(
        config
            .server
            .webhook_token_file
            .as_deref()
            .context("server.webhook_token_file")?,
        "server.webhook_token_file",
    )?;
    let api_token = read_token(
        config
            .server
            .api_token_file
            .as_deref()
            .context("server.api_token_file")?,
        "server.api_token_file",
    )?;
    anyhow::ensure!(
        webhook_token != api_token,
        "the webhook and API tokens must differ: Alertmanager's token must not unlock on-call's API"
    );
    let journal_pool = database::pool(&config.journal, "journal.url", JOURNAL_URL_ENV, 8)?;
    let hub_pool = database::pool(&config.hub.database, "hub.url", HUB_URL_ENV, 4)?;
    let journal = Journal::new(journal_pool);
    journal
        .migrate()
        .await
        .context("cannot migrate the journal schema")?;
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::default());
    let context = ActionContext {
        hub: hub_pool,
        koji_user: config.hub.koji_user.clone(),
    };
    let executor = Executor::new(config.clone(), journal.clone(), context, metrics.clone());
    let state = AppState {
        config,
        journal: journal.clone(),
        executor: executor.clone(),
        metrics,
        webhook_token,
        api_token,
    };
    for id in journal.recover().await? {
        tracing::info!(run = id, "resuming a run claimed before the restart");
        executor.resume(id);
    }
    Ok(state)
}
