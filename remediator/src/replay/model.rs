//! The replay's clock and guards: notifications are decided by the runbook under test
//! ([`crate::runbook::decide`], as the webhook decides them) at the time they arrived, and
//! every run is taken through the guards the journal applies, evaluated at the replayed
//! time instead of the journal's clock: the claim's unique key (duplicates), ended
//! occurrences, the cooldown, `max_runs_per_hour`, the action's cap
//! (`max_concurrent_per_action`), dry-run, on-call's decisions, expiry on resolution,
//! and the restore wait (target quiet for `restore_after`, the latest change undone
//! first). The rules are those of [`crate::journal::runs`] and
//! [`crate::journal::restore_wait`]; the faithfulness test holds this model to them.
//!
//! What a replay cannot know without applying is taken from the journal where the same
//! run happened then: how long it took, what it found and changed, when on-call decided,
//! and whether the pause switch was on (an operator's switch, not the runbook's). A run
//! that did not happen then "would run": it is assumed to change its target (the cautious
//! reading for the cooldown and the hourly limit), and to take as long as the action's
//! runs then took (their median).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};

use super::fate::Fate;
use super::input::{Notification, PastRun, ReplayInput, RunKey};
use crate::actions::kind::ActionKind;
use crate::alertmanager::AlertStatus;
use crate::config::Config;
use crate::lifecycle::{Decision, Effect, Hold, Policy, RunKind, RunState};
use crate::runbook;

/// What the runbook under test decided for one notification.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The rule it matched.
    pub rule: Option<String>,
    /// The decision.
    pub decision: Decision,
    /// What its run would act on.
    pub target: Option<String>,
    /// What became of it.
    pub fate: Fate,
}

/// Where a replayed run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pending,
    AwaitingApproval,
    /// Started; ends (with its fate) at `finished_at`, if ever within the period.
    Started,
    Ended,
}

#[derive(Debug, Clone)]
struct ModelRun {
    key: RunKey,
    rule: String,
    action: ActionKind,
    kind: RunKind,
    /// Index into [`Model::targets`]: its (action, target).
    target_key: usize,
    stage: Stage,
    past: Option<PastRun>,
    fate: Fate,
    effect: Effect,
    started_at: Option<DateTime<Utc>>,
    /// When it began applying (it would have changed something).
    applying_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl ModelRun {
    fn in_flight(&self, at: DateTime<Utc>) -> bool {
        self.stage == Stage::Started && self.finished_at.is_none_or(|end| end > at)
    }

    fn unfinished(&self, at: DateTime<Utc>) -> bool {
        self.stage == Stage::Pending || self.in_flight(at)
    }

    /// Counts for the cooldown and the hourly limit at `at`: it acts now, or changed (or
    /// may have changed) its target.
    fn acted(&self, at: DateTime<Utc>) -> bool {
        self.started_at.is_some()
            && (self.in_flight(at) || matches!(self.effect, Effect::Changed | Effect::Unknown))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Happening {
    Deliver(usize),
    TryStart(usize),
    Finish(usize),
    Approve(usize),
    Reject(usize),
    /// Try the pending restores of one (action, target) (an index into `targets`).
    TryRestores(usize),
}

/// The replay's state: the runbook, the runs claimed so far, the occurrences resolved
/// so far, and what is still to happen.
struct Model<'a> {
    config: &'a Config,
    input: &'a ReplayInput,
    runs: Vec<ModelRun>,
    claims: HashMap<RunKey, usize>,
    /// First resolution received of each occurrence.
    resolved: HashMap<(String, DateTime<Utc>), DateTime<Utc>>,
    /// Every (action, target) seen, and the runs claimed for each, in claim order: the
    /// cooldown, the hourly limit and the restore wait look only there.
    targets: Vec<(ActionKind, String)>,
    target_index: HashMap<(ActionKind, String), usize>,
    of_target: Vec<Vec<usize>>,
    /// The runs of each occurrence (an approval expires with it).
    of_occurrence: HashMap<(String, DateTime<Utc>), Vec<usize>>,
    /// Runs started and not yet seen to finish, per action (the cap counts these).
    started: HashMap<ActionKind, BTreeSet<usize>>,
    /// Pending restores per (action, target).
    pending_restores: Vec<BTreeSet<usize>>,
    at_cap: BTreeMap<&'static str, Vec<usize>>,
    queue: BTreeMap<(DateTime<Utc>, u64), Happening>,
    next_seq: u64,
    decided: Vec<Option<(Decided, Option<usize>)>>,
    typical_duration: HashMap<&'static str, Duration>,
}

/// Replays `input` through `config` up to `end`; one [`Decided`] per notification.
pub fn replay(config: &Config, input: &ReplayInput, end: DateTime<Utc>) -> Vec<Decided> {
    let mut model = Model {
        config,
        input,
        runs: Vec::new(),
        claims: HashMap::new(),
        resolved: HashMap::new(),
        targets: Vec::new(),
        target_index: HashMap::new(),
        of_target: Vec::new(),
        of_occurrence: HashMap::new(),
        started: HashMap::new(),
        pending_restores: Vec::new(),
        at_cap: BTreeMap::new(),
        queue: BTreeMap::new(),
        next_seq: input.notifications.len() as u64,
        decided: vec![None; input.notifications.len()],
        typical_duration: typical_durations(input),
    };
    for (index, notification) in input.notifications.iter().enumerate() {
        model.queue.insert(
            (notification.received_at, index as u64),
            Happening::Deliver(index),
        );
    }
    while let Some(((at, _), happening)) = model.queue.pop_first() {
        if at > end {
            break;
        }
        match happening {
            Happening::Deliver(index) => model.deliver(index, at),
            Happening::TryStart(run) => model.try_start(run, at),
            Happening::Finish(run) => model.finish(run, at),
            Happening::Approve(run) => model.approve(run, at),
            Happening::Reject(run) => {
                if model.runs[run].stage == Stage::AwaitingApproval {
                    model.end(run, Fate::Rejected);
                }
            }
            Happening::TryRestores(target) => model.try_restores(target, at),
        }
    }
    let Model { decided, runs, .. } = model;
    decided
        .into_iter()
        .map(|entry| {
            let (mut decided, run) = entry.unwrap_or((
                Decided {
                    rule: None,
                    decision: Decision::Unmatched,
                    target: None,
                    fate: Fate::Unknown("after the end of the period".into()),
                },
                None,
            ));
            if let Some(run) = run {
                decided.fate = runs[run].fate.clone();
            }
            decided
        })
        .collect()
}

/// The median duration of each action's runs then.
fn typical_durations(input: &ReplayInput) -> HashMap<&'static str, Duration> {
    let mut by_action: HashMap<&'static str, Vec<Duration>> = HashMap::new();
    for (key, past) in &input.past_runs {
        if let Some(duration) = past.duration() {
            by_action.entry(key.action).or_default().push(duration);
        }
    }
    by_action
        .into_iter()
        .map(|(action, mut durations)| {
            durations.sort();
            (action, durations[durations.len() / 2])
        })
        .collect()
}

impl Model<'_> {
    fn schedule(&mut self, at: DateTime<Utc>, happening: Happening) {
        self.queue.insert((at, self.next_seq), happening);
        self.next_seq += 1;
    }

    fn rule(&self, run: usize) -> &crate::config::Rule {
        let name = &self.runs[run].rule;
        self.config
            .rules
            .iter()
            .find(|rule| &rule.name == name)
            .expect("runs are claimed for the runbook's own rules")
    }

    /// The index of (action, target), made on first sight.
    fn target_key(&mut self, action: ActionKind, target: &str) -> usize {
        let key = (action, target.to_owned());
        if let Some(&index) = self.target_index.get(&key) {
            return index;
        }
        let index = self.targets.len();
        self.targets.push(key.clone());
        self.target_index.insert(key, index);
        self.of_target.push(Vec::new());
        self.pending_restores.push(BTreeSet::new());
        index
    }

    /// The runs claimed for `run`'s (action, target).
    fn same_target(&self, run: usize) -> impl Iterator<Item = (usize, &ModelRun)> {
        self.of_target[self.runs[run].target_key]
            .iter()
            .map(|&other| (other, &self.runs[other]))
    }

    fn occurrence(key: &RunKey) -> (String, DateTime<Utc>) {
        (key.fingerprint.clone(), key.starts_at)
    }

    fn resolved_by(&self, key: &RunKey, at: DateTime<Utc>) -> bool {
        self.resolved
            .get(&Model::occurrence(key))
            .is_some_and(|when| *when <= at)
    }

    /// The webhook's part: decide, claim, expire (as `Journal::record_delivery`).
    fn deliver(&mut self, index: usize, at: DateTime<Utc>) {
        let notification: &Notification = &self.input.notifications[index];
        let alert = &notification.alert;
        let decided = runbook::decide(self.config, alert);
        let mut decision = decided.decision;
        let mut claimed = None;
        let target = decided.run.as_ref().map(|run| run.target.clone());
        if let (Some(request), Some(rule)) = (&decided.run, &decided.rule) {
            let target_key = self.target_key(request.action, &request.target);
            if request.action.can_restore() {
                self.schedule(at, Happening::TryRestores(target_key));
            }
            let key = RunKey::of(alert, request.action, request.kind);
            let ended = alert.status == AlertStatus::Firing && self.resolved_by(&key, at);
            if ended {
                decision = Decision::OccurrenceEnded;
            } else if self.claims.contains_key(&key) {
                decision = Decision::Duplicate;
            } else {
                let past = self.input.past_runs.get(&key).cloned();
                let run = self.runs.len();
                let state = request.initial_state();
                self.runs.push(ModelRun {
                    key: key.clone(),
                    rule: rule.clone(),
                    action: request.action,
                    kind: request.kind,
                    target_key,
                    stage: match state {
                        RunState::AwaitingApproval => Stage::AwaitingApproval,
                        RunState::Notified => Stage::Ended,
                        _ => Stage::Pending,
                    },
                    past: past.clone(),
                    fate: match state {
                        RunState::AwaitingApproval => Fate::AwaitingApproval,
                        RunState::Notified => Fate::Escalated,
                        _ => Fate::Waiting,
                    },
                    effect: Effect::None,
                    started_at: None,
                    applying_at: None,
                    finished_at: None,
                });
                self.of_target[target_key].push(run);
                self.of_occurrence
                    .entry(Model::occurrence(&key))
                    .or_default()
                    .push(run);
                self.claims.insert(key, run);
                claimed = Some(run);
                match (state, request.kind) {
                    (RunState::Pending, RunKind::Apply) => {
                        let attempt = past
                            .as_ref()
                            .filter(|past| past.policy == Policy::Auto)
                            .and_then(|past| match past.fate {
                                Fate::Held(_) => past.finished_at,
                                _ => past.started_at,
                            })
                            .map_or(at, |then| then.max(at));
                        self.schedule(attempt, Happening::TryStart(run));
                    }
                    (RunState::Pending, RunKind::Restore) => {
                        self.pending_restores[target_key].insert(run);
                        self.schedule(at, Happening::TryRestores(target_key));
                    }
                    (RunState::AwaitingApproval, _) => {
                        // On-call's decision then, if the same escalation was decided.
                        if let Some(past) = past.filter(|past| past.policy == Policy::Approve) {
                            match (past.decided_at, past.state) {
                                (Some(when), RunState::Rejected) => {
                                    self.schedule(when.max(at), Happening::Reject(run))
                                }
                                (_, RunState::AwaitingApproval | RunState::Expired) | (None, _) => {
                                }
                                (Some(when), _) => {
                                    self.schedule(when.max(at), Happening::Approve(run))
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if alert.status == AlertStatus::Resolved {
            let occurrence = (alert.fingerprint.clone(), alert.starts_at);
            self.resolved.entry(occurrence.clone()).or_insert(at);
            let runs = self
                .of_occurrence
                .get(&occurrence)
                .cloned()
                .unwrap_or_default();
            for run in runs {
                if self.runs[run].stage == Stage::AwaitingApproval {
                    self.end(run, Fate::Expired);
                }
                // The resolution may end its target's wait.
                self.schedule(at, Happening::TryRestores(self.runs[run].target_key));
            }
        }
        self.decided[index] = Some((
            Decided {
                rule: decided.rule.clone(),
                decision,
                target,
                fate: Fate::NoRun(decision),
            },
            claimed,
        ));
    }

    fn end(&mut self, run: usize, fate: Fate) {
        let run = &mut self.runs[run];
        run.stage = Stage::Ended;
        run.fate = fate;
    }

    fn approve(&mut self, run: usize, at: DateTime<Utc>) {
        if self.runs[run].stage != Stage::AwaitingApproval {
            return;
        }
        self.runs[run].stage = Stage::Pending;
        self.runs[run].fate = Fate::Waiting;
        let start = self.runs[run]
            .past
            .as_ref()
            .and_then(|past| past.started_at.or(past.finished_at))
            .map_or(at, |then| then.max(at));
        self.schedule(start, Happening::TryStart(run));
    }

    /// Why a fix may not start at `at` (as `Journal::start`'s holds).
    fn hold(&self, run: usize, at: DateTime<Utc>) -> Option<Hold> {
        let this = &self.runs[run];
        if self.resolved_by(&this.key, at) {
            return Some(Hold::OccurrenceResolved);
        }
        let rule = self.rule(run);
        let within = |period: Duration| {
            let since = at.checked_sub_signed(period);
            self.same_target(run)
                .filter(|(other, fix)| {
                    *other != run
                        && fix.kind == RunKind::Apply
                        && fix.acted(at)
                        && fix
                            .started_at
                            .is_some_and(|started| since.is_none_or(|since| started > since))
                })
                .count()
        };
        let cooldown = Duration::from_std(self.config.cooldown(rule)).unwrap_or(Duration::MAX);
        if within(cooldown) > 0 {
            return Some(Hold::Cooldown);
        }
        if let Some(max) = rule.max_runs_per_hour {
            if within(Duration::hours(1)) >= max as usize {
                return Some(Hold::HourlyCap);
            }
        }
        None
    }

    /// Whether `action` has `max_concurrent_per_action` runs in flight at `at`.
    fn at_cap(&self, action: ActionKind, at: DateTime<Utc>) -> bool {
        let in_flight = self.started.get(&action).map_or(0, |started| {
            started
                .iter()
                .filter(|&&run| self.runs[run].in_flight(at))
                .count()
        });
        in_flight >= self.config.guards.max_concurrent_per_action
    }

    /// Starts a pending run at `at` unless a guard holds it, its restore wait goes on, or
    /// its action is at its cap (then it is tried again when a run of it ends).
    fn try_start(&mut self, run: usize, at: DateTime<Utc>) {
        if self.runs[run].stage != Stage::Pending {
            return;
        }
        match self.runs[run].kind {
            RunKind::Apply => {
                if let Some(hold) = self.hold(run, at) {
                    self.runs[run].finished_at = Some(at);
                    self.end(run, Fate::Held(hold));
                    return;
                }
            }
            RunKind::Restore => match self.restore_wait(run, at) {
                Some(Some(wake)) => {
                    let target = self.runs[run].target_key;
                    self.schedule(wake, Happening::TryRestores(target));
                    return;
                }
                Some(None) => return,
                None => {}
            },
        }
        let action = self.runs[run].action;
        if self.at_cap(action, at) {
            let waiting = self.at_cap.entry(action.name()).or_default();
            if !waiting.contains(&run) {
                waiting.push(run);
            }
            return;
        }
        self.start(run, at);
    }

    /// Starts `run` at `at`: its end and effect as the journal's same run says, where
    /// the runbook under test does not change them.
    fn start(&mut self, run: usize, at: DateTime<Utc>) {
        let rule = self.rule(run);
        let dry_run = self.config.guards.dry_run || rule.dry_run;
        let this = &self.runs[run];
        // A restore ends as it did then only if the fix it undoes did too.
        let as_then = this.kind == RunKind::Apply || self.own_apply_as_then(run);
        let past = this
            .past
            .as_ref()
            .filter(|past| past.fate.started() && as_then);
        let nothing_applied = this.kind == RunKind::Restore && !self.own_apply_changed(run);
        let (end, effect) = if nothing_applied {
            (Some(RunState::NothingToDo), Effect::None)
        } else {
            match past.map(|past| (past.state, past.effect)) {
                // Planning found nothing, refused or failed: before the pause and dry run.
                Some((state @ (RunState::NothingToDo | RunState::Refused), _))
                | Some((state @ RunState::Failed, Effect::None)) => (Some(state), Effect::None),
                Some((RunState::Paused, _)) => (Some(RunState::Paused), Effect::None),
                _ if dry_run => (Some(RunState::DryRun), Effect::None),
                Some((RunState::DryRun, _)) | None => (None, Effect::Changed),
                Some((state, effect)) => (Some(state), effect),
            }
        };
        let duration = past
            .and_then(PastRun::duration)
            .or_else(|| self.typical_duration.get(this.action.name()).copied())
            .unwrap_or_else(Duration::zero);
        let still_running = past.is_some_and(|past| past.finished_at.is_none());
        let (action, target) = (self.runs[run].action, self.runs[run].target_key);
        self.started.entry(action).or_default().insert(run);
        self.pending_restores[target].remove(&run);
        let run_ref = &mut self.runs[run];
        run_ref.stage = Stage::Started;
        run_ref.fate = Fate::Started(end);
        run_ref.effect = effect;
        run_ref.started_at = Some(at);
        run_ref.applying_at = (effect != Effect::None).then_some(at);
        run_ref.finished_at = (!still_running).then(|| at + duration);
        if let Some(finish) = run_ref.finished_at {
            self.schedule(finish, Happening::Finish(run));
        }
    }

    /// Whether the fix this restore undoes applied its change (a restore undoes only a
    /// succeeded apply's plan).
    fn own_apply_changed(&self, restore: usize) -> bool {
        let key = RunKey {
            kind: RunKind::Apply.name(),
            ..self.runs[restore].key.clone()
        };
        self.claims.get(&key).is_some_and(|&apply| {
            matches!(
                self.runs[apply].fate,
                Fate::Started(Some(RunState::Succeeded)) | Fate::Started(None)
            )
        })
    }

    /// Whether the fix this restore undoes ended as it did then.
    fn own_apply_as_then(&self, restore: usize) -> bool {
        let key = RunKey {
            kind: RunKind::Apply.name(),
            ..self.runs[restore].key.clone()
        };
        let then = self.input.past_runs.get(&key).map(|past| &past.fate);
        let now = self.claims.get(&key).map(|&apply| &self.runs[apply].fate);
        then == now
    }

    fn finish(&mut self, run: usize, at: DateTime<Utc>) {
        self.runs[run].stage = Stage::Ended;
        let action = self.runs[run].action;
        if let Some(started) = self.started.get_mut(&action) {
            started.remove(&run);
        }
        if let Some(waiting) = self.at_cap.remove(action.name()) {
            for waiting in waiting {
                self.schedule(at, Happening::TryStart(waiting));
            }
        }
        self.schedule(at, Happening::TryRestores(self.runs[run].target_key));
    }

    /// Tries every pending restore of one (action, target).
    fn try_restores(&mut self, target: usize, at: DateTime<Utc>) {
        let pending: Vec<usize> = self.pending_restores[target].iter().copied().collect();
        for restore in pending {
            self.try_start(restore, at);
        }
    }

    /// `None` when the restore may start at `at`; else when to look again (`Some(None)`:
    /// when a notification or a run's end says something changed).
    fn restore_wait(&self, restore: usize, at: DateTime<Utc>) -> Option<Option<DateTime<Utc>>> {
        let this = &self.runs[restore];
        let apply_key = RunKey {
            kind: RunKind::Apply.name(),
            ..this.key.clone()
        };
        if let Some(&apply) = self.claims.get(&apply_key) {
            if self.runs[apply].unfinished(at) {
                return Some(None);
            }
        }
        let fixes: Vec<&ModelRun> = self
            .same_target(restore)
            .map(|(_, other)| other)
            .filter(|other| other.kind == RunKind::Apply)
            .collect();
        if fixes.iter().any(|fix| !self.resolved_by(&fix.key, at)) {
            return Some(None);
        }
        let last_resolution = fixes
            .iter()
            .filter_map(|fix| self.resolved.get(&Model::occurrence(&fix.key)).copied())
            .max();
        let last_restore = self
            .same_target(restore)
            .map(|(_, other)| other)
            .filter(|other| other.kind == RunKind::Restore && other.effect != Effect::None)
            .filter_map(|other| other.finished_at.filter(|end| *end <= at))
            .max();
        let rule = self.rule(restore);
        let period = Duration::from_std(rule.restore_after).unwrap_or(Duration::MAX);
        if let Some(due) = last_resolution
            .max(last_restore)
            .and_then(|last| last.checked_add_signed(period))
        {
            if due > at {
                return Some(Some(due));
            }
        }
        let own_applying = self
            .claims
            .get(&apply_key)
            .and_then(|&apply| self.runs[apply].applying_at);
        let later_pending = self
            .same_target(restore)
            .filter(|(index, other)| {
                *index != restore && other.kind == RunKind::Restore && other.unfinished(at)
            })
            .any(|(_, other)| {
                let later_apply = RunKey {
                    kind: RunKind::Apply.name(),
                    ..other.key.clone()
                };
                self.claims.get(&later_apply).is_some_and(|&apply| {
                    let apply = &self.runs[apply];
                    apply.effect != Effect::None
                        && matches!((apply.applying_at, own_applying), (Some(later), Some(own)) if later > own)
                })
            });
        if later_pending {
            return Some(at.checked_add_signed(period.max(Duration::seconds(1))));
        }
        None
    }
}
