//! `terminate_stale_connections`: the runbook's fix for "kojid won't start / builders won't
//! connect": database slots filled by backends a crashed hub left behind. Terminates the
//! configured users' backends whose last query started longer ago than the threshold
//! (the runbook: 40 minutes), oldest first, at most `max_per_run`.
//!
//! Stale means what the exporter's `koji_db_stale_connections` counts (one definition,
//! [`koji_db::stale_connections`]): only backends of the hub's own database (the one the
//! remediator connects to: other databases on the same server are none of Koji's business)
//! that ran a query, never another user's backend, never the remediator's own (by
//! `application_name` and by pid). The conditions are checked again, atomically, at the
//! moment of termination: a pid reused by a fresh backend since the plan is left alone.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ActionContext, ActionError, Planned};
use crate::database::APPLICATION_NAME;
use crate::lifecycle::Found;

/// Rule parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Database users whose backends may be terminated (the hub's is usually `koji`).
    #[serde(default = "default_users")]
    pub users: Vec<String>,
    /// A backend whose last query started longer ago than this is stale.
    #[serde(default = "default_older_than", with = "humantime_serde")]
    pub older_than: Duration,
    /// At most this many backends per run.
    #[serde(default = "default_max_per_run")]
    pub max_per_run: i64,
    /// The runbook's own rule, optional: only backends whose last query started before the
    /// running hub did belong to a dead hub. The hub's start time is read from the hub
    /// host's koji-exporter (`koji_service_start_time_seconds{service=...}`) at plan time;
    /// if it cannot be read, nothing is terminated.
    #[serde(default)]
    pub hub_metrics_url: Option<String>,
    /// The service whose start time is the hub's (default `httpd`).
    #[serde(default = "default_hub_service")]
    pub hub_service: String,
}

fn default_hub_service() -> String {
    "httpd".into()
}

fn default_users() -> Vec<String> {
    vec!["koji".into()]
}

fn default_older_than() -> Duration {
    Duration::from_secs(40 * 60)
}

fn default_max_per_run() -> i64 {
    100
}

impl Params {
    /// Parses and checks a rule's `params` table.
    pub fn from_table(table: &toml::Table) -> Result<Params, String> {
        let params: Params = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|error: toml::de::Error| error.to_string())?;
        if params.users.is_empty() || params.users.iter().any(String::is_empty) {
            return Err("users must name at least one database user".into());
        }
        if params.older_than < Duration::from_secs(1) {
            return Err("older_than must be at least 1s".into());
        }
        if let Some(url) = &params.hub_metrics_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("hub_metrics_url {url:?} is not an http(s) URL"));
            }
        }
        if params.max_per_run < 1 {
            return Err("max_per_run must be at least 1".into());
        }
        Ok(params)
    }

    /// The cooldown key: the users whose backends this acts on.
    pub fn target(&self) -> String {
        format!("users:{}", self.users.join(","))
    }
}

/// One backend to terminate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    /// Server process id.
    pub pid: i32,
    /// Database user.
    pub usename: String,
    /// Database.
    pub datname: String,
    /// Backend state.
    pub state: String,
    /// Seconds since its last query started.
    pub query_age_seconds: f64,
}

/// The plan: which backends, under which conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminatePlan {
    /// Users acted on.
    pub users: Vec<String>,
    /// Threshold in seconds.
    pub older_than_seconds: f64,
    /// The backends, oldest first.
    pub backends: Vec<Backend>,
    /// The hub's start time (seconds since the epoch), when the rule asks that backends be
    /// older than the running hub.
    pub hub_started_at: Option<f64>,
    /// The statement run for each of them.
    pub sql: String,
}

/// Stale backends of the users (stale by the definition the exporter's count also uses:
/// [`koji_db::stale_connections`]), oldest first, never the remediator's own.
static STALE_BACKENDS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT pid, usename::text, coalesce(datname, '')::text, coalesce(state, ''),
       extract(epoch FROM now() - query_start)::float8
  FROM pg_stat_activity
 WHERE {stale}
   AND usename = ANY($1)
   AND pid <> pg_backend_pid()
   AND application_name <> $3
   AND ($5::float8 IS NULL OR query_start < to_timestamp($5))
 ORDER BY query_start
 LIMIT $4",
        stale = koji_db::stale_connections::condition("$2")
    )
});

/// Terminates one planned backend only if it still meets every condition.
static TERMINATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT pg_terminate_backend(pid)
  FROM pg_stat_activity
 WHERE pid = $1
   AND {stale}
   AND usename = ANY($2)
   AND pid <> pg_backend_pid()
   AND application_name <> $4
   AND ($5::float8 IS NULL OR query_start < to_timestamp($5))",
        stale = koji_db::stale_connections::condition("$3")
    )
});

/// Planned backends that still meet the conditions after termination.
static STILL_STALE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
SELECT count(*) FROM pg_stat_activity
 WHERE pid = ANY($1)
   AND {stale}
   AND usename = ANY($2)
   AND ($4::float8 IS NULL OR query_start < to_timestamp($4))",
        stale = koji_db::stale_connections::condition("$3")
    )
});

/// Plans the termination. An alert that names a database (`datname`, as the exporter's
/// `koji_db_stale_connections` does) must name the remediator's hub database: stale
/// connections elsewhere are another exporter's or another server's business.
pub async fn plan(
    context: &ActionContext,
    params: &Params,
    labels: &BTreeMap<String, String>,
) -> Result<Planned, ActionError> {
    let hub_started_at = match &params.hub_metrics_url {
        None => None,
        Some(url) => match hub_start_time(url, &params.hub_service).await {
            Ok(started) => Some(started),
            Err(reason) => {
                return Ok(Planned::Refused(format!(
                    "cannot tell when the hub started ({reason}); not terminating on a guess"
                )))
            }
        },
    };
    let client = context.hub_client().await?;
    // Without pg_read_all_stats other users' query_start reads as NULL: none of their
    // backends would ever look stale, and "nothing to do" would hide the missing grant.
    // (A user's own sessions are always visible to it.)
    let visibility = client
        .query_one(
            "SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'), current_user::text, \
                    current_database()::text",
            &[],
        )
        .await?;
    let (sees_all, me, database): (bool, String, String) =
        (visibility.get(0), visibility.get(1), visibility.get(2));
    if let Some(alerted) = labels.get("datname") {
        if *alerted != database {
            return Ok(Planned::Refused(format!(
                "the alert is about database {alerted:?}, but this remediator's hub database is {database:?}"
            )));
        }
    }
    if !sees_all && params.users.iter().any(|user| *user != me) {
        return Ok(Planned::Refused(format!(
            "the remediator's database user {me} cannot see other users' connections; GRANT pg_read_all_stats (and pg_signal_backend) TO it"
        )));
    }
    let seconds = params.older_than.as_secs_f64();
    let rows = client
        .query(
            STALE_BACKENDS.as_str(),
            &[
                &params.users,
                &seconds,
                &APPLICATION_NAME,
                &params.max_per_run,
                &hub_started_at,
            ],
        )
        .await?;
    if rows.is_empty() {
        let since_hub = if hub_started_at.is_some() {
            " from before the hub started"
        } else {
            ""
        };
        return Ok(Planned::NothingToDo(format!(
            "no backend of {} idle for more than {}{since_hub}",
            params.users.join(", "),
            humantime::format_duration(params.older_than)
        )));
    }
    let backends = rows
        .iter()
        .map(|row| Backend {
            pid: row.get(0),
            usename: row.get(1),
            datname: row.get(2),
            state: row.get(3),
            query_age_seconds: row.get(4),
        })
        .collect();
    Ok(Planned::Change(super::Plan::TerminateStaleConnections(
        TerminatePlan {
            users: params.users.clone(),
            older_than_seconds: seconds,
            hub_started_at,
            backends,
            sql: TERMINATE.trim().to_string(),
        },
    )))
}

impl TerminatePlan {
    /// One line for the journal.
    pub fn summary(&self) -> String {
        let pids: Vec<String> = self.backends.iter().map(|b| b.pid.to_string()).collect();
        let before_hub = match self.hub_started_at {
            Some(started) => format!(" and before the hub started (epoch {started:.0})"),
            None => String::new(),
        };
        format!(
            "terminate {} backend(s) of {} whose last query started over {:.0} s ago{before_hub}: pids {}",
            self.backends.len(),
            self.users.join(", "),
            self.older_than_seconds,
            pids.join(", ")
        )
    }

    /// Terminates each planned backend that still qualifies.
    pub async fn apply(&self, context: &ActionContext) -> Result<String, ActionError> {
        let client = context.hub_client().await?;
        let mut terminated = 0;
        for backend in &self.backends {
            let rows = client
                .query(
                    TERMINATE.as_str(),
                    &[
                        &backend.pid,
                        &self.users,
                        &self.older_than_seconds,
                        &APPLICATION_NAME,
                        &self.hub_started_at,
                    ],
                )
                .await?;
            if rows.first().is_some_and(|row| row.get::<_, bool>(0)) {
                terminated += 1;
            }
        }
        Ok(format!(
            "terminated {terminated} of {} planned backend(s)",
            self.backends.len()
        ))
    }

    /// Checks that none of the planned backends is still there and stale.
    pub async fn verify(&self, context: &ActionContext) -> Result<String, ActionError> {
        let client = context.hub_client().await?;
        // Termination is asynchronous in the server: give backends a moment to exit.
        for _ in 0..50 {
            if self.still_stale(&client).await? == 0 {
                return Ok(format!(
                    "none of the {} planned backend(s) remains",
                    self.backends.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ActionError::NotVerified(
            "planned backends still present after 5 s".into(),
        ))
    }
}

/// Reads the hub's start time from its exporter: the `koji_service_start_time_seconds`
/// sample of `service`. The exposition is scanned line by line for that one sample rather
/// than parsed in full: it is the only value needed, and a line-based format.
async fn hub_start_time(url: &str, service: &str) -> Result<f64, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|error| error.to_string())?;
    let text = client
        .get(url)
        .send()
        .await
        .and_then(|response| response.error_for_status())
        .map_err(|error| format!("{url}: {error}"))?
        .text()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    let wanted = format!("service=\"{service}\"");
    text.lines()
        .filter(|line| line.starts_with("koji_service_start_time_seconds{"))
        .find(|line| line.contains(&wanted))
        .and_then(|line| line.rsplit_once('}'))
        .and_then(|(_, value)| value.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{url} has no koji_service_start_time_seconds for {service}"))
}

impl TerminatePlan {
    /// Whether this termination, cut off, took effect: none of the planned backends still
    /// there and stale is applied, all of them still there is not, some is cannot be told.
    pub async fn find_applied(&self, context: &ActionContext) -> Result<Found, ActionError> {
        let client = context.hub_client().await?;
        Ok(match self.still_stale(&client).await? {
            0 => Found::Applied,
            n if n == self.backends.len() as i64 => Found::NotApplied,
            _ => Found::Unknown,
        })
    }

    /// How many planned backends are still there and stale.
    async fn still_stale(&self, client: &deadpool_postgres::Object) -> Result<i64, ActionError> {
        let pids: Vec<i32> = self.backends.iter().map(|b| b.pid).collect();
        Ok(client
            .query_one(
                STILL_STALE.as_str(),
                &[
                    &pids,
                    &self.users,
                    &self.older_than_seconds,
                    &self.hub_started_at,
                ],
            )
            .await?
            .get(0))
    }
}
