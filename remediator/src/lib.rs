//! koji-remediator: receives Alertmanager's webhooks and applies the Koji runbook's fixes.
//!
//! - [`config`]: the configuration and runbook rules, parsed strictly.
//! - [`alertmanager`]: the webhook payload (version 4).
//! - [`runbook`]: which rule an alert matches and what to do with it.
//! - [`journal`]: every alert, decision, plan and outcome in PostgreSQL; the idempotency key.
//! - [`executor`]: runs claimed actions behind the central guards.
//! - [`agent`], [`forwarding`]: agent mode, and forwarding runs to agents.
//! - [`actions`]: the fixes, one file each, as plan, apply, verify.
//! - [`database`]: connection pools.
//! - [`escalations_cli`]: on-call's command line for escalations.
//! - [`server`], [`api_error`]: the HTTP surface.
//! - [`metrics`]: the remediator's own metrics.
//! - [`notify`]: outage notices for escalations.
//!
//! [`start`] builds everything from a configuration for `main` and for tests.

pub mod actions;
pub mod agent;
pub mod alertmanager;
pub mod api_error;
pub mod approval_page;
pub mod auth_limit;
pub mod config;
pub mod database;
pub mod escalations_cli;
pub mod executor;
pub mod forwarding;
pub mod journal;
pub mod metrics;
pub mod notify;
pub mod runbook;
pub mod server;
pub mod silences;
pub mod token_file;

use std::sync::Arc;

use anyhow::Context;

use crate::actions::ActionContext;
use crate::agent::AgentState;
use crate::config::{Config, HUB_URL_ENV, JOURNAL_URL_ENV};
use crate::executor::Executor;
use crate::forwarding::Forwarder;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::server::AppState;
use crate::token_file::TokenFile;

/// Every credential file the configuration names, read and checked: the tokens (each at
/// least 16 characters, all different, so one never unlocks another's door) and the
/// forwarding client's TLS files. `start` and `--check-config` both go through here.
pub struct Credentials {
    /// Alertmanager's token (central).
    pub webhook: Option<TokenFile>,
    /// On-call's shared API token (central).
    pub api: Option<TokenFile>,
    /// Personal on-call tokens.
    pub oncall: Vec<(String, TokenFile)>,
    /// The token agents accept.
    pub agent: Option<TokenFile>,
    /// Forwards runs to agents with its token and TLS client.
    pub forwarder: Option<Forwarder>,
}

impl Credentials {
    /// Reads them all.
    pub fn load(config: &Config) -> anyhow::Result<Credentials> {
        let central = config.journal.is_some();
        let server_token =
            |file: &Option<std::path::PathBuf>, key: &str| -> anyhow::Result<Option<TokenFile>> {
                if !central {
                    return Ok(None);
                }
                let path = file.as_deref().with_context(|| key.to_owned())?;
                Ok(Some(TokenFile::open(path, key)?))
            };
        let webhook = server_token(
            &config.server.webhook_token_file,
            "server.webhook_token_file",
        )?;
        let api = server_token(&config.server.api_token_file, "server.api_token_file")?;
        let mut oncall = Vec::new();
        for person in config.oncall.iter().filter(|_| central) {
            oncall.push((
                person.name.clone(),
                TokenFile::open(&person.token_file, "oncall.token_file")?,
            ));
        }
        let agent = match &config.agent {
            Some(agent) => Some(TokenFile::open(&agent.token_file, "agent.token_file")?),
            None => None,
        };
        let (forwarding_token, forwarder) = match &config.forwarding {
            Some(forwarding) => {
                let token = TokenFile::open(&forwarding.token_file, "forwarding.token_file")?;
                let forwarder =
                    Forwarder::new(forwarding.clone(), token.clone()).context("forwarding.tls")?;
                (Some(token), Some(forwarder))
            }
            None => (None, None),
        };
        let all: Vec<Arc<str>> = [&webhook, &api, &agent, &forwarding_token]
            .into_iter()
            .flatten()
            .chain(oncall.iter().map(|(_, token)| token))
            .map(TokenFile::current)
            .collect();
        let distinct: std::collections::HashSet<&str> = all.iter().map(|t| &**t).collect();
        anyhow::ensure!(
            distinct.len() == all.len(),
            "the webhook, API, on-call, agent and forwarding tokens must all differ: one must never unlock another's door"
        );
        Ok(Credentials {
            webhook,
            api,
            oncall,
            agent,
            forwarder,
        })
    }
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
}

/// Builds the application: reads the tokens, connects the pools, migrates the journal and
/// resumes runs claimed before a restart.
pub async fn start(config: Config) -> anyhow::Result<App> {
    let hub = match &config.hub {
        Some(hub) => Some(database::pool(&hub.database, "hub.url", HUB_URL_ENV, 4)?),
        None => None,
    };
    let credentials = Credentials::load(&config)?;
    let metrics = Arc::new(Metrics::default());
    let context = ActionContext {
        forwarder: credentials.forwarder.clone(),
        hub,
        koji_user: config
            .hub
            .as_ref()
            .map_or_else(|| "koji-remediator".into(), |hub| hub.koji_user.clone()),
        local_host: config.agent.as_ref().map(|agent| agent.host_name.clone()),
    };
    let agent = match (&config.agent, &credentials.agent) {
        (Some(agent), Some(token)) => Some(AgentState {
            token: token.clone(),
            actions: Arc::new(agent.actions.clone()),
            context: context.clone(),
        }),
        _ => None,
    };
    let central = match &config.journal {
        Some(journal_config) => Some(
            start_central(
                &config,
                journal_config,
                context,
                credentials,
                metrics.clone(),
            )
            .await?,
        ),
        None => None,
    };
    Ok(App {
        central,
        agent,
        metrics,
    })
}

async fn start_central(
    config: &Config,
    journal_config: &config::DatabaseConfig,
    context: ActionContext,
    credentials: Credentials,
    metrics: Arc<Metrics>,
) -> anyhow::Result<AppState> {
    let (Some(webhook_token), Some(api_token)) = (credentials.webhook, credentials.api) else {
        anyhow::bail!(
            "server.webhook_token_file and server.api_token_file are required with [journal]"
        );
    };
    let oncall = credentials.oncall;
    let forwarder = context.forwarder.clone();
    let journal = Journal::new(database::pool(
        journal_config,
        "journal.url",
        JOURNAL_URL_ENV,
        8,
    )?);
    journal
        .migrate()
        .await
        .context("cannot migrate the journal schema")?;
    let session_lifetime = config.server.session_lifetime;
    // Served over TLS: the session cookie is marked Secure.
    let secure_cookies = match &config.server.web_config_file {
        Some(path) => koji_tls::WebConfig::read(path)?.tls_server_config.is_some(),
        None => false,
    };
    let config = Arc::new(config.clone());
    let executor = Executor::new(
        config.clone(),
        journal.clone(),
        context,
        metrics.clone(),
        forwarder,
        config.notify.clone().map(notify::Notifier::new),
    );
    for id in journal.recover().await? {
        tracing::info!(run = id, "resuming a run claimed before the restart");
        executor.resume(id);
    }
    Ok(AppState {
        config,
        journal,
        executor,
        metrics,
        webhook_token,
        api_token,
        oncall: Arc::new(oncall),
        sessions: Arc::new(approval_page::sessions::Sessions::new(
            session_lifetime,
            secure_cookies,
        )),
    })
}
