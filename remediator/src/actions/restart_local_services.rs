//! `restart_local_services`: restarts services on the machine an agent runs on, and checks
//! they run again. The step the ordered restart (`restart_services`) forwards to the hub's
//! and the builders' agents; the agent refuses requests about any host but its own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ActionContext, ActionError, Plan, Planned};
use crate::actions::clean_build_dirs::run_command;

/// Parameters.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Services to restart, in order.
    pub services: Vec<String>,
    /// Command and leading arguments to restart one (the name is appended).
    #[serde(default = "default_restart")]
    pub restart_command: Vec<String>,
    /// Command whose success means the service runs.
    #[serde(default = "default_is_active")]
    pub is_active_command: Vec<String>,
    /// The alert label naming the machine.
    #[serde(default = "default_host_label")]
    pub host_label: String,
}

fn default_restart() -> Vec<String> {
    vec!["systemctl".into(), "restart".into()]
}
fn default_is_active() -> Vec<String> {
    vec!["systemctl".into(), "is-active".into(), "--quiet".into()]
}
fn default_host_label() -> String {
    "host".into()
}

impl Params {
    /// Parses and checks a `params` table.
    pub fn from_table(table: &toml::Table) -> Result<Params, String> {
        let params: Params = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|error: toml::de::Error| error.to_string())?;
        if params.services.is_empty()
            || params
                .services
                .iter()
                .any(|s| s.is_empty() || s.starts_with('-'))
        {
            return Err("services must list plain service names".into());
        }
        if params.restart_command.is_empty() || params.is_active_command.is_empty() {
            return Err("restart_command and is_active_command must name commands".into());
        }
        Ok(params)
    }
}

/// The plan: which services, on which host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartPlan {
    /// The host.
    pub host: String,
    /// Services, in order.
    pub services: Vec<String>,
    /// Commands.
    pub restart_command: Vec<String>,
    /// Commands.
    pub is_active_command: Vec<String>,
}

/// Plans the restart, refusing a host that is not this machine.
pub fn plan(
    context: &ActionContext,
    params: &Params,
    labels: &BTreeMap<String, String>,
) -> Planned {
    let host = labels.get(&params.host_label).cloned().unwrap_or_default();
    match &context.local_host {
        Some(local) if *local == host => Planned::Change(Plan::RestartLocalServices(RestartPlan {
            host,
            services: params.services.clone(),
            restart_command: params.restart_command.clone(),
            is_active_command: params.is_active_command.clone(),
        })),
        Some(local) => Planned::Refused(format!(
            "the request is about host {host:?}, this machine is {local:?}"
        )),
        None => Planned::Refused("only an agent with a host_name restarts its own services".into()),
    }
}

impl RestartPlan {
    /// One line for the journal.
    pub fn summary(&self) -> String {
        format!("restart {} on {}", self.services.join(", "), self.host)
    }

    /// Restarts each service in order; stops at the first failure.
    pub async fn apply(&self, _context: &ActionContext) -> Result<String, ActionError> {
        for service in &self.services {
            match run_command(&self.restart_command, service).await {
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
    pub async fn verify(&self, _context: &ActionContext) -> Result<String, ActionError> {
        for service in &self.services {
            if !run_command(&self.is_active_command, service)
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
