//! The journal's past, read for a replay: every alert received over a period and every run
//! claimed over it, from one consistent snapshot in a read-only transaction. Columns a
//! person could have edited into nonsense (states, decisions, labels) are read as text and
//! left to the reader to check, so a tampered journal is reported row by row rather than
//! failing the whole read.

use chrono::{DateTime, Utc};

use super::{Journal, JournalError};

/// One journaled alert notification, as stored.
#[derive(Debug, Clone)]
pub struct JournaledAlert {
    /// `alerts.id`.
    pub id: i64,
    /// When its delivery was journaled.
    pub received_at: DateTime<Utc>,
    /// Alertmanager's fingerprint.
    pub fingerprint: String,
    /// `firing` or `resolved`, as stored.
    pub status: String,
    /// The alert's labels, as JSON text.
    pub labels: String,
    /// The alert's annotations, as JSON text.
    pub annotations: String,
    /// The occurrence's start.
    pub starts_at: DateTime<Utc>,
    /// The rule it matched then.
    pub rule: Option<String>,
    /// The decision journaled then, by name.
    pub decision: String,
    /// Why, in words.
    pub detail: String,
    /// The alert's graph.
    pub generator_url: String,
}

/// One journaled run, as stored.
#[derive(Debug, Clone)]
pub struct JournaledRun {
    /// `action_runs.id`.
    pub id: i64,
    /// The occurrence's fingerprint.
    pub fingerprint: String,
    /// The occurrence's start.
    pub starts_at: DateTime<Utc>,
    /// The action, by name.
    pub action: String,
    /// `apply` or `restore`.
    pub kind: String,
    /// The rule it was claimed for.
    pub rule: String,
    /// The policy it was claimed with, by name.
    pub policy: String,
    /// What it acted on.
    pub target: String,
    /// Where it stands, by name.
    pub state: String,
    /// What it did to the world, by name.
    pub effect: String,
    /// What happened, in words.
    pub outcome: String,
    /// When it was claimed.
    pub created_at: DateTime<Utc>,
    /// When it was last started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// When on-call decided, for an escalation.
    pub decided_at: Option<DateTime<Utc>>,
}

/// What the journal holds over a period.
#[derive(Debug, Clone, Default)]
pub struct JournalHistory {
    /// Alerts received in the period, in the order they were journaled.
    pub alerts: Vec<JournaledAlert>,
    /// Runs claimed in the period.
    pub runs: Vec<JournaledRun>,
    /// The journal's schema version.
    pub schema_version: i32,
}

/// The oldest schema a replay reads: runs say what they did to the world (`effect`) from
/// version 4 on.
pub const OLDEST_READABLE: i32 = 4;

/// The alerts; `{generator_url}` is the column, or `''` before version 6 added it.
const ALERTS: &str = "
SELECT id, received_at, fingerprint, status, labels::text, annotations::text, starts_at,
       rule, decision, detail, {generator_url}
  FROM koji_remediator.alerts
 WHERE received_at >= $1 AND received_at < $2
 ORDER BY received_at, id";

const RUNS: &str = "
SELECT id, fingerprint, starts_at, action, kind, rule, policy, target, state, effect,
       outcome, created_at, started_at, finished_at, decided_at
  FROM koji_remediator.action_runs
 WHERE created_at >= $1 AND created_at < $2
 ORDER BY id";

impl Journal {
    /// The alerts received and the runs claimed in `[from, until)`, read in one read-only
    /// snapshot: nothing is written, whatever the connection's rights.
    pub async fn history(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<JournalHistory, JournalError> {
        let mut client = self.client().await?;
        let transaction = client
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let schema_version: i32 = transaction
            .query_one(
                "SELECT coalesce(max(version), 0) FROM koji_remediator.schema_migrations",
                &[],
            )
            .await?
            .get(0);
        if schema_version < OLDEST_READABLE {
            return Err(JournalError::OlderSchema {
                found: schema_version,
                needed: OLDEST_READABLE,
            });
        }
        let generator_url = if schema_version >= 6 {
            "generator_url"
        } else {
            "''"
        };
        let alerts = transaction
            .query(
                &ALERTS.replace("{generator_url}", generator_url),
                &[&from, &until],
            )
            .await?
            .iter()
            .map(|row| JournaledAlert {
                id: row.get(0),
                received_at: row.get(1),
                fingerprint: row.get(2),
                status: row.get(3),
                labels: row.get(4),
                annotations: row.get(5),
                starts_at: row.get(6),
                rule: row.get(7),
                decision: row.get(8),
                detail: row.get(9),
                generator_url: row.get(10),
            })
            .collect();
        let runs = transaction
            .query(RUNS, &[&from, &until])
            .await?
            .iter()
            .map(|row| JournaledRun {
                id: row.get(0),
                fingerprint: row.get(1),
                starts_at: row.get(2),
                action: row.get(3),
                kind: row.get(4),
                rule: row.get(5),
                policy: row.get(6),
                target: row.get(7),
                state: row.get(8),
                effect: row.get(9),
                outcome: row.get(10),
                created_at: row.get(11),
                started_at: row.get(12),
                finished_at: row.get(13),
                decided_at: row.get(14),
            })
            .collect();
        transaction.commit().await?;
        Ok(JournalHistory {
            alerts,
            runs,
            schema_version,
        })
    }
}
