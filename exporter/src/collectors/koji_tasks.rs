//! `koji_tasks`: the active task queue per channel and state, and how long its head waits.
//!
//! A real hub's `task` table holds tens of millions of finished rows, so the query filters
//! on `state`, which Koji indexes (`task_by_state`), and never scans the table whole.

use prometheus_client::encoding::EncodeLabelSet;

use super::{CollectContext, CollectError};
use crate::metric_families::{Families, Gauges};

/// Label set of `koji_tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct QueueLabels {
    /// `free`, `open` or `assigned`.
    pub state: String,
    /// Channel name.
    pub channel: String,
}

/// Label set of `koji_task_oldest_free_age_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ChannelLabels {
    /// Channel name.
    pub channel: String,
}

/// Active tasks per channel and state, with the age of the oldest, computed in the database
/// so the result is right whatever the column type and session time zone.
pub const ACTIVE_TASKS: &str = "
SELECT channel_id, state, count(*)::float8 AS tasks,
       extract(epoch FROM max(now() - create_time))::float8 AS oldest_age
  FROM task
 WHERE state IN (0, 1, 4)
 GROUP BY channel_id, state";

/// Every channel, so idle channels report zeros rather than vanishing.
pub const CHANNELS: &str = "SELECT id, name::text AS name FROM channels ORDER BY name";

/// Koji's numbers for the active task states.
const ACTIVE_STATES: [(i32, &str); 3] = [(0, "free"), (1, "open"), (4, "assigned")];

/// Reads the active task queue.
pub async fn collect(context: &CollectContext) -> Result<Families, CollectError> {
    let client = context.hub_client().await?;
    let (channels, active) =
        tokio::try_join!(client.query(CHANNELS, &[]), client.query(ACTIVE_TASKS, &[]))?;
    let lookup = |channel_id: i32, state: i32| {
        active.iter().find(|row| {
            row.get::<_, i32>("channel_id") == channel_id && row.get::<_, i32>("state") == state
        })
    };

    let mut tasks = Gauges::new(
        "koji_tasks",
        "Active Koji tasks by state (free, open, assigned) and channel.",
    );
    let mut oldest_free = Gauges::new(
        "koji_task_oldest_free_age_seconds",
        "How long the oldest free (queued) task of the channel has waited; 0 when none waits.",
    );
    for channel in &channels {
        let channel_id: i32 = channel.get("id");
        let name: String = channel.get("name");
        for (state, state_name) in ACTIVE_STATES {
            let row = lookup(channel_id, state);
            let count = row.map_or(0.0, |row| row.get("tasks"));
            tasks.push(
                QueueLabels {
                    state: state_name.into(),
                    channel: name.clone(),
                },
                count,
            );
            if state == 0 {
                let age: f64 = row.map_or(0.0, |row| row.get("oldest_age"));
                oldest_free.push(
                    ChannelLabels {
                        channel: name.clone(),
                    },
                    age.max(0.0),
                );
            }
        }
    }
    Ok(vec![tasks.boxed(), oldest_free.boxed()])
}
