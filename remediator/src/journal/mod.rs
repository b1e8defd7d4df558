//! The journal: every alert received, the rule it matched, the decision, the plan, the
//! outcome, in PostgreSQL (schema `koji_remediator`).
//!
//! The webhook answers 2xx only after [`Journal::record_delivery`] committed; the unique
//! key on action runs makes a repeated delivery claim nothing, so Alertmanager's retries
//! (after a 5xx, or from several replicas) never run an action twice.

pub mod migrations;

use std::time::Duration;

use deadpool_postgres::Pool;
use serde::Serialize;
use tokio_postgres::types::Json;

use crate::actions::{ActionKind, Plan};
use crate::alertmanager::{Alert, Payload};

/// Why the journal could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// No connection.
    #[error("journal database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A statement failed.
    #[error("journal query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The journal was migrated by a newer koji-remediator.
    #[error("the journal's schema is at version {found}, newer than this koji-remediator knows ({known}): upgrade this instance, do not run an older one against it")]
    NewerSchema {
        /// The journal's version.
        found: i32,
        /// The newest this binary knows.
        known: i32,
    },
}

/// What the runbook decided for one alert, before journaling.
#[derive(Debug, Clone)]
pub struct AlertDecision {
    /// The alert.
    pub alert: Alert,
    /// The matching rule, if any.
    pub rule: Option<String>,
    /// The decision (`run`, `unmatched`, `resolved_ignored`, `awaiting_approval`, ...).
    pub decision: String,
    /// Free text for the journal.
    pub detail: String,
    /// The run to claim, when the decision calls for one.
    pub run: Option<RunRequest>,
}

/// A run to claim.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The action.
    pub action: ActionKind,
    /// `apply` or `restore`.
    pub kind: &'static str,
    /// The rule's policy name.
    pub policy: &'static str,
    /// The cooldown key.
    pub target: String,
    /// The state the run starts in (`pending`, or `awaiting_approval`, `notified`).
    pub state: &'static str,
}

/// A run this delivery claimed: it, and nobody else, executes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedRun {
    /// `action_runs.id`.
    pub id: i64,
    /// The rule.
    pub rule: String,
}

/// One line of the journal API.
#[derive(Debug, Clone, Serialize)]
pub struct JournalEntry {
    /// `action_runs.id`.
    pub id: i64,
    /// Rule.
    pub rule: String,
    /// Action.
    pub action: String,
    /// `apply` or `restore`.
    pub kind: String,
    /// Cooldown key.
    pub target: String,
    /// State.
    pub state: String,
    /// Plan summary.
    pub plan: Option<String>,
    /// Outcome text.
    pub outcome: String,
    /// Alert fingerprint.
    pub fingerprint: String,
    /// When claimed (RFC 3339).
    pub created_at: String,
    /// When finished (RFC 3339).
    pub finished_at: Option<String>,
}

/// One alert as received, with the decision taken.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEntry {
    /// `alerts.id`.
    pub id: i64,
    /// Alert name.
    pub alertname: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Alertmanager's fingerprint.
    pub fingerprint: String,
    /// The alert's labels.
    pub labels: serde_json::Value,
    /// The matching rule.
    pub rule: Option<String>,
    /// `run`, `restore`, `duplicate`, `unmatched`, `resolved_ignored`, `refused`,
    /// `awaiting_approval`, `notified`.
    pub decision: String,
    /// Why.
    pub detail: String,
    /// When received (RFC 3339).
    pub received_at: String,
}

/// The journal.
#[derive(Debug, Clone)]
pub struct Journal {
    pool: Pool,
}

const INSERT_DELIVERY: &str = "
INSERT INTO koji_remediator.deliveries (receiver, group_key, status, alert_count)
VALUES ($1, $2, $3, $4) RETURNING id";
const CLAIM_RUN: &str = "
INSERT INTO koji_remediator.action_runs
    (fingerprint, starts_at, action, kind, rule, policy, target, labels, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (fingerprint, starts_at, action, kind) DO NOTHING
RETURNING id";
const INSERT_ALERT: &str = "
INSERT INTO koji_remediator.alerts
    (delivery_id, fingerprint, status, alertname, labels, annotations, starts_at, rule,
     decision, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

impl Journal {
    /// A journal on `pool`; call [`Journal::migrate`] before use.
    pub fn new(pool: Pool) -> Journal {
        Journal { pool }
    }

    /// Creates or upgrades the schema.
    pub async fn migrate(&self) -> Result<(), JournalError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&migrations::MIGRATION_LOCK],
            )
            .await?;
        transaction
            .batch_execute(
                "CREATE SCHEMA IF NOT EXISTS koji_remediator;
                 CREATE TABLE IF NOT EXISTS koji_remediator.schema_migrations (
                     version integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
        // A journal migrated by a newer remediator: its code may rely on columns this one
        // does not fill, so an older binary must not write there.
        let newest: Option<i32> = transaction
            .query_one(
                "SELECT max(version) FROM koji_remediator.schema_migrations",
                &[],
            )
            .await?
            .get(0);
        let known = migrations::MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if let Some(newest) = newest.filter(|n| *n > known) {
            return Err(JournalError::NewerSchema {
                found: newest,
                known,
            });
        }
        for (version, sql) in migrations::MIGRATIONS {
            let applied = transaction
                .query_opt(
                    "SELECT 1 FROM koji_remediator.schema_migrations WHERE version = $1",
                    &[version],
                )
                .await?
                .is_some();
            if !applied {
                transaction.batch_execute(sql).await?;
                transaction
                    .execute(
                        "INSERT INTO koji_remediator.schema_migrations (version) VALUES ($1)",
                        &[version],
                    )
                    .await?;
                tracing::info!(version, "journal schema migrated");
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Records a delivery and its alerts, claiming the runs the decisions call for, in one
    /// transaction, and returns the claimed runs the executor is to start (those waiting for
    /// a human are journaled, not returned). Runs already claimed by an earlier delivery of
    /// the same alert occurrence are journaled as `duplicate` and not returned.
    pub async fn record_delivery(
        &self,
        payload: &Payload,
        decisions: &[AlertDecision],
    ) -> Result<Vec<ClaimedRun>, JournalError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        // Cached statements: each delivery runs these, and parsing them anew would double
        // the round trips of the transaction the webhook's answer waits for.
        let insert_delivery = transaction.prepare_cached(INSERT_DELIVERY).await?;
        let claim_run = transaction.prepare_cached(CLAIM_RUN).await?;
        let insert_alert = transaction.prepare_cached(INSERT_ALERT).await?;
        let alert_count = payload.alerts.len() as i32;
        let delivery_id: i64 = transaction
            .query_one(
                &insert_delivery,
                &[
                    &payload.receiver,
                    &payload.group_key,
                    &payload.status,
                    &alert_count,
                ],
            )
            .await?
            .get(0);
        let mut claimed = Vec::new();
        for decision in decisions {
            let alert = &decision.alert;
            let labels = Json(&alert.labels);
            let mut verdict = decision.decision.clone();
            let mut detail = decision.detail.clone();
            if let (Some(run), Some(rule)) = (&decision.run, &decision.rule) {
                let row = transaction
                    .query_opt(
                        &claim_run,
                        &[
                            &alert.fingerprint,
                            &alert.starts_at,
                            &run.action.name(),
                            &run.kind,
                            rule,
                            &run.policy,
                            &run.target,
                            &labels,
                            &run.state,
                        ],
                    )
                    .await?;
                match row {
                    // Only runs that start pending are for the executor; escalations
                    // and approvals wait for a human.
                    // Pending runs go to the executor; escalations too, to be planned for
                    // on-call to see and to have their notices sent.
                    Some(row)
                        if matches!(run.state, "pending" | "awaiting_approval" | "notified") =>
                    {
                        claimed.push(ClaimedRun {
                            id: row.get(0),
                            rule: rule.clone(),
                        })
                    }
                    Some(_) => {}
                    None => {
                        verdict = "duplicate".into();
                        detail = format!(
                            "{} {} already claimed for this alert occurrence",
                            run.action.name(),
                            run.kind
                        );
                    }
                }
            }
            if alert.status == crate::alertmanager::AlertStatus::Resolved {
                // The alert resolved before anyone decided: the escalation expires.
                transaction
                    .execute(
                        "UPDATE koji_remediator.action_runs
                            SET state = 'expired', finished_at = now(),
                                outcome = 'the alert resolved before a decision'
                          WHERE fingerprint = $1 AND starts_at = $2 AND state = 'awaiting_approval'",
                        &[&alert.fingerprint, &alert.starts_at],
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
                        &verdict,
                        &detail,
                    ],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(claimed)
    }

    /// Starts a claimed run: under an advisory lock on (action, target), so replicas agree,
    /// it is refused when another run of the action on the same target started within the
    /// cooldown (restores are never held back: they undo).
    pub async fn begin_run(&self, id: i64, cooldown: Duration) -> Result<RunStart, JournalError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let Some(row) = transaction
            .query_opt(
                "SELECT action, target, kind, state, labels, fingerprint, starts_at
                   FROM koji_remediator.action_runs WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?
        else {
            return Ok(RunStart::Gone);
        };
        let action: String = row.get("action");
        let target: String = row.get("target");
        let kind: String = row.get("kind");
        let state: String = row.get("state");
        if state != "pending" {
            return Ok(RunStart::Gone);
        }
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&format!("koji-remediator:{action}:{target}")],
            )
            .await?;
        if kind == "apply" {
            let recent = transaction
                .query_opt(
                    "SELECT id, started_at::text FROM koji_remediator.action_runs
                      WHERE action = $1 AND target = $2 AND kind = 'apply' AND id <> $3
                        AND state IN ('running', 'succeeded', 'failed')
                        AND started_at > now() - make_interval(secs => $4)
                      ORDER BY started_at DESC LIMIT 1",
                    &[&action, &target, &id, &cooldown.as_secs_f64()],
                )
                .await?;
            if let Some(recent) = recent {
                let other: i64 = recent.get(0);
                let at: String = recent.get(1);
                let outcome = format!("cooldown: run {other} acted on {target} at {at}");
                finish(&transaction, id, "skipped", &outcome).await?;
                transaction.commit().await?;
                return Ok(RunStart::Cooldown(outcome));
            }
        }
        transaction
            .execute(
                "UPDATE koji_remediator.action_runs SET state = 'running', started_at = now()
                  WHERE id = $1",
                &[&id],
            )
            .await?;
        transaction.commit().await?;
        Ok(RunStart::Started(RunInfo {
            labels: row
                .get::<_, Json<std::collections::BTreeMap<String, String>>>("labels")
                .0,
            kind,
            fingerprint: row.get("fingerprint"),
            starts_at: row.get("starts_at"),
        }))
    }

    /// The rule a run was claimed for.
    pub async fn run_rule(&self, id: i64) -> Result<Option<String>, JournalError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT rule FROM koji_remediator.action_runs WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Stores the plan of a run.
    pub async fn record_plan(&self, id: i64, plan: &Plan) -> Result<(), JournalError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE koji_remediator.action_runs SET plan = $2, plan_summary = $3 WHERE id = $1",
                &[&id, &Json(plan), &plan.summary()],
            )
            .await?;
        Ok(())
    }

    /// Stores the plan summary an agent reported for a forwarded run.
    pub async fn record_plan_summary(&self, id: i64, summary: &str) -> Result<(), JournalError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE koji_remediator.action_runs SET plan_summary = $2 WHERE id = $1",
                &[&id, &summary],
            )
            .await?;
        Ok(())
    }

    /// Ends a run in `state` with `outcome`.
    pub async fn finish_run(
        &self,
        id: i64,
        state: &str,
        outcome: &str,
    ) -> Result<(), JournalError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        finish(&transaction, id, state, outcome).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The plan an earlier, successful `apply` run of the same alert occurrence carried
    /// out: what a restore undoes.
    pub async fn applied_plan(
        &self,
        action: ActionKind,
        fingerprint: &str,
        starts_at: &chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Plan>, JournalError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT plan FROM koji_remediator.action_runs
                  WHERE action = $1 AND fingerprint = $2 AND starts_at = $3 AND kind = 'apply'
                    AND state = 'succeeded' AND plan IS NOT NULL",
                &[&action.name(), &fingerprint, starts_at],
            )
            .await?;
        Ok(row.and_then(|row| serde_json::from_value(row.get::<_, serde_json::Value>(0)).ok()))
    }

    /// Runs claimed but not started (the remediator stopped before running them), and marks
    /// runs caught mid-way by a stop as interrupted: those are never re-applied blindly.
    pub async fn recover(&self) -> Result<Vec<i64>, JournalError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE koji_remediator.action_runs
                    SET state = 'interrupted', finished_at = now(),
                        outcome = 'the remediator stopped while this run was in progress'
                  WHERE state = 'running'",
                &[],
            )
            .await?;
        let rows = client
            .query(
                "SELECT id FROM koji_remediator.action_runs WHERE state = 'pending' ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// The most recent runs, newest first.
    pub async fn recent(&self, limit: i64) -> Result<Vec<JournalEntry>, JournalError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, rule, action, kind, target, state, plan_summary, outcome, fingerprint,
                        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                        to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                   FROM koji_remediator.action_runs ORDER BY id DESC LIMIT $1",
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
                plan: row.get(6),
                outcome: row.get(7),
                fingerprint: row.get(8),
                created_at: row.get(9),
                finished_at: row.get(10),
            })
            .collect())
    }

    /// The most recent alerts received with the decision taken, newest first.
    pub async fn recent_alerts(&self, limit: i64) -> Result<Vec<AlertEntry>, JournalError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT id, alertname, status, fingerprint, labels, rule, decision, detail,
                        to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                   FROM koji_remediator.alerts ORDER BY id DESC LIMIT $1",
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

    /// Records on-call's decision on an escalation. `Ok(None)` when the run is not waiting
    /// (any more); the caller reports its state.
    pub async fn decide(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        reason: &str,
    ) -> Result<Result<String, Option<String>>, JournalError> {
        let client = self.pool.get().await?;
        let new_state = if approve { "pending" } else { "rejected" };
        let updated = client
            .query_opt(
                "UPDATE koji_remediator.action_runs
                    SET state = $2, decided_by = $3, decided_at = now(), decision_reason = $4,
                        finished_at = CASE WHEN $2 = 'rejected' THEN now() END,
                        outcome = CASE WHEN $2 = 'rejected' THEN 'rejected by ' || $3 ELSE outcome END
                  WHERE id = $1 AND state = 'awaiting_approval'
                  RETURNING rule",
                &[&id, &new_state, &by, &reason],
            )
            .await?;
        if let Some(row) = updated {
            return Ok(Ok(row.get(0)));
        }
        let state = client
            .query_opt(
                "SELECT state FROM koji_remediator.action_runs WHERE id = $1",
                &[&id],
            )
            .await?
            .map(|row| row.get(0));
        Ok(Err(state))
    }

    /// The plan stored for a run (made before approval), if any.
    pub async fn stored_plan(&self, id: i64) -> Result<Option<Plan>, JournalError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT plan FROM koji_remediator.action_runs WHERE id = $1 AND plan IS NOT NULL",
                &[&id],
            )
            .await?;
        Ok(row.and_then(|row| serde_json::from_value(row.get::<_, serde_json::Value>(0)).ok()))
    }

    /// Escalations, waiting ones first, then the most recent decided ones.
    pub async fn escalations(&self, limit: i64) -> Result<Vec<serde_json::Value>, JournalError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT json_build_object(
                        'id', id, 'rule', rule, 'action', action, 'target', target,
                        'state', state, 'plan', plan_summary, 'labels', labels,
                        'decided_by', decided_by, 'reason', decision_reason, 'outcome', outcome,
                        'notice', notice, 'alertname', labels->>'alertname',
                        'plan_detail', plan, 'created_at', created_at,
                        'decided_at', decided_at, 'finished_at', finished_at)
                   FROM koji_remediator.action_runs
                  WHERE policy IN ('approve', 'notify')
                  ORDER BY state = 'awaiting_approval' DESC, id DESC LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// What a run needs from its row, whatever its state.
    pub async fn run_info(&self, id: i64) -> Result<Option<RunInfo>, JournalError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT labels, kind, fingerprint, starts_at FROM koji_remediator.action_runs
                  WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(row.map(|row| RunInfo {
            labels: row
                .get::<_, Json<std::collections::BTreeMap<String, String>>>(0)
                .0,
            kind: row.get(1),
            fingerprint: row.get(2),
            starts_at: row.get(3),
        }))
    }

    /// Records the notice sent for a run and how its delivery went.
    pub async fn record_notice(&self, id: i64, notice: &str) -> Result<(), JournalError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE koji_remediator.action_runs SET notice = $2 WHERE id = $1",
                &[&id, &notice],
            )
            .await?;
        Ok(())
    }

    /// The annotations of the alert occurrence a run belongs to, as last received.
    pub async fn annotations(
        &self,
        fingerprint: &str,
        starts_at: &chrono::DateTime<chrono::Utc>,
    ) -> Result<std::collections::BTreeMap<String, String>, JournalError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT annotations FROM koji_remediator.alerts
                  WHERE fingerprint = $1 AND starts_at = $2 ORDER BY id DESC LIMIT 1",
                &[&fingerprint, starts_at],
            )
            .await?;
        Ok(row
            .map(|row| {
                row.get::<_, Json<std::collections::BTreeMap<String, String>>>(0)
                    .0
            })
            .unwrap_or_default())
    }

    /// The outcome text of a run.
    pub async fn run_outcome(&self, id: i64) -> Result<String, JournalError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT outcome FROM koji_remediator.action_runs WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(row.map(|row| row.get(0)).unwrap_or_default())
    }

    /// The state of a run.
    pub async fn run_state(&self, id: i64) -> Result<Option<String>, JournalError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT state FROM koji_remediator.action_runs WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Runs waiting for on-call.
    pub async fn pending_escalations(&self) -> Result<i64, JournalError> {
        let client = self.pool.get().await?;
        Ok(client
            .query_one(
                "SELECT count(*) FROM koji_remediator.action_runs WHERE state = 'awaiting_approval'",
                &[],
            )
            .await?
            .get(0))
    }

    /// The global pause switch as stored (shared by every replica), if ever set.
    pub async fn paused(&self) -> Result<Option<bool>, JournalError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT value FROM koji_remediator.settings WHERE key = 'paused'",
                &[],
            )
            .await?;
        Ok(row.and_then(|row| row.get::<_, serde_json::Value>(0).as_bool()))
    }

    /// Sets the global pause switch.
    pub async fn set_paused(&self, paused: bool, by: &str) -> Result<(), JournalError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO koji_remediator.settings (key, value, updated_by)
                 VALUES ('paused', $1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = $1, updated_by = $2, updated_at = now()",
                &[&serde_json::Value::Bool(paused), &by],
            )
            .await?;
        Ok(())
    }
}

async fn finish(
    transaction: &tokio_postgres::Transaction<'_>,
    id: i64,
    state: &str,
    outcome: &str,
) -> Result<(), JournalError> {
    transaction
        .execute(
            "UPDATE koji_remediator.action_runs
                SET state = $2, outcome = $3, finished_at = now() WHERE id = $1",
            &[&id, &state, &outcome],
        )
        .await?;
    Ok(())
}

/// How starting a run went.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStart {
    /// Go: here is what the run needs.
    Started(RunInfo),
    /// Held back by the cooldown (journaled as skipped).
    Cooldown(String),
    /// Not pending any more (another worker took it) or gone.
    Gone,
}

/// What a started run needs from its row.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// The alert's labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `apply` or `restore`.
    pub kind: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The alert's start.
    pub starts_at: chrono::DateTime<chrono::Utc>,
}
