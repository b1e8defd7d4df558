//! On-call's decision on an escalation, for the API and the approval page alike: journaled
//! with the person, and an approved run handed to the executor, which applies the stored
//! plan through the same guards as an automatic run.

use super::executor::Executor;
use crate::journal::escalations::Decided;
use crate::journal::{Journal, JournalError};
use crate::lifecycle::{RunState, Verdict};

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// No such escalation.
    #[error("no escalation {0}")]
    NotFound(i64),
    /// It is not waiting for a decision.
    #[error("{}", not_waiting(*.0, *.1))]
    NotWaiting(i64, RunState),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

fn not_waiting(id: i64, state: RunState) -> String {
    match state {
        RunState::Expired => {
            format!("escalation {id} expired: its alert resolved before a decision")
        }
        RunState::Rejected => format!("escalation {id} was rejected already"),
        other => format!(
            "escalation {id} is not waiting for a decision (it is {})",
            other.name()
        ),
    }
}

/// Records `person`'s decision on escalation `id`; returns the run's new state.
pub async fn decide(
    journal: &Journal,
    executor: &Executor,
    id: i64,
    person: &str,
    reason: &str,
    verdict: Verdict,
) -> Result<RunState, DecideError> {
    match journal.decide(id, verdict, person, reason).await? {
        Decided::Moved(state) => {
            tracing::warn!(run = id, %person, verdict = verdict.name(), "escalation decided");
            if verdict == Verdict::Approved {
                executor.spawn(id);
            }
            Ok(state)
        }
        Decided::NotWaiting(state) => Err(DecideError::NotWaiting(id, state)),
        Decided::NotFound => Err(DecideError::NotFound(id)),
    }
}
