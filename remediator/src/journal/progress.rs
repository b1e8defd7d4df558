//! The progress a long action saves beside its run (`action_runs.progress`), written only
//! by the replica that holds the run's lease while it applies, so a replica that took the
//! run over is never overwritten by the one it replaced.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Journal, JournalError};
use crate::actions::progress::{NotSaved, ProgressLog};
use crate::lifecycle::RunState;

impl Journal {
    /// The progress saved for run `id`.
    pub async fn progress(&self, id: i64) -> Result<Option<serde_json::Value>, JournalError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT progress FROM koji_remediator.action_runs WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(row.and_then(|row| row.get(0)))
    }

    /// Saves `progress` for run `id` if `owner` still holds it applying; false otherwise.
    pub async fn save_progress(
        &self,
        id: i64,
        owner: &str,
        progress: &serde_json::Value,
    ) -> Result<bool, JournalError> {
        let client = self.client().await?;
        let saved = client
            .execute(
                "UPDATE koji_remediator.action_runs SET progress = $3
                  WHERE id = $1 AND owner = $2 AND state = $4",
                &[&id, &owner, progress, &RunState::Applying.name()],
            )
            .await?;
        Ok(saved == 1)
    }
}

/// The journal as one replica's [`ProgressLog`].
#[derive(Debug, Clone)]
pub struct JournalProgress {
    /// The journal.
    pub journal: Journal,
    /// The replica's lease owner.
    pub owner: Arc<str>,
}

impl ProgressLog for JournalProgress {
    fn load(&self, run: i64) -> BoxFuture<'_, Result<Option<serde_json::Value>, String>> {
        Box::pin(async move {
            self.journal
                .progress(run)
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn save(&self, run: i64, progress: serde_json::Value) -> BoxFuture<'_, Result<(), NotSaved>> {
        Box::pin(async move {
            match self
                .journal
                .save_progress(run, &self.owner, &progress)
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(NotSaved::NotHeld(run)),
                Err(error) => Err(NotSaved::Unavailable(error.to_string())),
            }
        })
    }
}
