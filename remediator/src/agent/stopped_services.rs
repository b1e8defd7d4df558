//! The agent's durable record of the services it stopped: written (and synced) before a
//! service is stopped, cleared once it is started again. An agent killed in between finds
//! the record when it comes back and starts those services again, so a crash mid-cleanup
//! never leaves kojid down.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One service stopped by a run and not yet started again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    /// The central run that stopped it.
    pub run: i64,
    /// The service.
    pub service: String,
}

/// The record, a JSON file in the agent's `state_dir`.
#[derive(Debug, Clone)]
pub struct StoppedServices {
    path: PathBuf,
}

impl StoppedServices {
    /// The record kept in `state_dir` (created when missing).
    pub fn new(state_dir: &Path) -> StoppedServices {
        StoppedServices {
            path: state_dir.join("stopped-services.json"),
        }
    }

    /// Every service recorded as stopped.
    pub fn list(&self) -> Result<Vec<Stopped>, String> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", self.path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("{}: {e}", self.path.display())),
        }
    }

    /// Records `service` as about to be stopped by `run`; durable when this returns.
    pub fn stopping(&self, run: i64, service: &str) -> Result<(), String> {
        let mut list = self.list()?;
        list.retain(|s| s.service != service);
        list.push(Stopped {
            run,
            service: service.into(),
        });
        self.write(&list)
    }

    /// Records `service` as running again.
    pub fn started(&self, service: &str) -> Result<(), String> {
        let mut list = self.list()?;
        list.retain(|s| s.service != service);
        self.write(&list)
    }

    /// Replaces the file atomically: a temporary file synced, renamed, the directory synced.
    fn write(&self, list: &[Stopped]) -> Result<(), String> {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        let fail = |e: std::io::Error| format!("{}: {e}", self.path.display());
        std::fs::create_dir_all(dir).map_err(fail)?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        file.write_all(&serde_json::to_vec(list).expect("a list of names serializes"))
            .map_err(fail)?;
        file.as_file().sync_all().map_err(fail)?;
        file.persist(&self.path).map_err(|e| fail(e.error))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_new_instance_and_clears_what_started() {
        let dir = tempfile::tempdir().unwrap();
        let record = StoppedServices::new(&dir.path().join("state"));
        assert_eq!(record.list().unwrap(), []);
        record.stopping(7, "kojid").unwrap();
        record.stopping(7, "plague-builder").unwrap();
        let again = StoppedServices::new(&dir.path().join("state"));
        assert_eq!(
            again.list().unwrap(),
            [
                Stopped {
                    run: 7,
                    service: "kojid".into()
                },
                Stopped {
                    run: 7,
                    service: "plague-builder".into()
                }
            ]
        );
        again.started("kojid").unwrap();
        assert_eq!(record.list().unwrap().len(), 1);
    }
}
