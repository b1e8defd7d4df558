//! Settings every replica shares: the global pause switch.

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
}
