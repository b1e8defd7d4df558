//! A host's configuration and channels change in Koji 1.16+ only with a new event (every
//! change to the versioned `host_config` and `host_channels` tables takes one from
//! `get_event()`), while its load, readiness and last check-in change at every builder
//! check-in, without one. So a reader may keep the configuration until Koji's events move
//! and read only the check-in part each time.
//!
//! "Events moved" is [`EventMark`]: the latest event id and how many of the last
//! [`EVENT_WINDOW`] ids are committed. Event ids come from a sequence, so a transaction that
//! took an id earlier may commit after a later one: it does not move the latest id but
//! fills a hole below it, which the count sees. One change that matters makes no event:
//! `editChannel` renames a channel in place, so the mark also carries a digest of the
//! channel names.

use std::collections::HashMap;

use tokio_postgres::Row;

use crate::{Host, Layout};

/// How many of the latest event ids are checked for late commits.
pub const EVENT_WINDOW: i32 = 1000;

/// The latest event, the committed events among the last [`EVENT_WINDOW`] ids, and a
/// digest of every channel's id and name (the first 64 bits of an md5; channels are few).
pub const EVENT_MARK: &str = "
SELECT coalesce(max(id), 0) AS latest, count(*) AS recent,
       (SELECT ('x' || left(md5(coalesce(string_agg(c.id || '=' || c.name, ',' ORDER BY c.id), '')),
                             16))::bit(64)::bigint
          FROM channels c) AS channel_names
  FROM events WHERE id > (SELECT coalesce(max(id), 0) FROM events) - 1000";

/// Where Koji's events and channel names stand; a different mark means the configuration
/// may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMark {
    /// The latest committed event id.
    pub latest: i32,
    /// Committed events among the last [`EVENT_WINDOW`] ids.
    pub recent: i64,
    /// Digest of the channels' ids and names.
    pub channel_names: i64,
}

impl EventMark {
    /// Reads a row of [`EVENT_MARK`].
    pub fn from_row(row: &Row) -> EventMark {
        EventMark {
            latest: row.get("latest"),
            recent: row.get("recent"),
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
/// channels it is in, read when events moved: one row per host (2,000 at a large hub)
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

/// Every host's configuration at one [`EventMark`], ordered by name (bytewise).
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
