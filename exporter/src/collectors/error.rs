//! Why a collector produced nothing this scrape.

use crate::hub_database::HubDatabaseError;
use crate::mounts::MountinfoError;

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
    /// A query that always answers one row answered none.
    #[error("{0} returned no row")]
    NoRow(&'static str),
    /// A host's name changed between reading its check-in and its configuration.
    #[error("host {0} was renamed while it was read; the next scrape reads it again")]
    HostRenamed(i32),
    /// The collector did not finish before the scrape deadline.
    #[error("timed out")]
    Timeout,
}
