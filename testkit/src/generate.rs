//! Realistic Koji data at a chosen scale, generated inside the server.
//!
//! Everything is made with `generate_series`, so five million finished tasks take seconds,
//! not a round trip each. Values follow fixed formulas of the row number: the same scale
//! always gives the same data, apart from timestamps relative to `now()`.

use std::sync::LazyLock;

use tokio_postgres::Client;

use crate::populate::{ensure_remediator_user, ensure_user, grant_permission};
use crate::KojiVersion;

/// How much data to generate.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Builders.
    pub hosts: i32,
    /// Channels beyond the eight Koji creates.
    pub extra_channels: i32,
    /// Tasks in FREE, OPEN or ASSIGNED state.
    pub active_tasks: i32,
    /// Tasks in CLOSED, CANCELED or FAILED state: the bulk of a real `task` table.
    pub finished_tasks: i32,
}

impl Scale {
    /// A small hub: 100 hosts, 100,000 finished tasks.
    pub const SMALL: Scale = Scale {
        hosts: 100,
        extra_channels: 4,
        active_tasks: 300,
        finished_tasks: 100_000,
    };
    /// A large hub: 2,000 hosts, 5,000,000 finished tasks.
    pub const LARGE: Scale = Scale {
        hosts: 2_000,
        extra_channels: 12,
        active_tasks: 3_000,
        finished_tasks: 5_000_000,
    };
}

const ADD_CHANNELS: &str = "
INSERT INTO channels (name)
SELECT 'channel-' || lpad(n::text, 3, '0') FROM generate_series(1, $1::int) n";

/// Builders named as a site names them, numbered per architecture: buildvm-x86-01,
/// buildvm-a64-01, buildvm-ppc-01, buildvm-s390-01, buildvm-x86-02, ... (the names in
/// the captured Alertmanager payloads and the README's quick start).
const ADD_HOST_USERS: &str = "
INSERT INTO users (name, status, usertype)
SELECT 'buildvm-' || (ARRAY['x86','a64','ppc','s390'])[1 + (n - 1) % 4] || '-'
       || lpad(number, greatest(2, length(number)), '0') || '.example.org', 0, 1
  FROM generate_series(1, $1::int) n,
       LATERAL (SELECT ((n - 1) / 4 + 1)::text AS number) numbered";

/// A host's arches, from the architecture in its name.
const ARCHES_BY_NAME: &str = "CASE split_part(name, '-', 2)
    WHEN 'x86' THEN 'x86_64 i686' WHEN 'a64' THEN 'aarch64' WHEN 'ppc' THEN 'ppc64le'
    ELSE 's390x' END";

static ADD_HOSTS_PRE_1_16: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
INSERT INTO host (user_id, name, arches, task_load, capacity, ready, enabled)
SELECT id, name, {ARCHES_BY_NAME},
       (id % 5)::float8, 2 + (id % 7), id % 17 <> 0, id % 31 <> 0
  FROM users WHERE usertype = 1"
    )
});

const ADD_HOSTS: &str = "
INSERT INTO host (user_id, name, task_load, ready)
SELECT id, name, (id % 5)::float8, id % 17 <> 0 FROM users WHERE usertype = 1";

static ADD_HOST_CONFIG: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
INSERT INTO host_config (host_id, arches, capacity, enabled, creator_id)
SELECT id, {ARCHES_BY_NAME}, 2 + (user_id % 7), user_id % 31 <> 0, $1::int
  FROM host"
    )
});

const SET_UPDATE_TIME: &str =
    "UPDATE host SET update_time = now() - make_interval(secs => id % 90)";

const ADD_HOST_CHANNELS_PRE_1_16: &str = "
INSERT INTO host_channels (host_id, channel_id)
SELECT h.id, c.id FROM host h JOIN channels c
    ON c.name = 'default' OR c.id = 2 + h.id % ((SELECT count(*) FROM channels)::int - 1)";

const ADD_HOST_CHANNELS: &str = "
INSERT INTO host_channels (host_id, channel_id, creator_id)
SELECT h.id, c.id, $1::int FROM host h JOIN channels c
    ON c.name = 'default' OR c.id = 2 + h.id % ((SELECT count(*) FROM channels)::int - 1)";

/// Finished tasks: 70% CLOSED, 10% CANCELED, 20% FAILED, one every half second going back
/// from a day ago, spread over hosts and channels.
const ADD_FINISHED_TASKS: &str = "
INSERT INTO task (state, create_time, start_time, completion_time, channel_id, host_id,
                  owner, method, arch, weight)
SELECT (ARRAY[2,2,2,2,2,2,2,3,5,5])[1 + n % 10],
       now() - make_interval(secs => 86400 + n * 0.5),
       now() - make_interval(secs => 86400 + n * 0.5 - 10),
       now() - make_interval(secs => 86400 + n * 0.5 - 600),
       1 + n % (SELECT count(*) FROM channels)::int,
       (SELECT min(id) FROM host) + n % $2::int,
       $3::int, 'buildArch', 'x86_64', 1.0
  FROM generate_series(1, $1::int) n";

/// Active tasks: half FREE (no host), a third OPEN, the rest ASSIGNED, created up to two
/// hours ago.
const ADD_ACTIVE_TASKS: &str = "
INSERT INTO task (state, create_time, channel_id, host_id, owner, method, arch, weight)
SELECT s.state, now() - make_interval(secs => n % 7200),
       1 + n % (SELECT count(*) FROM channels)::int,
       CASE WHEN s.state = 0 THEN NULL ELSE (SELECT min(id) FROM host) + n % $2::int END,
       $3::int, 'buildArch', 'x86_64', 1.5
  FROM generate_series(1, $1::int) n,
       LATERAL (SELECT CASE WHEN n % 6 < 3 THEN 0 WHEN n % 6 < 5 THEN 1 ELSE 4 END AS state) s";

/// Fills an empty Koji schema of `version` with data of `scale`, then refreshes the
/// planner's statistics as autovacuum would on a real hub.
pub async fn generate(
    client: &Client,
    version: KojiVersion,
    scale: Scale,
) -> Result<(), tokio_postgres::Error> {
    let admin = ensure_user(client, "kojiadmin", 0).await?;
    grant_permission(client, "kojiadmin", "admin").await?;
    // koji-remediator's Koji user, as README's setup makes it.
    ensure_remediator_user(client).await?;
    client
        .execute(ADD_CHANNELS, &[&scale.extra_channels])
        .await?;
    client.execute(ADD_HOST_USERS, &[&scale.hosts]).await?;
    if version.has_host_config() {
        client.execute(ADD_HOSTS, &[]).await?;
        client.execute(ADD_HOST_CONFIG.as_str(), &[&admin]).await?;
        client.execute(ADD_HOST_CHANNELS, &[&admin]).await?;
        if version.has_update_time() {
            client.execute(SET_UPDATE_TIME, &[]).await?;
        }
    } else {
        client.execute(ADD_HOSTS_PRE_1_16.as_str(), &[]).await?;
        client.execute(ADD_HOST_CHANNELS_PRE_1_16, &[]).await?;
    }
    client
        .execute(
            ADD_FINISHED_TASKS,
            &[&scale.finished_tasks, &scale.hosts, &admin],
        )
        .await?;
    client
        .execute(
            ADD_ACTIVE_TASKS,
            &[&scale.active_tasks, &scale.hosts, &admin],
        )
        .await?;
    client.batch_execute("ANALYZE").await?;
    Ok(())
}
