//! The runbook's fixes, one file each, dispatched from one enum. Every action first makes a
//! plan (what exactly it would touch, readable by a human and stored in the journal), then
//! applies it, then verifies the symptom is gone.

pub mod clean_build_dirs;
pub mod lower_capacity;
pub mod restart_local_services;
pub mod restart_services;
pub mod terminate_stale_connections;

use std::collections::BTreeMap;

use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};

/// Every action the runbook can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Terminate the hub user's backends left over from a crashed hub.
    TerminateStaleConnections,
    /// Lower a builder's capacity (and restore it when the alert resolves).
    LowerCapacity,
    /// Delete old build-directory entries on this builder (stopping its daemons meanwhile).
    CleanBuildDirs,
    /// The runbook's ordered restart: hub services, then kojid on builders that do not
    /// reconnect, through agents.
    RestartServices,
    /// Restart services on this machine (the agent-side step of `restart_services`).
    RestartLocalServices,
    /// Hand the problem to on-call: no change is made, the alert and the decision are
    /// journaled as an escalation (`notify` policy only).
    Escalate,
}

/// What actions may use.
#[derive(Debug, Clone)]
pub struct ActionContext {
    /// The Koji hub database, where this instance can reach it.
    pub hub: Option<Pool>,
    /// The Koji user recorded as making changes.
    pub koji_user: String,
    /// The Koji host name of this machine, on an agent.
    pub local_host: Option<String>,
    /// Reaches agents, for actions whose steps run on other machines.
    pub forwarder: Option<crate::forwarding::Forwarder>,
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
}

/// What planning concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// Something to apply.
    Change(Plan),
    /// The symptom needs nothing from this action (already fixed, nothing matches).
    NothingToDo(String),
    /// The action must not act (a guard of its own: floor, unknown host, changed meanwhile).
    Refused(String),
}

/// Why an action failed.
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
    /// Verification found the symptom still there.
    #[error("verification failed: {0}")]
    NotVerified(String),
    /// Parameters are wrong (validated at start, so only for restores of old plans).
    #[error("bad parameters: {0}")]
    Params(String),
}

impl ActionContext {
    /// A connection to the hub database.
    pub async fn hub_client(&self) -> Result<deadpool_postgres::Object, ActionError> {
        Ok(self.hub.as_ref().ok_or(ActionError::NoHub)?.get().await?)
    }
}

impl ActionKind {
    /// Whether the action undoes its change when the alert resolves (and so must hear of
    /// the resolution: its alerts are never silenced).
    pub fn restores_on_resolve(self) -> bool {
        matches!(self, ActionKind::LowerCapacity)
    }

    /// The name in the runbook, journal and metrics.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::TerminateStaleConnections => "terminate_stale_connections",
            ActionKind::LowerCapacity => "lower_capacity",
            ActionKind::CleanBuildDirs => "clean_build_dirs",
            ActionKind::RestartServices => "restart_services",
            ActionKind::RestartLocalServices => "restart_local_services",
            ActionKind::Escalate => "escalate",
        }
    }

    /// Every action.
    pub const ALL: [ActionKind; 6] = [
        ActionKind::TerminateStaleConnections,
        ActionKind::LowerCapacity,
        ActionKind::CleanBuildDirs,
        ActionKind::RestartServices,
        ActionKind::RestartLocalServices,
        ActionKind::Escalate,
    ];

    /// Whether the action can undo itself when its alert resolves.
    pub fn can_restore(self) -> bool {
        matches!(self, ActionKind::LowerCapacity)
    }

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
                labels.get("host").map(String::as_str).unwrap_or("")
            )),
            ActionKind::Escalate => Ok(format!(
                "alert:{}",
                labels.get("alertname").map(String::as_str).unwrap_or("")
            )),
        }
    }

    /// Makes the plan.
    pub async fn plan(
        self,
        context: &ActionContext,
        params: &toml::Table,
        labels: &BTreeMap<String, String>,
    ) -> Result<Planned, ActionError> {
        match self {
            ActionKind::TerminateStaleConnections => {
                let params = terminate_stale_connections::Params::from_table(params)
                    .map_err(ActionError::Params)?;
                terminate_stale_connections::plan(context, &params).await
            }
            ActionKind::LowerCapacity => {
                let params =
                    lower_capacity::Params::from_table(params).map_err(ActionError::Params)?;
                lower_capacity::plan(context, &params, labels).await
            }
            ActionKind::CleanBuildDirs => {
                let params =
                    clean_build_dirs::Params::from_table(params).map_err(ActionError::Params)?;
                clean_build_dirs::plan(context, &params, labels).await
            }
            ActionKind::RestartServices => {
                let params =
                    restart_services::Params::from_table(params).map_err(ActionError::Params)?;
                Ok(restart_services::plan(context, &params))
            }
            ActionKind::RestartLocalServices => {
                let params = restart_local_services::Params::from_table(params)
                    .map_err(ActionError::Params)?;
                Ok(restart_local_services::plan(context, &params, labels))
            }
            // Configuration allows escalate only with the notify policy, which never runs.
            ActionKind::Escalate => Ok(Planned::Refused(
                "escalate changes nothing; it is for on-call".into(),
            )),
        }
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
        }
    }

    /// Applies the plan; returns what was done.
    pub async fn apply(&self, context: &ActionContext) -> Result<String, ActionError> {
        match self {
            Plan::TerminateStaleConnections(plan) => plan.apply(context).await,
            Plan::LowerCapacity(plan) => plan.apply(context).await,
            Plan::CleanBuildDirs(plan) => plan.apply(context).await,
            Plan::RestartServices(plan) => plan.apply(context).await,
            Plan::RestartLocalServices(plan) => plan.apply(context).await,
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` must list every variant: the executor keys its concurrency slots on it.
    #[test]
    fn all_lists_every_action() {
        for kind in ActionKind::ALL {
            // A new variant makes this match fail to compile until it is listed here, and
            // the count below keeps ALL in step with it.
            match kind {
                ActionKind::TerminateStaleConnections
                | ActionKind::LowerCapacity
                | ActionKind::CleanBuildDirs
                | ActionKind::RestartServices
                | ActionKind::RestartLocalServices
                | ActionKind::Escalate => {}
            }
        }
        let names: std::collections::HashSet<_> =
            ActionKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), 6);
    }
}
