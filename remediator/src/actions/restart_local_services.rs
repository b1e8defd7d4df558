//! `restart_local_services`: restarts services on the machine an agent runs on, and checks
//! they run again. The step the ordered restart (`restart_services`) forwards to the hub's
//! and the builders' agents. Which services may be restarted, and with which commands, is
//! the machine's own policy (`[agent.restart_local_services]`); a request only picks some
//! of those services, and the agent refuses requests about any host but its own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ActionContext, ActionError, Plan, Planned};
use crate::actions::clean_build_dirs::run_command;
use crate::agent::protocol::Knobs;
use crate::config::sections::RestartPolicy;

/// A rule's parameters (a rule naming this action runs it on this machine).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Services to restart, in order: some of the policy's (all of them when absent).
    #[serde(default)]
    pub services: Option<Vec<String>>,
    /// The alert label naming the machine.
    #[serde(default = "default_host_label")]
    pub host_label: String,
}

fn default_host_label() -> String {
    "host".into()
}

impl Params {
    /// Parses and checks a `params` table.
    pub fn from_table(table: &toml::Table) -> Result<Params, String> {
        for key in ["restart_command", "is_active_command"] {
            if table.contains_key(key) {
                return Err(format!("{key} is the machine's own policy: set it in [agent.restart_local_services], not in a rule"));
            }
        }
        toml::Value::Table(table.clone())
            .try_into()
            .map_err(|error: toml::de::Error| error.to_string())
    }

    /// What a request to the agent carries.
    pub fn knobs(&self) -> Knobs {
        Knobs {
            services: self.services.clone(),
            host_label: Some(self.host_label.clone()),
            ..Knobs::default()
        }
    }
}

/// Checks an agent's restart policy.
pub fn check_policy(policy: &RestartPolicy) -> Result<(), String> {
    if policy.services.is_empty()
        || policy
            .services
            .iter()
            .any(|s| s.is_empty() || s.starts_with('-'))
    {
        return Err("services must list plain service names".into());
    }
    if policy.restart_command.is_empty() || policy.is_active_command.is_empty() {
        return Err("restart_command and is_active_command must name commands".into());
    }
    Ok(())
}

/// The plan: which services, on which host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartPlan {
    /// The host.
    pub host: String,
    /// Services, in order.
    pub services: Vec<String>,
}

fn policy(context: &ActionContext) -> Result<(&str, &RestartPolicy), String> {
    let agent = context
        .agent
        .as_ref()
        .ok_or("only an agent restarts its own services")?;
    let policy = agent
        .restart_local_services
        .as_ref()
        .ok_or("this machine has no [agent.restart_local_services] policy")?;
    Ok((&agent.host_name, policy))
}

/// Plans the restart, refusing a host that is not this machine and services its policy
/// does not list.
pub fn plan(
    context: &ActionContext,
    labels: &BTreeMap<String, String>,
    host_label: &str,
    knobs: &Knobs,
) -> Planned {
    let (local, policy) = match policy(context) {
        Ok(found) => found,
        Err(reason) => return Planned::Refused(reason),
    };
    let host = match super::own_host(local, labels, host_label) {
        Ok(host) => host,
        Err(reason) => return Planned::Refused(reason),
    };
    let services = knobs
        .services
        .clone()
        .unwrap_or_else(|| policy.services.clone());
    if let Some(other) = services.iter().find(|s| !policy.services.contains(s)) {
        return Planned::Refused(format!(
            "{other:?} is not among the services this machine lets a request restart ({})",
            policy.services.join(", ")
        ));
    }
    if services.is_empty() {
        return Planned::NothingToDo("no service asked for".into());
    }
    Planned::Change(Plan::RestartLocalServices(RestartPlan { host, services }))
}

impl RestartPlan {
    /// One line for the journal.
    pub fn summary(&self) -> String {
        format!("restart {} on {}", self.services.join(", "), self.host)
    }

    /// Restarts each service in order with the policy's command; stops at the first
    /// failure. Services the policy does not list are never touched.
    pub async fn apply(&self, context: &ActionContext) -> Result<String, ActionError> {
        let (_, policy) = policy(context).map_err(ActionError::Host)?;
        for service in &self.services {
            if !policy.services.contains(service) {
                return Err(ActionError::Host(format!(
                    "{service} is not in this machine's policy"
                )));
            }
            match run_command(&policy.restart_command, service).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(ActionError::NotVerified(format!(
                        "restarting {service} failed"
                    )))
                }
                Err(error) => return Err(ActionError::NotVerified(error)),
            }
        }
        Ok(format!("restarted {}", self.services.join(", ")))
    }

    /// Checks every service runs.
    pub async fn verify(&self, context: &ActionContext) -> Result<String, ActionError> {
        let (_, policy) = policy(context).map_err(ActionError::Host)?;
        for service in &self.services {
            if !run_command(&policy.is_active_command, service)
                .await
                .unwrap_or(false)
            {
                return Err(ActionError::NotVerified(format!(
                    "{service} is not running"
                )));
            }
        }
        Ok(format!("{} running", self.services.join(", ")))
    }
}
