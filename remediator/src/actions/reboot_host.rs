//! `reboot_host`: reboots the machine an agent runs on, the agent-side step of
//! `drain_and_reboot`. The command and the delay are the machine's own policy
//! (`[agent.reboot_host]`); a request only asks, about this machine and no other. The
//! agent answers (and records the answer durably) first and reboots `delay` later, so the
//! central side hears that the reboot is under way before the machine goes down.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ActionContext, ActionError, Plan, Planned};
use crate::config::sections::RebootPolicy;

/// Checks an agent's reboot policy.
pub fn check_policy(policy: &RebootPolicy) -> Result<(), String> {
    if policy.command.is_empty() || policy.command[0].is_empty() {
        return Err("command must name the command that reboots this machine".into());
    }
    if policy.delay > Duration::from_secs(600) {
        return Err(format!(
            "delay {} is over 10 minutes: the central side waits for the machine to go down",
            humantime::format_duration(policy.delay)
        ));
    }
    Ok(())
}

/// The plan: this machine, rebooted with its policy's command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebootPlan {
    /// The host.
    pub host: String,
    /// The command, for the record.
    pub command: Vec<String>,
    /// Seconds between the answer and the command.
    pub delay_seconds: f64,
}

fn policy(context: &ActionContext) -> Result<(&str, &RebootPolicy), String> {
    let agent = context
        .agent
        .as_ref()
        .ok_or("only an agent reboots its own machine")?;
    let policy = agent
        .reboot_host
        .as_ref()
        .ok_or("this machine has no [agent.reboot_host] policy")?;
    Ok((&agent.host_name, policy))
}

/// Plans the reboot, refusing a request about any other host.
pub fn plan(
    context: &ActionContext,
    labels: &BTreeMap<String, String>,
    host_label: &str,
) -> Planned {
    let (local, policy) = match policy(context) {
        Ok(found) => found,
        Err(reason) => return Planned::Refused(reason),
    };
    let host = match super::own_host(local, labels, host_label) {
        Ok(host) => host,
        Err(reason) => return Planned::Refused(reason),
    };
    Planned::Change(Plan::RebootHost(RebootPlan {
        host,
        command: policy.command.clone(),
        delay_seconds: policy.delay.as_secs_f64(),
    }))
}

impl RebootPlan {
    /// One line for the journal.
    pub fn summary(&self) -> String {
        format!(
            "reboot {} with `{}` {:.0} s after answering",
            self.host,
            self.command.join(" "),
            self.delay_seconds
        )
    }

    /// Schedules the policy's command after its delay; the answer goes out first. The
    /// command is the policy's as it is now, never the plan's copy.
    pub async fn apply(&self, context: &ActionContext) -> Result<String, ActionError> {
        let (_, policy) = policy(context).map_err(ActionError::Host)?;
        let command = policy.command.clone();
        let delay = policy.delay;
        let host = self.host.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            tracing::warn!(%host, command = %command.join(" "), "rebooting this machine, as asked");
            let status = tokio::process::Command::new(&command[0])
                .args(&command[1..])
                .status()
                .await;
            match status {
                Ok(status) if status.success() => {}
                Ok(status) => tracing::error!(%status, "the reboot command failed"),
                Err(error) => tracing::error!(%error, "the reboot command did not run"),
            }
        });
        Ok(format!(
            "reboot of {} with `{}` in {:.0} s",
            self.host,
            policy.command.join(" "),
            delay.as_secs_f64()
        ))
    }

    /// The machine is about to go down: whether it comes back is the central side's to see
    /// (its Koji check-in).
    pub async fn verify(&self, _context: &ActionContext) -> Result<String, ActionError> {
        Ok("the reboot is under way".into())
    }
}
