//! The hub's host configuration and channels kept between scrapes until Koji's host
//! tables change (see `koji_db::host_config_snapshot`): most scrapes then read only the
//! check-in part of each host. A snapshot is also dropped after [`MAX_AGE`], and whenever a
//! query fails, so nothing outlives a change made outside Koji's versioning (an
//! administrator's SQL updating a row in place) by more than that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use koji_db::host_config_snapshot::ConfigMark;
use tokio::time::Instant;

use super::host_series::KnownHosts;

/// The longest a snapshot is used, events or not.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// The snapshot and the mark it was read at.
#[derive(Debug, Default)]
pub struct HostConfigCache {
    kept: Mutex<Option<Kept>>,
    reads: AtomicU64,
}

#[derive(Debug)]
struct Kept {
    mark: ConfigMark,
    read_at: Instant,
    known: Arc<KnownHosts>,
}

impl HostConfigCache {
    /// The hosts read at `mark`, if kept and not too old.
    pub fn get(&self, mark: ConfigMark) -> Option<Arc<KnownHosts>> {
        let kept = self.kept.lock().expect("host config cache");
        kept.as_ref()
            .filter(|kept| kept.mark == mark && kept.read_at.elapsed() < MAX_AGE)
            .map(|kept| kept.known.clone())
    }

    /// Keeps `known`, read after the host tables stood at `mark`.
    pub fn keep(&self, mark: ConfigMark, known: KnownHosts) -> Arc<KnownHosts> {
        let known = Arc::new(known);
        self.reads.fetch_add(1, Ordering::Relaxed);
        *self.kept.lock().expect("host config cache") = Some(Kept {
            mark,
            read_at: Instant::now(),
            known: known.clone(),
        });
        known
    }

    /// How many configurations were read and kept since the exporter started
    /// (`koji_exporter_host_config_reads_total`: on a healthy hub it moves only when an
    /// administrator changes a host, and every `MAX_AGE`).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Drops the snapshot.
    pub fn forget(&self) {
        *self.kept.lock().expect("host config cache") = None;
    }
}
