//! What became of one alert notification, in one vocabulary for both sides of a replay:
//! what the journal says happened then, and what the runbook under test would do. Two
//! fates that differ are a difference the replay marks.

use std::fmt;

use crate::journal::history::JournaledRun;
use crate::lifecycle::{Decision, Hold, RunState};

/// What became of an alert notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// No run was claimed; the decision says why (unmatched, duplicate, resolved and
    /// nothing to restore, no target, occurrence already ended).
    NoRun(Decision),
    /// Escalated only: a human acts.
    Escalated,
    /// Waited for on-call, who had not decided by the end of the period.
    AwaitingApproval,
    /// On-call rejected it.
    Rejected,
    /// The alert resolved before on-call decided.
    Expired,
    /// Held back before it started.
    Held(Hold),
    /// Claimed, and not started by the end of the period (at the action's cap, or a restore
    /// waiting for its target to be quiet).
    Waiting,
    /// Started, and ended as the state says; `None` when it would start but did not then,
    /// so what it would find and change is not known without applying.
    Started(Option<RunState>),
    /// The journal does not say (then only): why.
    Unknown(String),
}

impl Fate {
    /// The fate a journaled run had, from its state and outcome.
    pub fn of_journaled(run: &JournaledRun) -> Fate {
        let Some(state) = RunState::from_name(&run.state) else {
            return Fate::Unknown(format!(
                "run {} has an unknown state {:?}",
                run.id, run.state
            ));
        };
        match state {
            RunState::Notified => Fate::Escalated,
            RunState::AwaitingApproval => Fate::AwaitingApproval,
            RunState::Rejected => Fate::Rejected,
            RunState::Expired => Fate::Expired,
            RunState::Pending => Fate::Waiting,
            RunState::Skipped => match Hold::from_outcome(&run.outcome) {
                Some(hold) => Fate::Held(hold),
                None => Fate::Unknown(format!(
                    "run {} was skipped for a reason the journal does not name",
                    run.id
                )),
            },
            RunState::Running | RunState::Applying => Fate::Started(Some(state)),
            finished => Fate::Started(Some(finished)),
        }
    }

    /// Whether it started (and so counts for cooldowns as having acted, unless its effect
    /// says it changed nothing).
    pub fn started(&self) -> bool {
        matches!(self, Fate::Started(_))
    }

    /// Whether two fates are the same as far as a replay can tell (an unknown one is never
    /// a difference: it is reported as skipped instead).
    pub fn differs_from(&self, other: &Fate) -> bool {
        !matches!(self, Fate::Unknown(_)) && !matches!(other, Fate::Unknown(_)) && self != other
    }
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fate::NoRun(decision) => write!(f, "{}", decision.name().replace('_', " ")),
            Fate::Escalated => write!(f, "escalated"),
            Fate::AwaitingApproval => write!(f, "awaiting approval"),
            Fate::Rejected => write!(f, "rejected"),
            Fate::Expired => write!(f, "expired"),
            Fate::Held(hold) => write!(f, "held: {}", hold.words()),
            Fate::Waiting => write!(f, "waiting"),
            Fate::Started(Some(state)) => write!(f, "ran: {}", state.name().replace('_', " ")),
            Fate::Started(None) => write!(f, "would run"),
            Fate::Unknown(_) => write!(f, "?"),
        }
    }
}
