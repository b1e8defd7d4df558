//! What a central remediator and an agent say to each other. A request carries only what
//! cannot be the agent's own decision: which run and action, the alert's labels, whether to
//! plan only, the hub's active buildroots, and knobs the agent's configuration bounds.
//! Every other field is refused (`deny_unknown_fields`), so nothing a request says can
//! name a path or a command. Imports nothing above the action names and the lifecycle.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actions::kind::ActionKind;
use crate::lifecycle::{Effect, Found};

/// `POST /api/v1/agent/run`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    /// The central journal's identity: run ids are unique only within one journal.
    #[serde(default)]
    pub journal: String,
    /// The central journal's run id, for the agent's log and its record of stopped services.
    pub run: i64,
    /// The action.
    pub action: ActionKind,
    /// The alert's labels (the agent refuses alerts about any host but its own).
    pub labels: BTreeMap<String, String>,
    /// Plan only (dry run or pause on the central side).
    pub plan_only: bool,
    /// Buildroot ids the hub still considers active: never deleted.
    #[serde(default)]
    pub keep_buildroots: Vec<i32>,
    /// Knobs, each within the bounds of the agent's own policy.
    #[serde(default)]
    pub knobs: Knobs,
}

/// What a rule may tune on an agent; the agent refuses values beyond its policy's bounds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// `clean_build_dirs`: entries whose newest change is older than this may go (at least
    /// the agent's `min_retention`).
    #[serde(default, with = "humantime_serde::option")]
    pub retention: Option<Duration>,
    /// `clean_build_dirs`: free-space target (at most the agent's
    /// `max_target_free_percent`).
    #[serde(default)]
    pub target_free_percent: Option<f64>,
    /// The alert label naming the Koji host (`host` when absent).
    #[serde(default)]
    pub host_label: Option<String>,
    /// `restart_local_services`: which of the agent's allowed services, in order.
    #[serde(default)]
    pub services: Option<Vec<String>>,
}

/// How a forwarded run ended on the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentOutcome {
    /// Applied and verified.
    Succeeded,
    /// Planning, applying or verifying failed.
    Failed,
    /// The agent's own policy or the action's guard refused.
    Refused,
    /// Nothing needed.
    NothingToDo,
    /// Planned only, as asked.
    Planned,
}

/// What the agent answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentResponse {
    /// How it ended.
    pub state: AgentOutcome,
    /// Whether anything changed on the machine.
    pub effect: Effect,
    /// The plan's summary, when there was one.
    pub plan: Option<String>,
    /// What happened.
    pub outcome: String,
    /// What the agent did on its own since it started (services a crash left stopped,
    /// started again, or why not), for the central journal.
    #[serde(default)]
    pub recovery: Vec<String>,
}

/// What the agent knows of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum RunStatus {
    /// It never began applying here: nothing of it happened.
    NeverApplied,
    /// It is being applied right now.
    InProgress,
    /// It ended with this answer.
    Finished {
        /// The answer the run got (or would have).
        response: AgentResponse,
    },
    /// It began applying and the agent was cut off; the machine shows this.
    CutOff {
        /// `applied`, `not_applied` or `unknown`.
        found: Found,
    },
}

/// Which forwarded request a record is of: the central journal and run, the action, and the services
/// it names (the ordered restart sends one run's steps to several machines, and a machine
/// that is both the hub and a builder gets two of them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunKey {
    /// The central journal's identity.
    #[serde(default)]
    pub journal: String,
    /// The central journal's run id.
    pub run: i64,
    /// The action.
    pub action: ActionKind,
    /// The services a restart names.
    #[serde(default)]
    pub services: Option<Vec<String>>,
}

impl RunKey {
    /// The key of a forwarded request.
    pub fn of(request: &AgentRequest) -> RunKey {
        RunKey {
            journal: request.journal.clone(),
            run: request.run,
            action: request.action,
            services: request.knobs.services.clone(),
        }
    }

    /// A file name for it: only digits, letters, `-`, `_` and `+` (service names with
    /// anything else are hex-encoded).
    pub fn file_stem(&self) -> String {
        let services = self
            .services
            .iter()
            .flatten()
            .map(|s| {
                if s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    s.clone()
                } else {
                    s.bytes().map(|b| format!("{b:02x}")).collect()
                }
            })
            .collect::<Vec<_>>()
            .join("+");
        let journal: String = self
            .journal
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!("{journal}-{}-{}-{services}", self.run, self.action.name())
    }
}
