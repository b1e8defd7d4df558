//! koji-exporter: Prometheus metrics for a Koji build system.
//!
//! - [`builddir_scanner`]: runs that walk in the background on an interval.
//! - [`builder_identity`]: the Koji host name this machine builds as.
//! - [`cli`]: command-line flags and how they combine with the configuration file.
//! - [`config`]: the TOML configuration, parsed strictly, and its embedded default.
//! - [`collectors`]: the collector table and one module per collector.
//! - [`hub_database`]: the connection pool to the Koji hub's PostgreSQL.
//! - [`metric_families`]: per-scrape metric snapshots that prometheus-client encodes.
//! - [`statfs_probe`]: `statvfs` off the runtime with a timeout, safe on hung mounts.
//! - [`scrape`]: one scrape: concurrent collection under a deadline.
//! - [`exposition`]: a scrape written out as text or straight into gzip.
//! - [`server`]: the HTTP router and server.
//! - [`logging`]: tracing setup.
//!
//! [`run`] ties them together for `main` and for tests that want a real server.

pub mod builddir_scanner;
pub mod builder_identity;
pub mod cli;
pub mod collectors;
pub mod config;
pub mod exposition;
pub mod hub_database;
pub mod logging;
pub mod metric_families;
pub mod scrape;
pub mod server;

/// The mount table and the build-directory walk, from `koji-hostfs`.
pub use koji_hostfs::{builddir_scan, mounts};
pub mod statfs_probe;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::collectors::table::CollectorId;
use crate::config::Config;
use crate::hub_database::{HubDatabase, HubDatabaseError};
use crate::scrape::Scraper;

/// Builds the scraper for `config` running `collectors`; the hub pool is made only when a
/// database collector runs.
pub fn scraper(
    config: Config,
    collectors: Vec<CollectorId>,
) -> Result<Arc<Scraper>, HubDatabaseError> {
    let hub = if collectors.iter().any(|id| id.needs_database()) {
        Some(HubDatabase::new(&config)?)
    } else {
        None
    };
    Ok(Arc::new(Scraper::new(Arc::new(config), hub, collectors)))
}

/// Serves metrics on `listener` (plain or TLS) until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    scraper: Arc<Scraper>,
    transport: koji_tls::Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let background = scraper.start_background_tasks();
    let limits = scraper.listener_limits();
    let served = server::run(listener, scraper, transport, shutdown, limits).await;
    background.into_iter().for_each(|task| task.abort());
    served
}
