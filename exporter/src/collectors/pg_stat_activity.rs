//! `pg_stat_activity`: the hub database's connections by user and state, how old they are,
//! how many are stale, and how many slots the server has.
//!
//! The runbook's "builders won't connect" failure is connection slots filled by backends a
//! crashed hub left behind; stale connections and slot usage are what its alert compares.
//! Reading other users' `query_start` needs the `pg_monitor` (or `pg_read_all_stats`) role.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use tokio_postgres::Row;

use super::{CollectContext, CollectError};
use crate::metric_families::{Families, Gauges};

/// Label set of `koji_db_connections`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// Database name.
    pub datname: String,
    /// Database user.
    pub usename: String,
    /// Backend state (`active`, `idle`, `idle in transaction`, ...).
    pub state: String,
}

/// Label set of the per-user-and-state ages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
pub struct UserStateLabels {
    /// Database user.
    pub usename: String,
    /// Backend state.
    pub state: String,
}

/// Label set of `koji_db_stale_connections`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
pub struct StaleLabels {
    /// The hub's database: the only one whose connections can be stale. The alert carries
    /// it to the fix, which refuses an alert about another database than its own.
    pub datname: String,
    /// Database user.
    pub usename: String,
}

/// Client backends grouped by database, user and state, with how many of them are stale
/// by the one definition the fix also uses ([`koji_db::stale_connections`]; threshold `$1`),
/// so the alert resolves once the fix has run. Ages are computed by the server, so clocks
/// and time zones never disagree. It reads `pg_stat_get_activity(NULL)`, the function
/// behind `pg_stat_activity`, grouped by oids and named after grouping (users through
/// `pg_get_userbyid`, not the `pg_roles` view): with 500 connections 3.1 ms against 5.1 ms
/// for grouping the view by names.
pub static CONNECTIONS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT coalesce(d.datname, '')::text AS datname,
       CASE WHEN g.usesysid IS NULL THEN '' ELSE pg_get_userbyid(g.usesysid)::text END AS usename,
       g.state, g.connections,
       date_part('epoch', now() - g.oldest_backend) AS max_connection_age,
       date_part('epoch', now() - g.oldest_query) AS max_query_age,
       g.stale
  FROM (SELECT datid, usesysid, coalesce(state, 'unknown') AS state,
               count(*)::float8 AS connections,
               min(backend_start) AS oldest_backend,
               min(query_start) AS oldest_query,
               count(*) FILTER (WHERE {stale})::float8 AS stale
          FROM pg_stat_get_activity(NULL)
         WHERE backend_type = 'client backend'
         GROUP BY 1, 2, 3) g
  LEFT JOIN pg_database d ON d.oid = g.datid",
        stale = koji_db::stale_connections::condition("$1")
    )
});

/// Connection slot settings, and whether this user sees other users' connections in full
/// (without `pg_read_all_stats`, their state and times read as NULL: stale connections
/// would silently count as none).
pub const SLOTS: &str = "
SELECT current_setting('max_connections')::float8 AS max_connections,
       current_setting('superuser_reserved_connections')::float8 AS reserved,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS sees_all,
       current_database()::text AS hub_database";

/// Per (user, state) maxima, folded over databases.
#[derive(Default)]
struct Ages {
    connection: f64,
    query: Option<f64>,
}

/// Reads connections and slots.
pub async fn collect(context: &CollectContext) -> Result<Families, CollectError> {
    let client = context.hub_client().await?;
    let threshold = context.config.database.stale_connection_age.as_secs_f64();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&threshold];
    let (rows, slots) = tokio::try_join!(
        client.query(CONNECTIONS.as_str(), &params),
        client.query(SLOTS, &[])
    )?;
    let slots = slots
        .first()
        .ok_or_else(|| CollectError::Malformed("connection slot settings".into()))?;
    if !slots.get::<_, bool>("sees_all") {
        return Err(CollectError::Privilege(
            "this database user cannot see other users' connections; GRANT pg_monitor (or pg_read_all_stats) TO it".into(),
        ));
    }
    let hub_database: String = slots.get("hub_database");
    let mut families =
        connection_families(&rows, &hub_database, &context.config.database.koji_users);
    families.extend([
        Gauges::single(
            "koji_db_stale_connection_threshold_seconds",
            "Age of last query beyond which a connection counts as stale (configured).",
            threshold,
        ),
        Gauges::single(
            "koji_db_max_connections",
            "The server's max_connections setting.",
            slots.get("max_connections"),
        ),
        Gauges::single(
            "koji_db_superuser_reserved_connections",
            "Slots of max_connections reserved for superusers.",
            slots.get("reserved"),
        ),
    ]);
    Ok(families)
}

/// Counts, ages and stale counts from the rows of [`CONNECTIONS`]; every user in
/// `koji_users` gets a stale count in `hub_database`, 0 when it has no connection.
fn connection_families(rows: &[Row], hub_database: &str, koji_users: &[String]) -> Families {
    let mut connections = Gauges::new(
        "koji_db_connections",
        "Client connections to the database server by database, user and state.",
    );
    let mut ages: BTreeMap<UserStateLabels, Ages> = BTreeMap::new();
    let mut stale: BTreeMap<String, f64> =
        koji_users.iter().map(|user| (user.clone(), 0.0)).collect();
    for row in rows {
        let usename: String = row.get("usename");
        let state: String = row.get("state");
        connections.push(
            ConnectionLabels {
                datname: row.get("datname"),
                usename: usename.clone(),
                state: state.clone(),
            },
            row.get("connections"),
        );
        let labels = UserStateLabels {
            usename: usename.clone(),
            state,
        };
        let entry = ages.entry(labels).or_default();
        let connection_age: Option<f64> = row.get("max_connection_age");
        entry.connection = entry.connection.max(connection_age.unwrap_or(0.0));
        if let Some(query_age) = row.get::<_, Option<f64>>("max_query_age") {
            entry.query = Some(entry.query.map_or(query_age, |age| age.max(query_age)));
        }
        *stale.entry(usename).or_default() += row.get::<_, f64>("stale");
    }

    let mut connection_age = Gauges::new(
        "koji_db_connection_max_age_seconds",
        "Age of the oldest connection by user and state.",
    );
    let mut query_age = Gauges::new(
        "koji_db_query_max_age_seconds",
        "Time since the oldest last-query start by user and state.",
    );
    for (labels, age) in ages {
        connection_age.push(labels.clone(), age.connection);
        if let Some(query) = age.query {
            query_age.push(labels, query);
        }
    }
    let mut stale_connections = Gauges::new(
        "koji_db_stale_connections",
        "Connections to the hub's database whose last query started longer ago than the stale threshold, by user",
    );
    for (usename, count) in stale {
        stale_connections.push(
            StaleLabels {
                datname: hub_database.to_owned(),
                usename,
            },
            count,
        );
    }
    vec![
        connections.boxed(),
        connection_age.boxed(),
        query_age.boxed(),
        stale_connections.boxed(),
    ]
}
