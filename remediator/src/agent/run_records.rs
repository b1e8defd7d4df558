//! The agent's durable record of the forwarded runs it applied: written before it applies
//! (with the plan) and when it ends (with its answer). A retried request for a run that
//! already ended gets the recorded answer instead of a second cleanup, and the central
//! side, having lost track of a run mid-apply, asks here how it ended
//! (`POST /api/v1/agent/status`). Records older than [`KEEP`] are pruned.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::protocol::AgentResponse;
pub use super::protocol::RunKey;
use crate::actions::Plan;

/// How long a record is kept.
pub const KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// What the agent recorded of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunRecord {
    /// Applying began with this plan.
    Started(Plan),
    /// It ended with this answer.
    Finished(AgentResponse),
}

/// The records, one JSON file per forwarded request under `state_dir/runs`.
#[derive(Debug, Clone)]
pub struct RunRecords {
    dir: PathBuf,
}

impl RunRecords {
    /// The records kept in `state_dir`.
    pub fn new(state_dir: &Path) -> RunRecords {
        RunRecords {
            dir: state_dir.join("runs"),
        }
    }

    fn path(&self, key: &RunKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.file_stem()))
    }

    /// The record of the run `key` names, if any.
    pub fn get(&self, key: &RunKey) -> Result<Option<RunRecord>, String> {
        let path = self.path(key);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Records `record` for the run `key` names, durably (synced, renamed into place, directory synced).
    pub fn put(&self, key: &RunKey, record: &RunRecord) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("{}: {e}", self.dir.display());
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir).map_err(fail)?;
        file.write_all(&serde_json::to_vec(record).expect("a record serializes"))
            .map_err(fail)?;
        file.as_file().sync_all().map_err(fail)?;
        file.persist(self.path(key)).map_err(|e| fail(e.error))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)
    }

    /// Removes records older than [`KEEP`].
    pub fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let cutoff = SystemTime::now() - KEEP;
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified < cutoff);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
