//! The run lifecycle in the journal: one read returns a run's whole row; starting a run
//! takes a lease under the action's cap and the target's cooldown, both decided in the
//! journal under an advisory lock so they hold across replicas; every other move goes
//! through [`Journal::transition`], which writes only if the run is still where the caller
//! found it (and, while leased, still the caller's).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use super::deliveries::ENQUEUE_NOTICE;
use super::{parse_name, Journal, JournalError};
use crate::actions::kind::ActionKind;
use crate::actions::Plan;
use crate::alertmanager::AlertStatus;
use crate::lifecycle::{next, Effect, Event, Hold, NoticeReason, Policy, RunKind, RunState};

/// A run as the journal holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// `action_runs.id`.
    pub id: i64,
    /// The rule it was claimed for.
    pub rule: String,
    /// The action.
    pub action: ActionKind,
    /// The fix or its undoing.
    pub kind: RunKind,
    /// The rule's policy when claimed.
    pub policy: Policy,
    /// The cooldown key.
    pub target: String,
    /// The alert's labels.
    pub labels: BTreeMap<String, String>,
    /// Where it stands.
    pub state: RunState,
    /// What it did to the world.
    pub effect: Effect,
    /// The plan, once made (for an escalation, the one on-call approves).
    pub plan: Option<Plan>,
    /// The plan in one line (an agent's, for forwarded runs).
    pub plan_summary: Option<String>,
    /// What happened, in words.
    pub outcome: String,
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The alert's start: with the fingerprint, the occurrence.
    pub starts_at: DateTime<Utc>,
    /// The replica holding its lease, while leased.
    pub owner: Option<String>,
    /// How many times a replica started it.
    pub attempts: i32,
    /// When it started applying (the world may have changed since).
    pub applying_at: Option<DateTime<Utc>>,
}

const SELECT_RUN: &str = "
SELECT id, rule, action, kind, policy, target, labels, state, effect, plan, plan_summary,
       outcome, fingerprint, starts_at, owner, attempts, applying_at
  FROM koji_remediator.action_runs";

impl RunRow {
    fn from_row(row: &Row) -> Result<RunRow, JournalError> {
        let id: i64 = row.get("id");
        let plan: Option<serde_json::Value> = row.get("plan");
        Ok(RunRow {
            id,
            rule: row.get("rule"),
            action: parse_name(id, "action", row.get("action"))?,
            kind: parse_name(id, "kind", row.get("kind"))?,
            policy: parse_name(id, "policy", row.get("policy"))?,
            target: row.get("target"),
            labels: row.get::<_, Json<BTreeMap<String, String>>>("labels").0,
            state: parse_name(id, "state", row.get("state"))?,
            effect: parse_name(id, "effect", row.get("effect"))?,
            // A plan an older release stored in another shape reads as none.
            plan: plan.and_then(|plan| serde_json::from_value(plan).ok()),
            plan_summary: row.get("plan_summary"),
            outcome: row.get("outcome"),
            fingerprint: row.get("fingerprint"),
            starts_at: row.get("starts_at"),
            owner: row.get("owner"),
            attempts: row.get("attempts"),
            applying_at: row.get("applying_at"),
        })
    }
}

/// Who holds leases, and for how long each renewal lasts.
#[derive(Debug, Clone)]
pub struct Lease {
    /// This replica's id (host, pid and a random part).
    pub owner: Arc<str>,
    /// How long a lease lasts without renewal.
    pub duration: Duration,
}

/// What may hold a pending run back, from the configuration (see [`Journal::start`]).
#[derive(Debug, Clone, Copy)]
pub struct StartGuards {
    /// Runs of the action in flight at once, across replicas.
    pub cap: usize,
    /// Between two runs of the action on one target.
    pub cooldown: Duration,
    /// The quiet period before a restore.
    pub restore_after: Duration,
    /// Runs of the action that changed one target within an hour.
    pub max_runs_per_hour: Option<u32>,
    /// Whether notices are configured (the hourly cap escalates).
    pub notices: bool,
}

/// How trying to start a pending run went.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Started under this replica's lease.
    Started(Box<RunRow>),
    /// The action's cap is reached across replicas: it stays pending.
    AtCap,
    /// Held back and ended as skipped (journaled), with why.
    Held(Hold, String),
    /// A restore waits for its apply run to end, or for its target to be quiet: it stays
    /// pending.
    Waiting,
    /// Not pending (any more): another replica took it, or it is gone.
    NotPending,
}

/// One move of a run, for [`Journal::transition`]. Fields left `None` keep their value.
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// The state the caller found it in.
    pub from: RunState,
    /// What happened.
    pub event: Event,
    /// What the run did to the world.
    pub effect: Option<Effect>,
    /// What happened, in words.
    pub outcome: Option<&'a str>,
    /// The plan made.
    pub plan: Option<&'a Plan>,
    /// The plan in one line.
    pub plan_summary: Option<&'a str>,
    /// A notice to queue with the move.
    pub notice: Option<NoticeReason>,
}

impl<'a> Transition<'a> {
    /// A move with nothing else recorded.
    pub fn new(from: RunState, event: Event) -> Transition<'a> {
        Transition {
            from,
            event,
            effect: None,
            outcome: None,
            plan: None,
            plan_summary: None,
            notice: None,
        }
    }
}

const LOCK_ACTION: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

// Times here are `clock_timestamp()`, not `now()`: a start may wait for the action's lock
// behind another replica's, and `now()` (its transaction's start) would then be earlier
// than the start it waited for, which a cooldown of 0 s must not count.

/// Runs of the action in flight under a live lease, across replicas.
const IN_FLIGHT: &str = "
SELECT count(*) FROM koji_remediator.action_runs
 WHERE action = $1 AND state IN ($2, $3) AND lease_until > clock_timestamp()";

/// The latest run of the action on the target that acted (or may have, or is acting)
/// within the cooldown. A run that changed nothing holds nothing back.
const RECENT_ACTION: &str = "
SELECT id, started_at::text FROM koji_remediator.action_runs
 WHERE action = $1 AND target = $2 AND kind = $3 AND id <> $4
   AND (effect IN ($5, $6) OR state IN ($7, $8))
   AND started_at > clock_timestamp() - make_interval(secs => $9)
 ORDER BY started_at DESC LIMIT 1";

/// How many runs of the action changed (or may have changed) the target within the hour.
const RUNS_WITHIN_THE_HOUR: &str = "
SELECT count(*) FROM koji_remediator.action_runs
 WHERE action = $1 AND target = $2 AND kind = $3 AND id <> $4
   AND (effect IN ($5, $6) OR state IN ($7, $8))
   AND started_at > clock_timestamp() - interval '1 hour'";

/// An apply run of the same occurrence not yet ended: a restore waits for it.
const APPLY_UNFINISHED: &str = "
SELECT EXISTS (SELECT 1 FROM koji_remediator.action_runs
                WHERE fingerprint = $1 AND starts_at = $2 AND action = $3 AND kind = $4
                  AND state IN ($5, $6, $7))";

const OCCURRENCE_RESOLVED: &str = "
SELECT EXISTS (SELECT 1 FROM koji_remediator.alerts
                WHERE fingerprint = $1 AND starts_at = $2 AND status = $3)";

const START: &str = "
UPDATE koji_remediator.action_runs
   SET state = $2, owner = $3, lease_until = clock_timestamp() + make_interval(secs => $4),
       started_at = clock_timestamp(), attempts = attempts + 1
 WHERE id = $1";

const TRANSITION: &str = "
UPDATE koji_remediator.action_runs
   SET state = $2,
       effect = coalesce($3, effect),
       outcome = coalesce($4, outcome),
       plan = coalesce($5, plan),
       plan_summary = coalesce($6, plan_summary),
       applying_at = CASE WHEN $7 THEN clock_timestamp() ELSE applying_at END,
       finished_at = CASE WHEN $8 THEN clock_timestamp() END,
       owner = CASE WHEN $9 THEN owner END,
       lease_until = CASE WHEN $9 THEN lease_until END
 WHERE id = $1 AND state = $10 AND ($11::text IS NULL OR owner = $11)";

impl Journal {
    /// A run's whole row.
    pub async fn run(&self, id: i64) -> Result<Option<RunRow>, JournalError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("{SELECT_RUN} WHERE id = $1"), &[&id])
            .await?;
        row.as_ref().map(RunRow::from_row).transpose()
    }

    /// Starts a pending run under `lease`, if the action has fewer than `guards.cap` runs in
    /// flight across replicas, no run of it acted on the same target within the cooldown,
    /// and fewer than `max_runs_per_hour` did within the hour (restores are never held back
    /// by either: they undo). A fix whose alert occurrence resolved meanwhile is skipped;
    /// one over the hourly limit is skipped and, with `guards.notices`, escalated in the
    /// same transaction; a restore waits until the fix it undoes has ended, and then until
    /// its target has been quiet for `restore_after` (see [`super::restore_wait`]).
    pub async fn start(
        &self,
        id: i64,
        lease: &Lease,
        guards: &StartGuards,
    ) -> Result<Start, JournalError> {
        let StartGuards {
            cap,
            cooldown,
            restore_after,
            ..
        } = *guards;
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let Some(row) = transaction
            .query_opt(&format!("{SELECT_RUN} WHERE id = $1 FOR UPDATE"), &[&id])
            .await?
        else {
            return Ok(Start::NotPending);
        };
        let run = RunRow::from_row(&row)?;
        if run.state != RunState::Pending {
            return Ok(Start::NotPending);
        }
        let action = run.action.name();
        // One lock per action: the cap and every cooldown of the action are decided one
        // start at a time, whichever replica starts it.
        transaction
            .execute(LOCK_ACTION, &[&format!("koji-remediator:action:{action}")])
            .await?;
        let hold = match run.kind {
            RunKind::Apply => match self.hold(&transaction, &run, cooldown).await? {
                Some(held) => Some(held),
                None => {
                    self.over_hourly_cap(&transaction, &run, guards.max_runs_per_hour)
                        .await?
                }
            },
            RunKind::Restore => {
                let unfinished: bool = transaction
                    .query_one(
                        APPLY_UNFINISHED,
                        &[
                            &run.fingerprint,
                            &run.starts_at,
                            &action,
                            &RunKind::Apply.name(),
                            &RunState::Pending.name(),
                            &RunState::Running.name(),
                            &RunState::Applying.name(),
                        ],
                    )
                    .await?
                    .get(0);
                if unfinished {
                    return Ok(Start::Waiting);
                }
                if let Some(wait) = self.restore_wait(&transaction, &run, restore_after).await? {
                    transaction
                        .execute(
                            "UPDATE koji_remediator.action_runs
                                SET not_before = coalesce($2, 'infinity'::timestamptz), outcome = $3
                              WHERE id = $1",
                            &[&id, &wait.until, &wait.reason],
                        )
                        .await?;
                    transaction.commit().await?;
                    return Ok(Start::Waiting);
                }
                None
            }
        };
        if let Some((hold, outcome)) = hold {
            let skipped = next(run.state, Event::Hold(hold))?;
            transaction
                .execute(
                    "UPDATE koji_remediator.action_runs
                        SET state = $2, outcome = $3, finished_at = clock_timestamp() WHERE id = $1",
                    &[&id, &skipped.name(), &outcome],
                )
                .await?;
            if hold == Hold::HourlyCap && guards.notices {
                transaction
                    .execute(ENQUEUE_NOTICE, &[&id, &NoticeReason::CapReached.name()])
                    .await?;
            }
            transaction.commit().await?;
            return Ok(Start::Held(hold, outcome));
        }
        let in_flight: i64 = transaction
            .query_one(
                IN_FLIGHT,
                &[
                    &action,
                    &RunState::Running.name(),
                    &RunState::Applying.name(),
                ],
            )
            .await?
            .get(0);
        if in_flight >= cap as i64 {
            return Ok(Start::AtCap);
        }
        let running = next(run.state, Event::Start)?;
        transaction
            .execute(
                START,
                &[
                    &id,
                    &running.name(),
                    &&*lease.owner,
                    &lease.duration.as_secs_f64(),
                ],
            )
            .await?;
        transaction.commit().await?;
        Ok(Start::Started(Box::new(RunRow {
            state: running,
            owner: Some(lease.owner.to_string()),
            attempts: run.attempts + 1,
            ..run
        })))
    }

    /// The run already claimed for this occurrence, action and kind, if any: its id and
    /// state (a delivery of it now would be a duplicate).
    pub async fn claimed(&self, run: &RunRow) -> Result<Option<(i64, String)>, JournalError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id, state FROM koji_remediator.action_runs
                  WHERE fingerprint = $1 AND starts_at = $2 AND action = $3 AND kind = $4",
                &[
                    &run.fingerprint,
                    &run.starts_at,
                    &run.action.name(),
                    &run.kind.name(),
                ],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    /// What would hold a new fix of `run`'s action on its target now, read only (for a
    /// simulation): the occurrence resolved, the cooldown, or the hourly limit.
    pub async fn would_hold(
        &self,
        run: &RunRow,
        cooldown: Duration,
        max_runs_per_hour: Option<u32>,
    ) -> Result<Option<(Hold, String)>, JournalError> {
        let mut client = self.client().await?;
        // Read in a transaction that is rolled back: nothing is written.
        let transaction = client.transaction().await?;
        let held = match self.hold(&transaction, run, cooldown).await? {
            Some(held) => Some(held),
            None => {
                self.over_hourly_cap(&transaction, run, max_runs_per_hour)
                    .await?
            }
        };
        transaction.rollback().await?;
        Ok(held)
    }

    /// Holds a fix that already acted `max_runs_per_hour` times on its target within the
    /// hour.
    async fn over_hourly_cap(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        run: &RunRow,
        max_runs_per_hour: Option<u32>,
    ) -> Result<Option<(Hold, String)>, JournalError> {
        let Some(max) = max_runs_per_hour else {
            return Ok(None);
        };
        let runs: i64 = transaction
            .query_one(
                RUNS_WITHIN_THE_HOUR,
                &[
                    &run.action.name(),
                    &run.target,
                    &RunKind::Apply.name(),
                    &run.id,
                    &Effect::Changed.name(),
                    &Effect::Unknown.name(),
                    &RunState::Running.name(),
                    &RunState::Applying.name(),
                ],
            )
            .await?
            .get(0);
        Ok((runs >= i64::from(max)).then(|| {
            (
                Hold::HourlyCap,
                format!(
                    "{}{} acted on {} {runs} time(s) within the hour (max_runs_per_hour = {max}): \
                     the fix does not hold; not run again, escalated",
                    Hold::HourlyCap.outcome_opening(),
                    run.action.name(),
                    run.target
                ),
            )
        }))
    }

    /// Why a fix must not start: its occurrence resolved, or the cooldown holds.
    async fn hold(
        &self,
        transaction: &tokio_postgres::Transaction<'_>,
        run: &RunRow,
        cooldown: Duration,
    ) -> Result<Option<(Hold, String)>, JournalError> {
        let resolved: bool = transaction
            .query_one(
                OCCURRENCE_RESOLVED,
                &[
                    &run.fingerprint,
                    &run.starts_at,
                    &AlertStatus::Resolved.name(),
                ],
            )
            .await?
            .get(0);
        if resolved {
            return Ok(Some((
                Hold::OccurrenceResolved,
                format!(
                    "{}; nothing changed",
                    Hold::OccurrenceResolved.outcome_opening()
                ),
            )));
        }
        let recent = transaction
            .query_opt(
                RECENT_ACTION,
                &[
                    &run.action.name(),
                    &run.target,
                    &RunKind::Apply.name(),
                    &run.id,
                    &Effect::Changed.name(),
                    &Effect::Unknown.name(),
                    &RunState::Running.name(),
                    &RunState::Applying.name(),
                    &cooldown.as_secs_f64(),
                ],
            )
            .await?;
        Ok(recent.map(|recent| {
            let other: i64 = recent.get(0);
            let at: String = recent.get(1);
            (
                Hold::Cooldown,
                format!(
                    "{}run {other} acted on {} at {at}",
                    Hold::Cooldown.outcome_opening(),
                    run.target
                ),
            )
        }))
    }

    /// Moves run `id` as `transition` says, only if it is still in `transition.from` (and,
    /// while leased, still `owner`'s); queues the transition's notice with it. False when
    /// the run had moved on: someone else decided it.
    pub async fn transition(
        &self,
        id: i64,
        owner: Option<&str>,
        transition: Transition<'_>,
    ) -> Result<bool, JournalError> {
        let to = next(transition.from, transition.event)?;
        let owner = owner.filter(|_| transition.from.is_leased());
        let mut client = self.client().await?;
        let db = client.transaction().await?;
        let moved = db
            .execute(
                TRANSITION,
                &[
                    &id,
                    &to.name(),
                    &transition.effect.map(Effect::name),
                    &transition.outcome,
                    &transition.plan.map(Json),
                    &transition.plan_summary,
                    &(to == RunState::Applying),
                    &to.is_final(),
                    &to.is_leased(),
                    &transition.from.name(),
                    &owner,
                ],
            )
            .await?
            == 1;
        if let (true, Some(reason)) = (moved, transition.notice) {
            db.execute(ENQUEUE_NOTICE, &[&id, &reason.name()]).await?;
        }
        db.commit().await?;
        Ok(moved)
    }

    /// Renews this replica's leases on the runs it is working on; returns how many. A
    /// lease that already ran out (the journal was away longer than the lease) is not
    /// revived: its slot may have gone to another run meanwhile, and the run is taken over
    /// again, within the cap, by a reconciler.
    pub async fn renew_leases(&self, lease: &Lease, ids: &[i64]) -> Result<u64, JournalError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        Ok(client
            .execute(
                "UPDATE koji_remediator.action_runs
                    SET lease_until = clock_timestamp() + make_interval(secs => $3)
                  WHERE id = ANY($1) AND owner = $2 AND state IN ($4, $5)
                    AND lease_until > clock_timestamp()",
                &[
                    &ids,
                    &&*lease.owner,
                    &lease.duration.as_secs_f64(),
                    &RunState::Running.name(),
                    &RunState::Applying.name(),
                ],
            )
            .await?)
    }

    /// Takes over a run whose owner's lease expired (the owner died, or lost the journal
    /// and gave the run up): it becomes this replica's, to be resolved or resumed. Within
    /// the action's cap, decided under the action's lock as a start is: a taken-over run is
    /// in flight again (a drain resumed acts), so with `cap` runs of its action in flight
    /// it waits for a slot like a pending run. `None` when it is not expired (any more) or
    /// must wait.
    pub async fn take_over_expired(
        &self,
        id: i64,
        lease: &Lease,
        cap: usize,
    ) -> Result<Option<RunRow>, JournalError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        const EXPIRED: &str = "id = $1 AND state IN ($2, $3) AND lease_until < clock_timestamp()";
        let leased = [RunState::Running.name(), RunState::Applying.name()];
        let Some(row) = transaction
            .query_opt(
                &format!("SELECT action FROM koji_remediator.action_runs WHERE {EXPIRED}"),
                &[&id, &leased[0], &leased[1]],
            )
            .await?
        else {
            return Ok(None);
        };
        let action: String = row.get(0);
        transaction
            .execute(LOCK_ACTION, &[&format!("koji-remediator:action:{action}")])
            .await?;
        let in_flight: i64 = transaction
            .query_one(IN_FLIGHT, &[&action, &leased[0], &leased[1]])
            .await?
            .get(0);
        if in_flight >= cap as i64 {
            return Ok(None);
        }
        let taken = transaction
            .execute(
                &format!(
                    "UPDATE koji_remediator.action_runs
                        SET owner = $4, lease_until = clock_timestamp() + make_interval(secs => $5)
                      WHERE {EXPIRED}"
                ),
                &[
                    &id,
                    &leased[0],
                    &leased[1],
                    &&*lease.owner,
                    &lease.duration.as_secs_f64(),
                ],
            )
            .await?;
        transaction.commit().await?;
        drop(client);
        if taken == 0 {
            return Ok(None);
        }
        self.run(id).await
    }

    /// Runs whose lease expired, oldest first.
    pub async fn expired_leases(&self, limit: i64) -> Result<Vec<i64>, JournalError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id FROM koji_remediator.action_runs
                  WHERE state IN ($1, $2) AND lease_until < clock_timestamp() ORDER BY id LIMIT $3",
                &[
                    &RunState::Running.name(),
                    &RunState::Applying.name(),
                    &limit,
                ],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Pending runs, oldest first per action, of actions with fewer than `cap` runs in
    /// flight: what is worth trying to start now.
    pub async fn startable(&self, cap: usize, per_action: i64) -> Result<Vec<i64>, JournalError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT p.id FROM (
                        SELECT id, action, row_number() OVER (PARTITION BY action ORDER BY id) AS n
                          FROM koji_remediator.action_runs
                         WHERE state = $1
                           AND (not_before IS NULL OR not_before <= clock_timestamp())) p
                  WHERE p.n <= $2
                    AND (SELECT count(*) FROM koji_remediator.action_runs r
                          WHERE r.action = p.action AND r.state IN ($3, $4)
                            AND r.lease_until > clock_timestamp()) < $5
                  ORDER BY p.id",
                &[
                    &RunState::Pending.name(),
                    &per_action,
                    &RunState::Running.name(),
                    &RunState::Applying.name(),
                    &(cap as i64),
                ],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Escalations waiting for on-call whose plan was never made (the journal failed, or
    /// the replica died, before it was stored).
    pub async fn unplanned_escalations(&self) -> Result<Vec<i64>, JournalError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id FROM koji_remediator.action_runs
                  WHERE state = $1 AND plan_summary IS NULL ORDER BY id LIMIT 100",
                &[&RunState::AwaitingApproval.name()],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Stores the plan on-call is asked to approve (whole, or only its summary when an
    /// agent keeps it), and queues its notice (with `notice`), if the run still waits
    /// without one.
    pub async fn store_escalation_plan(
        &self,
        id: i64,
        plan: Option<&Plan>,
        summary: &str,
        notice: bool,
    ) -> Result<bool, JournalError> {
        let mut client = self.client().await?;
        let db = client.transaction().await?;
        let stored = db
            .execute(
                "UPDATE koji_remediator.action_runs SET plan = $2, plan_summary = $3
                  WHERE id = $1 AND state = $4 AND plan_summary IS NULL",
                &[
                    &id,
                    &plan.map(Json),
                    &summary,
                    &RunState::AwaitingApproval.name(),
                ],
            )
            .await?
            == 1;
        if stored && notice {
            db.execute(ENQUEUE_NOTICE, &[&id, &NoticeReason::Approval.name()])
                .await?;
        }
        db.commit().await?;
        Ok(stored)
    }

    /// The plan the apply run of the same alert occurrence carried out (it succeeded, or
    /// was found applied after an interruption): what a restore undoes.
    pub async fn applied_plan(
        &self,
        action: ActionKind,
        fingerprint: &str,
        starts_at: &DateTime<Utc>,
    ) -> Result<Option<Plan>, JournalError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT plan FROM koji_remediator.action_runs
                  WHERE action = $1 AND fingerprint = $2 AND starts_at = $3 AND kind = $4
                    AND state = $5 AND plan IS NOT NULL",
                &[
                    &action.name(),
                    &fingerprint,
                    starts_at,
                    &RunKind::Apply.name(),
                    &RunState::Succeeded.name(),
                ],
            )
            .await?;
        Ok(row.and_then(|row| serde_json::from_value(row.get::<_, serde_json::Value>(0)).ok()))
    }

    /// The annotations of an alert occurrence, as last received.
    pub async fn annotations(
        &self,
        fingerprint: &str,
        starts_at: &DateTime<Utc>,
    ) -> Result<BTreeMap<String, String>, JournalError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT annotations FROM koji_remediator.alerts
                  WHERE fingerprint = $1 AND starts_at = $2 ORDER BY id DESC LIMIT 1",
                &[&fingerprint, starts_at],
            )
            .await?;
        Ok(row
            .map(|row| row.get::<_, Json<BTreeMap<String, String>>>(0).0)
            .unwrap_or_default())
    }
}
