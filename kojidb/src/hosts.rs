//! Reads every Koji builder with its current configuration.

use std::collections::HashMap;

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
    /// Names of the channels the host currently serves, sorted bytewise.
    pub channels: Vec<String>,
}

/// Koji before 1.16: configuration lives in `host`.
///
/// None of the host queries sorts or aggregates channel names: sorting text under the
/// database's locale cost more than everything else together on a 2,000-host hub, so the
/// rows are combined and ordered in Rust.
const HOSTS_PRE_1_16: &str = "
SELECT h.id, h.name::text AS name, coalesce(h.arches, '') AS arches, h.capacity, h.task_load,
       h.ready, h.enabled, NULL::float8 AS last_update
  FROM host h";

/// Koji 1.16 to 1.32: the active `host_config` row is current.
const HOSTS_HOST_CONFIG: &str = "
SELECT h.id, h.name::text AS name, coalesce(hc.arches, '') AS arches, hc.capacity, h.task_load,
       h.ready, hc.enabled, NULL::float8 AS last_update
  FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active IS TRUE";

/// Koji 1.33 and later: as above plus `host.update_time`. The cast to `timestamptz` makes
/// the epoch right whether the column is `timestamp` or `timestamptz`.
const HOSTS_HOST_CONFIG_UPDATE_TIME: &str = "
SELECT h.id, h.name::text AS name, coalesce(hc.arches, '') AS arches, hc.capacity, h.task_load,
       h.ready, hc.enabled, date_part('epoch', h.update_time::timestamptz) AS last_update
  FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active IS TRUE";

/// Channel memberships before 1.16: every row is current.
const HOST_CHANNELS_PRE_1_16: &str = "
SELECT hch.host_id, c.name::text AS channel
  FROM host_channels hch JOIN channels c ON c.id = hch.channel_id";

/// Channel memberships from 1.16: only the active rows are current.
const HOST_CHANNELS: &str = "
SELECT hch.host_id, c.name::text AS channel
  FROM host_channels hch JOIN channels c ON c.id = hch.channel_id
 WHERE hch.active IS TRUE";

/// The two queries that read hosts in one layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostQueries {
    /// One row per host: `id`, `name`, `arches`, `capacity`, `task_load`, `ready`,
    /// `enabled`, `last_update`.
    pub hosts: &'static str,
    /// One row per current channel membership: `host_id`, `channel`.
    pub channels: &'static str,
}

/// The host queries for `layout`, for callers that prepare and cache statements themselves.
pub fn host_queries(layout: Layout) -> HostQueries {
    match layout {
        Layout::Pre116 => HostQueries {
            hosts: HOSTS_PRE_1_16,
            channels: HOST_CHANNELS_PRE_1_16,
        },
        Layout::HostConfig {
            has_update_time: false,
        } => HostQueries {
            hosts: HOSTS_HOST_CONFIG,
            channels: HOST_CHANNELS,
        },
        Layout::HostConfig {
            has_update_time: true,
        } => HostQueries {
            hosts: HOSTS_HOST_CONFIG_UPDATE_TIME,
            channels: HOST_CHANNELS,
        },
    }
}

/// Lists every host, ordered by name (bytewise), in the given layout.
pub async fn list_hosts(client: &Client, layout: Layout) -> Result<Vec<Host>, KojiDbError> {
    let queries = host_queries(layout);
    // Both queries travel on the one connection together.
    let (host_rows, channel_rows) = tokio::try_join!(
        client.query(queries.hosts, &[]),
        client.query(queries.channels, &[])
    )?;
    Ok(hosts_from_rows(&host_rows, &channel_rows))
}

/// The rows of [`HostQueries::channels`] as each host's channel names, sorted bytewise.
pub fn channels_by_host(channel_rows: &[Row]) -> HashMap<i32, Vec<String>> {
    let mut channels: HashMap<i32, Vec<String>> = HashMap::new();
    for row in channel_rows {
        channels
            .entry(row.get("host_id"))
            .or_default()
            .push(row.get("channel"));
    }
    for names in channels.values_mut() {
        names.sort_unstable();
    }
    channels
}

/// Combines the rows of [`HostQueries`] into hosts ordered by name, channels sorted.
pub fn hosts_from_rows(host_rows: &[Row], channel_rows: &[Row]) -> Vec<Host> {
    let mut channels = channels_by_host(channel_rows);
    let mut hosts: Vec<Host> = host_rows
        .iter()
        .map(|row| host_from_row(row, channels.remove(&row.get("id")).unwrap_or_default()))
        .collect();
    hosts.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    hosts
}

fn host_from_row(row: &Row, channels: Vec<String>) -> Host {
    Host {
        id: row.get("id"),
        name: row.get("name"),
        arches: row.get("arches"),
        capacity: row.get("capacity"),
        task_load: row.get("task_load"),
        ready: row.get("ready"),
        enabled: row.get("enabled"),
        last_update: row.get("last_update"),
        channels,
    }
}
