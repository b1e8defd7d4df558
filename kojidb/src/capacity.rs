//! Reads and changes a host's capacity the way Koji's own `editHost` does.
//!
//! Before 1.16 capacity is a column of `host`. From 1.16 `host_config` is versioned: a change
//! revokes the active row (`revoke_event`, `revoker_id`, `active = NULL`) and inserts a new
//! active row carrying every other column over, with one new event serving as both the old
//! row's `revoke_event` and the new row's `create_event`, in one transaction. Done so, Koji's
//! `list-history --host` shows one "host configuration altered" entry with the old and new
//! capacity.

use tokio_postgres::{Client, GenericClient};

use crate::{KojiDbError, Layout};

/// A host's current capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostCapacity {
    /// `host.id`.
    pub host_id: i32,
    /// Current capacity.
    pub capacity: f64,
}

/// Why a capacity change was not made.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// No host of that name.
    #[error("no Koji host named {0:?}")]
    NoSuchHost(String),
    /// The Koji user to record as the changer does not exist.
    #[error("no Koji user named {0:?} to record the change under")]
    NoSuchUser(String),
    /// Koji itself would not let this user change a host: blocked, or without the `host`
    /// (or `admin`) permission.
    #[error("Koji would not let {user:?} change a host: {reason}")]
    NotAllowed {
        /// The Koji user.
        user: String,
        /// Why, and how to fix it.
        reason: String,
    },
    /// Someone changed the capacity since it was read: nothing was written.
    #[error("capacity of {host:?} is now {found}, not the {expected} the plan was made from")]
    Changed {
        /// Host name.
        host: String,
        /// The capacity the plan expected.
        expected: f64,
        /// The capacity found.
        found: f64,
    },
    /// Koji requires capacity > 1.
    #[error("capacity {0} violates Koji's constraint capacity > 1")]
    TooLow(f64),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] KojiDbError),
}

impl From<tokio_postgres::Error> for CapacityError {
    fn from(error: tokio_postgres::Error) -> Self {
        CapacityError::Database(KojiDbError::Query(error))
    }
}

const CAPACITY_PRE_1_16: &str = "SELECT id, capacity FROM host WHERE name = $1";
const CAPACITY_HOST_CONFIG: &str = "
SELECT h.id, hc.capacity FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active IS TRUE
 WHERE h.name = $1";
const CAPACITY_PRE_1_16_FOR_UPDATE: &str =
    "SELECT id, capacity FROM host WHERE name = $1 FOR UPDATE";
const CAPACITY_HOST_CONFIG_FOR_UPDATE: &str = "
SELECT h.id, hc.capacity FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active IS TRUE
 WHERE h.name = $1 FOR UPDATE OF hc";
/// The user, its status (0 normal, 1 blocked) and whether it holds `host` or `admin`,
/// directly or through an active group membership, as the hub's `hasPerm` counts them.
const CHANGER: &str = "
SELECT u.id, u.status,
       EXISTS (SELECT 1 FROM user_perms up JOIN permissions p ON p.id = up.perm_id
                WHERE up.active AND p.name IN ('host', 'admin')
                  AND (up.user_id = u.id
                       OR up.user_id IN (SELECT ug.group_id FROM user_groups ug
                                          WHERE ug.user_id = u.id AND ug.active)))
  FROM users u WHERE u.name = $1";

/// Koji's `USER_STATUS['NORMAL']`.
const STATUS_NORMAL: i32 = 0;

/// Checks that Koji itself would let `user` change a host (`editHost` asks for the `host`
/// permission of a user who may log in); returns the user's id.
pub async fn check_changer(client: &impl GenericClient, user: &str) -> Result<i32, CapacityError> {
    let row = client
        .query_opt(CHANGER, &[&user])
        .await?
        .ok_or_else(|| CapacityError::NoSuchUser(user.to_string()))?;
    let (id, status, permitted): (i32, i32, bool) = (row.get(0), row.get(1), row.get(2));
    let refuse = |reason: String| CapacityError::NotAllowed {
        user: user.to_string(),
        reason,
    };
    if status != STATUS_NORMAL {
        return Err(refuse(format!(
            "the user is blocked in Koji (status {status}); unblock it with `koji enable-user {user}`"
        )));
    }
    if !permitted {
        return Err(refuse(format!(
            "the user lacks the host permission; grant it with `koji grant-permission host {user}`"
        )));
    }
    Ok(id)
}
const UPDATE_PRE_1_16: &str = "UPDATE host SET capacity = $2 WHERE id = $1";
/// The host's current capacity, or `None` when there is no such host.
pub async fn read_capacity(
    client: &impl GenericClient,
    layout: Layout,
    host: &str,
) -> Result<Option<HostCapacity>, KojiDbError> {
    let query = match layout {
        Layout::Pre116 => CAPACITY_PRE_1_16,
        Layout::HostConfig { .. } => CAPACITY_HOST_CONFIG,
    };
    let row = client.query_opt(query, &[&host]).await?;
    Ok(row.map(|row| HostCapacity {
        host_id: row.get(0),
        capacity: row.get(1),
    }))
}

/// Changes `host`'s capacity from `expected` to `new` in one transaction, recording the Koji
/// user `changed_by` (1.16+). Refuses when Koji would not let `changed_by` change a host
/// (see [`check_changer`]), when the capacity is no longer `expected` (someone changed it
/// since the plan was made) and when `new` is not above 1.
pub async fn change_capacity(
    client: &mut Client,
    layout: Layout,
    host: &str,
    expected: f64,
    new: f64,
    changed_by: &str,
) -> Result<(), CapacityError> {
    if new <= 1.0 || !new.is_finite() {
        return Err(CapacityError::TooLow(new));
    }
    let transaction = client.transaction().await?;
    let changer = check_changer(&transaction, changed_by).await?;
    let for_update = match layout {
        Layout::Pre116 => CAPACITY_PRE_1_16_FOR_UPDATE,
        Layout::HostConfig { .. } => CAPACITY_HOST_CONFIG_FOR_UPDATE,
    };
    let row = transaction
        .query_opt(for_update, &[&host])
        .await?
        .ok_or_else(|| CapacityError::NoSuchHost(host.to_string()))?;
    let host_id: i32 = row.get(0);
    let found: f64 = row.get(1);
    if found != expected {
        return Err(CapacityError::Changed {
            host: host.to_string(),
            expected,
            found,
        });
    }
    match layout {
        Layout::Pre116 => {
            transaction
                .execute(UPDATE_PRE_1_16, &[&host_id, &new])
                .await?;
        }
        Layout::HostConfig { .. } => {
            crate::host_config_rows::revoke_and_insert(
                &transaction,
                host_id,
                crate::host_config_rows::ConfigChange::Capacity(new),
                changer,
            )
            .await?;
        }
    }
    transaction.commit().await?;
    Ok(())
}

/// Koji's history (1.16+): a configuration row of `host` with capacity `to`, made by the
/// Koji user `by` at an event at or after `since` (seconds since the epoch).
const CHANGED_SINCE: &str = "
SELECT EXISTS (
    SELECT 1 FROM host_config hc
      JOIN host h ON h.id = hc.host_id
      JOIN events e ON e.id = hc.create_event
      JOIN users u ON u.id = hc.creator_id
     WHERE h.name = $1 AND hc.capacity = $2 AND u.name = $3 AND e.time >= to_timestamp($4))";

/// Whether Koji's history shows `by` setting `host`'s capacity to `to` since `since`
/// (seconds since the epoch). `None` before 1.16, which keeps no history.
pub async fn changed_since(
    client: &impl GenericClient,
    layout: Layout,
    host: &str,
    to: f64,
    by: &str,
    since: f64,
) -> Result<Option<bool>, KojiDbError> {
    match layout {
        Layout::Pre116 => Ok(None),
        Layout::HostConfig { .. } => Ok(Some(
            client
                .query_one(CHANGED_SINCE, &[&host, &to, &by, &since])
                .await?
                .get(0),
        )),
    }
}
