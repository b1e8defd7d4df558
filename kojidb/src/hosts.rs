//! Reads every Koji builder with its current configuration.

use tokio_postgres::{Client, Row};

use crate::{KojiDbError, Layout};

/// One builder as the hub sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// `host.id`.
    pub id: i32,
    /// The host name builders log in as, e.g. `buildvm-x86-01.example.org`.
    pub name: String,
    /// Space-separated arches as Koji stores them (`x86_64 i686`); empty when unset.
    pub arches: String,
    /// The weight of tasks the scheduler may give this host at once.
    pub capacity: f64,
    /// The weight of the tasks the host reported running at its last `updateHost`.
    pub task_load: f64,
    /// Whether the host reported itself ready (false when out of disk space, for instance).
    pub ready: bool,
    /// Whether an administrator left the host enabled.
    pub enabled: bool,
    /// Seconds since the epoch of the host's last `updateHost` call, when the schema has it
    /// (Koji 1.33+) and the host has ever checked in.
    pub last_update: Option<f64>,
    /// Names of the channels the host currently serves, sorted.
    pub channels: Vec<String>,
}

/// Koji before 1.16: configuration lives in `host`, channels are plain rows.
const HOSTS_PRE_1_16: &str = "
SELECT h.id, h.name, coalesce(h.arches, '') AS arches, h.capacity, h.task_load, h.ready,
       h.enabled, NULL::float8 AS last_update,
       ARRAY(SELECT c.name::text FROM host_channels hc JOIN channels c ON c.id = hc.channel_id
              WHERE hc.host_id = h.id ORDER BY c.name) AS channels
  FROM host h
 ORDER BY h.name";

/// Koji 1.16 to 1.32: the active `host_config` and `host_channels` rows are current.
const HOSTS_HOST_CONFIG: &str = "
SELECT h.id, h.name, coalesce(hc.arches, '') AS arches, hc.capacity, h.task_load, h.ready,
       hc.enabled, NULL::float8 AS last_update,
       ARRAY(SELECT c.name::text FROM host_channels hch JOIN channels c ON c.id = hch.channel_id
              WHERE hch.host_id = h.id AND hch.active IS TRUE ORDER BY c.name) AS channels
  FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active IS TRUE
 ORDER BY h.name";

/// Koji 1.33 and later: as above plus `host.update_time`. The cast to `timestamptz` makes
/// the epoch right whether the column is `timestamp` or `timestamptz`.
const HOSTS_HOST_CONFIG_UPDATE_TIME: &str = "
SELECT h.id, h.name, coalesce(hc.arches, '') AS arches, hc.capacity, h.task_load, h.ready,
       hc.enabled, extract(epoch FROM h.update_time::timestamptz)::float8 AS last_update,
       ARRAY(SELECT c.name::text FROM host_channels hch JOIN channels c ON c.id = hch.channel_id
              WHERE hch.host_id = h.id AND hch.active IS TRUE ORDER BY c.name) AS channels
  FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active IS TRUE
 ORDER BY h.name";

/// Lists every host, ordered by name, in the given layout.
pub async fn list_hosts(client: &Client, layout: Layout) -> Result<Vec<Host>, KojiDbError> {
    let query = match layout {
        Layout::Pre116 => HOSTS_PRE_1_16,
        Layout::HostConfig {
            has_update_time: false,
        } => HOSTS_HOST_CONFIG,
        Layout::HostConfig {
            has_update_time: true,
        } => HOSTS_HOST_CONFIG_UPDATE_TIME,
    };
    let rows = client.query(query, &[]).await?;
    Ok(rows.iter().map(host_from_row).collect())
}

fn host_from_row(row: &Row) -> Host {
    Host {
        id: row.get("id"),
        name: row.get("name"),
        arches: row.get("arches"),
        capacity: row.get("capacity"),
        task_load: row.get("task_load"),
        ready: row.get("ready"),
        enabled: row.get("enabled"),
        last_update: row.get("last_update"),
        channels: row.get("channels"),
    }
}
