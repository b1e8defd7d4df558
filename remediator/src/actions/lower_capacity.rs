//! `lower_capacity`: the runbook's fix for an overloaded builder (and repeated OOM): lower
//! its capacity in Koji, by a step or to a value, never below the configured floor and
//! never to 1 or less (Koji's `CHECK (capacity > 1)`). The change is made as Koji's own
//! `editHost` makes it (see `koji_db::capacity`), so Koji's history shows it. When the alert
//! resolves and the rule says so, the previous capacity is restored the same way, unless
//! someone changed it meanwhile.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ActionContext, ActionError, Plan, Planned};
use crate::lifecycle::Found;

/// Rule parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Lower by this much (default 1).
    #[serde(default)]
    pub step: Option<f64>,
    /// Or set to this value.
    #[serde(default)]
    pub to: Option<f64>,
    /// Never below this (must be above 1).
    #[serde(default = "default_floor")]
    pub floor: f64,
    /// The alert label naming the Koji host.
    #[serde(default = "default_host_label")]
    pub host_label: String,
}

fn default_floor() -> f64 {
    2.0
}

fn default_host_label() -> String {
    "host".into()
}

impl Params {
    /// Parses and checks a rule's `params` table.
    pub fn from_table(table: &toml::Table) -> Result<Params, String> {
        let params: Params = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|error: toml::de::Error| error.to_string())?;
        if !(params.floor > 1.0 && params.floor.is_finite()) {
            return Err(format!(
                "floor {} must be above 1 (Koji requires capacity > 1)",
                params.floor
            ));
        }
        match (params.step, params.to) {
            (Some(_), Some(_)) => Err("give step or to, not both".into()),
            (Some(step), None) if !(step > 0.0 && step.is_finite()) => {
                Err(format!("step {step} must be positive"))
            }
            (None, Some(to)) if !(to >= params.floor && to.is_finite()) => {
                Err(format!("to {to} is below the floor {}", params.floor))
            }
            _ => Ok(params),
        }
    }

    /// The cooldown key: the host named by the alert.
    pub fn target(&self, labels: &BTreeMap<String, String>) -> Result<String, String> {
        super::host_target(labels, &self.host_label)
    }
}

/// The plan: one host, from one capacity to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityPlan {
    /// Koji host name.
    pub host: String,
    /// Capacity when planned (restored to this later).
    pub from: f64,
    /// Capacity after.
    pub to: f64,
    /// `pre-1.16` or `host_config`.
    pub layout: String,
}

/// Plans lowering the capacity of the alert's host.
pub async fn plan(
    context: &ActionContext,
    params: &Params,
    labels: &BTreeMap<String, String>,
) -> Result<Planned, ActionError> {
    let Some(host) = labels.get(&params.host_label).filter(|h| !h.is_empty()) else {
        return Ok(Planned::Refused(format!(
            "the alert has no `{}` label",
            params.host_label
        )));
    };
    let client = context.hub_client().await?;
    let layout = koji_db::detect_layout(&client).await?;
    let Some(current) = koji_db::capacity::read_capacity(&**client, layout, host).await? else {
        return Ok(Planned::Refused(format!("no Koji host named {host:?}")));
    };
    let wanted = params
        .to
        .unwrap_or(current.capacity - params.step.unwrap_or(1.0));
    let new = wanted.max(params.floor);
    if new >= current.capacity {
        return Ok(Planned::NothingToDo(format!(
            "capacity of {host} is {} already, at or below the floor {}",
            current.capacity, params.floor
        )));
    }
    Ok(Planned::Change(Plan::LowerCapacity(CapacityPlan {
        host: host.clone(),
        from: current.capacity,
        to: new,
        layout: layout.label().into(),
    })))
}

/// Plans undoing an applied plan: back to its `from`, only if the capacity is still its `to`.
pub async fn plan_restore(
    context: &ActionContext,
    applied: &CapacityPlan,
) -> Result<Planned, ActionError> {
    let client = context.hub_client().await?;
    let layout = koji_db::detect_layout(&client).await?;
    let Some(current) = koji_db::capacity::read_capacity(&**client, layout, &applied.host).await?
    else {
        return Ok(Planned::Refused(format!(
            "no Koji host named {:?} any more",
            applied.host
        )));
    };
    if current.capacity != applied.to {
        return Ok(Planned::Refused(format!(
            "capacity of {} is {} now, not the {} set earlier: someone changed it; left alone",
            applied.host, current.capacity, applied.to
        )));
    }
    Ok(Planned::Change(Plan::LowerCapacity(CapacityPlan {
        host: applied.host.clone(),
        from: applied.to,
        to: applied.from,
        layout: layout.label().into(),
    })))
}

impl CapacityPlan {
    /// One line for the journal.
    pub fn summary(&self) -> String {
        format!(
            "set capacity of Koji host {} from {} to {} ({} layout)",
            self.host, self.from, self.to, self.layout
        )
    }

    /// Makes the change, refusing if the capacity moved since the plan.
    pub async fn apply(&self, context: &ActionContext) -> Result<String, ActionError> {
        let mut client = context.hub_client().await?;
        let layout = koji_db::detect_layout(&client).await?;
        koji_db::capacity::change_capacity(
            &mut client,
            layout,
            &self.host,
            self.from,
            self.to,
            &context.koji_user,
        )
        .await?;
        Ok(format!(
            "capacity of {} changed from {} to {}",
            self.host, self.from, self.to
        ))
    }

    /// Re-reads the capacity.
    pub async fn verify(&self, context: &ActionContext) -> Result<String, ActionError> {
        let client = context.hub_client().await?;
        let layout = koji_db::detect_layout(&client).await?;
        let current = koji_db::capacity::read_capacity(&**client, layout, &self.host).await?;
        match current {
            Some(current) if current.capacity == self.to => {
                Ok(format!("capacity of {} is {}", self.host, self.to))
            }
            other => Err(ActionError::NotVerified(format!(
                "capacity of {} is {:?}, expected {}",
                self.host,
                other.map(|c| c.capacity),
                self.to
            ))),
        }
    }
}

impl CapacityPlan {
    /// Whether this change, begun at `since` and cut off, took effect: Koji's host history
    /// since then shows the remediator's Koji user setting the planned capacity (1.16+);
    /// before 1.16, which keeps no history, the capacity now is the planned one or the
    /// earlier one. Anything else cannot be told.
    pub async fn find_applied(
        &self,
        context: &ActionContext,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Found, ActionError> {
        let client = context.hub_client().await?;
        let layout = koji_db::detect_layout(&client).await?;
        let since = since.timestamp_millis() as f64 / 1000.0;
        let history = koji_db::capacity::changed_since(
            &**client,
            layout,
            &self.host,
            self.to,
            &context.koji_user,
            since,
        )
        .await?;
        let now = koji_db::capacity::read_capacity(&**client, layout, &self.host)
            .await?
            .map(|c| c.capacity);
        Ok(match (history, now) {
            (Some(true), _) => Found::Applied,
            (Some(false), Some(now)) if now == self.from => Found::NotApplied,
            (None, Some(now)) if now == self.to => Found::Applied,
            (None, Some(now)) if now == self.from => Found::NotApplied,
            _ => Found::Unknown,
        })
    }
}
