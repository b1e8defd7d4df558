//! The run lifecycle: every state a run can be in, every event that moves it, and the one
//! function ([`next`]) that says where an event takes a state. The journal stores each enum
//! by its name (`snake_case`); no other file spells a state, a decision, a policy or a kind
//! as a string.
//!
//! ```text
//!                 claim (auto)         start            plan journaled
//!   alert ──────────────────▶ pending ─────▶ running ─────────────▶ applying ──▶ succeeded
//!     │ claim (approve)          ▲  │           │  │  nothing to do,         │ └─▶ failed
//!     ├──▶ awaiting_approval ────┘  │ skip      │  │  refused, paused,       │
//!     │      │ approve   │ reject   ▼           │  │  dry run, failed        │ lease expired:
//!     │      │ /expire   ▼        skipped       │  ▼                         │ reconciled from
//!     │      │        rejected, expired         │ (final)                    │ the world
//!     │ claim (notify)                          │ lease expired: nothing     ├─▶ succeeded (applied)
//!     └──▶ notified (final)                     │ was applied yet            ├─▶ pending (not applied)
//!                                               └──────▶ pending             └─▶ interrupted (unknown)
//! ```
//!
//! A run is applied only after `applying` (with its plan) is journaled, so a run found
//! `running` by the reconciler changed nothing and is simply retried, and one found
//! `applying` is resolved by asking the action whether its plan took effect.

use serde::{Deserialize, Serialize};
use strum::{AsRefStr, EnumIter, EnumString, IntoStaticStr};

/// Where a run stands. Stored in `action_runs.state` by name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    EnumString,
    IntoStaticStr,
    AsRefStr,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunState {
    /// Claimed, waiting for a replica to start it (within the action's cap).
    Pending,
    /// Planned, waiting for on-call's approval.
    AwaitingApproval,
    /// Escalated only: a human acts (final).
    Notified,
    /// A replica holds it under a lease and is planning; nothing changed yet.
    Running,
    /// Its plan is journaled and being applied: the world may be changing.
    Applying,
    /// Applied and verified (final).
    Succeeded,
    /// Planning, applying or verifying failed (final; `effect` says whether anything changed).
    Failed,
    /// The symptom needed nothing from this action (final).
    NothingToDo,
    /// The action's own guard refused (final).
    Refused,
    /// Held back before it started: cooldown, rule gone, alert resolved (final).
    Skipped,
    /// Planned while the pause switch was on; nothing applied (final).
    Paused,
    /// Planned in dry-run mode; nothing applied (final).
    DryRun,
    /// On-call rejected it (final).
    Rejected,
    /// Its alert resolved before on-call decided (final).
    Expired,
    /// Its replica died while applying and the world cannot tell whether the plan took
    /// effect: escalated to on-call with a notice (final).
    Interrupted,
}

impl RunState {
    /// The name stored in the journal.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The state named `name` in the journal.
    pub fn from_name(name: &str) -> Option<RunState> {
        name.parse().ok()
    }

    /// No event moves it any more.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            RunState::Pending | RunState::AwaitingApproval | RunState::Running | RunState::Applying
        )
    }

    /// A replica holds it under a lease.
    pub fn is_leased(self) -> bool {
        matches!(self, RunState::Running | RunState::Applying)
    }
}

/// What a run does: the rule's fix, or the undoing of it when the alert resolves.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, EnumString, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RunKind {
    /// The fix.
    Apply,
    /// Undo what this alert occurrence's apply run changed.
    Restore,
}

impl RunKind {
    /// The name stored in the journal.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// What a rule does with a matching firing alert.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, EnumString, IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Policy {
    /// Apply now.
    Auto,
    /// Plan, then wait for on-call's approval.
    Approve,
    /// Escalate only.
    Notify,
}

impl Policy {
    /// The name in the configuration and the journal.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The state a run of this policy is claimed in.
    pub fn initial_state(self) -> RunState {
        match self {
            Policy::Auto => RunState::Pending,
            Policy::Approve => RunState::AwaitingApproval,
            Policy::Notify => RunState::Notified,
        }
    }
}

/// What a run did to the world, as far as it knows: the cooldown counts only runs that
/// changed something (or may have).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, EnumString, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Effect {
    /// Nothing was changed (planning only, refused, failed before acting).
    None,
    /// The plan was applied.
    Changed,
    /// Applying began and did not finish cleanly: something may have changed.
    Unknown,
}

impl Effect {
    /// The name stored in the journal.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// What the runbook decided for one received alert (`alerts.decision`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, EnumString, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Decision {
    /// A run of the rule's action was claimed.
    Run,
    /// A restore run was claimed.
    Restore,
    /// The run this alert calls for was claimed by an earlier delivery.
    Duplicate,
    /// No rule matches.
    Unmatched,
    /// Resolved, and the rule restores nothing.
    ResolvedIgnored,
    /// The rule matched but the alert cannot be acted on (no target label).
    Refused,
    /// Claimed for on-call's approval.
    AwaitingApproval,
    /// Escalated only.
    Notified,
    /// A firing notification of an occurrence that has already resolved: acts on nothing.
    OccurrenceEnded,
}

impl Decision {
    /// The name stored in the journal.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// What on-call decided on an escalation, as the API and the approval page say it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, EnumString, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Verdict {
    /// Approved: the stored plan is applied.
    Approved,
    /// Rejected: nothing is applied.
    Rejected,
}

impl Verdict {
    /// The name the API answers.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The event it is for a waiting run.
    pub fn event(self) -> Event {
        match self {
            Verdict::Approved => Event::Approve,
            Verdict::Rejected => Event::Reject,
        }
    }
}

/// Why a notice goes to on-call.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, EnumString, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum NoticeReason {
    /// A notify-only rule escalated the alert.
    Escalation,
    /// A plan waits for approval.
    Approval,
    /// The automatic fix failed.
    Failure,
    /// The run was cut off mid-apply and whether it took effect cannot be told.
    Interrupted,
    /// The fix reached the rule's `max_runs_per_hour` on its target: it does not hold.
    CapReached,
}

impl NoticeReason {
    /// The name stored in the journal.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Where a notice in the outbox stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, EnumString, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum NoticeState {
    /// To be sent (again) at `next_attempt_at`.
    Pending,
    /// Every channel took it.
    Delivered,
    /// Out of attempts; the journal keeps why.
    GivenUp,
}

impl NoticeState {
    /// The name stored in the journal.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// Why a pending run did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Another run of the action on the same target acted within the cooldown.
    Cooldown,
    /// The rule it was claimed for is no longer in the runbook.
    RuleGone,
    /// The alert occurrence resolved before the run started.
    OccurrenceResolved,
    /// The rule's `max_runs_per_hour` acted on the target already: the fix does not hold,
    /// and on-call is told.
    HourlyCap,
}

impl Hold {
    /// Every hold, for reading outcomes back.
    const ALL: [Hold; 4] = [
        Hold::Cooldown,
        Hold::RuleGone,
        Hold::OccurrenceResolved,
        Hold::HourlyCap,
    ];

    /// The words a skipped run's journaled outcome begins with: the journal keeps the
    /// reason in the outcome, and a replay reads it back from there.
    pub fn outcome_opening(self) -> &'static str {
        match self {
            Hold::Cooldown => "cooldown: ",
            Hold::RuleGone => "its rule is no longer in the runbook",
            Hold::OccurrenceResolved => "the alert resolved before this run started",
            Hold::HourlyCap => "max_runs_per_hour reached: ",
        }
    }

    /// The hold a skipped run's outcome names, if it names one.
    pub fn from_outcome(outcome: &str) -> Option<Hold> {
        Hold::ALL
            .into_iter()
            .find(|hold| outcome.starts_with(hold.outcome_opening()))
    }

    /// In a few words, for tables.
    pub fn words(self) -> &'static str {
        match self {
            Hold::Cooldown => "cooldown",
            Hold::RuleGone => "rule gone",
            Hold::OccurrenceResolved => "alert resolved first",
            Hold::HourlyCap => "max_runs_per_hour",
        }
    }
}

/// How planning ended without applying anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    /// The symptom needs nothing.
    NothingToDo,
    /// The action's guard refused.
    Refused,
    /// The pause switch is on.
    Paused,
    /// Dry run.
    DryRun,
}

impl Conclusion {
    /// How a run's outcome says it, in words.
    pub fn words(self) -> &'static str {
        match self {
            Conclusion::NothingToDo => "nothing to do",
            Conclusion::Refused => "refused",
            Conclusion::Paused => "paused",
            Conclusion::DryRun => "dry run",
        }
    }
}

/// What the world says about an interrupted apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// The plan took effect.
    Applied,
    /// Nothing of it happened: the run may be retried.
    NotApplied,
    /// Cannot be told: on-call must look.
    Unknown,
}

/// Everything that moves a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// On-call approved.
    Approve,
    /// On-call rejected.
    Reject,
    /// The alert resolved while waiting for a decision.
    Expire,
    /// A replica took it under a lease.
    Start,
    /// Held back before starting.
    Hold(Hold),
    /// Planning ended with nothing to apply.
    Conclude(Conclusion),
    /// The plan is journaled; applying begins.
    BeginApply,
    /// Applied and verified.
    Succeed,
    /// Planning, applying or verifying failed.
    Fail,
    /// Its replica's lease expired before it applied anything.
    Abandon,
    /// Its replica's lease expired while applying, and the world was asked.
    Reconcile(Found),
}

/// An event that does not apply to a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a run that is {} cannot take {event:?}", from.name())]
pub struct Illegal {
    /// The state.
    pub from: RunState,
    /// The event.
    pub event: Event,
}

/// The transition function: where `event` takes a run that is `from`.
pub fn next(from: RunState, event: Event) -> Result<RunState, Illegal> {
    use Conclusion as C;
    use RunState as S;
    let to = match (from, event) {
        (S::AwaitingApproval, Event::Approve) => S::Pending,
        (S::AwaitingApproval, Event::Reject) => S::Rejected,
        (S::AwaitingApproval, Event::Expire) => S::Expired,
        (S::Pending, Event::Start) => S::Running,
        (S::Pending, Event::Hold(_)) => S::Skipped,
        // An escalation's plan may find nothing to do, be refused, or fail: nobody need
        // be asked then.
        // And an apply may find, at the last moment, nothing to do or a reason to refuse
        // (an agent re-plans under its own policy before it acts).
        (S::Running | S::AwaitingApproval | S::Applying, Event::Conclude(C::NothingToDo)) => {
            S::NothingToDo
        }
        (S::Running | S::AwaitingApproval | S::Applying, Event::Conclude(C::Refused)) => S::Refused,
        (S::Running, Event::Conclude(C::Paused)) => S::Paused,
        (S::Running, Event::Conclude(C::DryRun)) => S::DryRun,
        (S::Running | S::AwaitingApproval | S::Applying, Event::Fail) => S::Failed,
        (S::Running, Event::BeginApply) => S::Applying,
        (S::Applying, Event::Succeed) => S::Succeeded,
        (S::Running, Event::Abandon) => S::Pending,
        (S::Applying, Event::Reconcile(Found::Applied)) => S::Succeeded,
        (S::Applying, Event::Reconcile(Found::NotApplied)) => S::Pending,
        (S::Applying, Event::Reconcile(Found::Unknown)) => S::Interrupted,
        _ => return Err(Illegal { from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    const ALL_EVENTS: [Event; 19] = [
        Event::Approve,
        Event::Reject,
        Event::Expire,
        Event::Start,
        Event::Hold(Hold::Cooldown),
        Event::Hold(Hold::RuleGone),
        Event::Hold(Hold::OccurrenceResolved),
        Event::Hold(Hold::HourlyCap),
        Event::Conclude(Conclusion::NothingToDo),
        Event::Conclude(Conclusion::Refused),
        Event::Conclude(Conclusion::Paused),
        Event::Conclude(Conclusion::DryRun),
        Event::BeginApply,
        Event::Succeed,
        Event::Fail,
        Event::Abandon,
        Event::Reconcile(Found::Applied),
        Event::Reconcile(Found::NotApplied),
        Event::Reconcile(Found::Unknown),
    ];

    /// The whole table: every (state, event) pair that is legal, and where it leads.
    /// Every pair not listed must be refused.
    #[test]
    fn the_transition_table() {
        use Conclusion as C;
        use RunState as S;
        let legal: &[(S, Event, S)] = &[
            (S::AwaitingApproval, Event::Approve, S::Pending),
            (S::AwaitingApproval, Event::Reject, S::Rejected),
            (S::AwaitingApproval, Event::Expire, S::Expired),
            (
                S::AwaitingApproval,
                Event::Conclude(C::NothingToDo),
                S::NothingToDo,
            ),
            (S::AwaitingApproval, Event::Conclude(C::Refused), S::Refused),
            (S::AwaitingApproval, Event::Fail, S::Failed),
            (S::Pending, Event::Start, S::Running),
            (S::Pending, Event::Hold(Hold::Cooldown), S::Skipped),
            (S::Pending, Event::Hold(Hold::RuleGone), S::Skipped),
            (
                S::Pending,
                Event::Hold(Hold::OccurrenceResolved),
                S::Skipped,
            ),
            (S::Pending, Event::Hold(Hold::HourlyCap), S::Skipped),
            (S::Running, Event::Conclude(C::NothingToDo), S::NothingToDo),
            (S::Running, Event::Conclude(C::Refused), S::Refused),
            (S::Running, Event::Conclude(C::Paused), S::Paused),
            (S::Running, Event::Conclude(C::DryRun), S::DryRun),
            (S::Running, Event::Fail, S::Failed),
            (S::Running, Event::BeginApply, S::Applying),
            (S::Running, Event::Abandon, S::Pending),
            (S::Applying, Event::Succeed, S::Succeeded),
            (S::Applying, Event::Conclude(C::NothingToDo), S::NothingToDo),
            (S::Applying, Event::Conclude(C::Refused), S::Refused),
            (S::Applying, Event::Fail, S::Failed),
            (S::Applying, Event::Reconcile(Found::Applied), S::Succeeded),
            (S::Applying, Event::Reconcile(Found::NotApplied), S::Pending),
            (
                S::Applying,
                Event::Reconcile(Found::Unknown),
                S::Interrupted,
            ),
        ];
        let mut checked = 0;
        for from in RunState::iter() {
            for event in ALL_EVENTS {
                let expected = legal
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                match (next(from, event), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{from:?} + {event:?}"),
                    (Err(illegal), None) => assert_eq!(illegal, Illegal { from, event }),
                    (got, want) => panic!("{from:?} + {event:?}: {got:?}, expected {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 15 * ALL_EVENTS.len());
    }

    #[test]
    fn final_states_take_no_event() {
        for from in RunState::iter().filter(|s| s.is_final()) {
            for event in ALL_EVENTS {
                assert!(next(from, event).is_err(), "{from:?} + {event:?}");
            }
        }
    }

    #[test]
    fn names_round_trip_as_the_journal_stores_them() {
        for state in RunState::iter() {
            assert_eq!(RunState::from_name(state.name()), Some(state));
        }
        assert_eq!(RunState::AwaitingApproval.name(), "awaiting_approval");
        assert_eq!(RunState::DryRun.name(), "dry_run");
        assert_eq!(Decision::OccurrenceEnded.name(), "occurrence_ended");
        assert_eq!(Policy::Approve.name(), "approve");
        assert_eq!("restore".parse::<RunKind>(), Ok(RunKind::Restore));
        assert_eq!(NoticeState::GivenUp.name(), "given_up");
        // serde agrees with the journal's names.
        assert_eq!(
            serde_json::to_value(RunState::NothingToDo).unwrap(),
            "nothing_to_do"
        );
    }

    #[test]
    fn policies_start_where_the_runbook_says() {
        assert_eq!(Policy::Auto.initial_state(), RunState::Pending);
        assert_eq!(Policy::Approve.initial_state(), RunState::AwaitingApproval);
        assert_eq!(Policy::Notify.initial_state(), RunState::Notified);
    }
}
