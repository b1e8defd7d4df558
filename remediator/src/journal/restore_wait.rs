//! When a restore may start: capacity goes back up only once it is safe.
//!
//! Lowering a builder's capacity is what resolves its alert, so undoing it the moment the
//! alert resolves brings the symptom back and the loop oscillates. A restore therefore
//! waits until its target has been quiet for the rule's `restore_after`: no alert of the
//! action firing for it (an occurrence that has not resolved), and nothing resolved or
//! restored on it for that long. Changes are undone one at a time, the latest first (each
//! restore undoes exactly its own occurrence's change, and only if the value is still the
//! one it set), so capacity never goes above what it was before the first lowering and
//! never over someone else's change. Everything is read from the journal under the
//! action's lock, so it holds across restarts and replicas.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::runs::RunRow;
use super::{Journal, JournalError};
use crate::alertmanager::AlertStatus;
use crate::lifecycle::{Effect, RunKind, RunState};

/// Why a restore waits, and until when it need not be tried again.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreWait {
    /// Not before this (`None`: until a delivery concerns the target again).
    pub until: Option<DateTime<Utc>>,
    /// In words, for the journal.
    pub reason: String,
}

/// Whether an occurrence of the action on the target has not resolved; the latest quiet
/// break (the first resolution of each occurrence, and each restore that changed
/// something); and the time now, all by the journal's clock.
const QUIET: &str = "
SELECT EXISTS (SELECT 1 FROM koji_remediator.action_runs x
                WHERE x.action = $1 AND x.target = $2 AND x.kind = $3
                  AND NOT EXISTS (SELECT 1 FROM koji_remediator.alerts r
                                   WHERE r.fingerprint = x.fingerprint
                                     AND r.starts_at = x.starts_at AND r.status = $4)),
       greatest(
         (SELECT max(first_resolved) FROM (
             SELECT min(r.received_at) AS first_resolved
               FROM koji_remediator.alerts r
               JOIN koji_remediator.action_runs x
                 ON x.fingerprint = r.fingerprint AND x.starts_at = r.starts_at
              WHERE x.action = $1 AND x.target = $2 AND x.kind = $3 AND r.status = $4
              GROUP BY r.fingerprint, r.starts_at) occurrences),
         (SELECT max(finished_at) FROM koji_remediator.action_runs x
           WHERE x.action = $1 AND x.target = $2 AND x.kind = $5 AND x.effect <> $6)),
       clock_timestamp()";

/// Whether a later change on the target (its apply run applied after this run's) is still
/// to be undone (its restore pending, or running now).
const LATER_CHANGE_PENDING: &str = "
SELECT EXISTS (
  SELECT 1 FROM koji_remediator.action_runs later_restore
    JOIN koji_remediator.action_runs later_apply
      ON later_apply.fingerprint = later_restore.fingerprint
     AND later_apply.starts_at = later_restore.starts_at
     AND later_apply.action = later_restore.action AND later_apply.kind = $3
   WHERE later_restore.action = $1 AND later_restore.target = $2
     AND later_restore.kind = $4 AND later_restore.state = ANY($5) AND later_restore.id <> $6
     AND later_apply.effect <> $7
     AND later_apply.applying_at > (
           SELECT own.applying_at FROM koji_remediator.action_runs own
            WHERE own.fingerprint = $8 AND own.starts_at = $9 AND own.action = $1
              AND own.kind = $3))";

impl Journal {
    /// Why the restore `run` must wait (see the module), or `None` when it may start.
    pub(super) async fn restore_wait(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        run: &RunRow,
        restore_after: Duration,
    ) -> Result<Option<RestoreWait>, JournalError> {
        let action = run.action.name();
        let quiet = transaction
            .query_one(
                QUIET,
                &[
                    &action,
                    &run.target,
                    &RunKind::Apply.name(),
                    &AlertStatus::Resolved.name(),
                    &RunKind::Restore.name(),
                    &Effect::None.name(),
                ],
            )
            .await?;
        let (firing, last_break, now): (bool, Option<DateTime<Utc>>, DateTime<Utc>) =
            (quiet.get(0), quiet.get(1), quiet.get(2));
        let quiet_for = humantime::format_duration(restore_after);
        if firing {
            return Ok(Some(RestoreWait {
                until: None,
                reason: format!(
                    "an alert of {action} still fires for {}: undone only after {quiet_for} without one",
                    run.target
                ),
            }));
        }
        let period = chrono::Duration::from_std(restore_after).unwrap_or(chrono::Duration::MAX);
        if let Some(due) = last_break.and_then(|at| at.checked_add_signed(period)) {
            if due > now {
                return Ok(Some(RestoreWait {
                    until: Some(due),
                    reason: format!(
                        "undone at {} if {} stays quiet ({quiet_for} after its last alert or restore, at {})",
                        due.format("%Y-%m-%d %H:%M:%S UTC"),
                        run.target,
                        last_break.map_or_else(String::new, |at| at
                            .format("%Y-%m-%d %H:%M:%S UTC")
                            .to_string())
                    ),
                }));
            }
        }
        let later: bool = transaction
            .query_one(
                LATER_CHANGE_PENDING,
                &[
                    &action,
                    &run.target,
                    &RunKind::Apply.name(),
                    &RunKind::Restore.name(),
                    &[
                        RunState::Pending.name(),
                        RunState::Running.name(),
                        RunState::Applying.name(),
                    ]
                    .as_slice(),
                    &run.id,
                    &Effect::None.name(),
                    &run.fingerprint,
                    &run.starts_at,
                ],
            )
            .await?
            .get(0);
        if later {
            // That one waits its own quiet period, and this one a whole period after it.
            let period = period.max(chrono::Duration::seconds(1));
            return Ok(Some(RestoreWait {
                until: Some(now + period),
                reason: format!(
                    "a later change on {} is undone first, then this one after {quiet_for} more",
                    run.target
                ),
            }));
        }
        Ok(None)
    }
}
