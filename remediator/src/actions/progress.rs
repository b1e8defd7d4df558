//! Where a long action keeps how far it got, so that a replica taking a run over (its
//! owner died, or was restarted) resumes it instead of starting again or giving up: the
//! journal stores it beside the run (see `journal::progress`). Actions only see this
//! trait, so they never depend on the journal.

use futures::future::BoxFuture;

/// A run's saved progress, as JSON the action defines.
pub trait ProgressLog: Send + Sync + std::fmt::Debug {
    /// The progress saved for run `run`, if any.
    fn load(&self, run: i64) -> BoxFuture<'_, Result<Option<serde_json::Value>, String>>;

    /// Saves `progress` for run `run`.
    fn save(&self, run: i64, progress: serde_json::Value) -> BoxFuture<'_, Result<(), NotSaved>>;
}

/// Why progress was not saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSaved {
    /// This replica no longer holds the run applying: it must stop working on it.
    #[error("run {0} is no longer applying under this replica")]
    NotHeld(i64),
    /// The journal failed; trying again may work.
    #[error("the journal failed: {0}")]
    Unavailable(String),
}
