//! `koji-remediator replay` against a journal a real remediator wrote: duplicates, the
//! cooldown, `max_runs_per_hour`, approvals that expire, escalations, unmatched alerts,
//! late notifications of ended occurrences and restores that wait for a quiet target all
//! happen for real (real webhook, real journal, a Koji database whose capacity changes);
//! the replay through the same runbook then says exactly what the journal says (it is
//! faithful), a runbook with a shorter cooldown or one more rule shows exactly the
//! differences it should, a tampered journal is read row by row with what was set aside
//! said, and nothing is written.

mod support;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use koji_remediator::config::Config;
use koji_remediator::replay::{self, report::Report, Source};
use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use support::{config_text, payload, Remediator};

const HOST_A: &str = "buildvm-x86-01.example.org";
const HOST_B: &str = "buildvm-x86-02.example.org";

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
matchers = { severity = "warning" }
action = "lower_capacity"
policy = "auto"
cooldown = "2s"
max_runs_per_hour = 2
restore_on_resolve = true
restore_after = "1s"
params = { step = 0.5, floor = 2.0 }

[[rule]]
name = "overloaded-builder-critical"
alertname = "KojiBuilderOverloaded"
matchers = { severity = "critical" }
action = "lower_capacity"
policy = "approve"
params = { to = 2.0 }

[[rule]]
name = "shared-storage-full"
alertname = "KojiSharedStorageFull"
action = "escalate"
policy = "notify"
"#;

fn labels(host: &'static str, severity: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("alertname", "KojiBuilderOverloaded"),
        ("host", host),
        ("severity", severity),
    ]
}

/// What the journal of [`history`] says happened, notification by notification.
const THEN: &[(&str, &str)] = &[
    ("firing", "ran: succeeded"),          // A, occurrence 1
    ("firing", "duplicate"),               // A, occurrence 1 again
    ("firing", "held: cooldown"),          // A, occurrence 2 within 2 s
    ("firing", "ran: succeeded"),          // B, occurrence 1
    ("firing", "unmatched"),               // no rule
    ("firing", "escalated"),               // notify rule
    ("firing", "expired"),                 // B critical: waits for on-call
    ("resolved", "resolved ignored"),      // ... and resolves first
    ("firing", "ran: succeeded"),          // A, occurrence 3 after the cooldown
    ("firing", "held: max_runs_per_hour"), // A, occurrence 4: third within the hour
    ("resolved", "ran: succeeded"),        // A occurrence 1 resolved: restored
    ("resolved", "ran: nothing to do"),    // A occurrence 2: nothing was applied
    ("resolved", "ran: succeeded"),        // A occurrence 3: restored first (latest)
    ("resolved", "ran: nothing to do"),    // A occurrence 4
    ("firing", "occurrence ended"),        // a late firing of A occurrence 1
    ("resolved", "ran: succeeded"),        // B occurrence 1 restored
];

/// A remediator that went through every guard; returns it and when it began.
async fn history() -> (Remediator, chrono::DateTime<Utc>) {
    let began = Utc::now();
    let remediator = Remediator::start(KojiVersion::V1_33, RULES).await;
    for host in [HOST_A, HOST_B] {
        add_host(
            &remediator.hub.client,
            KojiVersion::V1_33,
            &HostSpec::new(host),
        )
        .await
        .unwrap();
    }
    // One alert: firing or resolved, its labels, its fingerprint and the hour it started.
    let send = |resolved: bool, labels: Vec<(&'static str, &'static str)>, fingerprint, hour| {
        let remediator = &remediator;
        async move {
            let starts_at = format!("2026-11-30T0{hour}:00:00Z");
            let body = payload(resolved, &labels, fingerprint, &starts_at);
            let (status, answer) = remediator.post(&body).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    const A: &str = "a1a1a1a1a1a1a1a1";
    send(false, labels(HOST_A, "warning"), A, 1).await;
    remediator.finished_runs(1).await;
    send(false, labels(HOST_A, "warning"), A, 1).await;
    send(false, labels(HOST_A, "warning"), A, 2).await;
    remediator.finished_runs(2).await;
    send(false, labels(HOST_B, "warning"), "b1b1b1b1b1b1b1b1", 1).await;
    let unmatched = vec![("alertname", "KojiSomethingNew"), ("host", HOST_B)];
    send(false, unmatched, "c1c1c1c1c1c1c1c1", 1).await;
    let storage = vec![
        ("alertname", "KojiSharedStorageFull"),
        ("mountpoint", "/mnt/koji"),
    ];
    send(false, storage, "d1d1d1d1d1d1d1d1", 1).await;
    send(false, labels(HOST_B, "critical"), "e1e1e1e1e1e1e1e1", 1).await;
    send(true, labels(HOST_B, "critical"), "e1e1e1e1e1e1e1e1", 1).await;
    remediator.finished_runs(5).await;
    // After the cooldown: the second change of A within the hour, then the third is held.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    send(false, labels(HOST_A, "warning"), A, 3).await;
    remediator.finished_runs(6).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    send(false, labels(HOST_A, "warning"), A, 4).await;
    remediator.finished_runs(7).await;
    for hour in 1..=4 {
        send(true, labels(HOST_A, "warning"), A, hour).await;
    }
    send(false, labels(HOST_A, "warning"), A, 1).await;
    remediator.finished_runs(11).await;
    send(true, labels(HOST_B, "warning"), "b1b1b1b1b1b1b1b1", 1).await;
    let runs = remediator.finished_runs(12).await;
    assert_eq!(runs.len(), 12, "{runs:#?}");
    // The world agrees: both builders are back where they were.
    assert_eq!(remediator.active_capacity_of(HOST_A).await, 4.0);
    assert_eq!(remediator.active_capacity_of(HOST_B).await, 4.0);
    (remediator, began)
}

async fn replay_through(
    remediator: &Remediator,
    config: &Config,
    from: chrono::DateTime<Utc>,
) -> Report {
    replay::replay(
        config,
        "the runbook".into(),
        Source::Journal {
            database: config.journal.clone().unwrap(),
            url_given: false,
            from,
            until: Utc::now(),
        },
        None,
    )
    .await
    .unwrap_or_else(|error| panic!("replay of {}: {error}", remediator.journal_url))
}

/// The remediator's configuration with the rules replaced.
fn with_rules(remediator: &Remediator, rules: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        dir.path(),
        &remediator.hub.url,
        &remediator.journal_url,
        rules,
    );
    Config::parse(&text, Path::new("proposed.toml")).unwrap()
}

/// The rows that differ: (position, then, would).
fn differing_rows(report: &Report) -> Vec<(usize, String, String)> {
    report
        .rows
        .iter()
        .enumerate()
        .filter(|(_, row)| row.differs)
        .map(|(index, row)| (index, row.then.clone().unwrap(), row.would.clone()))
        .collect()
}

fn then_and_would(report: &Report) -> Vec<(String, String, String)> {
    report
        .rows
        .iter()
        .map(|row| {
            (
                row.status.to_owned(),
                row.then.clone().unwrap_or_default(),
                row.would.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn replay_is_faithful_and_shows_exactly_what_a_changed_runbook_changes() {
    let (remediator, began) = history().await;
    let counts = remediator.journal_counts().await;

    // The same runbook: exactly what happened.
    let report = replay_through(&remediator, &remediator.config, began).await;
    let rows = then_and_would(&report);
    let expected: Vec<(String, String, String)> = THEN
        .iter()
        .map(|(status, then)| (status.to_string(), then.to_string(), then.to_string()))
        .collect();
    assert_eq!(rows, expected, "{}", report.table(false));
    assert_eq!(report.differences, 0);
    assert!(report.set_aside.is_empty(), "{:?}", report.set_aside);
    let overloaded = report
        .rules
        .iter()
        .find(|rule| rule.name == "overloaded-builder")
        .unwrap();
    assert_eq!(
        (
            overloaded.would.runs,
            overloaded.would.held_cooldown,
            overloaded.would.held_hourly_cap
        ),
        (3 + 5, 1, 1),
        "3 fixes and 5 restores ran, one held by each guard"
    );
    assert_eq!(overloaded.then, overloaded.would);

    // One more rule: only the alert it matches changes.
    let new_rule = format!(
        "{RULES}\n[[rule]]\nname = \"something-new\"\nalertname = \"KojiSomethingNew\"\naction = \"escalate\"\npolicy = \"notify\"\n"
    );
    let report = replay_through(&remediator, &with_rules(&remediator, &new_rule), began).await;
    let differing = differing_rows(&report);
    assert_eq!(
        differing,
        vec![(4, "unmatched".to_string(), "escalated".to_string())],
        "{}",
        report.table(false)
    );

    // No cooldown: occurrence 2 of A runs, so occurrence 3 is the third change within the
    // hour and is held; their restores change accordingly.
    let report = replay_through(
        &remediator,
        &with_rules(
            &remediator,
            &RULES.replace("cooldown = \"2s\"", "cooldown = \"0s\""),
        ),
        began,
    )
    .await;
    let differing = differing_rows(&report);
    assert_eq!(
        differing,
        vec![
            (2, "held: cooldown".into(), "would run".into()),
            (8, "ran: succeeded".into(), "held: max_runs_per_hour".into()),
            (11, "ran: nothing to do".into(), "would run".into()),
            (12, "ran: succeeded".into(), "ran: nothing to do".into()),
        ],
        "{}",
        report.table(false)
    );
    let table = report.table(false);
    assert!(table.contains("4 of 16 notification(s) differ."), "{table}");
    let only: Vec<String> = report
        .table(true)
        .lines()
        .filter(|line| line.contains("KojiBuilderOverloaded"))
        .map(str::to_owned)
        .collect();
    assert!(
        only.len() == 4 && only.iter().all(|line| line.starts_with('≠')),
        "{only:#?}"
    );
    assert!(
        table.contains(
            "overloaded-builder           runs 8, held by cooldown 1 -> 0, \
             by max_runs_per_hour 1 -> 2, otherwise 0, escalations 1 -> 2, waiting 0"
        ),
        "{table}"
    );

    // Nothing was written.
    assert_eq!(remediator.journal_counts().await, counts);
}

/// The remediator's configuration (with [`RULES`]) written to `<dir>/runbook.toml`.
fn runbook_file(dir: &Path, remediator: &Remediator) -> std::path::PathBuf {
    let path = dir.join("runbook.toml");
    let text = config_text(dir, &remediator.hub.url, &remediator.journal_url, RULES);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `koji-remediator replay` with `args`; its standard output.
fn replay_command(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .arg("replay")
        .args(args)
        // The environment's journal (a service's) never wins over --journal.url.
        .env(
            "KOJI_REMEDIATOR_JOURNAL_URL",
            "host=/nonexistent dbname=elsewhere",
        )
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A reader of the journal that may only SELECT, as README suggests for replays.
async fn reader_url(remediator: &Remediator) -> String {
    let client = koji_testkit::test_db::connect(&remediator.journal_url)
        .await
        .unwrap();
    client
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'journal_reader') THEN
                 CREATE ROLE journal_reader LOGIN;
               END IF;
             END $$;
             GRANT USAGE ON SCHEMA koji_remediator TO journal_reader;
             GRANT SELECT ON ALL TABLES IN SCHEMA koji_remediator TO journal_reader;",
        )
        .await
        .unwrap();
    // A key=value connection string: the later user wins.
    format!("{} user=journal_reader", remediator.journal_url)
}

#[tokio::test]
async fn the_command_line_reads_a_tampered_journal_read_only_and_plans_today() {
    let (remediator, _) = history().await;
    let journal = koji_testkit::test_db::connect(&remediator.journal_url)
        .await
        .unwrap();
    // Someone edited the journal by hand.
    journal
        .batch_execute(
            "UPDATE koji_remediator.alerts SET labels = '[\"not\", \"a map\"]'
              WHERE labels->>'alertname' = 'KojiSomethingNew';
             UPDATE koji_remediator.alerts SET status = 'exploded'
              WHERE id = (SELECT min(id) FROM koji_remediator.alerts WHERE decision = 'duplicate');
             UPDATE koji_remediator.alerts SET decision = 'teleported'
              WHERE labels->>'alertname' = 'KojiSharedStorageFull';
             DELETE FROM koji_remediator.notices
              WHERE run_id IN (SELECT id FROM koji_remediator.action_runs WHERE state = 'expired');
             DELETE FROM koji_remediator.action_runs WHERE state = 'expired';
             UPDATE koji_remediator.action_runs SET state = 'weird'
              WHERE id = (SELECT max(id) FROM koji_remediator.action_runs);",
        )
        .await
        .unwrap();
    let counts = remediator.journal_counts().await;
    let dir = tempfile::tempdir().unwrap();
    let config = runbook_file(dir.path(), &remediator);
    let reader = reader_url(&remediator).await;
    let config = config.to_str().unwrap();
    let table = replay_command(&[
        "--config.file",
        config,
        "--journal.url",
        &reader,
        "--since",
        "1h",
        "--plan",
    ]);
    // Five edits; the run with a made-up state is set aside, and so is its alert's "then".
    assert!(table.contains("Set aside (6):"), "{table}");
    for said in [
        "labels are not a map of strings",
        "unknown status \"exploded\"",
        "unknown decision \"teleported\"",
        "its run is not in the journal",
        "unknown state \"weird\"",
    ] {
        assert!(table.contains(said), "{said}: {table}");
    }
    assert!(table.contains("0 of 14 notification(s) differ."), "{table}");
    // Today's plans: builder A is back at 4, so its fix would lower it again.
    assert!(
        table.contains(&format!(
            "today's plan: set capacity of Koji host {HOST_A} from 4 to 3.5"
        )),
        "{table}"
    );

    // The same, only what differs: no row, the summaries still there.
    let only = replay_command(&[
        "--config.file",
        config,
        "--journal.url",
        &reader,
        "--since",
        "1h",
        "--only-differences",
    ]);
    assert!(!only.contains("KojiBuilderOverloaded"), "{only}");
    assert!(
        only.contains("0 of 14 notification(s) differ.") && only.contains("By rule"),
        "{only}"
    );

    let json: serde_json::Value = serde_json::from_str(&replay_command(&[
        "--config.file",
        config,
        "--journal.url",
        &reader,
        "--since",
        "1h",
        "--output",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["differences"], 0);
    assert_eq!(json["rows"].as_array().unwrap().len(), 14);
    assert_eq!(json["set_aside"].as_array().unwrap().len(), 6);
    assert_eq!(json["rows"][0]["then"], "ran: succeeded");
    assert_eq!(json["rows"][0]["would"], "ran: succeeded");

    // Nothing was written, by a reader that could not have written anyway, nor by the
    // planner on the hub.
    assert_eq!(remediator.journal_counts().await, counts);
    assert_eq!(remediator.active_capacity_of(HOST_A).await, 4.0);
}

#[tokio::test]
async fn captured_payloads_replay_in_time_order_and_bad_lines_are_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let remediator = Remediator::start(KojiVersion::V1_33, RULES).await;
    let config = runbook_file(dir.path(), &remediator);
    let firing = payload(
        false,
        &labels(HOST_A, "warning"),
        "f1f1f1f1f1f1f1f1",
        "2026-11-30T01:00:00Z",
    );
    let again = payload(
        false,
        &labels(HOST_A, "warning"),
        "f1f1f1f1f1f1f1f1",
        "2026-11-30T01:00:01Z",
    );
    let wrapped = format!(r#"{{"received_at": "2026-11-30T01:00:01.500Z", "payload": {again}}}"#);
    // Out of order on purpose, and one line that is not a payload. The second arrives
    // 1.5 s after the first, within the rule's 2 s cooldown.
    let file = dir.path().join("captured.jsonl");
    std::fs::write(&file, format!("{wrapped}\nnot json at all\n{firing}\n")).unwrap();
    let table = replay_command(&[
        "--config.file",
        config.to_str().unwrap(),
        "--payloads",
        file.to_str().unwrap(),
    ]);
    let rows: Vec<&str> = table
        .lines()
        .filter(|line| line.contains("KojiBuilderOverloaded"))
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].contains("2026-11-30 01:00:00") && rows[0].trim_end().ends_with("would run"),
        "{table}"
    );
    assert!(
        rows[1].contains("2026-11-30 01:00:01") && rows[1].trim_end().ends_with("held: cooldown"),
        "{table}"
    );
    assert!(table.contains("line 2: not JSON"), "{table}");
    assert_eq!(remediator.journal_counts().await, (0, 0, 0));
}
