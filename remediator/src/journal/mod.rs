//! The journal: every alert received, the rule it matched, the decision, each run's whole
//! lifecycle and the notices to on-call, in PostgreSQL (schema `koji_remediator`), shared by
//! every replica.
//!
//! Split by purpose: [`deliveries`] (what the webhook records before it answers),
//! [`runs`] (the run lifecycle: claims, leases, caps, cooldowns, transitions),
//! [`restore_wait`] (when a restore may start: its target quiet, the latest change first),
//! [`notices`] (the outbox), [`history`] (the past, read for a replay), [`progress`] (how far a long action got), [`escalations`] (on-call's decisions), [`settings`] (the pause
//! switch), [`read_api`] (what the API lists) and [`migrations`]. Every state change goes
//! through [`crate::lifecycle::next`], and is written only if the run is still in the state
//! it is moved from, so two replicas can never both move it.

pub mod deliveries;
pub mod escalations;
pub mod history;
pub mod migrations;
pub mod notices;
pub mod progress;
pub mod read_api;
pub mod restore_wait;
pub mod runs;
pub mod settings;

use deadpool_postgres::Pool;

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
    /// The journal is older than what is asked of it reads (a replay of a copy of an old
    /// journal).
    #[error("the journal's schema is at version {found}; this needs version {needed} or later (start a koji-remediator of this release on it once to migrate it)")]
    OlderSchema {
        /// The journal's version.
        found: i32,
        /// The oldest version readable.
        needed: i32,
    },
    /// A row holds a name this binary does not know (a state, an action).
    #[error("journal row {id} holds an unknown {what} {name:?}")]
    Unreadable {
        /// The row.
        id: i64,
        /// Which column.
        what: &'static str,
        /// The value.
        name: String,
    },
    /// The run was taken over by a reconciler while this replica held it.
    #[error("run {0} was taken over by another replica's reconciler")]
    Lost(i64),
    /// A transition the lifecycle does not allow (a bug, never input).
    #[error(transparent)]
    Illegal(#[from] crate::lifecycle::Illegal),
}

/// The journal.
#[derive(Debug, Clone)]
pub struct Journal {
    pool: Pool,
}

impl Journal {
    /// A journal on `pool`; call [`Journal::migrate`] before use.
    pub fn new(pool: Pool) -> Journal {
        Journal { pool }
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, JournalError> {
        Ok(self.pool.get().await?)
    }

    /// Creates or upgrades the schema, under an advisory lock so replicas starting together
    /// migrate once; refuses a journal a newer release migrated.
    pub async fn migrate(&self) -> Result<(), JournalError> {
        let mut client = self.client().await?;
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
}

/// Parses a name the journal stores (a state, a kind, an action) back into its enum.
fn parse_name<T: std::str::FromStr>(
    id: i64,
    what: &'static str,
    name: String,
) -> Result<T, JournalError> {
    name.parse()
        .map_err(|_| JournalError::Unreadable { id, what, name })
}
