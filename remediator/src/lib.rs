//! koji-remediator: receives Alertmanager's webhooks and applies the Koji runbook's fixes.
//!
//! The layers, from the bottom up (a file imports only from layers below it):
//!
//! - [`lifecycle`]: the run state machine: states, events, decisions, policies, kinds, and
//!   the one transition function. [`actions::kind`]: the actions' names.
//! - [`alertmanager`]: the webhook payload (version 4). [`config`]: the configuration and
//!   runbook rules, parsed strictly ([`config::sections`] is the data; [`config`] checks it).
//! - [`agent::protocol`]: what a central instance and an agent say to each other.
//! - [`actions`]: the fixes, one file each: plan, apply, verify, undo, and whether an
//!   interrupted apply took effect; [`actions::steps`] is the apply → verify routine the
//!   executor and the agent share.
//! - [`runbook`]: which rule an alert matches and what to do with it.
//! - [`journal`]: everything in PostgreSQL, split by purpose (deliveries, runs, notices,
//!   escalations, settings, read API, migrations).
//! - [`engine`]: the executor of runs, the reconciler that keeps them moving across
//!   outages, crashes and replicas, the notice outbox, escalation decisions, forwarding to
//!   agents, Alertmanager silences.
//! - [`agent`]: agent mode: a forwarded run under the machine's own policy; the durable
//!   record of services it stopped.
//! - [`replay`]: what a runbook would have done with past alerts (a journal's or captured
//!   ones): the runbook's decisions and the journal's guards on a replayed clock; reads
//!   the journal, writes nothing.
//! - [`http`]: the routes, one file each, with authentication, rate limits and errors.
//! - [`database`]: connection pools. [`metrics`]: the remediator's own metrics.
//!   [`escalations_cli`]: on-call's command line. [`site_files`]: the tokens (and a
//!   throwaway CA) a site needs, for `koji-remediator credentials`.
//!
//! [`start`] builds everything from a configuration for `main` and for tests.

pub mod actions;
pub mod agent;
pub mod alertmanager;
pub mod config;
pub mod database;
pub mod engine;
pub mod escalations_cli;
pub mod http;
pub mod journal;
pub mod lifecycle;
pub mod metrics;
pub mod replay;
pub mod runbook;
pub mod site_files;

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::actions::ActionContext;
use crate::agent::AgentState;
use crate::config::{Config, HUB_URL_ENV, JOURNAL_URL_ENV};
use crate::engine::executor::{Executor, ExecutorParts};
use crate::engine::forwarding::Forwarder;
use crate::engine::outbox::Outbox;
use crate::engine::reconciler::Reconciler;
use crate::http::state::{App, AppState};
use crate::http::token_file::TokenFile;
use crate::journal::runs::Lease;
use crate::journal::Journal;
use crate::metrics::Metrics;

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

/// This replica's identity in the journal: host name, process id and a random part, so
/// a restarted process never mistakes its predecessor's runs for its own.
pub fn replica_id() -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Builds the application: reads the tokens, connects the pools, migrates the journal and
/// starts the background work (the reconciler, which also resumes what an earlier process
/// left behind, and the notice sender).
pub async fn start(config: Config) -> anyhow::Result<App> {
    let hub = match &config.hub {
        Some(hub) => Some(database::pool(&hub.database, "hub.url", HUB_URL_ENV, 4)?),
        None => None,
    };
    let credentials = Credentials::load(&config)?;
    let metrics = Arc::new(Metrics::default());
    let agent_config = config.agent.clone().map(Arc::new);
    let context = ActionContext {
        forwarder: credentials.forwarder.clone(),
        hub,
        koji_user: config
            .hub
            .as_ref()
            .map_or_else(|| "koji-remediator".into(), |hub| hub.koji_user.clone()),
        agent: agent_config.clone(),
        journal_id: String::new(),
        progress: None,
    };
    check_koji_user(&config, &context).await?;
    let background = CancellationToken::new();
    let agent = match (&agent_config, &credentials.agent) {
        (Some(agent_config), Some(token)) => Some(AgentState {
            token: token.clone(),
            config: agent_config.clone(),
            context: context.clone(),
            recovery: Arc::new(agent::recover(agent_config).await),
            in_flight: Arc::default(),
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
                background.clone(),
            )
            .await?,
        ),
        None => None,
    };
    Ok(App {
        central,
        agent,
        metrics,
        background,
    })
}

/// Refuses to start a runbook that changes hosts (capacity, enabled) under a Koji user Koji itself would
/// refuse (blocked, or without the `host` permission), when the hub answers now; each
/// change checks again. A hub that does not answer is logged and checked at each change.
async fn check_koji_user(config: &Config, context: &ActionContext) -> anyhow::Result<()> {
    let changes_capacity = config.rules.iter().any(|rule| {
        matches!(
            rule.action,
            actions::kind::ActionKind::LowerCapacity | actions::kind::ActionKind::DrainAndReboot
        )
    });
    let Some(hub) = context.hub.as_ref().filter(|_| changes_capacity) else {
        return Ok(());
    };
    let client = match hub.get().await {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "the hub database does not answer; the Koji user is checked at each change");
            return Ok(());
        }
    };
    match koji_db::capacity::check_changer(&**client, &context.koji_user).await {
        Ok(_) => Ok(()),
        Err(
            error @ (koji_db::capacity::CapacityError::NotAllowed { .. }
            | koji_db::capacity::CapacityError::NoSuchUser(_)),
        ) => Err(anyhow::anyhow!("hub.koji_user: {error}")),
        Err(error) => {
            tracing::warn!(%error, "cannot check the Koji user now; it is checked at each change");
            Ok(())
        }
    }
}

async fn start_central(
    config: &Config,
    journal_config: &config::DatabaseConfig,
    mut context: ActionContext,
    credentials: Credentials,
    metrics: Arc<Metrics>,
    background: CancellationToken,
) -> anyhow::Result<AppState> {
    let (Some(webhook_token), Some(api_token)) = (credentials.webhook, credentials.api) else {
        anyhow::bail!(
            "server.webhook_token_file and server.api_token_file are required with [journal]"
        );
    };
    let oncall = credentials.oncall;
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
    context.journal_id = journal
        .identity()
        .await
        .context("cannot read the journal's identity")?;
    let session_lifetime = config.server.session_lifetime;
    // Served over TLS: the session cookie is marked Secure.
    let secure_cookies = match &config.server.web_config_file {
        Some(path) => koji_tls::WebConfig::read(path)?.tls_server_config.is_some(),
        None => false,
    };
    let config = Arc::new(config.clone());
    let lease = Lease {
        owner: replica_id().into(),
        duration: config.guards.run_lease,
    };
    tracing::info!(replica = %lease.owner, "journal ready");
    context.progress = Some(Arc::new(journal::progress::JournalProgress {
        journal: journal.clone(),
        owner: lease.owner.clone(),
    }));
    let run_ended = Arc::new(Notify::new());
    let notice_queued = Arc::new(Notify::new());
    let executor = Executor::new(
        config.clone(),
        ExecutorParts {
            journal: journal.clone(),
            context,
            metrics: metrics.clone(),
            lease: lease.clone(),
            run_ended: run_ended.clone(),
            notice_queued: notice_queued.clone(),
        },
    );
    Reconciler {
        journal: journal.clone(),
        executor: executor.clone(),
        cap: config.guards.max_concurrent_per_action,
        max_attempts: config.guards.max_attempts,
        interval: config.guards.reconcile_interval,
        run_ended,
        notice_queued: notice_queued.clone(),
        notices: config.notify.is_some(),
    }
    .spawn(background.clone());
    if let Some(notify) = &config.notify {
        Outbox {
            journal: journal.clone(),
            notifier: engine::notify::Notifier::new(notify.clone()),
            lease,
            wake: notice_queued,
        }
        .spawn(background);
    }
    Ok(AppState {
        config,
        journal,
        executor,
        metrics,
        webhook_token,
        api_token,
        oncall: Arc::new(oncall),
        sessions: Arc::new(http::approval_page::sessions::Sessions::new(
            session_lifetime,
            secure_cookies,
        )),
    })
}
