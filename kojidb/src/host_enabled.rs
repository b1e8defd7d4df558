//! A host taken out of service and put back as Koji's own `disableHost` and `enableHost`
//! do it (1.16+, through [`crate::host_config_rows`]), with what a drain needs to read:
//! the active configuration row (who made it, at which event), the host's open tasks and
//! its last check-in. A change is refused when the active row is no longer the one the
//! caller saw, so nobody's change is overwritten.

use tokio_postgres::{Client, GenericClient};

use crate::capacity::{check_changer, CapacityError};
use crate::host_config_rows::{revoke_and_insert, ConfigChange};
use crate::{KojiDbError, Layout};

/// A host as a drain sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    /// `host.id`.
    pub host_id: i32,
    /// Whether the active configuration enables it.
    pub enabled: bool,
    /// `host.ready`, as kojid last reported it (`false` from a kojid that shut down).
    pub ready: bool,
    /// `host.update_time` in seconds since the epoch (Koji 1.33+).
    pub last_check_in: Option<f64>,
    /// The event that created the active configuration row.
    pub config_event: i32,
    /// That event's time, in seconds since the epoch.
    pub config_time: f64,
    /// The Koji user who made the active configuration row.
    pub config_creator: Option<String>,
}

/// Why the enabled flag was not changed.
#[derive(Debug, thiserror::Error)]
pub enum EnabledError {
    /// The host's configuration changed since it was read: nothing was written.
    #[error("the configuration of {host:?} changed since it was read (event {found}, not {expected}): left alone")]
    Changed {
        /// Host name.
        host: String,
        /// The active row's event the caller saw.
        expected: i32,
        /// The active row's event now.
        found: i32,
    },
    /// The host, the user or the permission is missing, or the database failed.
    #[error(transparent)]
    Koji(#[from] CapacityError),
}

impl From<tokio_postgres::Error> for EnabledError {
    fn from(error: tokio_postgres::Error) -> Self {
        EnabledError::Koji(error.into())
    }
}

/// The host, its active configuration row and who made it, with `$check_in` as the
/// last check-in column.
macro_rules! host_state {
    ($check_in:literal) => {
        concat!(
            "SELECT h.id, hc.enabled, h.ready, ",
            $check_in,
            ", hc.create_event, date_part('epoch', e.time), u.name::text
  FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active IS TRUE
  JOIN events e ON e.id = hc.create_event
  LEFT JOIN users u ON u.id = hc.creator_id
 WHERE h.name = $1"
        )
    };
}
const STATE_WITH_UPDATE_TIME: &str = host_state!("date_part('epoch', h.update_time::timestamptz)");
const STATE_WITHOUT_UPDATE_TIME: &str = host_state!("NULL::float8");
const ACTIVE_EVENT_FOR_UPDATE: &str = "
SELECT h.id, hc.create_event FROM host h
  JOIN host_config hc ON hc.host_id = h.id AND hc.active IS TRUE
 WHERE h.name = $1 FOR UPDATE OF hc";
/// Koji's task states a host still works on: OPEN (1) and ASSIGNED (4).
const OPEN_TASKS: &str = "SELECT id FROM task WHERE host_id = $1 AND state IN (1, 4) ORDER BY id";

/// The host's state, or `None` when there is no such host. Koji before 1.16 keeps no
/// versioned configuration: `None` too, with [`KojiDbError::NotKoji`] saying so.
pub async fn read_host_state(
    client: &impl GenericClient,
    layout: Layout,
    host: &str,
) -> Result<Option<HostState>, KojiDbError> {
    let query = match layout {
        Layout::Pre116 => {
            return Err(KojiDbError::NotKoji(
                "Koji before 1.16 keeps no host history to drain a host by",
            ))
        }
        Layout::HostConfig {
            has_update_time: true,
        } => STATE_WITH_UPDATE_TIME,
        Layout::HostConfig { .. } => STATE_WITHOUT_UPDATE_TIME,
    };
    Ok(client
        .query_opt(query, &[&host])
        .await?
        .map(|row| HostState {
            host_id: row.get(0),
            enabled: row.get(1),
            ready: row.get(2),
            last_check_in: row.get(3),
            config_event: row.get(4),
            config_time: row.get(5),
            config_creator: row.get(6),
        }))
}

/// The ids of the tasks `host_id` still has open or assigned.
pub async fn open_tasks(
    client: &impl GenericClient,
    host_id: i32,
) -> Result<Vec<i32>, KojiDbError> {
    let rows = client.query(OPEN_TASKS, &[&host_id]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Sets `host` enabled or disabled in one transaction, credited to the Koji user
/// `changed_by`, only if its active configuration row is still the one created by
/// `seen_event`; returns the new event.
pub async fn set_enabled(
    client: &mut Client,
    host: &str,
    seen_event: i32,
    enabled: bool,
    changed_by: &str,
) -> Result<i32, EnabledError> {
    let transaction = client.transaction().await?;
    let changer = check_changer(&transaction, changed_by).await?;
    let row = transaction
        .query_opt(ACTIVE_EVENT_FOR_UPDATE, &[&host])
        .await?
        .ok_or_else(|| CapacityError::NoSuchHost(host.to_string()))?;
    let (host_id, found): (i32, i32) = (row.get(0), row.get(1));
    if found != seen_event {
        return Err(EnabledError::Changed {
            host: host.to_string(),
            expected: seen_event,
            found,
        });
    }
    let event = revoke_and_insert(
        &transaction,
        host_id,
        ConfigChange::Enabled(enabled),
        changer,
    )
    .await?;
    transaction.commit().await?;
    Ok(event)
}
