//! What the journal API and the approval page list: recent runs, recent alerts with their
//! decisions, and the changes held until it is safe to undo them.

use serde::Serialize;

use super::{Journal, JournalError};
use crate::lifecycle::{Effect, RunKind, RunState};

/// One run, as the journal API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    /// `action_runs.id`.
    pub id: i64,
    /// The rule it was claimed for.
    pub rule: String,
    /// The action.
    pub action: String,
    /// `apply` or `restore`.
    pub kind: String,
    /// The cooldown key.
    pub target: String,
    /// Where it stands (see [`crate::lifecycle::RunState`]).
    pub state: String,
    /// Whether it changed anything: `none`, `changed`, `unknown`.
    pub effect: String,
    /// The plan in one line.
    pub plan: Option<String>,
    /// What happened.
    pub outcome: String,
    /// How far a long action got (a drain's steps, with their times), while and after
    /// it runs.
    pub progress: Option<serde_json::Value>,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The replica holding it, while in flight.
    pub owner: Option<String>,
    /// How many times a replica started it.
    pub attempts: i32,
    /// When claimed (RFC 3339).
    pub created_at: String,
    /// When it ended (RFC 3339).
    pub finished_at: Option<String>,
}

/// One alert as received, with the decision taken.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEntry {
    /// `alerts.id`.
    pub id: i64,
    /// The `alertname` label.
    pub alertname: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Alertmanager's fingerprint.
    pub fingerprint: String,
    /// The alert's labels.
    pub labels: serde_json::Value,
    /// The matching rule.
    pub rule: Option<String>,
    /// The decision (see [`crate::lifecycle::Decision`]).
    pub decision: String,
    /// Why the runbook decided so, in words.
    pub detail: String,
    /// When received (RFC 3339).
    pub received_at: String,
}

/// A change whose undoing waits until its target has been quiet (see
/// [`super::restore_wait`]).
#[derive(Debug, Clone, Serialize)]
pub struct HeldChange {
    /// The restore run that waits.
    pub id: i64,
    /// The rule.
    pub rule: String,
    /// The action.
    pub action: String,
    /// What was changed.
    pub target: String,
    /// The change, in words (the apply run's plan).
    pub changed: Option<String>,
    /// When the change was made.
    pub changed_at: Option<String>,
    /// Why and until when the undoing waits (empty until first looked at).
    pub waiting: String,
}

const RFC3339: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

impl Journal {
    /// The most recent runs, newest first.
    pub async fn recent(&self, limit: i64) -> Result<Vec<JournalEntry>, JournalError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT id, rule, action, kind, target, state, effect, plan_summary, outcome,
                            fingerprint, owner, attempts,
                            to_char(created_at AT TIME ZONE 'UTC', {RFC3339}),
                            to_char(finished_at AT TIME ZONE 'UTC', {RFC3339}), progress
                       FROM koji_remediator.action_runs ORDER BY id DESC LIMIT $1"
                ),
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| JournalEntry {
                id: row.get(0),
                rule: row.get(1),
                action: row.get(2),
                kind: row.get(3),
                target: row.get(4),
                state: row.get(5),
                effect: row.get(6),
                plan: row.get(7),
                outcome: row.get(8),
                fingerprint: row.get(9),
                owner: row.get(10),
                attempts: row.get(11),
                created_at: row.get(12),
                finished_at: row.get(13),
                progress: row.get(14),
            })
            .collect())
    }

    /// Changes whose undoing waits, oldest first.
    pub async fn held_changes(&self) -> Result<Vec<HeldChange>, JournalError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT r.id, r.rule, r.action, r.target, a.plan_summary,
                        to_char(coalesce(a.finished_at, a.applying_at) AT TIME ZONE 'UTC',
                                'YYYY-MM-DD HH24:MI:SS \"UTC\"'),
                        r.outcome
                   FROM koji_remediator.action_runs r
                   JOIN koji_remediator.action_runs a
                     ON a.fingerprint = r.fingerprint AND a.starts_at = r.starts_at
                    AND a.action = r.action AND a.kind = $2
                  WHERE r.kind = $1 AND r.state = $3 AND a.effect <> $4
                  ORDER BY r.id",
                &[
                    &RunKind::Restore.name(),
                    &RunKind::Apply.name(),
                    &RunState::Pending.name(),
                    &Effect::None.name(),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| HeldChange {
                id: row.get(0),
                rule: row.get(1),
                action: row.get(2),
                target: row.get(3),
                changed: row.get(4),
                changed_at: row.get(5),
                waiting: row.get(6),
            })
            .collect())
    }

    /// The most recent alerts received with the decision taken, newest first.
    pub async fn recent_alerts(&self, limit: i64) -> Result<Vec<AlertEntry>, JournalError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT id, alertname, status, fingerprint, labels, rule, decision, detail,
                            to_char(received_at AT TIME ZONE 'UTC', {RFC3339})
                       FROM koji_remediator.alerts ORDER BY id DESC LIMIT $1"
                ),
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| AlertEntry {
                id: row.get(0),
                alertname: row.get(1),
                status: row.get(2),
                fingerprint: row.get(3),
                labels: row.get(4),
                rule: row.get(5),
                decision: row.get(6),
                detail: row.get(7),
                received_at: row.get(8),
            })
            .collect())
    }
}
