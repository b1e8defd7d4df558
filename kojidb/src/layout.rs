//! Detects which Koji schema layout a hub database uses.

use tokio_postgres::{Client, Row};

use crate::KojiDbError;

/// The two shapes Koji's `host` data has had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Koji before 1.16: `capacity`, `arches` and `enabled` are columns of `host`, and
    /// `host_channels` is not versioned.
    Pre116,
    /// Koji 1.16 and later: the versioned `host_config` and `host_channels` tables hold the
    /// configuration; the row with `active IS TRUE` is the current one.
    HostConfig {
        /// `host.update_time` exists (Koji 1.33 and later).
        has_update_time: bool,
    },
}

impl Layout {
    /// The value of the `layout` label of `koji_hub_schema_info`.
    pub fn label(self) -> &'static str {
        match self {
            Layout::Pre116 => "pre-1.16",
            Layout::HostConfig { .. } => "host_config",
        }
    }

    /// Whether `host.update_time` can be read.
    pub fn has_update_time(self) -> bool {
        matches!(
            self,
            Layout::HostConfig {
                has_update_time: true
            }
        )
    }
}

/// Looks the tables and columns up in the catalog of the connection's search path, so it
/// costs one index lookup and never touches Koji's own tables.
pub const DETECT_LAYOUT: &str = "
SELECT to_regclass('host') IS NOT NULL AS has_host,
       to_regclass('host_config') IS NOT NULL AS has_host_config,
       EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = to_regclass('host') AND attname = 'capacity'
                  AND NOT attisdropped) AS host_has_capacity,
       EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = to_regclass('host') AND attname = 'update_time'
                  AND NOT attisdropped) AS host_has_update_time";

/// Finds out which layout the connected database has.
pub async fn detect_layout(client: &Client) -> Result<Layout, KojiDbError> {
    layout_from_row(&client.query_one(DETECT_LAYOUT, &[]).await?)
}

/// Interprets the row [`DETECT_LAYOUT`] returns.
pub fn layout_from_row(row: &Row) -> Result<Layout, KojiDbError> {
    let has_host: bool = row.get("has_host");
    let has_host_config: bool = row.get("has_host_config");
    let host_has_capacity: bool = row.get("host_has_capacity");
    let has_update_time: bool = row.get("host_has_update_time");
    if !has_host {
        return Err(KojiDbError::NotKoji("table `host` not found"));
    }
    if has_host_config {
        Ok(Layout::HostConfig { has_update_time })
    } else if host_has_capacity {
        Ok(Layout::Pre116)
    } else {
        Err(KojiDbError::NotKoji(
            "table `host` has no `capacity` column and there is no `host_config` table",
        ))
    }
}
