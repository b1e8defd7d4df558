//! A host's configuration and channels change in Koji 1.16+ only by rows of the versioned
//! `host_config` and `host_channels` tables, while its load, readiness and last check-in
//! change at every builder check-in, in place. So a reader may keep the configuration
//! until those two tables change and read only the check-in part each time.
//!
//! "The tables changed" is [`ConfigMark`], read from the tables themselves rather than
//! from Koji's `events`: a busy hub takes an event for every tagging, so events move
//! between nearly any two scrapes while host configuration changes a few times a day.
//! Every change inserts a row whose `create_event` comes from `get_event()`, found
//! through each table's primary key (which leads with `create_event`): the latest, and how
//! many rows lie within [`EVENT_WINDOW`] ids of it. Event ids come from a sequence, so a
//! transaction that took an id earlier may commit after a later one: it does not move the
//! latest id but adds a row below it, which the count sees. The one change that revokes
//! without inserting, a host leaving a channel (`removeHostFromChannel`, `removeChannel`),
//! lowers the count of active memberships. And one change that matters touches neither
//! table: `editChannel` renames a channel in place, so the mark also carries a digest of
//! the channel names.

use std::collections::HashMap;

use tokio_postgres::Row;

use crate::{Host, Layout};

/// How many event ids below a table's latest `create_event` are checked for late commits.
pub const EVENT_WINDOW: i32 = 1000;

/// Where `host_config`, `host_channels` and the channel names stand (see the module's
/// header). Index-only lookups on both primary keys, one pass over the memberships and
/// one over the channels: a few tenths of a millisecond at 2,000 hosts.
pub const CONFIG_MARK: &str = "
SELECT (SELECT coalesce(max(create_event), 0) FROM host_config) AS configs_latest,
       (SELECT count(*) FROM host_config
         WHERE create_event > (SELECT coalesce(max(create_event), 0) FROM host_config) - 1000)
         AS configs_recent,
       (SELECT coalesce(max(create_event), 0) FROM host_channels) AS memberships_latest,
       (SELECT count(*) FROM host_channels
         WHERE create_event > (SELECT coalesce(max(create_event), 0) FROM host_channels) - 1000)
         AS memberships_recent,
       (SELECT count(*) FROM host_channels WHERE active IS TRUE) AS memberships,
       (SELECT ('x' || left(md5(coalesce(string_agg(c.id || '=' || c.name, ',' ORDER BY c.id), '')),
                             16))::bit(64)::bigint
          FROM channels c) AS channel_names";

/// Where the host configuration tables and the channel names stand; a different mark
/// means the configuration may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigMark {
    /// The latest `host_config.create_event`.
    pub configs_latest: i32,
    /// `host_config` rows created within [`EVENT_WINDOW`] ids of it.
    pub configs_recent: i64,
    /// The latest `host_channels.create_event`.
    pub memberships_latest: i32,
    /// `host_channels` rows created within [`EVENT_WINDOW`] ids of it.
    pub memberships_recent: i64,
    /// Active `host_channels` rows.
    pub memberships: i64,
    /// Digest of the channels' ids and names.
    pub channel_names: i64,
}

impl ConfigMark {
    /// Reads a row of [`CONFIG_MARK`].
    pub fn from_row(row: &Row) -> ConfigMark {
        ConfigMark {
            configs_latest: row.get("configs_latest"),
            configs_recent: row.get("configs_recent"),
            memberships_latest: row.get("memberships_latest"),
            memberships_recent: row.get("memberships_recent"),
            memberships: row.get("memberships"),
            channel_names: row.get("channel_names"),
        }
    }
}

/// The check-in part of every host (1.16+), read every time. Its columns are read by
/// position, in this order: `id`, `name`, `task_load`, `ready`, `last_update`.
const CHECK_INS: &str = "
SELECT h.id, h.name::text AS name, h.task_load, h.ready, NULL::float8 AS last_update FROM host h";
/// The same with `host.update_time` (1.33+); `date_part` answers a float8 where `extract`
/// (PostgreSQL 14+) computes a numeric for each of thousands of rows.
const CHECK_INS_UPDATE_TIME: &str = "
SELECT h.id, h.name::text AS name, h.task_load, h.ready,
       date_part('epoch', h.update_time::timestamptz) AS last_update
  FROM host h";

/// The active configuration rows (1.16+) with their host's name and the ids of the
/// channels it is in, read when the mark moved: one row per host (2,000 at a large hub)
/// rather than one per channel membership as well (twice as many again).
pub const ACTIVE_CONFIGS: &str = "
SELECT hc.host_id, h.name::text AS name, coalesce(hc.arches, '') AS arches, hc.capacity,
       hc.enabled, coalesce(m.channel_ids, '{}') AS channel_ids
  FROM host_config hc JOIN host h ON h.id = hc.host_id
  LEFT JOIN (SELECT host_id, array_agg(channel_id) AS channel_ids
               FROM host_channels WHERE active IS TRUE GROUP BY host_id) m
         ON m.host_id = hc.host_id
 WHERE hc.active IS TRUE";

/// Every channel's name, for the ids of [`ACTIVE_CONFIGS`] (a few dozen rows).
pub const CHANNEL_NAMES: &str = "SELECT id, name::text AS name FROM channels";

/// The check-in query for a versioned layout; `None` before 1.16, whose configuration
/// lives in `host` and changes without events.
pub fn check_ins_query(layout: Layout) -> Option<&'static str> {
    match layout {
        Layout::Pre116 => None,
        Layout::HostConfig {
            has_update_time: false,
        } => Some(CHECK_INS),
        Layout::HostConfig {
            has_update_time: true,
        } => Some(CHECK_INS_UPDATE_TIME),
    }
}

/// One configured host.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredHost {
    /// `host.id`.
    pub id: i32,
    /// The host's name.
    pub name: String,
    /// Space-separated arches; empty when unset.
    pub arches: String,
    /// Capacity.
    pub capacity: f64,
    /// Enabled.
    pub enabled: bool,
    /// Channel names, sorted bytewise.
    pub channels: Vec<String>,
}

/// What a host reported at its last check-in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckIn {
    /// Weight of the tasks it runs.
    pub task_load: f64,
    /// Whether it is ready for tasks.
    pub ready: bool,
    /// Seconds since the epoch of the check-in (1.33+, once it checked in).
    pub last_update: Option<f64>,
}

/// Every host's configuration at one [`ConfigMark`], ordered by name (bytewise).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSnapshot {
    hosts: Vec<ConfiguredHost>,
    position_by_id: HashMap<i32, usize>,
}

/// The check-ins of one scrape lined up with a snapshot's hosts.
pub type CheckIns = Vec<Option<CheckIn>>;

impl ConfigSnapshot {
    /// From the rows of [`ACTIVE_CONFIGS`] and of [`CHANNEL_NAMES`].
    pub fn from_rows(config_rows: &[Row], channel_name_rows: &[Row]) -> ConfigSnapshot {
        let names: HashMap<i32, &str> = channel_name_rows
            .iter()
            .map(|row| (row.get("id"), row.get("name")))
            .collect();
        let hosts = config_rows
            .iter()
            .map(|row| {
                let channel_ids: Vec<i32> = row.get("channel_ids");
                // A channel deleted meanwhile has no name: it is no longer the host's.
                let mut channels: Vec<String> = channel_ids
                    .iter()
                    .filter_map(|id| names.get(id).map(|name| name.to_string()))
                    .collect();
                channels.sort_unstable();
                ConfiguredHost {
                    id: row.get("host_id"),
                    name: row.get("name"),
                    arches: row.get("arches"),
                    capacity: row.get("capacity"),
                    enabled: row.get("enabled"),
                    channels,
                }
            })
            .collect();
        ConfigSnapshot::ordered(hosts)
    }

    /// Hosts read whole (Koji before 1.16) as a snapshot and their check-ins, in its order.
    pub fn from_hosts(mut hosts: Vec<Host>) -> (ConfigSnapshot, CheckIns) {
        hosts.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let (configured, check_ins) = hosts
            .into_iter()
            .map(|host| {
                let check_in = CheckIn {
                    task_load: host.task_load,
                    ready: host.ready,
                    last_update: host.last_update,
                };
                let configured = ConfiguredHost {
                    id: host.id,
                    name: host.name,
                    arches: host.arches,
                    capacity: host.capacity,
                    enabled: host.enabled,
                    channels: host.channels,
                };
                (configured, Some(check_in))
            })
            .unzip();
        (ConfigSnapshot::indexed(configured), check_ins)
    }

    fn ordered(mut hosts: Vec<ConfiguredHost>) -> ConfigSnapshot {
        hosts.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        ConfigSnapshot::indexed(hosts)
    }

    /// Indexes hosts already ordered by name.
    fn indexed(hosts: Vec<ConfiguredHost>) -> ConfigSnapshot {
        let position_by_id = hosts
            .iter()
            .enumerate()
            .map(|(position, host)| (host.id, position))
            .collect();
        ConfigSnapshot {
            hosts,
            position_by_id,
        }
    }

    /// The hosts, ordered by name, and each host id's position among them, for a reader
    /// that keeps its own form of them.
    pub fn into_parts(self) -> (Vec<ConfiguredHost>, HashMap<i32, usize>) {
        (self.hosts, self.position_by_id)
    }
}

/// One row of [`check_ins_query`] placed among known hosts, `known` answering a host id's
/// position and name: `Ok(None)` for a host that is not known (no active configuration;
/// left out, as Koji's own join does), `Err` with the host's id when its name differs
/// from the known one (a rename in the database: read the configuration again).
pub fn place_check_in<'n>(
    row: &Row,
    known: impl Fn(i32) -> Option<(usize, &'n str)>,
) -> Result<Option<(usize, CheckIn)>, i32> {
    let id: i32 = row.get(0);
    let Some((position, name)) = known(id) else {
        return Ok(None);
    };
    if row.get::<_, &str>(1) != name {
        return Err(id);
    }
    let check_in = CheckIn {
        task_load: row.get(2),
        ready: row.get(3),
        last_update: row.get(4),
    };
    Ok(Some((position, check_in)))
}

#[cfg(test)]
mod tests {
    use super::{CONFIG_MARK, EVENT_WINDOW};

    /// The mark's two late-commit windows are [`EVENT_WINDOW`] ids wide (the SQL spells the
    /// number out).
    #[test]
    fn both_late_commit_windows_are_the_event_window() {
        let window = format!(") - {EVENT_WINDOW})");
        assert_eq!(CONFIG_MARK.matches(&window).count(), 2, "{CONFIG_MARK}");
    }
}
