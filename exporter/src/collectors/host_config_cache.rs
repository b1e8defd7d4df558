//! The hub's host configuration and channels kept between scrapes until Koji's events
//! move (see `koji_db::host_config_snapshot`): most scrapes then read only the check-in
//! part of each host. A snapshot is also dropped after [`MAX_AGE`], and whenever a query
//! fails, so nothing outlives a change Koji made without an event (an administrator's
//! direct SQL) by more than that.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use koji_db::host_config_snapshot::{ConfigSnapshot, EventMark};
use tokio::time::Instant;

/// The longest a snapshot is used, events or not.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// The snapshot and the mark it was read at.
#[derive(Debug, Default)]
pub struct HostConfigCache {
    kept: Mutex<Option<Kept>>,
}

#[derive(Debug)]
struct Kept {
    mark: EventMark,
    read_at: Instant,
    snapshot: Arc<ConfigSnapshot>,
}

impl HostConfigCache {
    /// The snapshot read at `mark`, if kept and not too old.
    pub fn get(&self, mark: EventMark) -> Option<Arc<ConfigSnapshot>> {
        let kept = self.kept.lock().expect("host config cache");
        kept.as_ref()
            .filter(|kept| kept.mark == mark && kept.read_at.elapsed() < MAX_AGE)
            .map(|kept| kept.snapshot.clone())
    }

    /// Keeps `snapshot`, read after Koji's events stood at `mark`.
    pub fn keep(&self, mark: EventMark, snapshot: ConfigSnapshot) -> Arc<ConfigSnapshot> {
        let snapshot = Arc::new(snapshot);
        *self.kept.lock().expect("host config cache") = Some(Kept {
            mark,
            read_at: Instant::now(),
            snapshot: snapshot.clone(),
        });
        snapshot
    }

    /// Drops the snapshot.
    pub fn forget(&self) {
        *self.kept.lock().expect("host config cache") = None;
    }
}
