//! The replay's guards on cases a few seconds of a real loop cannot show: runs that take
//! minutes (the action's cap), a rule turned to dry run, the pause switch as it was then,
//! and on-call's decisions. The model is a pure function of the notifications and the
//! journal's runs, so these build both by hand; the journal-backed tests
//! (`replay.rs`, and the capacity and kojid loops) hold the same model to a real journal.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use koji_remediator::actions::kind::ActionKind;
use koji_remediator::alertmanager::{Alert, AlertStatus};
use koji_remediator::config::Config;
use koji_remediator::lifecycle::{Effect, Policy, RunKind, RunState};
use koji_remediator::replay::fate::Fate;
use koji_remediator::replay::input::{Notification, PastRun, ReplayInput, RunKey};
use koji_remediator::replay::model;

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::seconds(seconds)
}

fn config(guards: &str, rule: &str) -> Config {
    let text = format!(
        r#"
[server]
webhook_token_file = "/dev/null"
api_token_file = "/dev/null"
[journal]
url = "host=/nonexistent"
[hub]
url = "host=/nonexistent"
[guards]
{guards}
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
cooldown = "10m"
params = {{ step = 1.0, floor = 2.0 }}
{rule}
"#
    );
    Config::parse(&text, Path::new("model.toml")).unwrap()
}

fn alert(host: &str, starts: i64) -> Alert {
    Alert {
        status: AlertStatus::Firing,
        labels: BTreeMap::from([
            ("alertname".to_owned(), "KojiBuilderOverloaded".to_owned()),
            ("host".to_owned(), host.to_owned()),
        ]),
        annotations: BTreeMap::new(),
        starts_at: t(starts),
        ends_at: None,
        fingerprint: format!("{:0>16}", host.len()),
        generator_url: String::new(),
        replaced: Vec::new(),
    }
}

/// A notification of `alert` arriving at `at`, with what happened then.
fn arriving(at: i64, alert: Alert, then: Fate) -> Notification {
    Notification {
        received_at: t(at),
        alert,
        then: Some(koji_remediator::replay::input::Then {
            fate: then,
            rule: Some("overloaded-builder".into()),
            target: None,
        }),
        journal_id: None,
    }
}

/// The journal's apply run for `alert`: `policy`, ending `state` after running
/// `from`..`to` (seconds), on-call deciding at `decided`.
fn ran(
    input: &mut ReplayInput,
    alert: &Alert,
    policy: Policy,
    state: RunState,
    (from, to): (i64, i64),
    decided: Option<i64>,
) {
    let effect = match state {
        RunState::Succeeded => Effect::Changed,
        _ => Effect::None,
    };
    input.past_runs.insert(
        RunKey::of(alert, ActionKind::LowerCapacity, RunKind::Apply),
        PastRun {
            id: input.past_runs.len() as i64 + 1,
            policy,
            state,
            fate: Fate::Started(Some(state)),
            effect,
            started_at: Some(t(from)),
            finished_at: Some(t(to)),
            decided_at: decided.map(t),
        },
    );
}

fn fates(config: &Config, input: &ReplayInput, end: i64) -> Vec<Fate> {
    model::replay(config, input, t(end))
        .into_iter()
        .map(|decided| decided.fate)
        .collect()
}

/// Two builders' fixes, each taking 10 minutes, ran side by side then (a cap of 2).
fn two_long_fixes() -> ReplayInput {
    let (a, b) = (alert("builder-a", 0), alert("builder-bb", 0));
    let mut input = ReplayInput::default();
    ran(
        &mut input,
        &a,
        Policy::Auto,
        RunState::Succeeded,
        (0, 600),
        None,
    );
    ran(
        &mut input,
        &b,
        Policy::Auto,
        RunState::Succeeded,
        (60, 660),
        None,
    );
    input.notifications = vec![
        arriving(0, a, Fate::Started(Some(RunState::Succeeded))),
        arriving(60, b, Fate::Started(Some(RunState::Succeeded))),
    ];
    input
}

#[test]
fn a_lower_cap_makes_the_second_fix_wait_for_the_first() {
    let input = two_long_fixes();
    let succeeded = Fate::Started(Some(RunState::Succeeded));
    let as_then = config("max_concurrent_per_action = 2", "policy = \"auto\"");
    assert_eq!(
        fates(&as_then, &input, 3600),
        [succeeded.clone(), succeeded.clone()]
    );
    let one_at_a_time = config("max_concurrent_per_action = 1", "policy = \"auto\"");
    // Ten minutes in, the second still waits for the first's slot ...
    assert_eq!(
        fates(&one_at_a_time, &input, 300),
        [succeeded.clone(), Fate::Waiting]
    );
    // ... and starts once it frees.
    assert_eq!(
        fates(&one_at_a_time, &input, 3600),
        [succeeded.clone(), succeeded]
    );
}

#[test]
fn a_dry_run_rule_changes_nothing_so_no_cooldown_holds_the_next_occurrence() {
    let (first, second) = (alert("builder-a", 0), alert("builder-a", 120));
    let mut input = ReplayInput::default();
    ran(
        &mut input,
        &first,
        Policy::Auto,
        RunState::Succeeded,
        (0, 1),
        None,
    );
    input.notifications = vec![
        arriving(0, first, Fate::Started(Some(RunState::Succeeded))),
        arriving(
            120,
            second,
            Fate::Held(koji_remediator::lifecycle::Hold::Cooldown),
        ),
    ];
    let as_then = config("", "policy = \"auto\"");
    assert_eq!(
        fates(&as_then, &input, 3600),
        [
            Fate::Started(Some(RunState::Succeeded)),
            Fate::Held(koji_remediator::lifecycle::Hold::Cooldown)
        ]
    );
    let dry = config("", "policy = \"auto\"\ndry_run = true");
    assert_eq!(
        fates(&dry, &input, 3600),
        [
            Fate::Started(Some(RunState::DryRun)),
            Fate::Started(Some(RunState::DryRun))
        ]
    );
}

#[test]
fn the_pause_switch_is_taken_as_it_was_then() {
    let paused = alert("builder-a", 0);
    let mut input = ReplayInput::default();
    ran(
        &mut input,
        &paused,
        Policy::Auto,
        RunState::Paused,
        (0, 1),
        None,
    );
    input.notifications = vec![arriving(0, paused, Fate::Started(Some(RunState::Paused)))];
    assert_eq!(
        fates(&config("", "policy = \"auto\""), &input, 3600),
        [Fate::Started(Some(RunState::Paused))]
    );
}

#[test]
fn on_call_decides_as_then_and_a_rule_turned_to_approve_waits_for_them() {
    let a = alert("builder-a", 0);
    let mut input = ReplayInput::default();
    // Then: on-call approved after five minutes, and it ran.
    ran(
        &mut input,
        &a,
        Policy::Approve,
        RunState::Succeeded,
        (300, 301),
        Some(300),
    );
    input.notifications = vec![arriving(0, a, Fate::Started(Some(RunState::Succeeded)))];
    let approve = config("", "policy = \"approve\"");
    assert_eq!(fates(&approve, &input, 100), [Fate::AwaitingApproval]);
    assert_eq!(
        fates(&approve, &input, 3600),
        [Fate::Started(Some(RunState::Succeeded))]
    );

    // Then it ran by itself; with `approve` it would still wait for on-call.
    let b = alert("builder-bb", 0);
    let mut input = ReplayInput::default();
    ran(
        &mut input,
        &b,
        Policy::Auto,
        RunState::Succeeded,
        (0, 1),
        None,
    );
    input.notifications = vec![arriving(0, b, Fate::Started(Some(RunState::Succeeded)))];
    assert_eq!(fates(&approve, &input, 3600), [Fate::AwaitingApproval]);
}
