//! `koji_hosts`: every builder's capacity, load, readiness, last check-in, channels, and the
//! tasks it runs, in whichever schema layout the hub has. From Koji 1.16 the configuration
//! part is read again only when Koji's host tables changed (see [`super::host_config_cache`]).

use std::sync::Arc;

use koji_db::host_config_snapshot::{
    check_ins_query, CheckIns, ConfigMark, ConfigSnapshot, ACTIVE_CONFIGS, CHANNEL_NAMES,
    CONFIG_MARK,
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
/// configuration only when Koji's host tables changed.
pub async fn collect(context: &CollectContext) -> Result<HostSeries, CollectError> {
    let hub = context.hub()?;
    let client = context.hub_client().await?;
    let layout = hub.layout(client).await?;
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
        // The mark first (pipelined with the tasks), then the configuration if the mark
        // moved, then the check-ins: a change after the mark moves the next mark.
        let (mark_rows, task_rows) = tokio::try_join!(
            client.query(CONFIG_MARK, &[]),
            client.query(HOST_TASKS, &[]),
        )?;
        let mark = ConfigMark::from_row(
            mark_rows
                .first()
                .ok_or(CollectError::NoRow("the configuration mark query"))?,
        );
        let known = match cache.get(mark) {
            Some(known) => known,
            None => read_configuration(client, mark, cache).await?,
        };
        let (known, check_ins) = match read_check_ins(client, check_ins, &known).await? {
            Ok(check_ins) => (known, check_ins),
            // A host's name differs from the kept one (renamed in the database, without
            // an event): read the configuration again, then the check-ins.
            Err(_) => {
                let known = read_configuration(client, mark, cache).await?;
                let check_ins = read_check_ins(client, check_ins, &known)
                    .await?
                    .map_err(CollectError::HostRenamed)?;
                (known, check_ins)
            }
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

/// Reads the configuration and keeps it at `mark`.
async fn read_configuration(
    client: &HubClient,
    mark: ConfigMark,
    cache: &super::host_config_cache::HostConfigCache,
) -> Result<Arc<KnownHosts>, CollectError> {
    let (config_rows, channel_rows) = tokio::try_join!(
        client.query(ACTIVE_CONFIGS, &[]),
        client.query(CHANNEL_NAMES, &[]),
    )?;
    let snapshot = ConfigSnapshot::from_rows(&config_rows, &channel_rows);
    Ok(cache.keep(mark, KnownHosts::new(snapshot)))
}

/// Every host's check-in placed among `known` as its row arrives (2,000 rows at a large
/// hub are never held at once); `Err` with the id of a host whose name differs.
async fn read_check_ins(
    client: &HubClient,
    query: &str,
    known: &KnownHosts,
) -> Result<Result<CheckIns, i32>, CollectError> {
    let mut check_ins = vec![None; known.len()];
    let mut renamed = None;
    client
        .for_each_row(query, |row| match known.place(&row) {
            Ok(Some((position, check_in))) => check_ins[position] = Some(check_in),
            Ok(None) => {}
            Err(id) => renamed = renamed.or(Some(id)),
        })
        .await?;
    Ok(match renamed {
        Some(id) => Err(id),
        None => Ok(check_ins),
    })
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
