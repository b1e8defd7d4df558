//! The names of the runbook's fixes: what a rule, the journal, the metrics and the agent
//! protocol call each action. Imports nothing of the crate, so every layer can name an
//! action without pulling in how it runs.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr};

/// Every action the runbook can name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Deserialize,
    Serialize,
    EnumString,
    IntoStaticStr,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ActionKind {
    /// Terminate the hub user's backends left over from a crashed hub.
    TerminateStaleConnections,
    /// Lower a builder's capacity (and restore it when the alert resolves).
    LowerCapacity,
    /// Delete old build-directory entries on a builder, stopping its daemons meanwhile.
    CleanBuildDirs,
    /// The runbook's ordered restart: hub services, then kojid on builders that do not
    /// reconnect, through agents.
    RestartServices,
    /// Restart services on one machine (the agent-side step of `restart_services`).
    RestartLocalServices,
    /// Take a builder out of service, wait for its tasks, reboot it through its agent,
    /// and put it back once it checks in again (the runbook's first answer to an OOM).
    DrainAndReboot,
    /// Reboot one machine (the agent-side step of `drain_and_reboot`).
    RebootHost,
    /// Hand the problem to on-call: no change is made (`notify` policy only).
    Escalate,
}

impl ActionKind {
    /// The name in the runbook, journal and metrics.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Whether the action can undo its change when its alert resolves (and so must hear
    /// of the resolution: its alerts are never silenced).
    pub fn can_restore(self) -> bool {
        matches!(self, ActionKind::LowerCapacity)
    }

    /// Whether the action runs on the machine it concerns, under that machine's own
    /// policy (an agent's `[agent.<action>]`).
    pub fn is_host_local(self) -> bool {
        matches!(
            self,
            ActionKind::CleanBuildDirs | ActionKind::RestartLocalServices | ActionKind::RebootHost
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn names_are_the_runbook_names() {
        let names: Vec<_> = ActionKind::iter().map(ActionKind::name).collect();
        assert_eq!(
            names,
            [
                "terminate_stale_connections",
                "lower_capacity",
                "clean_build_dirs",
                "restart_services",
                "restart_local_services",
                "drain_and_reboot",
                "reboot_host",
                "escalate"
            ]
        );
        for kind in ActionKind::iter() {
            assert_eq!(kind.name().parse::<ActionKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }
}
