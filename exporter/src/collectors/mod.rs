//! Every collector and the dispatch to them; [`table`] names them, [`error`] says why one
//! produced nothing.
//!
//! | collector          | default | reads (hub: the Koji database; local: this machine) |
//! |--------------------|---------|---------------------------------------------------|
//! | `koji_db`          | on      | hub database reachability, schema layout, server start time |
//! | `koji_hub`         | on      | whether the hub answers an XML-RPC call that reads its database |
//! | `koji_hosts`       | on      | `host` / `host_config`, `host_channels`, tasks per host |
//! | `koji_tasks`       | on      | the active task queue per channel                 |
//! | `pg_stat_activity` | on      | connections by user and state, connection slots   |
//! | `builder_health`   | on      | this machine's memory, OOM kills, load, CPUs      |
//! | `filesystems`      | on      | size, free space and inodes of the mounts holding watched paths |
//! | `services`         | on      | whether kojid, kojira, httpd, plague-builder run, and since when |
//! | `builddirs`        | on      | the background scan of /var/lib/mock and /mnt/build, live mounts below them |

pub mod builddirs;
pub mod builder_health;
pub mod error;
pub mod filesystems;
pub mod host_config_cache;
pub mod host_series;
pub mod koji_db;
pub mod koji_hosts;
pub mod koji_hub;
pub mod koji_tasks;
pub mod pg_stat_activity;
pub mod services;
pub mod table;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::builddir_scanner::ScanResults;
use crate::config::Config;
use crate::exposition::WritesText;
use crate::hub_database::{HubClient, HubDatabase};
use crate::metric_families::Families;
use crate::mounts::{parse_mountinfo, Mount};
use crate::statfs_probe::StatfsProbe;
pub use error::CollectError;
pub use table::CollectorId;

/// What one collector produced this scrape.
#[derive(Debug)]
pub enum Collected {
    /// Families prometheus-client encodes.
    Families(Families),
    /// Families that write their own text (`koji_hosts`, see [`host_series`]).
    Text(Box<dyn WritesText>),
}

impl CollectorId {
    /// Gathers this collector's metrics for one scrape.
    pub async fn collect(self, context: &CollectContext) -> Result<Collected, CollectError> {
        let families = match self {
            CollectorId::KojiDb => koji_db::collect(context).await,
            CollectorId::KojiHub => koji_hub::collect(context).await,
            CollectorId::KojiHosts => {
                let series = koji_hosts::collect(context).await?;
                return Ok(Collected::Text(Box::new(series)));
            }
            CollectorId::KojiTasks => koji_tasks::collect(context).await,
            CollectorId::PgStatActivity => pg_stat_activity::collect(context).await,
            CollectorId::BuilderHealth => builder_health::collect(context).await,
            CollectorId::Filesystems => filesystems::collect(context).await,
            CollectorId::Services => services::collect(context).await,
            CollectorId::Builddirs => builddirs::collect(context).await,
        };
        families.map(Collected::Families)
    }
}

/// What a collector may use during one scrape.
#[derive(Debug, Clone)]
pub struct CollectContext {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The hub database pool.
    pub hub: Option<HubDatabase>,
    /// The one hub connection this scrape's collectors share, taken from the pool by
    /// whichever asks first (see [`CollectContext::hub_client`]).
    pub hub_client: Arc<tokio::sync::OnceCell<HubClient>>,
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
    /// The hub probe's HTTP client (or why `hub.ca_file` could not make one), built once.
    pub hub_client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    /// Watched paths already logged as missing, so each is logged once.
    pub missing_paths: Mutex<HashSet<PathBuf>>,
    /// The latest build-directory scans.
    pub builddirs: ScanResults,
    /// The Koji host name of this machine, looked up once.
    pub builder_name: tokio::sync::OnceCell<String>,
    /// The hub's host configuration, kept until Koji's host tables change.
    pub host_config: host_config_cache::HostConfigCache,
}

impl CollectContext {
    /// The hub database, or the error saying it is not configured.
    pub fn hub(&self) -> Result<&HubDatabase, CollectError> {
        self.hub.as_ref().ok_or(CollectError::NoDatabase)
    }

    /// The hub connection of this scrape. The hub collectors share one connection and
    /// issue their statements on it concurrently: PostgreSQL runs them one after another
    /// on one backend (pipelined, no round trip waits between them) instead of on four
    /// backends competing for the database host's cores, and a scrape holds one of the
    /// hub's connection slots, not four.
    pub async fn hub_client(&self) -> Result<&HubClient, CollectError> {
        let hub = self.hub()?;
        let client = self
            .hub_client
            .get_or_try_init(|| async { hub.client().await })
            .await?;
        Ok(client)
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
