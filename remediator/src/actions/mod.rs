//! The runbook's fixes, one file each, dispatched from one enum ([`kind::ActionKind`]).
//! Every action first makes a plan (what exactly it would touch, readable by a human and
//! stored in the journal), then applies it, then verifies the symptom is gone
//! ([`steps`] runs those for the executor and the agent alike); and it can tell from the
//! world whether an interrupted apply took effect.
//!
//! Host-local actions (`clean_build_dirs`, `restart_local_services`) run under the
//! machine's own policy (`[agent.<action>]`): a rule or a request only sets knobs.

pub mod clean_build_dirs;
pub mod drain_and_reboot;
pub mod kind;
pub mod lower_capacity;
pub mod progress;
pub mod reboot_host;
pub mod restart_local_services;
pub mod restart_services;
pub mod steps;
pub mod terminate_stale_connections;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};

use crate::agent::protocol::AgentRequest;
use crate::config::sections::AgentConfig;
use crate::lifecycle::Found;
use kind::ActionKind;

/// What actions may use.
#[derive(Debug, Clone)]
pub struct ActionContext {
    /// The Koji hub database, where this instance can reach it.
    pub hub: Option<Pool>,
    /// The Koji user recorded as making changes.
    pub koji_user: String,
    /// This machine's name and host-local policies, where it runs as an agent.
    pub agent: Option<Arc<AgentConfig>>,
    /// Reaches agents, for actions whose steps run on other machines.
    pub forwarder: Option<crate::engine::forwarding::Forwarder>,
    /// The central journal's identity, sent with every forwarded request.
    pub journal_id: String,
    /// Where long actions save how far they got (the central journal), so a replica
    /// taking a run over resumes it.
    pub progress: Option<Arc<dyn progress::ProgressLog>>,
}

/// A plan: the exact change, for the journal and for on-call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Plan {
    /// See [`terminate_stale_connections::TerminatePlan`].
    TerminateStaleConnections(terminate_stale_connections::TerminatePlan),
    /// See [`lower_capacity::CapacityPlan`].
    LowerCapacity(lower_capacity::CapacityPlan),
    /// See [`clean_build_dirs::CleanPlan`].
    CleanBuildDirs(clean_build_dirs::CleanPlan),
    /// See [`restart_services::OrderedRestartPlan`].
    RestartServices(restart_services::OrderedRestartPlan),
    /// See [`restart_local_services::RestartPlan`].
    RestartLocalServices(restart_local_services::RestartPlan),
    /// See [`drain_and_reboot::DrainPlan`].
    DrainAndReboot(drain_and_reboot::DrainPlan),
    /// See [`reboot_host::RebootPlan`].
    RebootHost(reboot_host::RebootPlan),
}

/// What planning concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// Something to apply.
    Change(Plan),
    /// The symptom needs nothing from this action (already fixed, nothing matches).
    NothingToDo(String),
    /// The action must not act (a guard of its own: floor, unknown host, changed meanwhile,
    /// the machine's policy).
    Refused(String),
}

/// Why an action failed, one variant per stage that can fail.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No database connection.
    #[error("hub database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A query failed.
    #[error("hub query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// Koji's schema could not be read or changed.
    #[error(transparent)]
    Koji(#[from] koji_db::KojiDbError),
    /// The capacity change was refused by the database model.
    #[error(transparent)]
    Capacity(#[from] koji_db::capacity::CapacityError),
    /// The action needs the hub database and this instance has none configured.
    #[error("no hub database configured on this instance")]
    NoHub,
    /// This machine's file systems, commands or policy failed the action.
    #[error("{0}")]
    Host(String),
    /// Verification found the symptom still there, or a step of the fix failed.
    #[error("verification failed: {0}")]
    NotVerified(String),
    /// A stored plan's parameters no longer parse.
    #[error("bad parameters: {0}")]
    Params(String),
    /// The fix must not run in the world as it is, and someone must look (the run fails,
    /// and on-call gets its notice). Raised only before anything was changed.
    #[error("{0}")]
    NeedsHuman(String),
}

impl ActionError {
    /// Whether the failure came before anything could change: no connection at all.
    pub fn changed_nothing(&self) -> bool {
        matches!(
            self,
            ActionError::Pool(_)
                | ActionError::NoHub
                | ActionError::Capacity(_)
                | ActionError::NeedsHuman(_)
        )
    }
}

/// The host a request to an agent names in `host_label`, when it is this machine
/// (`local`); otherwise why the request is refused. An agent acts on its own machine only.
pub fn own_host(
    local: &str,
    labels: &BTreeMap<String, String>,
    host_label: &str,
) -> Result<String, String> {
    let host = labels.get(host_label).cloned().unwrap_or_default();
    if local == host {
        Ok(host)
    } else {
        Err(format!(
            "the request is about host {host:?}, this machine is {local:?}"
        ))
    }
}

/// The cooldown key of an action on the Koji host an alert names in `host_label`.
pub fn host_target(labels: &BTreeMap<String, String>, host_label: &str) -> Result<String, String> {
    labels
        .get(host_label)
        .filter(|host| !host.is_empty())
        .map(|host| format!("host:{host}"))
        .ok_or_else(|| format!("the alert has no `{host_label}` label"))
}

impl ActionContext {
    /// A connection to the hub database.
    pub async fn hub_client(&self) -> Result<deadpool_postgres::Object, ActionError> {
        Ok(self.hub.as_ref().ok_or(ActionError::NoHub)?.get().await?)
    }
}

impl ActionKind {
    /// Checks a rule's parameters at start.
    pub fn check_params(self, params: &toml::Table) -> Result<(), String> {
        match self {
            ActionKind::TerminateStaleConnections => {
                terminate_stale_connections::Params::from_table(params).map(|_| ())
            }
            ActionKind::LowerCapacity => lower_capacity::Params::from_table(params).map(|_| ()),
            ActionKind::CleanBuildDirs => clean_build_dirs::Params::from_table(params).map(|_| ()),
            ActionKind::RestartServices => restart_services::Params::from_table(params).map(|_| ()),
            ActionKind::RestartLocalServices => {
                restart_local_services::Params::from_table(params).map(|_| ())
            }
            ActionKind::DrainAndReboot => drain_and_reboot::Params::from_table(params).map(|_| ()),
            ActionKind::RebootHost => Err(
                "reboot_host is asked of an agent by drain_and_reboot, after the host is drained: name drain_and_reboot in a rule".into(),
            ),
            ActionKind::Escalate if params.is_empty() => Ok(()),
            ActionKind::Escalate => Err("escalate takes no parameters".into()),
        }
    }

    /// What the action would act on, from the alert's labels: the key of cooldowns.
    pub fn target(
        self,
        params: &toml::Table,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let label = |name: &str| labels.get(name).map(String::as_str).unwrap_or("");
        match self {
            ActionKind::TerminateStaleConnections => {
                Ok(terminate_stale_connections::Params::from_table(params)?.target())
            }
            ActionKind::LowerCapacity => lower_capacity::Params::from_table(params)?.target(labels),
            ActionKind::CleanBuildDirs => {
                Ok(clean_build_dirs::Params::from_table(params)?.target(labels))
            }
            ActionKind::RestartServices => Ok(format!(
                "hub:{}",
                restart_services::Params::from_table(params)?.hub_host
            )),
            ActionKind::RestartLocalServices => Ok(format!(
                "host:{}",
                label(&restart_local_services::Params::from_table(params)?.host_label)
            )),
            ActionKind::DrainAndReboot => {
                drain_and_reboot::Params::from_table(params)?.target(labels)
            }
            ActionKind::RebootHost => Ok(format!("host:{}", label("host"))),
            ActionKind::Escalate => Ok(format!("alert:{}", label("alertname"))),
        }
    }

    /// For a host-local action, the request its rule makes of the machine's agent (or of
    /// this instance's own `[agent]`); `None` for the others.
    pub fn host_request(
        self,
        run: i64,
        params: &toml::Table,
        labels: &BTreeMap<String, String>,
    ) -> Result<Option<AgentRequest>, String> {
        let knobs = match self {
            ActionKind::CleanBuildDirs => clean_build_dirs::Params::from_table(params)?.knobs(),
            ActionKind::RestartLocalServices => {
                restart_local_services::Params::from_table(params)?.knobs()
            }
            _ => return Ok(None),
        };
        Ok(Some(AgentRequest {
            journal: String::new(),
            run,
            action: self,
            labels: labels.clone(),
            plan_only: false,
            keep_buildroots: Vec::new(),
            knobs,
        }))
    }

    /// What the central side adds to a forwarded request from what only it can see: the
    /// buildroots the hub still considers active on the alert's host.
    pub async fn central_knowledge(
        self,
        context: &ActionContext,
        params: &toml::Table,
        request: &mut AgentRequest,
    ) {
        if self == ActionKind::CleanBuildDirs {
            let Ok(params) = clean_build_dirs::Params::from_table(params) else {
                return;
            };
            if let Some(host) = request.labels.get(&params.host_label) {
                if let Some(active) = clean_build_dirs::active_buildroots(context, host).await {
                    request.keep_buildroots = active.into_iter().collect();
                    request.keep_buildroots.sort_unstable();
                }
            }
        }
    }

    /// Makes the plan for a rule's alert on this instance (host-local actions under this
    /// machine's own policy, through [`plan_host_local`]).
    pub async fn plan(
        self,
        context: &ActionContext,
        params: &toml::Table,
        labels: &BTreeMap<String, String>,
    ) -> Result<Planned, ActionError> {
        if let Some(request) = self
            .host_request(0, params, labels)
            .map_err(ActionError::Params)?
        {
            return plan_host_local(context, &request).await;
        }
        let bad = ActionError::Params;
        match self {
            ActionKind::TerminateStaleConnections => {
                let params =
                    terminate_stale_connections::Params::from_table(params).map_err(bad)?;
                terminate_stale_connections::plan(context, &params, labels).await
            }
            ActionKind::LowerCapacity => {
                let params = lower_capacity::Params::from_table(params).map_err(bad)?;
                lower_capacity::plan(context, &params, labels).await
            }
            ActionKind::RestartServices => {
                let params = restart_services::Params::from_table(params).map_err(bad)?;
                restart_services::plan(context, &params).await
            }
            ActionKind::DrainAndReboot => {
                let params = drain_and_reboot::Params::from_table(params).map_err(bad)?;
                drain_and_reboot::plan(context, &params, labels).await
            }
            ActionKind::RebootHost => Ok(Planned::Refused(
                "reboot_host is asked by drain_and_reboot only".into(),
            )),
            // Configuration allows escalate only with the notify policy, which never runs.
            ActionKind::Escalate => Ok(Planned::Refused(
                "escalate changes nothing; it is for on-call".into(),
            )),
            ActionKind::CleanBuildDirs | ActionKind::RestartLocalServices => {
                unreachable!("host-local actions plan above")
            }
        }
    }
}

/// Plans a host-local action asked by `request`, under this machine's own policy.
pub async fn plan_host_local(
    context: &ActionContext,
    request: &AgentRequest,
) -> Result<Planned, ActionError> {
    let host_label = request.knobs.host_label.as_deref().unwrap_or("host");
    match request.action {
        ActionKind::CleanBuildDirs => {
            let host = request.labels.get(host_label).cloned().unwrap_or_default();
            clean_build_dirs::plan(context, &host, &request.knobs, &request.keep_buildroots).await
        }
        ActionKind::RestartLocalServices => Ok(restart_local_services::plan(
            context,
            &request.labels,
            host_label,
            &request.knobs,
        )),
        ActionKind::RebootHost => Ok(reboot_host::plan(context, &request.labels, host_label)),
        other => Ok(Planned::Refused(format!(
            "{} does not run on an agent",
            other.name()
        ))),
    }
}

impl Plan {
    /// A one-line description for the journal and on-call.
    pub fn summary(&self) -> String {
        match self {
            Plan::TerminateStaleConnections(plan) => plan.summary(),
            Plan::LowerCapacity(plan) => plan.summary(),
            Plan::CleanBuildDirs(plan) => plan.summary(),
            Plan::RestartServices(plan) => plan.summary(),
            Plan::RestartLocalServices(plan) => plan.summary(),
            Plan::DrainAndReboot(plan) => plan.summary(),
            Plan::RebootHost(plan) => plan.summary(),
        }
    }

    /// Applies the plan for journal run `run`; returns what was done.
    pub async fn apply(&self, context: &ActionContext, run: i64) -> Result<String, ActionError> {
        match self {
            Plan::TerminateStaleConnections(plan) => plan.apply(context).await,
            Plan::LowerCapacity(plan) => plan.apply(context).await,
            Plan::CleanBuildDirs(plan) => plan.apply(context, run).await,
            Plan::RestartServices(plan) => plan.apply(context, run).await,
            Plan::RestartLocalServices(plan) => plan.apply(context).await,
            Plan::DrainAndReboot(plan) => plan.apply(context, run).await,
            Plan::RebootHost(plan) => plan.apply(context).await,
        }
    }

    /// Checks the symptom is gone; returns what was found.
    pub async fn verify(&self, context: &ActionContext) -> Result<String, ActionError> {
        match self {
            Plan::TerminateStaleConnections(plan) => plan.verify(context).await,
            Plan::LowerCapacity(plan) => plan.verify(context).await,
            Plan::CleanBuildDirs(plan) => plan.verify(context).await,
            Plan::RestartServices(plan) => plan.verify(context).await,
            Plan::RestartLocalServices(plan) => plan.verify(context).await,
            Plan::DrainAndReboot(plan) => plan.verify(context).await,
            Plan::RebootHost(plan) => plan.verify(context).await,
        }
    }

    /// The plan that undoes this applied one when its alert resolves, for actions that can.
    pub async fn undo(&self, context: &ActionContext) -> Result<Planned, ActionError> {
        match self {
            Plan::LowerCapacity(plan) => lower_capacity::plan_restore(context, plan).await,
            _ => Ok(Planned::NothingToDo(
                "this action's change is not undone".into(),
            )),
        }
    }

    /// Whether this plan, whose apply began at `since` and was cut off, took effect, as
    /// the world shows it.
    pub async fn find_applied(
        &self,
        context: &ActionContext,
        since: DateTime<Utc>,
    ) -> Result<Found, ActionError> {
        match self {
            Plan::LowerCapacity(plan) => plan.find_applied(context, since).await,
            Plan::TerminateStaleConnections(plan) => plan.find_applied(context).await,
            Plan::CleanBuildDirs(plan) => Ok(plan.find_applied()),
            // A restart leaves no trace to tell a finished one from one cut off; a reboot
            // asked is the agent's record. A drain is resumed instead (see `resumes`).
            Plan::RestartServices(_)
            | Plan::RestartLocalServices(_)
            | Plan::RebootHost(_)
            | Plan::DrainAndReboot(_) => Ok(Found::Unknown),
        }
    }

    /// Whether a run of this plan cut off mid-apply is resumed from its saved progress by
    /// the replica that takes it over, instead of being resolved from the world.
    pub fn resumes(&self) -> bool {
        matches!(self, Plan::DrainAndReboot(_))
    }
}
