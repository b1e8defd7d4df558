//! `restart_services`: the runbook's "Restarting Koji" in its order. Restart the hub's
//! services (httpd, then kojira) through the hub host's agent, wait until the hub answers
//! (an XML-RPC `getAPIVersion` on its health URL), give builders a grace period to reconnect
//! by themselves, then restart kojid, through their agents, only on the enabled builders
//! that have not reported to the hub since it came back. A failed step stops the sequence;
//! the run is journaled as failed for on-call.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{ActionContext, ActionError, Plan, Planned};
use crate::actions::kind::ActionKind;
use crate::agent::protocol::{AgentOutcome, AgentRequest, Knobs};

/// Rule parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The hub machine's name, as its agent is known in `[forwarding]`.
    pub hub_host: String,
    /// Hub services, restarted in this order.
    #[serde(default = "default_hub_services")]
    pub hub_services: Vec<String>,
    /// The hub's XML-RPC URL, e.g. `https://koji.example.org/kojihub`.
    pub hub_health_url: String,
    /// How long the hub may take to answer after its restart.
    #[serde(default = "default_hub_wait", with = "humantime_serde")]
    pub hub_wait: Duration,
    /// How long builders get to reconnect by themselves.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub builder_grace: Duration,
    /// The builder daemon.
    #[serde(default = "default_builder_service")]
    pub builder_service: String,
    /// The runbook's order: with more than this share of the database server's connection
    /// slots in use, stale connections are cleared first (`terminate_stale_connections`
    /// of `stale_users`, last query over `stale_older_than` ago); if that does not free
    /// them, nothing is restarted and on-call is told.
    #[serde(default = "default_slots_full")]
    pub slots_full: f64,
    /// Whose stale connections are cleared first.
    #[serde(default = "default_stale_users")]
    pub stale_users: Vec<String>,
    /// How old a last query makes a connection stale.
    #[serde(default = "default_stale_older_than", with = "humantime_serde")]
    pub stale_older_than: Duration,
}

fn default_slots_full() -> f64 {
    0.9
}
fn default_stale_users() -> Vec<String> {
    vec!["koji".into()]
}
fn default_stale_older_than() -> Duration {
    Duration::from_secs(40 * 60)
}

fn default_hub_services() -> Vec<String> {
    vec!["httpd".into(), "kojira".into()]
}
fn default_hub_wait() -> Duration {
    Duration::from_secs(120)
}
fn default_grace() -> Duration {
    Duration::from_secs(180)
}
fn default_builder_service() -> String {
    "kojid".into()
}

impl Params {
    /// Parses and checks a rule's `params` table.
    pub fn from_table(table: &toml::Table) -> Result<Params, String> {
        for key in ["restart_command", "is_active_command"] {
            if table.contains_key(key) {
                return Err(format!("{key} is each machine's own policy: set it in their agents' [agent.restart_local_services], not in a rule"));
            }
        }
        let params: Params = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|error: toml::de::Error| error.to_string())?;
        if !(params.slots_full > 0.0 && params.slots_full <= 1.0) {
            return Err(format!(
                "slots_full {} must be a share of the slots, above 0 and at most 1",
                params.slots_full
            ));
        }
        if params.hub_host.is_empty() || params.hub_services.is_empty() {
            return Err("hub_host and hub_services must be given".into());
        }
        if !(params.hub_health_url.starts_with("http://")
            || params.hub_health_url.starts_with("https://"))
        {
            return Err(format!(
                "hub_health_url {:?} is not an http(s) URL",
                params.hub_health_url
            ));
        }
        Ok(params)
    }
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderedRestartPlan {
    /// Hub machine.
    pub hub_host: String,
    /// Hub services in order.
    pub hub_services: Vec<String>,
    /// Health URL.
    pub hub_health_url: String,
    /// Seconds to wait for the hub.
    pub hub_wait_seconds: f64,
    /// Seconds of grace for builders.
    pub builder_grace_seconds: f64,
    /// Builder daemon.
    pub builder_service: String,
    /// Share of connection slots in use above which stale connections are cleared first.
    #[serde(default = "default_slots_full")]
    pub slots_full: f64,
    /// Whose stale connections are cleared first.
    #[serde(default = "default_stale_users")]
    pub stale_users: Vec<String>,
    /// Seconds since the last query that make a connection stale.
    #[serde(default = "default_stale_older_than_seconds")]
    pub stale_older_than_seconds: f64,
}

fn default_stale_older_than_seconds() -> f64 {
    default_stale_older_than().as_secs_f64()
}

/// Plans the ordered restart (it needs agents and the hub database).
pub async fn plan(context: &ActionContext, params: &Params) -> Result<Planned, ActionError> {
    if context.forwarder.is_none() {
        return Ok(Planned::Refused(
            "restart_services needs [forwarding] to reach the agents".into(),
        ));
    }
    if context.hub.is_none() {
        return Ok(Planned::Refused(
            "restart_services needs the hub database to see which builders reconnected".into(),
        ));
    }
    database_answers(context).await?;
    Ok(Planned::Change(Plan::RestartServices(OrderedRestartPlan {
        hub_host: params.hub_host.clone(),
        hub_services: params.hub_services.clone(),
        hub_health_url: params.hub_health_url.clone(),
        hub_wait_seconds: params.hub_wait.as_secs_f64(),
        builder_grace_seconds: params.builder_grace.as_secs_f64(),
        builder_service: params.builder_service.clone(),
        slots_full: params.slots_full,
        stale_users: params.stale_users.clone(),
        stale_older_than_seconds: params.stale_older_than.as_secs_f64(),
    })))
}

/// Client connections in use and the slots non-superusers may use, server-wide.
const SLOTS: &str = "
SELECT count(*) FILTER (WHERE backend_type = 'client backend')::float8,
       current_setting('max_connections')::float8
         - current_setting('superuser_reserved_connections')::float8
  FROM pg_stat_activity";

/// Connections in use and usable slots.
async fn slots(context: &ActionContext) -> Result<(f64, f64), ActionError> {
    let client = context.hub_client().await?;
    let row = client.query_one(SLOTS, &[]).await?;
    Ok((row.get(0), row.get(1)))
}

/// The runbook: if PostgreSQL is down, restarting Koji does not help; bring it back first.
/// Checked when planning and again before the first restart (an approved plan may run
/// later): the run fails with its notice to on-call, nothing is restarted on a guess.
async fn database_answers(context: &ActionContext) -> Result<(), ActionError> {
    match context.hub_client().await {
        Ok(_) => Ok(()),
        Err(error) => Err(ActionError::NeedsHuman(format!(
            "the hub database does not answer ({error}): restarting Koji would not help, \
             nothing restarted; bring PostgreSQL back first"
        ))),
    }
}

/// A body for the hub's XML-RPC `getAPIVersion`.
const GET_API_VERSION: &str = "<?xml version=\"1.0\"?><methodCall><methodName>getAPIVersion</methodName><params/></methodCall>";

/// Enabled builders that have not checked in since `$1` (seconds since the epoch).
const SILENT_BUILDERS: &str = "
SELECT h.name::text FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active IS TRUE
 WHERE hc.enabled AND (h.update_time IS NULL OR h.update_time < to_timestamp($1))
 ORDER BY h.name";

/// Before 1.33 there is no check-in time: builders not ready are the ones to restart.
const NOT_READY_BUILDERS: &str = "
SELECT h.name::text FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active IS TRUE
 WHERE hc.enabled AND NOT h.ready ORDER BY h.name";

impl OrderedRestartPlan {
    /// One line for the journal.
    pub fn summary(&self) -> String {
        format!(
            "restart {} on {}, wait up to {:.0} s for {} to answer, then after {:.0} s restart {} on enabled builders that have not reconnected",
            self.hub_services.join(" then "),
            self.hub_host,
            self.hub_wait_seconds,
            self.hub_health_url,
            self.builder_grace_seconds,
            self.builder_service
        )
    }

    async fn restart_on(
        &self,
        context: &ActionContext,
        host: &str,
        services: &[String],
        run: i64,
    ) -> Result<String, String> {
        let forwarder = context
            .forwarder
            .as_ref()
            .ok_or("no forwarding configured")?;
        let labels = [("host".to_string(), host.to_string())]
            .into_iter()
            .collect();
        let base = forwarder.agent_url(&labels)?;
        let request = AgentRequest {
            journal: context.journal_id.clone(),
            run,
            action: ActionKind::RestartLocalServices,
            labels,
            plan_only: false,
            keep_buildroots: Vec::new(),
            knobs: Knobs {
                services: Some(services.to_vec()),
                ..Knobs::default()
            },
        };
        let response = forwarder
            .send(&base, &request)
            .await
            .map_err(|error| error.to_string())?;
        if response.state == AgentOutcome::Succeeded {
            Ok(format!("{host}: {}", response.outcome))
        } else {
            Err(format!(
                "{host}: {:?} ({})",
                response.state, response.outcome
            ))
        }
    }

    async fn hub_answers(&self) -> bool {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build();
        let Ok(client) = client else { return false };
        let response = client
            .post(&self.hub_health_url)
            .header("Content-Type", "text/xml")
            .body(GET_API_VERSION)
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => response
                .text()
                .await
                .is_ok_and(|body| body.contains("<methodResponse>") && !body.contains("<fault>")),
            _ => false,
        }
    }

    fn params(&self) -> Params {
        Params {
            hub_host: self.hub_host.clone(),
            hub_services: self.hub_services.clone(),
            hub_health_url: self.hub_health_url.clone(),
            hub_wait: Duration::from_secs_f64(self.hub_wait_seconds),
            builder_grace: Duration::from_secs_f64(self.builder_grace_seconds),
            builder_service: self.builder_service.clone(),
            slots_full: self.slots_full,
            stale_users: self.stale_users.clone(),
            stale_older_than: Duration::from_secs_f64(self.stale_older_than_seconds),
        }
    }

    /// The runbook's order: stale connections first when the slots are nearly all used;
    /// what was done, in words (empty when nothing was needed).
    async fn clear_stale_when_slots_full(
        &self,
        context: &ActionContext,
    ) -> Result<String, ActionError> {
        let (used, usable) = slots(context).await?;
        if used <= usable * self.slots_full {
            return Ok(String::new());
        }
        let stale = super::terminate_stale_connections::Params {
            users: self.stale_users.clone(),
            older_than: Duration::from_secs_f64(self.stale_older_than_seconds),
            max_per_run: i64::MAX,
            hub_metrics_url: None,
            hub_service: "httpd".into(),
        };
        let planned =
            super::terminate_stale_connections::plan(context, &stale, &BTreeMap::new()).await?;
        let (cleared, terminated) = match planned {
            Planned::Change(Plan::TerminateStaleConnections(plan)) => {
                (plan.apply(context).await?, true)
            }
            Planned::Change(_) => (String::new(), false),
            Planned::NothingToDo(reason) | Planned::Refused(reason) => (reason, false),
        };
        let (now_used, _) = slots(context).await?;
        if now_used > usable * self.slots_full {
            let said = format!(
                "{used:.0} of {usable:.0} connection slots were in use; clearing stale \
                 connections first ({cleared}) left {now_used:.0}: nothing restarted, kojid \
                 and the hub would not get a connection either"
            );
            // Stale connections terminated are a change; none terminated is none.
            return Err(if terminated {
                ActionError::NotVerified(said)
            } else {
                ActionError::NeedsHuman(said)
            });
        }
        Ok(format!(
            "{used:.0} of {usable:.0} connection slots were in use, so stale connections \
             were cleared first: {cleared} ({now_used:.0} in use now); "
        ))
    }

    /// Runs the sequence; the first failing step ends it.
    pub async fn apply(&self, context: &ActionContext, run: i64) -> Result<String, ActionError> {
        let params = self.params();
        let failed = |step: String| ActionError::NotVerified(step);
        database_answers(context).await?;
        let cleared = self.clear_stale_when_slots_full(context).await?;
        let restarted_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let hub = self
            .restart_on(context, &self.hub_host, &self.hub_services, run)
            .await
            .map_err(|e| failed(format!("hub restart failed, sequence stopped: {e}")))?;
        let waiting = Instant::now();
        while !self.hub_answers().await {
            if waiting.elapsed() > params.hub_wait {
                return Err(failed(format!(
                    "{hub}; the hub did not answer within {:.0} s, builders left alone",
                    self.hub_wait_seconds
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let answered = waiting.elapsed().as_secs_f64();
        tokio::time::sleep(params.builder_grace).await;
        let client = context.hub_client().await?;
        let layout = koji_db::detect_layout(&client).await?;
        let rows = if layout.has_update_time() {
            client.query(SILENT_BUILDERS, &[&restarted_at]).await?
        } else {
            client.query(NOT_READY_BUILDERS, &[]).await?
        };
        let silent: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        let mut done = Vec::new();
        for builder in &silent {
            let restarted = self
                .restart_on(context, builder, std::slice::from_ref(&self.builder_service), run)
                .await
                .map_err(|e| failed(format!("{hub}; hub answered after {answered:.1} s; builder restart failed, sequence stopped: {e}")))?;
            done.push(restarted);
        }
        Ok(format!(
            "{cleared}{hub}; hub answered after {answered:.1} s; {}",
            if done.is_empty() {
                "every builder reconnected by itself".to_string()
            } else {
                format!(
                    "restarted {} on {}",
                    self.builder_service,
                    silent.join(", ")
                )
            }
        ))
    }

    /// Checks the hub answers.
    pub async fn verify(&self, _context: &ActionContext) -> Result<String, ActionError> {
        if self.hub_answers().await {
            Ok(format!("{} answers", self.hub_health_url))
        } else {
            Err(ActionError::NotVerified(format!(
                "{} does not answer",
                self.hub_health_url
            )))
        }
    }
}
