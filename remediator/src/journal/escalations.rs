//! On-call's side of the journal: escalations listed for the page and the API, decisions
//! recorded with who made them, and the count of those waiting.

use super::{Journal, JournalError};
use crate::lifecycle::{next, Policy, RunState, Verdict};

/// How recording a decision went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// Recorded; the run moved to this state.
    Moved(RunState),
    /// The run is not waiting for a decision: it is in this state.
    NotWaiting(RunState),
    /// No such run.
    NotFound,
}

impl Journal {
    /// Records on-call's decision on an escalation, if it still waits for one.
    pub async fn decide(
        &self,
        id: i64,
        verdict: Verdict,
        by: &str,
        reason: &str,
    ) -> Result<Decided, JournalError> {
        let client = self.client().await?;
        let waiting = RunState::AwaitingApproval;
        let to = next(waiting, verdict.event())?;
        let outcome = (verdict == Verdict::Rejected).then(|| format!("rejected by {by}"));
        let updated = client
            .execute(
                "UPDATE koji_remediator.action_runs
                    SET state = $2, decided_by = $3, decided_at = now(), decision_reason = $4,
                        finished_at = CASE WHEN $5 THEN now() END,
                        outcome = coalesce($6, outcome)
                  WHERE id = $1 AND state = $7",
                &[
                    &id,
                    &to.name(),
                    &by,
                    &reason,
                    &to.is_final(),
                    &outcome,
                    &waiting.name(),
                ],
            )
            .await?;
        if updated == 1 {
            return Ok(Decided::Moved(to));
        }
        let state = client
            .query_opt(
                "SELECT state FROM koji_remediator.action_runs WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(match state {
            Some(row) => Decided::NotWaiting(super::parse_name(id, "state", row.get(0))?),
            None => Decided::NotFound,
        })
    }

    /// Escalations, waiting ones first, then the most recent decided ones.
    pub async fn escalations(&self, limit: i64) -> Result<Vec<serde_json::Value>, JournalError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT json_build_object(
                        'id', id, 'rule', rule, 'action', action, 'target', target,
                        'state', state, 'plan', plan_summary, 'labels', labels,
                        'decided_by', decided_by, 'reason', decision_reason, 'outcome', outcome,
                        'notice', notice, 'alertname', labels->>'alertname',
                        'plan_detail', plan, 'created_at', created_at,
                        'decided_at', decided_at, 'finished_at', finished_at,
                        'summary', alert.annotations->>'summary',
                        'generator_url', alert.generator_url)
                   FROM koji_remediator.action_runs
                   LEFT JOIN LATERAL (
                        SELECT annotations, generator_url FROM koji_remediator.alerts a
                         WHERE a.fingerprint = action_runs.fingerprint
                           AND a.starts_at = action_runs.starts_at
                         ORDER BY a.id LIMIT 1) alert ON true
                  WHERE policy IN ($2, $3)
                  ORDER BY state = $4 DESC, id DESC LIMIT $1",
                &[
                    &limit,
                    &Policy::Approve.name(),
                    &Policy::Notify.name(),
                    &RunState::AwaitingApproval.name(),
                ],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Runs waiting for on-call.
    pub async fn pending_escalations(&self) -> Result<i64, JournalError> {
        let client = self.client().await?;
        Ok(client
            .query_one(
                "SELECT count(*) FROM koji_remediator.action_runs WHERE state = $1",
                &[&RunState::AwaitingApproval.name()],
            )
            .await?
            .get(0))
    }
}
