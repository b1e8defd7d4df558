//! A host's configuration and channels change in Koji 1.16+ only with a new event (every
//! change to the versioned `host_config` and `host_channels` tables takes one from
//! `get_event()`), while its load, readiness and last check-in change at every builder
//! check-in, without one. So a reader may keep the configuration until Koji's events move
//! and read only the check-in part each time.
//!
//! "Events moved" is [`EventMark`]: the latest event id and how many of the last
//! [`EVENT_WINDOW`] ids are committed. Event ids come from a sequence, so a transaction that
//! took an id earlier may commit after a later one: it does not move the latest id but
//! fills a hole below it, which the count sees.

use std::collections::HashMap;

use tokio_postgres::Row;

use crate::{Host, Layout};

/// How many of the latest event ids are checked for late commits.
pub const EVENT_WINDOW: i32 = 1000;

/// The latest event and the committed events among the last [`EVENT_WINDOW`] ids.
pub const EVENT_MARK: &str = "
SELECT coalesce(max(id), 0) AS latest, count(*) AS recent
  FROM events WHERE id > (SELECT coalesce(max(id), 0) FROM events) - 1000";

/// Where Koji's events stand; a different mark means the configuration may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMark {
    /// The latest committed event id.
    pub latest: i32,
    /// Committed events among the last [`EVENT_WINDOW`] ids.
    pub recent: i64,
}

impl EventMark {
    /// Reads a row of [`EVENT_MARK`].
    pub fn from_row(row: &Row) -> EventMark {
        EventMark {
            latest: row.get("latest"),
            recent: row.get("recent"),
        }
    }
}

/// The check-in part of every host (1.16+), read every time.
const CHECK_INS: &str = "
SELECT h.id, h.name::text AS name, h.task_load, h.ready, NULL::float8 AS last_update FROM host h";
/// The same with `host.update_time` (1.33+); `date_part` answers a float8 where `extract`
/// (PostgreSQL 14+) computes a numeric for each of thousands of rows.
const CHECK_INS_UPDATE_TIME: &str = "
SELECT h.id, h.name::text AS name, h.task_load, h.ready,
       date_part('epoch', h.update_time::timestamptz) AS last_update
  FROM host h";

/// The active configuration rows (1.16+), read when events moved.
pub const ACTIVE_CONFIGS: &str = "
SELECT hc.host_id, coalesce(hc.arches, '') AS arches, hc.capacity, hc.enabled
  FROM host_config hc WHERE hc.active IS TRUE";

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

/// One host's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// Space-separated arches; empty when unset.
    pub arches: String,
    /// Capacity.
    pub capacity: f64,
    /// Enabled.
    pub enabled: bool,
    /// Channel names, sorted bytewise.
    pub channels: Vec<String>,
}

/// Every host's configuration at one [`EventMark`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSnapshot {
    /// By `host.id`.
    pub hosts: HashMap<i32, HostConfig>,
}

impl ConfigSnapshot {
    /// From the rows of [`ACTIVE_CONFIGS`] and of the channel query
    /// ([`crate::HostQueries::channels`]).
    pub fn from_rows(config_rows: &[Row], channel_rows: &[Row]) -> ConfigSnapshot {
        let mut channels = crate::hosts::channels_by_host(channel_rows);
        let hosts = config_rows
            .iter()
            .map(|row| {
                let id: i32 = row.get("host_id");
                let config = HostConfig {
                    arches: row.get("arches"),
                    capacity: row.get("capacity"),
                    enabled: row.get("enabled"),
                    channels: channels.remove(&id).unwrap_or_default(),
                };
                (id, config)
            })
            .collect();
        ConfigSnapshot { hosts }
    }

    /// Hosts from the rows of [`check_ins_query`] and this configuration, ordered by name
    /// (a host without an active configuration row, as Koji's own join, is left out).
    pub fn hosts(&self, check_in_rows: &[Row]) -> Vec<Host> {
        let mut hosts: Vec<Host> = check_in_rows
            .iter()
            .filter_map(|row| {
                let config = self.hosts.get(&row.get::<_, i32>("id"))?;
                Some(Host {
                    id: row.get("id"),
                    name: row.get("name"),
                    arches: config.arches.clone(),
                    capacity: config.capacity,
                    task_load: row.get("task_load"),
                    ready: row.get("ready"),
                    enabled: config.enabled,
                    last_update: row.get("last_update"),
                    channels: config.channels.clone(),
                })
            })
            .collect();
        hosts.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        hosts
    }
}
