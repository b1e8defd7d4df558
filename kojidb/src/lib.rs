//! The Koji hub database as both koji-exporter and koji-remediator see it.
//!
//! Koji moved host capacity, arches and the enabled flag out of `host` into the versioned
//! `host_config` table in 1.16, and added `host.update_time` in 1.33. Everything that reads
//! hosts must therefore first learn which layout it talks to.
//!
//! - [`capacity`]: read and change a host's capacity as Koji's `editHost` does.
//! - [`host_enabled`]: take a host out of service and back as `disableHost`/`enableHost` do.
//! - [`host_config_snapshot`]: a host's configuration kept until Koji's host tables change.
//! - [`host_config_rows`]: one versioned change of a host's configuration, as the hub makes it.
//! - [`layout`]: detect the schema layout of a connected database.
//! - [`hosts`]: read every builder with its capacity, load, readiness and channels.
//! - [`pool`]: the connection pool builder both binaries use.
//! - [`stale_connections`]: what a stale connection is, for the exporter's count and the fix.
//! - [`error`]: the error type of this crate.

pub mod capacity;
pub mod error;
pub mod host_config_rows;
pub mod host_config_snapshot;
pub mod host_enabled;
pub mod hosts;
pub mod layout;
pub mod pool;
pub mod stale_connections;

pub use error::KojiDbError;
pub use hosts::{host_queries, hosts_from_rows, list_hosts, Host, HostQueries};
pub use layout::{detect_layout, layout_from_row, Layout, DETECT_LAYOUT};
