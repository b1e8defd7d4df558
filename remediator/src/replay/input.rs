//! What a replay replays: alert notifications in the order and at the times they arrived,
//! each with what happened to it then when a journal says so, and the runs the journal
//! holds (their timing, on-call's decisions and what they changed, which a replay cannot
//! learn without applying). Read from a journal or from a file of captured Alertmanager
//! payloads; every row or line that cannot be read is set aside with the reason, and the
//! rest is replayed.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::fate::Fate;
use crate::actions::kind::ActionKind;
use crate::alertmanager::{self, Alert, AlertStatus};
use crate::journal::history::{JournalHistory, JournaledRun};
use crate::lifecycle::{Decision, Effect, Policy, RunKind, RunState};

/// A run's identity: its alert occurrence, action and kind (the journal's unique key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunKey {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// The occurrence's start.
    pub starts_at: DateTime<Utc>,
    /// The action.
    pub action: &'static str,
    /// Fix or undoing.
    pub kind: &'static str,
}

impl RunKey {
    /// The key of `kind` of `action` for `alert`'s occurrence.
    pub fn of(alert: &Alert, action: ActionKind, kind: RunKind) -> RunKey {
        RunKey {
            fingerprint: alert.fingerprint.clone(),
            starts_at: alert.starts_at,
            action: action.name(),
            kind: kind.name(),
        }
    }
}

/// A run as the journal remembers it, checked.
#[derive(Debug, Clone)]
pub struct PastRun {
    /// `action_runs.id`.
    pub id: i64,
    /// The policy it was claimed with.
    pub policy: Policy,
    /// Its end (or where it stood when the period ended).
    pub state: RunState,
    /// What became of it.
    pub fate: Fate,
    /// What it changed.
    pub effect: Effect,
    /// When it was last started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// When on-call decided, for an escalation.
    pub decided_at: Option<DateTime<Utc>>,
}

impl PastRun {
    /// How long it ran, when it started and ended.
    pub fn duration(&self) -> Option<chrono::Duration> {
        Some(self.finished_at? - self.started_at?)
    }
}

/// What the journal says happened to a notification.
#[derive(Debug, Clone)]
pub struct Then {
    /// What became of it.
    pub fate: Fate,
    /// The rule it matched.
    pub rule: Option<String>,
    /// What its run acted on, if it claimed one.
    pub target: Option<String>,
}

/// One alert as it arrived.
#[derive(Debug, Clone)]
pub struct Notification {
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The alert.
    pub alert: Alert,
    /// What happened to it then (`None` for captured payloads: no journal says).
    pub then: Option<Then>,
    /// The journal's row, when from a journal.
    pub journal_id: Option<i64>,
}

/// A row or line a replay could not read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetAside {
    /// Which (`alert 12`, `run 7`, `line 3`).
    pub what: String,
    /// Why.
    pub why: String,
}

/// Everything a replay replays.
#[derive(Debug, Clone, Default)]
pub struct ReplayInput {
    /// Notifications in arrival order.
    pub notifications: Vec<Notification>,
    /// The runs the journal holds, by key.
    pub past_runs: HashMap<RunKey, PastRun>,
    /// What could not be read.
    pub set_aside: Vec<SetAside>,
}

impl ReplayInput {
    /// The input a journal's history gives.
    pub fn from_journal(history: &JournalHistory) -> ReplayInput {
        let mut input = ReplayInput::default();
        let mut runs_by_occurrence: HashMap<(String, DateTime<Utc>, String), Vec<&JournaledRun>> =
            HashMap::new();
        for run in &history.runs {
            runs_by_occurrence
                .entry((run.fingerprint.clone(), run.starts_at, run.kind.clone()))
                .or_default()
                .push(run);
            match past_run(run) {
                Ok((key, past)) => {
                    input.past_runs.insert(key, past);
                }
                Err(why) => input.set_aside.push(SetAside {
                    what: format!("run {}", run.id),
                    why,
                }),
            }
        }
        for row in &history.alerts {
            let alert = match journaled_alert(row) {
                Ok(alert) => alert,
                Err(why) => {
                    input.set_aside.push(SetAside {
                        what: format!("alert {}", row.id),
                        why,
                    });
                    continue;
                }
            };
            let mut target = None;
            let fate = match row.decision.parse::<Decision>() {
                Err(_) => Fate::Unknown(format!("unknown decision {:?}", row.decision)),
                Ok(decision) => match decision {
                    Decision::Run
                    | Decision::AwaitingApproval
                    | Decision::Notified
                    | Decision::Restore => {
                        let kind = if decision == Decision::Restore {
                            RunKind::Restore
                        } else {
                            RunKind::Apply
                        };
                        let candidates = runs_by_occurrence
                            .get(&(row.fingerprint.clone(), row.starts_at, kind.name().into()))
                            .map(Vec::as_slice)
                            .unwrap_or_default();
                        let run = candidates
                            .iter()
                            .find(|run| Some(&run.rule) == row.rule.as_ref())
                            .or(candidates.first());
                        match run {
                            Some(run) => {
                                target = Some(run.target.clone());
                                Fate::of_journaled(run)
                            }
                            None => Fate::Unknown("its run is not in the journal".into()),
                        }
                    }
                    other => Fate::NoRun(other),
                },
            };
            if let Fate::Unknown(why) = &fate {
                input.set_aside.push(SetAside {
                    what: format!("alert {}", row.id),
                    why: format!(
                        "what happened then cannot be told ({why}); replayed, not compared"
                    ),
                });
            }
            input.notifications.push(Notification {
                received_at: row.received_at,
                alert,
                then: Some(Then {
                    fate,
                    rule: row.rule.clone(),
                    target,
                }),
                journal_id: Some(row.id),
            });
        }
        input
    }

    /// The input a file of captured Alertmanager payloads gives: one JSON object per line,
    /// either `{"received_at": "<RFC 3339>", "payload": {...}}` or a bare payload, which
    /// is taken to have arrived when its alerts last changed (the latest `startsAt` of a
    /// firing alert, `endsAt` of a resolved one). Notifications are replayed in time order.
    pub fn from_payloads(text: &str) -> ReplayInput {
        let mut input = ReplayInput::default();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let what = format!("line {}", index + 1);
            match captured(line) {
                Ok((received_at, alerts)) => {
                    input
                        .notifications
                        .extend(alerts.into_iter().map(|alert| Notification {
                            received_at,
                            alert,
                            then: None,
                            journal_id: None,
                        }))
                }
                Err(why) => input.set_aside.push(SetAside { what, why }),
            }
        }
        // Stable: alerts of one payload keep their order.
        input.notifications.sort_by_key(|n| n.received_at);
        input
    }
}

/// One captured line: its time and its alerts.
fn captured(line: &str) -> Result<(DateTime<Utc>, Vec<Alert>), String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|error| format!("not JSON: {error}"))?;
    let (received_at, body) = match value.get("payload") {
        Some(payload) => {
            let at = value
                .get("received_at")
                .and_then(serde_json::Value::as_str)
                .ok_or("a wrapped payload needs \"received_at\"")?;
            let at = DateTime::parse_from_rfc3339(at)
                .map_err(|error| format!("received_at {at:?}: {error}"))?
                .with_timezone(&Utc);
            (Some(at), payload.to_string())
        }
        None => (None, line.to_owned()),
    };
    let payload = alertmanager::parse(body.as_bytes())
        .map_err(|error| format!("not an Alertmanager webhook payload: {error}"))?;
    let received_at = received_at
        .or_else(|| {
            payload
                .alerts
                .iter()
                .map(|alert| match alert.status {
                    AlertStatus::Firing => alert.starts_at,
                    AlertStatus::Resolved => alert.ends_at.unwrap_or(alert.starts_at),
                })
                .max()
        })
        .ok_or("a payload without alerts")?;
    Ok((received_at, payload.alerts))
}

/// A journaled alert, checked as the webhook checks a delivered one.
fn journaled_alert(row: &crate::journal::history::JournaledAlert) -> Result<Alert, String> {
    let status = match row.status.as_str() {
        "firing" => AlertStatus::Firing,
        "resolved" => AlertStatus::Resolved,
        other => return Err(format!("unknown status {other:?}")),
    };
    let labels: BTreeMap<String, String> = serde_json::from_str(&row.labels)
        .map_err(|error| format!("labels are not a map of strings: {error}"))?;
    let annotations: BTreeMap<String, String> =
        serde_json::from_str(&row.annotations).unwrap_or_default();
    if labels.get("alertname").is_none_or(String::is_empty) {
        return Err("no alertname label".into());
    }
    if row.fingerprint.is_empty() {
        return Err("no fingerprint".into());
    }
    Ok(Alert {
        status,
        labels,
        annotations,
        starts_at: row.starts_at,
        ends_at: None,
        fingerprint: row.fingerprint.clone(),
        generator_url: row.generator_url.clone(),
        replaced: Vec::new(),
    })
}

/// A journaled run, checked.
fn past_run(run: &JournaledRun) -> Result<(RunKey, PastRun), String> {
    let action: ActionKind = run
        .action
        .parse()
        .map_err(|_| format!("unknown action {:?}", run.action))?;
    let kind: RunKind = run
        .kind
        .parse()
        .map_err(|_| format!("unknown kind {:?}", run.kind))?;
    let policy: Policy = run
        .policy
        .parse()
        .map_err(|_| format!("unknown policy {:?}", run.policy))?;
    let state =
        RunState::from_name(&run.state).ok_or_else(|| format!("unknown state {:?}", run.state))?;
    let effect: Effect = run
        .effect
        .parse()
        .map_err(|_| format!("unknown effect {:?}", run.effect))?;
    let key = RunKey {
        fingerprint: run.fingerprint.clone(),
        starts_at: run.starts_at,
        action: action.name(),
        kind: kind.name(),
    };
    Ok((
        key,
        PastRun {
            id: run.id,
            policy,
            state,
            fate: Fate::of_journaled(run),
            effect,
            started_at: run.started_at,
            finished_at: run.finished_at,
            decided_at: run.decided_at,
        },
    ))
}
