//! `koji_hosts`: every builder's capacity, load, readiness, last check-in, channels, and the
//! tasks it runs, in whichever schema layout the hub has. From Koji 1.16 the configuration
//! part is read again only when Koji's events moved (see [`super::host_config_cache`]).

use std::sync::Arc;

use koji_db::host_config_snapshot::{
    check_ins_query, CheckIns, ConfigSnapshot, EventMark, ACTIVE_CONFIGS, CHANNEL_NAMES, EVENT_MARK,
};
use tokio_postgres::Row;

use super::host_series::{HostSeries, KnownHosts, HOST_TASK_STATES};
use super::{CollectContext, CollectError};
use crate::hub_database::HubClient;

/// Active tasks per host and state. `task_by_state` narrows the scan to the few active rows
/// however many finished tasks the table holds.
pub const HOST_TASKS: &str = "
SELECT host_id, state, count(*)::float8 AS tasks
  FROM task
 WHERE state IN (1, 4) AND host_id IS NOT NULL
 GROUP BY host_id, state";

/// Reads hosts and their tasks: from 1.16, the check-ins every scrape and the
/// configuration only when Koji's events moved.
pub async fn collect(context: &CollectContext) -> Result<HostSeries, CollectError> {
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
            let (snapshot, check_ins) = ConfigSnapshot::from_hosts(hosts);
            return Ok((Arc::new(KnownHosts::new(snapshot)), check_ins, task_rows));
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
        let kept = cache
            .get(mark)
            .and_then(|known| Some((known.line_up(&check_in_rows).ok()?, known)));
        let (check_ins, known) = match kept {
            Some(kept) => kept,
            // Events moved, or a host's name differs from the kept one (renamed in the
            // database, without an event).
            None => read_configuration(&client, mark, cache, &check_in_rows).await?,
        };
        Ok::<_, CollectError>((known, check_ins, task_rows))
    };
    let (known, check_ins, task_rows) = read.await.inspect_err(|_| {
        hub.forget_layout();
        cache.forget();
    })?;
    let tasks = tasks_by_position(&known, &task_rows);
    Ok(HostSeries {
        known,
        check_ins,
        tasks,
    })
}

/// Reads the configuration, keeps it at `mark` and lines the check-ins up with it.
async fn read_configuration(
    client: &HubClient,
    mark: EventMark,
    cache: &super::host_config_cache::HostConfigCache,
    check_in_rows: &[Row],
) -> Result<(CheckIns, Arc<KnownHosts>), CollectError> {
    let (config_rows, channel_rows) = tokio::try_join!(
        client.query(ACTIVE_CONFIGS, &[]),
        client.query(CHANNEL_NAMES, &[]),
    )?;
    let known = KnownHosts::new(ConfigSnapshot::from_rows(&config_rows, &channel_rows));
    let check_ins = known
        .line_up(check_in_rows)
        .map_err(CollectError::HostRenamed)?;
    Ok((check_ins, cache.keep(mark, known)))
}

/// The rows of [`HOST_TASKS`] per host position, in [`HOST_TASK_STATES`] order.
fn tasks_by_position(known: &KnownHosts, task_rows: &[Row]) -> Vec<[f64; 2]> {
    let mut tasks = vec![[0.0; 2]; known.len()];
    for row in task_rows {
        let state: i32 = row.get("state");
        let Some(slot) = HOST_TASK_STATES.iter().position(|&(s, _)| s == state) else {
            continue;
        };
        if let Some(position) = known.position(row.get("host_id")) {
            tasks[position][slot] = row.get("tasks");
        }
    }
    tasks
}
