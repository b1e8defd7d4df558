//! What a replay prints: one row per notification (what happened then, what the runbook
//! under test would do, differences marked), then counts per rule and per target, then
//! what was set aside. As a table for a person, or JSON (`--output json`) for a script.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::fate::Fate;
use super::input::{ReplayInput, SetAside};
use super::model::Decided;
use crate::lifecycle::Hold;

/// One notification, both ways.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// When it arrived.
    pub time: DateTime<Utc>,
    /// The journal's row, when replayed from a journal.
    pub journal_id: Option<i64>,
    /// The alert's name.
    pub alert: String,
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// What the run acts (or acted) on.
    pub target: Option<String>,
    /// The rule it matched then.
    pub rule_then: Option<String>,
    /// What happened then (absent for captured payloads).
    pub then: Option<String>,
    /// The rule of the runbook under test it matches.
    pub rule: Option<String>,
    /// What the runbook under test would do.
    pub would: String,
    /// Then and now differ.
    pub differs: bool,
    /// With `--plan`: the plan its fix would make against the hub today.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_today: Option<String>,
    #[serde(skip)]
    then_fate: Option<Fate>,
    #[serde(skip)]
    would_fate: Fate,
}

/// Counts of what became of notifications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Runs started (applied, or planned only under dry run or the pause).
    pub runs: usize,
    /// Held by the cooldown.
    pub held_cooldown: usize,
    /// Held by `max_runs_per_hour` (and escalated).
    pub held_hourly_cap: usize,
    /// Held because the alert resolved first (or the rule was gone).
    pub held_otherwise: usize,
    /// Escalated to on-call: notify rules, approvals asked.
    pub escalations: usize,
    /// Claimed and still waiting at the end (cap, restore wait).
    pub waiting: usize,
}

impl Tally {
    fn add(&mut self, fate: &Fate) {
        match fate {
            Fate::Started(_) => self.runs += 1,
            Fate::Held(Hold::Cooldown) => self.held_cooldown += 1,
            Fate::Held(Hold::HourlyCap) => {
                self.held_hourly_cap += 1;
                self.escalations += 1;
            }
            Fate::Held(_) => self.held_otherwise += 1,
            Fate::Escalated | Fate::AwaitingApproval | Fate::Rejected | Fate::Expired => {
                self.escalations += 1
            }
            Fate::Waiting => self.waiting += 1,
            Fate::NoRun(_) | Fate::Unknown(_) => {}
        }
    }
}

/// Then and now, for one rule or one target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The rule's or the target's name.
    pub name: String,
    /// Then (from the journal).
    pub then: Tally,
    /// With the runbook under test.
    pub would: Tally,
}

/// A whole replay.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where the notifications came from.
    pub source: String,
    /// The runbook replayed.
    pub runbook: String,
    /// The period.
    pub from: Option<DateTime<Utc>>,
    /// The period's end.
    pub until: DateTime<Utc>,
    /// One row per notification.
    pub rows: Vec<Row>,
    /// Rows that differ.
    pub differences: usize,
    /// Per rule (of either runbook).
    pub rules: Vec<Summary>,
    /// Per target.
    pub targets: Vec<Summary>,
    /// What could not be read.
    pub set_aside: Vec<SetAside>,
}

impl Report {
    /// The report of `decided` (one per notification of `input`).
    pub fn new(
        source: String,
        runbook: String,
        from: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        input: &ReplayInput,
        decided: Vec<Decided>,
        plans_today: Vec<Option<String>>,
    ) -> Report {
        let mut plans_today = plans_today.into_iter();
        let rows: Vec<Row> = input
            .notifications
            .iter()
            .zip(decided)
            .map(|(notification, decided)| (notification, decided, plans_today.next().flatten()))
            // Notifications before the period were replayed only to warm the guards up.
            .filter(|(notification, _, _)| from.is_none_or(|from| notification.received_at >= from))
            .map(|(notification, decided, plan_today)| {
                let then = notification.then.as_ref();
                let then_fate = then.map(|then| then.fate.clone());
                let differs = then_fate
                    .as_ref()
                    .is_some_and(|then| then.differs_from(&decided.fate));
                Row {
                    time: notification.received_at,
                    journal_id: notification.journal_id,
                    alert: notification.alert.alertname().to_owned(),
                    status: notification.alert.status.name(),
                    target: decided
                        .target
                        .clone()
                        .or_else(|| then.and_then(|then| then.target.clone())),
                    rule_then: then.and_then(|then| then.rule.clone()),
                    then: then_fate.as_ref().map(Fate::to_string),
                    rule: decided.rule.clone(),
                    would: decided.fate.to_string(),
                    differs,
                    plan_today,
                    then_fate,
                    would_fate: decided.fate,
                }
            })
            .collect();
        let mut rules: BTreeMap<String, Summary> = BTreeMap::new();
        let mut targets: BTreeMap<String, Summary> = BTreeMap::new();
        for row in &rows {
            let add = |map: &mut BTreeMap<String, Summary>, name: &Option<String>, then| {
                if let Some(name) = name {
                    let summary = map.entry(name.clone()).or_insert_with(|| Summary {
                        name: name.clone(),
                        ..Summary::default()
                    });
                    match then {
                        true => row.then_fate.iter().for_each(|fate| summary.then.add(fate)),
                        false => summary.would.add(&row.would_fate),
                    }
                }
            };
            add(&mut rules, &row.rule_then, true);
            add(&mut rules, &row.rule, false);
            add(&mut targets, &row.target, true);
            add(&mut targets, &row.target, false);
        }
        Report {
            source,
            runbook,
            from,
            until,
            differences: rows.iter().filter(|row| row.differs).count(),
            rows,
            rules: rules.into_values().collect(),
            targets: targets.into_values().collect(),
            set_aside: input.set_aside.clone(),
        }
    }

    /// As a table for a person; with `only_differences`, the rows that differ only (a
    /// week of a large site's alerts is many thousand rows), summaries in full.
    pub fn table(&self, only_differences: bool) -> String {
        let mut out = String::new();
        let period = match self.from {
            Some(from) => format!("{} to {}", stamp(from), stamp(self.until)),
            None => format!("until {}", stamp(self.until)),
        };
        let _ = writeln!(
            out,
            "Replay of {} alert notification(s) from {}, {period}, through {}.",
            self.rows.len(),
            self.source,
            self.runbook
        );
        let _ = writeln!(
            out,
            "Nothing is applied and nothing is written. \"≠\" marks what this runbook would do differently."
        );
        out.push('\n');
        let width = |values: &mut dyn Iterator<Item = usize>, header: &str| {
            values.max().unwrap_or(0).max(header.len())
        };
        let alert_w = width(&mut self.rows.iter().map(|r| r.alert.len()), "ALERT");
        let target_w = width(
            &mut self
                .rows
                .iter()
                .map(|r| r.target.as_deref().unwrap_or("-").len()),
            "TARGET",
        );
        let then_w = width(
            &mut self
                .rows
                .iter()
                .map(|r| r.then.as_deref().unwrap_or("-").len()),
            "THEN",
        );
        let _ = writeln!(
            out,
            "  {:<19}  {:<alert_w$}  {:<8}  {:<target_w$}  {:<then_w$}  WOULD",
            "TIME (UTC)", "ALERT", "STATUS", "TARGET", "THEN"
        );
        for row in self
            .rows
            .iter()
            .filter(|row| row.differs || !only_differences)
        {
            let _ = writeln!(
                out,
                "{} {:<19}  {:<alert_w$}  {:<8}  {:<target_w$}  {:<then_w$}  {}",
                if row.differs { "≠" } else { " " },
                row.time.format("%Y-%m-%d %H:%M:%S"),
                row.alert,
                row.status,
                row.target.as_deref().unwrap_or("-"),
                row.then.as_deref().unwrap_or("-"),
                row.would
            );
            if let Some(plan) = &row.plan_today {
                let _ = writeln!(out, "{:>21}  today's plan: {plan}", "");
            }
        }
        let _ = writeln!(
            out,
            "\n{} of {} notification(s) differ.",
            self.differences,
            self.rows.len()
        );
        for (title, summaries) in [("By rule", &self.rules), ("By target", &self.targets)] {
            if summaries.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{title} (then -> would):");
            let name_w = summaries.iter().map(|s| s.name.len()).max().unwrap_or(0);
            for summary in summaries {
                let (then, would) = (&summary.then, &summary.would);
                let pair = |a: usize, b: usize| {
                    if a == b {
                        format!("{a}")
                    } else {
                        format!("{a} -> {b}")
                    }
                };
                let _ = writeln!(
                    out,
                    "  {:<name_w$}  runs {}, held by cooldown {}, by max_runs_per_hour {}, otherwise {}, escalations {}, waiting {}",
                    summary.name,
                    pair(then.runs, would.runs),
                    pair(then.held_cooldown, would.held_cooldown),
                    pair(then.held_hourly_cap, would.held_hourly_cap),
                    pair(then.held_otherwise, would.held_otherwise),
                    pair(then.escalations, would.escalations),
                    pair(then.waiting, would.waiting),
                );
            }
        }
        if !self.set_aside.is_empty() {
            let _ = writeln!(out, "\nSet aside ({}):", self.set_aside.len());
            for skipped in &self.set_aside {
                let _ = writeln!(out, "  {}: {}", skipped.what, skipped.why);
            }
        }
        out
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
