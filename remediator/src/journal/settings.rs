//! Settings every replica shares: the global pause switch, and the journal's identity.

use super::{Journal, JournalError};

impl Journal {
    /// The global pause switch as stored, if ever set.
    pub async fn paused(&self) -> Result<Option<bool>, JournalError> {
        let client = self.client().await?;
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
        let client = self.client().await?;
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

    /// The journal's identity, made once (random) and kept: agents key their records of
    /// forwarded runs by it, since run ids are unique only within one journal.
    pub async fn identity(&self) -> Result<String, JournalError> {
        let client = self.client().await?;
        let made = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        client
            .execute(
                "INSERT INTO koji_remediator.settings (key, value, updated_by)
                 VALUES ('journal_id', to_jsonb($1::text), 'koji-remediator')
                 ON CONFLICT (key) DO NOTHING",
                &[&made],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT value #>> '{}' FROM koji_remediator.settings WHERE key = 'journal_id'",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }
}
