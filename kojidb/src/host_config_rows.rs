//! One change of a host's versioned configuration (Koji 1.16+), made as Koji's hub makes
//! it in `edit_host` and `set_host_enabled`: the active `host_config` row is revoked and a
//! new active row carrying every other column over is inserted, with one new event as both
//! the old row's `revoke_event` and the new row's `create_event`, credited to the changer.
//! Koji's `list-history --host` then shows one entry with the old and the new value.

use tokio_postgres::Transaction;

/// The one column a change sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigChange {
    /// `capacity`, as `editHost --capacity` sets it.
    Capacity(f64),
    /// `enabled`, as `enableHost` / `disableHost` set it.
    Enabled(bool),
}

/// One event for the whole change, as Koji's `get_event()` gives one per transaction.
const NEW_EVENT: &str = "SELECT get_event()";
const REVOKE_ACTIVE: &str = "
UPDATE host_config SET revoke_event = $2, revoker_id = $3, active = NULL
 WHERE host_id = $1 AND active IS TRUE";
const INSERT_ACTIVE: &str = "
INSERT INTO host_config (host_id, arches, capacity, description, comment, enabled,
                         create_event, creator_id)
SELECT host_id, arches, COALESCE($2, capacity), description, comment, COALESCE($5, enabled),
       $3, $4
  FROM host_config WHERE host_id = $1 AND revoke_event = $3";

/// Makes `change` to host `host_id` inside `transaction`, credited to the Koji user
/// `user_id`; returns the event.
pub async fn revoke_and_insert(
    transaction: &Transaction<'_>,
    host_id: i32,
    change: ConfigChange,
    user_id: i32,
) -> Result<i32, tokio_postgres::Error> {
    let (capacity, enabled) = match change {
        ConfigChange::Capacity(capacity) => (Some(capacity), None),
        ConfigChange::Enabled(enabled) => (None, Some(enabled)),
    };
    let event: i32 = transaction.query_one(NEW_EVENT, &[]).await?.get(0);
    transaction
        .execute(REVOKE_ACTIVE, &[&host_id, &event, &user_id])
        .await?;
    transaction
        .execute(
            INSERT_ACTIVE,
            &[&host_id, &capacity, &event, &user_id, &enabled],
        )
        .await?;
    Ok(event)
}
