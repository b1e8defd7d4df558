//! Precise Koji rows for tests that assert exact metric values.
//!
//! Writes the tables the way the hub does for each layout: a `users` row per host, the
//! versioned `host_config` / `host_channels` rows with a creator, revoked history rows.

use tokio_postgres::Client;

use crate::KojiVersion;

/// A builder to insert.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Host name (any text: tests use hostile ones too).
    pub name: String,
    /// Space-separated arches.
    pub arches: String,
    /// Current capacity (Koji requires > 1).
    pub capacity: f64,
    /// A capacity the host had before; written as a revoked `host_config` row in 1.16+ layouts.
    pub previous_capacity: Option<f64>,
    /// Reported task load.
    pub task_load: f64,
    /// Reported readiness.
    pub ready: bool,
    /// Administrative enabled flag.
    pub enabled: bool,
    /// Channel names; created when missing.
    pub channels: Vec<String>,
    /// Seconds since the last check-in (`host.update_time`, 1.33+ only); `None` leaves it NULL.
    pub update_age_seconds: Option<f64>,
}

impl HostSpec {
    /// A ready, enabled x86_64 builder in the `default` channel with capacity 4.
    pub fn new(name: &str) -> HostSpec {
        HostSpec {
            name: name.to_string(),
            arches: "x86_64 i686".into(),
            capacity: 4.0,
            previous_capacity: None,
            task_load: 0.0,
            ready: true,
            enabled: true,
            channels: vec!["default".into()],
            update_age_seconds: Some(5.0),
        }
    }
}

/// Koji task states, with the hub's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting in the queue.
    Free = 0,
    /// Running on a host.
    Open = 1,
    /// Finished successfully.
    Closed = 2,
    /// Canceled.
    Canceled = 3,
    /// Assigned to a host, not yet started.
    Assigned = 4,
    /// Finished with a failure.
    Failed = 5,
}

/// A task to insert.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// Task state.
    pub state: TaskState,
    /// Channel name (must exist).
    pub channel: String,
    /// Host id, for open and assigned tasks.
    pub host_id: Option<i32>,
    /// Seconds since the task was created.
    pub age_seconds: f64,
}

/// Ensures a Koji user exists and returns its id. `usertype` 0 is a normal user, 1 a host.
pub async fn ensure_user(
    client: &Client,
    name: &str,
    usertype: i32,
) -> Result<i32, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO users (name, status, usertype) VALUES ($1, 0, $2)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &usertype],
        )
        .await?;
    let row = client
        .query_one("SELECT id FROM users WHERE name = $1", &[&name])
        .await?;
    Ok(row.get(0))
}

/// Grants Koji permission `perm` (made if missing) to `user`, as `koji grant-permission`.
pub async fn grant_permission(
    client: &Client,
    user: &str,
    perm: &str,
) -> Result<(), tokio_postgres::Error> {
    let user_id = ensure_user(client, user, 0).await?;
    client
        .execute(
            "INSERT INTO permissions (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&perm],
        )
        .await?;
    client
        .execute(
            "INSERT INTO user_perms (user_id, perm_id, creator_id)
             SELECT $1, id, $1 FROM permissions WHERE name = $2
             ON CONFLICT DO NOTHING",
            &[&user_id, &perm],
        )
        .await?;
    Ok(())
}

/// The remediator's Koji user, as README's setup makes it: a normal user with the `host`
/// permission (`koji add-user`, `koji grant-permission host`).
pub async fn ensure_remediator_user(client: &Client) -> Result<i32, tokio_postgres::Error> {
    grant_permission(client, "koji-remediator", "host").await?;
    ensure_user(client, "koji-remediator", 0).await
}

/// Ensures a channel exists and returns its id.
pub async fn ensure_channel(client: &Client, name: &str) -> Result<i32, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO channels (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&name],
        )
        .await?;
    let row = client
        .query_one("SELECT id FROM channels WHERE name = $1", &[&name])
        .await?;
    Ok(row.get(0))
}

/// Inserts a host as the hub's `addHost` (and later `editHost`) would; returns `host.id`.
pub async fn add_host(
    client: &Client,
    version: KojiVersion,
    spec: &HostSpec,
) -> Result<i32, tokio_postgres::Error> {
    let user_id = ensure_user(client, &spec.name, 1).await?;
    let host_id: i32 = if version.has_host_config() {
        insert_versioned_host(client, version, spec, user_id).await?
    } else {
        let row = client
            .query_one(
                "INSERT INTO host (user_id, name, arches, task_load, capacity, ready, enabled)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &user_id,
                    &spec.name,
                    &spec.arches,
                    &spec.task_load,
                    &spec.capacity,
                    &spec.ready,
                    &spec.enabled,
                ],
            )
            .await?;
        row.get(0)
    };
    for channel in &spec.channels {
        let channel_id = ensure_channel(client, channel).await?;
        if version.has_host_config() {
            let admin = ensure_user(client, "kojiadmin", 0).await?;
            client
                .execute(
                    "INSERT INTO host_channels (host_id, channel_id, creator_id) VALUES ($1, $2, $3)",
                    &[&host_id, &channel_id, &admin],
                )
                .await?;
        } else {
            client
                .execute(
                    "INSERT INTO host_channels (host_id, channel_id) VALUES ($1, $2)",
                    &[&host_id, &channel_id],
                )
                .await?;
        }
    }
    Ok(host_id)
}

async fn insert_versioned_host(
    client: &Client,
    version: KojiVersion,
    spec: &HostSpec,
    user_id: i32,
) -> Result<i32, tokio_postgres::Error> {
    let admin = ensure_user(client, "kojiadmin", 0).await?;
    let row = client
        .query_one(
            "INSERT INTO host (user_id, name, task_load, ready) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&user_id, &spec.name, &spec.task_load, &spec.ready],
        )
        .await?;
    let host_id: i32 = row.get(0);
    if version.has_update_time() {
        if let Some(age) = spec.update_age_seconds {
            client
                .execute(
                    "UPDATE host SET update_time = now() - make_interval(secs => $2) WHERE id = $1",
                    &[&host_id, &age],
                )
                .await?;
        }
    }
    if let Some(previous) = spec.previous_capacity {
        // History as editHost leaves it: the old row revoked by the event that created the
        // new one.
        client
            .execute(
                "INSERT INTO host_config (host_id, arches, capacity, enabled, creator_id,
                                          revoke_event, revoker_id, active)
                 VALUES ($1, $2, $3, $4, $5, get_event(), $5, NULL)",
                &[&host_id, &spec.arches, &previous, &spec.enabled, &admin],
            )
            .await?;
    }
    client
        .execute(
            "INSERT INTO host_config (host_id, arches, capacity, enabled, creator_id)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &host_id,
                &spec.arches,
                &spec.capacity,
                &spec.enabled,
                &admin,
            ],
        )
        .await?;
    Ok(host_id)
}

/// Inserts a task; returns `task.id`.
pub async fn add_task(client: &Client, spec: &TaskSpec) -> Result<i32, tokio_postgres::Error> {
    let owner = ensure_user(client, "kojiadmin", 0).await?;
    let channel_id = ensure_channel(client, &spec.channel).await?;
    let state = spec.state as i32;
    // `now() - interval` is timestamptz; the assignment casts it to the column's type in
    // the session time zone, as the hub's own NOW() default does.
    let row = client
        .query_one(
            "INSERT INTO task (state, create_time, channel_id, host_id, owner, method, arch)
             VALUES ($1, now() - make_interval(secs => $2), $3, $4, $5, 'build', 'noarch')
             RETURNING id",
            &[
                &state,
                &spec.age_seconds,
                &channel_id,
                &spec.host_id,
                &owner,
            ],
        )
        .await?;
    Ok(row.get(0))
}
