//! What the webhook records before it answers: the delivery, each alert with its decision,
//! and the runs the decisions claim, in one transaction. The webhook answers 2xx only once
//! it committed; the unique key on runs (alert occurrence, action, kind) makes a repeated
//! delivery claim nothing, so Alertmanager's retries, its replicas and the remediator's
//! replicas never run an action twice.
//!
//! Occurrences end: once an occurrence's resolution is journaled, a late firing
//! notification of it (a retry, a second Alertmanager) is journaled as
//! `occurrence_ended` and claims nothing. Deliveries touching the same occurrence are
//! serialized by an advisory lock, so a firing and a resolved notification racing each
//! other cannot both miss the other.

use tokio_postgres::types::Json;

use super::{Journal, JournalError};
use crate::alertmanager::{AlertStatus, Payload};
use crate::lifecycle::{next, Decision, Event, NoticeReason, RunKind, RunState};
use crate::runbook::AlertDecision;

/// A run this delivery claimed, for the executor to start (or plan, for an escalation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedRun {
    /// `action_runs.id`.
    pub id: i64,
    /// The state it was claimed in.
    pub state: RunState,
}

const INSERT_DELIVERY: &str = "
INSERT INTO koji_remediator.deliveries (receiver, group_key, status, alert_count)
VALUES ($1, $2, $3, $4) RETURNING id";

const LOCK_OCCURRENCE: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

const OCCURRENCE_RESOLVED: &str = "
SELECT EXISTS (SELECT 1 FROM koji_remediator.alerts
                WHERE fingerprint = $1 AND starts_at = $2 AND status = $3)";

const CLAIM_RUN: &str = "
INSERT INTO koji_remediator.action_runs
    (fingerprint, starts_at, action, kind, rule, policy, target, labels, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (fingerprint, starts_at, action, kind) DO NOTHING
RETURNING id";

/// Pending restores of the target are looked at again: a firing alert holds them, a
/// resolution may release them (see [`super::restore_wait`]).
const RECONSIDER_RESTORES: &str = "
UPDATE koji_remediator.action_runs SET not_before = NULL
 WHERE action = $1 AND target = $2 AND kind = $3 AND state = $4 AND not_before IS NOT NULL";

const EXPIRE_WAITING: &str = "
UPDATE koji_remediator.action_runs
   SET state = $3, finished_at = now(), outcome = 'the alert resolved before a decision'
 WHERE fingerprint = $1 AND starts_at = $2 AND state = $4";

const INSERT_ALERT: &str = "
INSERT INTO koji_remediator.alerts
    (delivery_id, fingerprint, status, alertname, labels, annotations, starts_at, rule,
     decision, detail, generator_url)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Queues a notice for a run in the same transaction as the transition that calls for it.
pub(super) const ENQUEUE_NOTICE: &str = "
INSERT INTO koji_remediator.notices (run_id, reason) VALUES ($1, $2)
ON CONFLICT (run_id, reason) DO NOTHING";

impl Journal {
    /// Records a delivery and its alerts, claiming the runs the decisions call for, in one
    /// transaction, and returns the runs claimed. With `notices` (a `[notify]` is
    /// configured), an escalation's notice is queued with its claim.
    pub async fn record_delivery(
        &self,
        payload: &Payload,
        decisions: &[AlertDecision],
        notices: bool,
    ) -> Result<Vec<ClaimedRun>, JournalError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        // Cached statements: each delivery runs these, and parsing them anew would double
        // the round trips of the transaction the webhook's answer waits for.
        let claim_run = transaction.prepare_cached(CLAIM_RUN).await?;
        let insert_alert = transaction.prepare_cached(INSERT_ALERT).await?;
        let resolved = transaction.prepare_cached(OCCURRENCE_RESOLVED).await?;
        let delivery_id: i64 = transaction
            .query_one(
                INSERT_DELIVERY,
                &[
                    &payload.receiver,
                    &payload.group_key,
                    &payload.status,
                    &(payload.alerts.len() as i32),
                ],
            )
            .await?
            .get(0);
        // Locks in one order, so deliveries sharing occurrences never deadlock.
        let mut occurrences: Vec<String> = decisions
            .iter()
            .map(|d| {
                format!(
                    "koji-remediator:occurrence:{}:{}",
                    d.alert.fingerprint, d.alert.starts_at
                )
            })
            .collect();
        occurrences.sort();
        occurrences.dedup();
        for key in &occurrences {
            transaction.execute(LOCK_OCCURRENCE, &[key]).await?;
        }
        let mut claimed = Vec::new();
        for decision in decisions {
            let alert = &decision.alert;
            let labels = Json(&alert.labels);
            let mut verdict = decision.decision;
            let mut detail = decision.detail.clone();
            // Only actions that undo have restores to look at again.
            if let Some(run) = decision.run.as_ref().filter(|run| run.action.can_restore()) {
                transaction
                    .execute(
                        RECONSIDER_RESTORES,
                        &[
                            &run.action.name(),
                            &run.target,
                            &RunKind::Restore.name(),
                            &RunState::Pending.name(),
                        ],
                    )
                    .await?;
            }
            if let (Some(run), Some(rule)) = (&decision.run, &decision.rule) {
                let ended = alert.status == AlertStatus::Firing
                    && transaction
                        .query_one(
                            &resolved,
                            &[
                                &alert.fingerprint,
                                &alert.starts_at,
                                &AlertStatus::Resolved.name(),
                            ],
                        )
                        .await?
                        .get::<_, bool>(0);
                if ended {
                    verdict = Decision::OccurrenceEnded;
                    detail = "this alert occurrence has already resolved: a late firing notification acts on nothing".into();
                } else {
                    let state = run.initial_state();
                    let row = transaction
                        .query_opt(
                            &claim_run,
                            &[
                                &alert.fingerprint,
                                &alert.starts_at,
                                &run.action.name(),
                                &run.kind.name(),
                                rule,
                                &run.policy.name(),
                                &run.target,
                                &labels,
                                &state.name(),
                            ],
                        )
                        .await?;
                    match row {
                        Some(row) => {
                            let id: i64 = row.get(0);
                            if notices && state == RunState::Notified {
                                transaction
                                    .execute(
                                        ENQUEUE_NOTICE,
                                        &[&id, &NoticeReason::Escalation.name()],
                                    )
                                    .await?;
                            }
                            claimed.push(ClaimedRun { id, state });
                        }
                        None => {
                            verdict = Decision::Duplicate;
                            detail = format!(
                                "{} {} already claimed for this alert occurrence",
                                run.action.name(),
                                run.kind.name()
                            );
                        }
                    }
                }
            }
            if alert.status == AlertStatus::Resolved {
                // The alert resolved before anyone decided: the escalation expires.
                let waiting = RunState::AwaitingApproval;
                let expired = next(waiting, Event::Expire)?;
                transaction
                    .execute(
                        EXPIRE_WAITING,
                        &[
                            &alert.fingerprint,
                            &alert.starts_at,
                            &expired.name(),
                            &waiting.name(),
                        ],
                    )
                    .await?;
            }
            transaction
                .execute(
                    &insert_alert,
                    &[
                        &delivery_id,
                        &alert.fingerprint,
                        &alert.status.name(),
                        &alert.alertname(),
                        &labels,
                        &Json(&alert.annotations),
                        &alert.starts_at,
                        &decision.rule,
                        &verdict.name(),
                        &detail,
                        &alert.generator_url,
                    ],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(claimed)
    }
}
