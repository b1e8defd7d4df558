//! Every collector, the table of their names and defaults, and the dispatch to them.
//!
//! | collector          | default | reads (hub: the Koji database; local: this machine) |
//! |--------------------|---------|---------------------------------------------------|
//! | `koji_db`          | on      | hub database reachability and schema layout       |
//! | `koji_hosts`       | on      | `host` / `host_config`, `host_channels`, tasks per host |
//! | `koji_tasks`       | on      | the active task queue per channel                 |
//! | `pg_stat_activity` | on      | connections by user and state, connection slots   |
//! | `builder_health`   | on      | this machine's memory, OOM kills, load, CPUs      |
//! | `filesystems`      | on      | size, free space and inodes of the mounts holding watched paths |
//! | `services`         | on      | whether kojid, kojira, httpd, plague-builder run, and since when |
//! | `builddirs`        | on      | the background scan of /var/lib/mock and /mnt/build, live mounts below them |

pub mod builddirs;
pub mod builder_health;
pub mod filesystems;
pub mod koji_db;
pub mod koji_hosts;
pub mod koji_tasks;
pub mod pg_stat_activity;
pub mod services;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::builddir_scanner::ScanResults;
use crate::config::Config;
use crate::hub_database::{HubDatabase, HubDatabaseError};
use crate::metric_families::Families;
use crate::mounts::{parse_mountinfo, Mount, MountinfoError};
use crate::statfs_probe::StatfsProbe;

/// A collector, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CollectorId {
    /// `koji_db_up`, `koji_hub_schema_info`.
    KojiDb,
    /// Per-host capacity, load, readiness, channels and tasks.
    KojiHosts,
    /// The active task queue.
    KojiTasks,
    /// `pg_stat_activity` and connection slot settings.
    PgStatActivity,
    /// This machine's memory, OOM kills, load and CPUs.
    BuilderHealth,
    /// The mounts that hold the watched paths.
    Filesystems,
    /// Configured daemons in the process table.
    Services,
    /// The build-directory scan.
    Builddirs,
}

/// One row of the collector table.
struct CollectorEntry {
    id: CollectorId,
    name: &'static str,
    enabled_by_default: bool,
    needs_database: bool,
    help: &'static str,
}

/// The one table of every collector, its flag name and its default.
const TABLE: &[CollectorEntry] = &[
    CollectorEntry {
        id: CollectorId::KojiDb,
        name: "koji_db",
        enabled_by_default: true,
        needs_database: true,
        help: "hub database reachability and Koji schema layout",
    },
    CollectorEntry {
        id: CollectorId::KojiHosts,
        name: "koji_hosts",
        enabled_by_default: true,
        needs_database: true,
        help: "builders: capacity, task load, ready, enabled, last check-in, channels, tasks",
    },
    CollectorEntry {
        id: CollectorId::KojiTasks,
        name: "koji_tasks",
        enabled_by_default: true,
        needs_database: true,
        help: "active task queue by state and channel, oldest free task",
    },
    CollectorEntry {
        id: CollectorId::PgStatActivity,
        name: "pg_stat_activity",
        enabled_by_default: true,
        needs_database: true,
        help: "hub database connections by user and state, stale connections, slots",
    },
    CollectorEntry {
        id: CollectorId::BuilderHealth,
        name: "builder_health",
        enabled_by_default: true,
        needs_database: false,
        help: "this machine's memory, OOM kills, load average and CPUs, from /proc",
    },
    CollectorEntry {
        id: CollectorId::Filesystems,
        name: "filesystems",
        enabled_by_default: true,
        needs_database: false,
        help: "size, free space, inodes, read-only and errors of the mounts holding watched paths",
    },
    CollectorEntry {
        id: CollectorId::Services,
        name: "services",
        enabled_by_default: true,
        needs_database: false,
        help: "whether the configured daemons (kojid, kojira, httpd, ...) run, and since when",
    },
    CollectorEntry {
        id: CollectorId::Builddirs,
        name: "builddirs",
        enabled_by_default: true,
        needs_database: false,
        help: "size and stale entries of the build directories (background scan), live mounts below them",
    },
];

impl CollectorId {
    fn entry(self) -> &'static CollectorEntry {
        TABLE
            .iter()
            .find(|entry| entry.id == self)
            .expect("every collector has a table row")
    }

    /// The name used in flags, config and the `collector` label.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// A one-line description for `--help`.
    pub fn help(self) -> &'static str {
        self.entry().help
    }

    /// Whether the collector runs when neither config nor flags mention it.
    pub fn enabled_by_default(self) -> bool {
        self.entry().enabled_by_default
    }

    /// Looks a collector up by name.
    pub fn from_name(name: &str) -> Option<CollectorId> {
        TABLE
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.id)
    }

    /// Every collector, in table order.
    pub fn all() -> impl Iterator<Item = CollectorId> {
        TABLE.iter().map(|entry| entry.id)
    }

    /// Every collector name, in table order.
    pub fn names() -> Vec<&'static str> {
        TABLE.iter().map(|entry| entry.name).collect()
    }

    /// Whether the collector reads the hub database.
    pub fn needs_database(self) -> bool {
        self.entry().needs_database
    }

    /// Gathers this collector's metrics for one scrape.
    pub async fn collect(self, context: &CollectContext) -> Result<Families, CollectError> {
        match self {
            CollectorId::KojiDb => koji_db::collect(context).await,
            CollectorId::KojiHosts => koji_hosts::collect(context).await,
            CollectorId::KojiTasks => koji_tasks::collect(context).await,
            CollectorId::PgStatActivity => pg_stat_activity::collect(context).await,
            CollectorId::BuilderHealth => builder_health::collect(context).await,
            CollectorId::Filesystems => filesystems::collect(context).await,
            CollectorId::Services => services::collect(context).await,
            CollectorId::Builddirs => builddirs::collect(context).await,
        }
    }
}

/// What a collector may use during one scrape.
#[derive(Debug, Clone)]
pub struct CollectContext {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The hub database pool.
    pub hub: Option<HubDatabase>,
    /// When the scrape gives up on every collector.
    pub deadline: Instant,
    /// What collectors remember between scrapes.
    pub state: Arc<CollectorState>,
    /// The mount table, read at most once per scrape by whichever collector needs it first.
    pub mounts: Arc<tokio::sync::OnceCell<Vec<Mount>>>,
}

/// What collectors remember between scrapes.
#[derive(Debug, Default)]
pub struct CollectorState {
    /// `statvfs` probes, with the paths whose probe is still stuck.
    pub statfs: StatfsProbe,
    /// Watched paths already logged as missing, so each is logged once.
    pub missing_paths: Mutex<HashSet<PathBuf>>,
    /// The latest build-directory scans.
    pub builddirs: ScanResults,
    /// The Koji host name of this machine, looked up once.
    pub builder_name: tokio::sync::OnceCell<String>,
}

impl CollectContext {
    /// The hub database, or the error saying it is not configured.
    pub fn hub(&self) -> Result<&HubDatabase, CollectError> {
        self.hub.as_ref().ok_or(CollectError::NoDatabase)
    }

    /// The mount table as of this scrape.
    pub async fn mounts(&self) -> Result<&[Mount], CollectError> {
        let mounts = self
            .mounts
            .get_or_try_init(|| async {
                let path = self.config.paths.procfs.join("self/mountinfo");
                let text = tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|source| CollectError::Proc { path, source })?;
                Ok::<_, CollectError>(parse_mountinfo(&text)?)
            })
            .await?;
        Ok(mounts)
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Why a collector produced nothing this scrape. The scrape itself still succeeds.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// No hub database is configured.
    #[error("no hub database configured")]
    NoDatabase,
    /// No connection could be had.
    #[error(transparent)]
    Database(#[from] HubDatabaseError),
    /// A query failed.
    #[error("query failed: {0}")]
    Query(#[from] tokio_postgres::Error),
    /// The Koji schema could not be read.
    #[error(transparent)]
    Koji(#[from] ::koji_db::KojiDbError),
    /// A procfs file could not be read.
    #[error("cannot read {path}: {source}")]
    Proc {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The mount table did not parse.
    #[error(transparent)]
    Mountinfo(#[from] MountinfoError),
    /// A procfs file did not have the expected shape.
    #[error("unexpected content in {0}")]
    Malformed(String),
    /// The database user lacks a privilege the collector needs; says which to grant.
    #[error("insufficient privilege: {0}")]
    Privilege(String),
    /// The collector did not finish before the scrape deadline.
    #[error("timed out")]
    Timeout,
}
