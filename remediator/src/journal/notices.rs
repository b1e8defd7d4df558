//! The outbox: notices to on-call, queued in the same transaction as the run transition
//! that calls for them, claimed one at a time under a short lease by whichever replica's
//! sender gets there first, retried across restarts until delivered or given up. The
//! run's `notice` column keeps the final word (how delivery went, and the text).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_postgres::types::Json;

use super::runs::Lease;
use super::{parse_name, Journal, JournalError};
use crate::lifecycle::{NoticeReason, NoticeState};

/// A notice due to be sent, claimed by this replica.
#[derive(Debug, Clone, PartialEq)]
pub struct DueNotice {
    /// `notices.id`.
    pub id: i64,
    /// The run it is about.
    pub run_id: i64,
    /// Why it goes out.
    pub reason: NoticeReason,
    /// Attempts made before this one.
    pub attempts: i32,
    /// Channels that took it already, with how.
    pub delivered: BTreeMap<String, String>,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Every channel took it; the run's notice becomes `journal_text`.
    Delivered {
        /// What the run's notice column says.
        journal_text: String,
    },
    /// Some channel failed; try again after `after`.
    Retry {
        /// Pause before the next attempt.
        after: Duration,
        /// What failed.
        error: String,
    },
    /// Out of attempts; the run's notice becomes `journal_text`.
    GiveUp {
        /// What the run's notice column says.
        journal_text: String,
        /// What failed last.
        error: String,
    },
}

const CLAIM_DUE: &str = "
UPDATE koji_remediator.notices SET owner = $1, lease_until = now() + make_interval(secs => $2)
 WHERE id = (SELECT id FROM koji_remediator.notices
              WHERE state = $3 AND next_attempt_at <= now()
                AND (lease_until IS NULL OR lease_until < now())
              ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, run_id, reason, attempts, delivered";

impl Journal {
    /// Claims the next due notice for `hold` (longer than one attempt can take).
    pub async fn claim_due_notice(
        &self,
        lease: &Lease,
        hold: Duration,
    ) -> Result<Option<DueNotice>, JournalError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                CLAIM_DUE,
                &[
                    &&*lease.owner,
                    &hold.as_secs_f64(),
                    &NoticeState::Pending.name(),
                ],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id: i64 = row.get("id");
        Ok(Some(DueNotice {
            id,
            run_id: row.get("run_id"),
            reason: parse_name(id, "notice reason", row.get("reason"))?,
            attempts: row.get("attempts"),
            delivered: row.get::<_, Json<BTreeMap<String, String>>>("delivered").0,
        }))
    }

    /// Records one attempt at `notice` (which this replica claimed).
    pub async fn record_notice_attempt(
        &self,
        notice: &DueNotice,
        lease: &Lease,
        attempt: &Attempt,
    ) -> Result<(), JournalError> {
        let mut client = self.client().await?;
        let db = client.transaction().await?;
        let (state, after, error, journal_text) = match attempt {
            Attempt::Delivered { journal_text } => {
                (NoticeState::Delivered, 0.0, None, Some(journal_text))
            }
            Attempt::Retry { after, error } => {
                (NoticeState::Pending, after.as_secs_f64(), Some(error), None)
            }
            Attempt::GiveUp {
                journal_text,
                error,
            } => (NoticeState::GivenUp, 0.0, Some(error), Some(journal_text)),
        };
        db.execute(
            "UPDATE koji_remediator.notices
                SET state = $3, attempts = attempts + 1, delivered = $4,
                    last_error = coalesce($5, last_error),
                    next_attempt_at = now() + make_interval(secs => $6),
                    owner = NULL, lease_until = NULL,
                    finished_at = CASE WHEN $3 = $7 THEN NULL ELSE now() END
              WHERE id = $1 AND owner = $2",
            &[
                &notice.id,
                &&*lease.owner,
                &state.name(),
                &Json(&notice.delivered),
                &error,
                &after,
                &NoticeState::Pending.name(),
            ],
        )
        .await?;
        if let Some(text) = journal_text {
            db.execute(
                "UPDATE koji_remediator.action_runs SET notice = $2 WHERE id = $1",
                &[&notice.run_id, text],
            )
            .await?;
        }
        db.commit().await?;
        Ok(())
    }
}
