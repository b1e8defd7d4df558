//! `drain_and_reboot`: the runbook's first answer to a builder's OOM, "restart the machine
//! and hope it was a one time thing", done without losing builds. In order:
//!
//! 1. disable the host in Koji as `disableHost` does (one event, credited to the
//!    configured Koji user), only if its configuration is still what the plan saw;
//! 2. wait, bounded, until its open and assigned tasks have finished;
//! 3. ask the builder's agent to reboot it (`reboot_host`: the command is the agent's own);
//! 4. wait, bounded, until the host is seen down (kojid reported not ready, or stopped
//!    checking in), then until it checks in again, ready;
//! 5. enable it again as `enableHost` does, only if the disabled row is still the active
//!    one (nobody changed the host meanwhile).
//!
//! Each step saves how far the run got ([`super::progress`]), so a remediator restarted
//! mid-wait resumes where it was, on the deadlines counted from Koji's clock. Any step
//! that fails or times out leaves the host disabled, and the run fails with what remains
//! to do, for on-call.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ActionContext, ActionError, Plan, Planned};
use crate::actions::kind::ActionKind;
use crate::actions::progress::NotSaved;
use crate::agent::protocol::{AgentOutcome, AgentRequest, Knobs};
use koji_db::host_enabled::{self, EnabledError, HostState};

/// Rule parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The alert label naming the Koji host.
    #[serde(default = "default_host_label")]
    pub host_label: String,
    /// How long the host's open tasks may take to finish.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// How long the machine may take to go down once the reboot was asked.
    #[serde(default = "default_down_timeout", with = "humantime_serde")]
    pub down_timeout: Duration,
    /// A host that has not checked in for this long since the reboot was asked counts as
    /// down (a kojid killed by the reboot never says it stops).
    #[serde(default = "default_silent_for", with = "humantime_serde")]
    pub silent_for: Duration,
    /// How long the machine may take to check in again once it was down.
    #[serde(default = "default_checkin_timeout", with = "humantime_serde")]
    pub checkin_timeout: Duration,
    /// How often Koji is read while waiting.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
}

fn default_host_label() -> String {
    "host".into()
}
fn default_drain_timeout() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_down_timeout() -> Duration {
    Duration::from_secs(10 * 60)
}
fn default_silent_for() -> Duration {
    Duration::from_secs(2 * 60)
}
fn default_checkin_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(15)
}

impl Params {
    /// Parses and checks a rule's `params` table.
    pub fn from_table(table: &toml::Table) -> Result<Params, String> {
        if table.contains_key("command") {
            return Err("the reboot command is each builder's own policy: set it in its agent's [agent.reboot_host], not in a rule".into());
        }
        let params: Params = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|error: toml::de::Error| error.to_string())?;
        if params.poll_interval.is_zero() {
            return Err("poll_interval must be above zero".into());
        }
        Ok(params)
    }

    /// The cooldown key: the host named by the alert.
    pub fn target(&self, labels: &BTreeMap<String, String>) -> Result<String, String> {
        super::host_target(labels, &self.host_label)
    }
}

/// The plan: one host, from the configuration row the plan saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainPlan {
    /// Koji host name.
    pub host: String,
    /// The event of the host's active configuration row when planned: the drain begins
    /// only if it is still the active one.
    pub config_event: i32,
    /// Seconds for the open tasks to finish.
    pub drain_timeout_seconds: f64,
    /// Seconds for the machine to go down after the reboot was asked.
    pub down_timeout_seconds: f64,
    /// Seconds without a check-in that count as down.
    pub silent_for_seconds: f64,
    /// Seconds for the machine to check in again.
    pub checkin_timeout_seconds: f64,
    /// Seconds between reads of Koji while waiting.
    pub poll_interval_seconds: f64,
}

/// How far a run got, saved after each step (times are the hub database's clock, in
/// seconds since the epoch).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DrainProgress {
    /// The event that disabled the host, and when.
    pub disabled: Option<(i32, f64)>,
    /// When the host had no open task left.
    pub drained_at: Option<f64>,
    /// When the agent answered that the reboot is under way.
    pub reboot_asked_at: Option<f64>,
    /// When the host was seen down.
    pub seen_down_at: Option<f64>,
    /// When it checked in again.
    pub checked_in_at: Option<f64>,
    /// The event that enabled it again.
    pub enabled_event: Option<i32>,
}

/// Plans draining and rebooting the alert's host: it must exist, be enabled, and be
/// reachable through an agent.
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
    let Some(forwarder) = context.forwarder.as_ref() else {
        return Ok(Planned::Refused(
            "drain_and_reboot needs [forwarding] to reach the builder's agent".into(),
        ));
    };
    let agent_labels = BTreeMap::from([("host".to_string(), host.clone())]);
    if let Err(reason) = forwarder.agent_url(&agent_labels) {
        return Ok(Planned::Refused(format!("no agent for {host}: {reason}")));
    }
    let client = context.hub_client().await?;
    let layout = koji_db::detect_layout(&client).await?;
    if !layout.has_update_time() {
        return Ok(Planned::Refused(
            "drain_and_reboot needs Koji 1.33 or later (host.update_time tells when a builder checks in again)".into(),
        ));
    }
    let Some(state) = host_enabled::read_host_state(&**client, layout, host).await? else {
        return Ok(Planned::Refused(format!("no Koji host named {host:?}")));
    };
    if !state.enabled {
        return Ok(Planned::Refused(format!(
            "{host} is disabled already (by {} at event {}): someone took it out of service; left alone",
            state.config_creator.as_deref().unwrap_or("an unknown user"),
            state.config_event
        )));
    }
    Ok(Planned::Change(Plan::DrainAndReboot(DrainPlan {
        host: host.clone(),
        config_event: state.config_event,
        drain_timeout_seconds: params.drain_timeout.as_secs_f64(),
        down_timeout_seconds: params.down_timeout.as_secs_f64(),
        silent_for_seconds: params.silent_for.as_secs_f64(),
        checkin_timeout_seconds: params.checkin_timeout.as_secs_f64(),
        poll_interval_seconds: params.poll_interval.as_secs_f64(),
    })))
}

/// The hub database's clock, in seconds since the epoch: every deadline counts on it.
const HUB_NOW: &str = "SELECT extract(epoch FROM clock_timestamp())::float8";

impl DrainPlan {
    /// One line for the journal.
    pub fn summary(&self) -> String {
        format!(
            "disable Koji host {} (as disableHost), wait up to {} for its open tasks, reboot it through its agent, wait up to {} for it to go down and {} to check in again, then enable it (as enableHost) unless someone changed it meanwhile",
            self.host,
            words(self.drain_timeout_seconds),
            words(self.down_timeout_seconds),
            words(self.checkin_timeout_seconds),
        )
    }

    fn poll(&self) -> Duration {
        Duration::from_secs_f64(self.poll_interval_seconds)
    }

    /// What remains to do by hand from a step on, for on-call.
    fn remains(&self, from: Step) -> String {
        let host = &self.host;
        let steps = [
            (
                Step::Drain,
                format!("wait for (or free) the open tasks of {host}"),
            ),
            (Step::Reboot, format!("reboot {host}")),
            (
                Step::CheckIn,
                format!("make sure kojid on {host} checks in again"),
            ),
            (Step::Enable, format!("`koji enable-host {host}`")),
        ];
        let todo: Vec<String> = steps
            .into_iter()
            .filter(|(step, _)| *step >= from)
            .map(|(_, words)| words)
            .collect();
        format!(
            "{host} is left disabled; what remains: {}",
            todo.join(", then ")
        )
    }

    /// Runs the steps from where the saved progress says the run is.
    pub async fn apply(&self, context: &ActionContext, run: i64) -> Result<String, ActionError> {
        let mut progress = load(context, run).await?;
        let mut said = Vec::new();
        if progress.disabled.is_none() {
            progress.disabled = Some(self.disable(context).await?);
            save(context, run, &progress).await?;
        }
        let (disabled_event, disabled_at) = progress.disabled.expect("disabled above");
        said.push(format!("disabled {} (event {disabled_event})", self.host));
        if progress.drained_at.is_none() {
            progress.drained_at = Some(self.drain(context, disabled_at).await?);
            save(context, run, &progress).await?;
        }
        let drained = progress.drained_at.expect("drained above") - disabled_at;
        said.push(format!("no open task after {}", words(drained)));
        if progress.reboot_asked_at.is_none() {
            let answer = self.ask_reboot(context, run).await?;
            progress.reboot_asked_at = Some(hub_now(context).await?);
            save(context, run, &progress).await?;
            said.push(answer);
        }
        let asked = progress.reboot_asked_at.expect("asked above");
        if progress.seen_down_at.is_none() {
            progress.seen_down_at = Some(self.wait_down(context, asked).await?);
            save(context, run, &progress).await?;
        }
        let down = progress.seen_down_at.expect("seen down above");
        if progress.checked_in_at.is_none() {
            progress.checked_in_at = Some(self.wait_check_in(context, down).await?);
            save(context, run, &progress).await?;
        }
        let back = progress.checked_in_at.expect("checked in above");
        said.push(format!(
            "down {} after the reboot was asked, checked in again {} later",
            words(down - asked),
            words(back - down)
        ));
        if progress.enabled_event.is_none() {
            let (event, words) = self.enable(context, disabled_event, disabled_at).await?;
            progress.enabled_event = Some(event);
            save(context, run, &progress).await?;
            said.push(words);
        } else {
            said.push(format!(
                "enabled again (event {})",
                progress.enabled_event.unwrap_or_default()
            ));
        }
        Ok(said.join("; "))
    }

    /// Step 1. A disable this plan made before a restart cut its record off is recognised
    /// in Koji (the active row disabled by our user since the plan's row) and kept.
    async fn disable(&self, context: &ActionContext) -> Result<(i32, f64), ActionError> {
        let mut client = context.hub_client().await?;
        let state = self.state(&client).await?;
        if !state.enabled
            && state.config_creator.as_deref() == Some(context.koji_user.as_str())
            && state.config_event > self.config_event
        {
            return Ok((state.config_event, state.config_time));
        }
        if state.config_event != self.config_event || !state.enabled {
            return Err(ActionError::NeedsHuman(format!(
                "the configuration of {} changed since the plan (event {} by {}, enabled: {}): nothing done",
                self.host,
                state.config_event,
                state.config_creator.as_deref().unwrap_or("an unknown user"),
                state.enabled
            )));
        }
        let event = host_enabled::set_enabled(
            &mut client,
            &self.host,
            self.config_event,
            false,
            &context.koji_user,
        )
        .await
        .map_err(|error| match error {
            EnabledError::Changed { .. } => {
                ActionError::NeedsHuman(format!("{error}: nothing done"))
            }
            EnabledError::Koji(error) => ActionError::Capacity(error),
        })?;
        let state = self.state(&client).await?;
        Ok((event, state.config_time))
    }

    /// Step 2: until no task is open or assigned to the host, at most the drain timeout
    /// from the disable.
    async fn drain(&self, context: &ActionContext, disabled_at: f64) -> Result<f64, ActionError> {
        loop {
            let client = context.hub_client().await?;
            let state = self.state(&client).await?;
            let open = host_enabled::open_tasks(&**client, state.host_id).await?;
            let now = hub_now_on(&client).await?;
            if open.is_empty() {
                return Ok(now);
            }
            if now - disabled_at > self.drain_timeout_seconds {
                return Err(ActionError::NotVerified(format!(
                    "{} task(s) of {} still open {} after it was disabled (tasks {}); {}",
                    open.len(),
                    self.host,
                    words(now - disabled_at),
                    open.iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.remains(Step::Drain)
                )));
            }
            drop(client);
            tokio::time::sleep(self.poll()).await;
        }
    }

    /// Step 3: the agent's answer. Asked again after a restart, the agent answers from its
    /// record of this run and does not reboot twice.
    async fn ask_reboot(&self, context: &ActionContext, run: i64) -> Result<String, ActionError> {
        let failed = |reason: String| {
            ActionError::NotVerified(format!(
                "the reboot was not done: {reason}; {}",
                self.remains(Step::Reboot)
            ))
        };
        let forwarder = context
            .forwarder
            .as_ref()
            .ok_or_else(|| failed("no forwarding configured".into()))?;
        let labels = BTreeMap::from([("host".to_string(), self.host.clone())]);
        let base = forwarder.agent_url(&labels).map_err(failed)?;
        let request = AgentRequest {
            journal: context.journal_id.clone(),
            run,
            action: ActionKind::RebootHost,
            labels,
            plan_only: false,
            keep_buildroots: Vec::new(),
            knobs: Knobs::default(),
        };
        let response = forwarder
            .send(&base, &request)
            .await
            .map_err(|error| failed(error.to_string()))?;
        if response.state == AgentOutcome::Succeeded {
            Ok(format!("agent: {}", response.outcome))
        } else {
            Err(failed(format!(
                "the agent answered {:?}: {}",
                response.state, response.outcome
            )))
        }
    }

    /// Step 4a: kojid said it stopped (`ready` false), or the host stopped checking in.
    async fn wait_down(&self, context: &ActionContext, asked: f64) -> Result<f64, ActionError> {
        loop {
            let client = context.hub_client().await?;
            let state = self.state(&client).await?;
            let now = hub_now_on(&client).await?;
            // Silent counts from the ask: a host quiet before it would look down at once.
            let last_heard = state.last_check_in.map_or(asked, |at| at.max(asked));
            let silent = now - last_heard > self.silent_for_seconds;
            if !state.ready || silent {
                return Ok(now);
            }
            if now - asked > self.down_timeout_seconds {
                return Err(ActionError::NotVerified(format!(
                    "{} still checked in ready {} after its agent said it reboots; {}",
                    self.host,
                    words(now - asked),
                    self.remains(Step::Reboot)
                )));
            }
            drop(client);
            tokio::time::sleep(self.poll()).await;
        }
    }

    /// Step 4b: a ready check-in after it was seen down.
    async fn wait_check_in(&self, context: &ActionContext, down: f64) -> Result<f64, ActionError> {
        loop {
            let client = context.hub_client().await?;
            let state = self.state(&client).await?;
            let now = hub_now_on(&client).await?;
            if state.ready && state.last_check_in.is_some_and(|at| at > down) {
                return Ok(now);
            }
            if now - down > self.checkin_timeout_seconds {
                return Err(ActionError::NotVerified(format!(
                    "{} has not checked in ready {} after it went down; {}",
                    self.host,
                    words(now - down),
                    self.remains(Step::CheckIn)
                )));
            }
            drop(client);
            tokio::time::sleep(self.poll()).await;
        }
    }

    /// Step 5: enabled again only over our own disable; an enable this run made before a
    /// restart cut its record off is recognised and kept.
    async fn enable(
        &self,
        context: &ActionContext,
        disabled_event: i32,
        disabled_at: f64,
    ) -> Result<(i32, String), ActionError> {
        let mut client = context.hub_client().await?;
        let state = self.state(&client).await?;
        if state.config_event != disabled_event {
            let ours = state.config_creator.as_deref() == Some(context.koji_user.as_str());
            if ours && state.enabled && state.config_time >= disabled_at {
                return Ok((
                    state.config_event,
                    format!("enabled again (event {})", state.config_event),
                ));
            }
            return Err(ActionError::NotVerified(format!(
                "someone changed {} while it was drained (event {} by {}, enabled: {}): left as they left it{}",
                self.host,
                state.config_event,
                state.config_creator.as_deref().unwrap_or("an unknown user"),
                state.enabled,
                if state.enabled {
                    String::new()
                } else {
                    format!("; what remains: `koji enable-host {}` when it should build again", self.host)
                }
            )));
        }
        let event = host_enabled::set_enabled(
            &mut client,
            &self.host,
            disabled_event,
            true,
            &context.koji_user,
        )
        .await
        .map_err(|error| {
            ActionError::NotVerified(format!("{error}; {}", self.remains(Step::Enable)))
        })?;
        Ok((event, format!("enabled again (event {event})")))
    }

    async fn state(&self, client: &tokio_postgres::Client) -> Result<HostState, ActionError> {
        let layout = koji_db::detect_layout(client).await?;
        host_enabled::read_host_state(client, layout, &self.host)
            .await?
            .ok_or_else(|| {
                ActionError::NotVerified(format!("no Koji host named {:?} any more", self.host))
            })
    }

    /// The host is enabled and checked in ready.
    pub async fn verify(&self, context: &ActionContext) -> Result<String, ActionError> {
        let client = context.hub_client().await?;
        let state = self.state(&client).await?;
        if state.enabled && state.ready {
            Ok(format!("{} is enabled and ready", self.host))
        } else {
            Err(ActionError::NotVerified(format!(
                "{} is enabled: {}, ready: {}",
                self.host, state.enabled, state.ready
            )))
        }
    }
}

/// The steps on-call may have left to do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Drain,
    Reboot,
    CheckIn,
    Enable,
}

async fn hub_now(context: &ActionContext) -> Result<f64, ActionError> {
    let client = context.hub_client().await?;
    hub_now_on(&client).await
}

async fn hub_now_on(client: &tokio_postgres::Client) -> Result<f64, ActionError> {
    Ok(client.query_one(HUB_NOW, &[]).await?.get(0))
}

/// Seconds as people say them ("2m 5s").
fn words(seconds: f64) -> String {
    humantime::format_duration(Duration::from_secs(seconds.max(0.0).round() as u64)).to_string()
}

async fn load(context: &ActionContext, run: i64) -> Result<DrainProgress, ActionError> {
    let Some(log) = context.progress.as_ref() else {
        return Ok(DrainProgress::default());
    };
    match log.load(run).await.map_err(ActionError::Host)? {
        Some(saved) => serde_json::from_value(saved)
            .map_err(|error| ActionError::Params(format!("saved progress of run {run}: {error}"))),
        None => Ok(DrainProgress::default()),
    }
}

/// Saves progress, trying for a minute through a journal outage; a run no longer held by
/// this replica stops here.
async fn save(
    context: &ActionContext,
    run: i64,
    progress: &DrainProgress,
) -> Result<(), ActionError> {
    let Some(log) = context.progress.as_ref() else {
        return Ok(());
    };
    let value = serde_json::to_value(progress).expect("progress is plain data");
    let mut last = String::new();
    for _ in 0..30 {
        match log.save(run, value.clone()).await {
            Ok(()) => return Ok(()),
            Err(error @ NotSaved::NotHeld(_)) => return Err(ActionError::Host(error.to_string())),
            Err(NotSaved::Unavailable(error)) => last = error,
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(ActionError::Host(format!(
        "cannot save the drain's progress for a minute ({last}); stopped here so the run is resumed from the journal"
    )))
}
