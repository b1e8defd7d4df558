//! `koji_hosts`: every builder's capacity, load, readiness, last check-in, channels, and the
//! tasks it runs, in whichever schema layout the hub has. From Koji 1.16 the configuration
//! part is read again only when Koji's events moved.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;

use koji_db::host_config_snapshot::{
    check_ins_query, ConfigSnapshot, EventMark, ACTIVE_CONFIGS, EVENT_MARK,
};

use super::{CollectContext, CollectError};
use crate::metric_families::{Families, Gauges, Infos};

/// Label set of the per-host gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HostLabels {
    /// Koji host name.
    pub host: Arc<String>,
}

/// Label set of `koji_host_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HostInfoLabels {
    /// Koji host name.
    pub host: Arc<String>,
    /// Space-separated arches, as Koji stores them.
    pub arches: String,
    /// Comma-separated channel names, sorted.
    pub channels: String,
}

/// Label set of `koji_host_tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HostTaskLabels {
    /// Koji host name.
    pub host: Arc<String>,
    /// `open` or `assigned`.
    pub state: &'static str,
}

/// Active tasks per host and state. `task_by_state` narrows the scan to the few active rows
/// however many finished tasks the table holds.
pub const HOST_TASKS: &str = "
SELECT host_id, state, count(*)::float8 AS tasks
  FROM task
 WHERE state IN (1, 4) AND host_id IS NOT NULL
 GROUP BY host_id, state";

/// Koji's numbers for the task states a host can hold.
const HOST_TASK_STATES: [(i32, &str); 2] = [(1, "open"), (4, "assigned")];

/// Reads hosts and their tasks: from 1.16, the check-ins every scrape and the
/// configuration only when Koji's events moved (see [`super::host_config_cache`]).
pub async fn collect(context: &CollectContext) -> Result<Families, CollectError> {
    let hub = context.hub()?;
    let client = hub.client().await?;
    let layout = hub.layout(&client).await?;
    let cache = &context.state.host_config;
    let queries = ::koji_db::host_queries(layout);
    let read = async {
        let Some(check_ins) = check_ins_query(layout) else {
            // Before 1.16 the configuration is in `host` and changes without events.
            let (host_rows, channel_rows, task_rows) = tokio::try_join!(
                client.query(queries.hosts, &[]),
                client.query(queries.channels, &[]),
                client.query(HOST_TASKS, &[]),
            )?;
            let hosts = ::koji_db::hosts_from_rows(&host_rows, &channel_rows);
            return Ok((hosts, task_rows));
        };
        // Pipelined on the one connection, in this order: the mark is read before the
        // check-ins and the configuration, so a change after it moves the next mark.
        let (mark_rows, check_in_rows, task_rows) = tokio::try_join!(
            client.query(EVENT_MARK, &[]),
            client.query(check_ins, &[]),
            client.query(HOST_TASKS, &[]),
        )?;
        let mark = EventMark::from_row(
            mark_rows
                .first()
                .ok_or(CollectError::NoRow("the event query"))?,
        );
        let snapshot = match cache.get(mark) {
            Some(snapshot) => snapshot,
            None => {
                let (config_rows, channel_rows) = tokio::try_join!(
                    client.query(ACTIVE_CONFIGS, &[]),
                    client.query(queries.channels, &[]),
                )?;
                cache.keep(mark, ConfigSnapshot::from_rows(&config_rows, &channel_rows))
            }
        };
        Ok::<_, CollectError>((snapshot.hosts(&check_in_rows), task_rows))
    };
    let (hosts, task_rows) = read.await.inspect_err(|_| {
        hub.forget_layout();
        cache.forget();
    })?;
    let mut tasks_by_host: HashMap<(i32, i32), f64> = HashMap::new();
    for row in task_rows {
        tasks_by_host.insert((row.get("host_id"), row.get("state")), row.get("tasks"));
    }
    Ok(families(&hosts, &tasks_by_host))
}

/// Turns hosts and their task counts (by host id and state) into metric families.
fn families(hosts: &[::koji_db::Host], tasks_by_host: &HashMap<(i32, i32), f64>) -> Families {
    let mut capacity = Gauges::new(
        "koji_host_capacity",
        "Task weight the Koji scheduler may assign to the host at once.",
    );
    let mut task_load = Gauges::new(
        "koji_host_task_load",
        "Weight of the tasks the host reported running at its last check-in.",
    );
    let mut ready = Gauges::new(
        "koji_host_ready",
        "Whether the host reported itself ready for tasks (0 when, e.g., short of disk space).",
    );
    let mut enabled = Gauges::new("koji_host_enabled", "Whether the host is enabled in Koji.");
    let mut last_update = Gauges::new(
        "koji_host_last_update_timestamp_seconds",
        "When the host last checked in with the hub (host.update_time, Koji 1.33+).",
    );
    let mut info = Infos::new("koji_host_info", "Koji host metadata: arches and channels.");
    let mut host_tasks = Gauges::new(
        "koji_host_tasks",
        "Active tasks on the host by state (open, assigned).",
    );
    for host in hosts {
        // One allocation per host name, shared by its eight series.
        let name = Arc::new(host.name.clone());
        let labels = HostLabels { host: name.clone() };
        capacity.push(labels.clone(), host.capacity);
        task_load.push(labels.clone(), host.task_load);
        ready.push(labels.clone(), f64::from(u8::from(host.ready)));
        enabled.push(labels.clone(), f64::from(u8::from(host.enabled)));
        if let Some(seconds) = host.last_update {
            last_update.push(labels, seconds);
        }
        info.push(HostInfoLabels {
            host: name.clone(),
            arches: host.arches.clone(),
            channels: host.channels.join(","),
        });
        for (state, state_name) in HOST_TASK_STATES {
            let count = tasks_by_host.get(&(host.id, state)).copied().unwrap_or(0.0);
            host_tasks.push(
                HostTaskLabels {
                    host: name.clone(),
                    state: state_name,
                },
                count,
            );
        }
    }
    vec![
        capacity.boxed(),
        task_load.boxed(),
        ready.boxed(),
        enabled.boxed(),
        last_update.boxed(),
        info.boxed(),
        host_tasks.boxed(),
    ]
}
