//! The run lifecycle against a real journal: occurrences end (a resolved notification
//! arriving before a late firing one of the same occurrence leaves the host untouched), and
//! a run that failed before changing anything starts no cooldown and, while its notice is
//! retried, holds back no other run.

mod support;

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use support::{payload, Remediator, HOST};

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "1h"
restore_on_resolve = true
restore_after = "0s"
params = { step = 1.0, floor = 2.0 }
"#;

#[tokio::test]
async fn a_late_firing_after_the_resolution_acts_on_nothing() {
    let remediator = Remediator::start(KojiVersion::V1_33, RULES).await;
    add_host(
        &remediator.hub.client,
        KojiVersion::V1_33,
        &HostSpec::new(HOST),
    )
    .await
    .unwrap();
    let labels = [("alertname", "KojiBuilderOverloaded"), ("host", HOST)];
    let starts = "2026-11-30T01:00:00Z";
    // A second Alertmanager's retry: the resolution arrives first...
    let (status, _) = remediator
        .post(&payload(true, &labels, "a1a1a1a1a1a1a1a1", starts))
        .await;
    assert_eq!(status, 200);
    // ...then the late firing notification of the same occurrence.
    let (status, answer) = remediator
        .post(&payload(false, &labels, "a1a1a1a1a1a1a1a1", starts))
        .await;
    assert_eq!(
        (status, answer["runs_claimed"].as_i64()),
        (200, Some(0)),
        "{answer}"
    );
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs.len(), 1, "only the restore: {runs:#?}");
    assert_eq!(runs[0]["kind"], "restore");
    assert_eq!(runs[0]["state"], "nothing_to_do", "{runs:#?}");
    let decisions = remediator.alert_decisions().await;
    assert_eq!(
        decisions[0]["decision"], "occurrence_ended",
        "{decisions:#?}"
    );
    assert_eq!(remediator.active_capacity().await, 4.0, "never lowered");
}

/// A run that failed before changing anything (Koji would refuse the change: the
/// remediator's Koji user is blocked) starts no cooldown and says nothing changed; its outage notice,
/// retrying a notice webhook that does not answer, holds no slot of the action (the cap is
/// the test support's cap is 2, and four runs follow at once).
#[tokio::test]
async fn a_failed_run_that_changed_nothing_holds_back_nothing() {
    let rules = format!(
        "[notify]\nwebhook_url = \"http://127.0.0.1:9/unreachable\"\nattempts = 100\nretry_delay = \"1s\"\n{RULES}"
    );
    let remediator = Remediator::start(KojiVersion::V1_33, &rules).await;
    let hub = &remediator.hub.client;
    let others = [
        "buildvm-b.example.org",
        "buildvm-c.example.org",
        "buildvm-d.example.org",
    ];
    for host in std::iter::once(HOST).chain(others) {
        add_host(hub, KojiVersion::V1_33, &HostSpec::new(host))
            .await
            .unwrap();
    }
    // Koji would refuse the change: the remediator's Koji user is blocked.
    hub.execute(
        "UPDATE users SET status = 1 WHERE name = 'koji-remediator'",
        &[],
    )
    .await
    .unwrap();
    let labels = [("alertname", "KojiBuilderOverloaded"), ("host", HOST)];
    remediator
        .post(&payload(
            false,
            &labels,
            "b2b2b2b2b2b2b2b2",
            "2026-11-30T01:00:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "failed", "{runs:#?}");
    assert_eq!(runs[0]["effect"], "none", "{runs:#?}");
    let outcome = runs[0]["outcome"].as_str().unwrap();
    assert!(outcome.contains("before changing anything"), "{outcome}");
    assert!(
        outcome
            .contains("Koji would not let \"koji-remediator\" change a host: the user is blocked"),
        "{outcome}"
    );
    hub.execute(
        "UPDATE users SET status = 0 WHERE name = 'koji-remediator'",
        &[],
    )
    .await
    .unwrap();
    // Its notice keeps failing in the outbox meanwhile; three other builders' runs go on.
    let started = std::time::Instant::now();
    for (n, host) in others.iter().enumerate() {
        let labels = [("alertname", "KojiBuilderOverloaded"), ("host", *host)];
        remediator
            .post(&payload(
                false,
                &labels,
                &format!("c3c3c3c3c3c3c3c{n}"),
                "2026-11-30T01:01:00Z",
            ))
            .await;
    }
    // And a new occurrence on the first host within the hour: no cooldown holds it.
    remediator
        .post(&payload(
            false,
            &labels,
            "b2b2b2b2b2b2b2b2",
            "2026-11-30T01:05:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(5).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "runs waited behind a notice"
    );
    for run in &runs[..4] {
        assert_eq!(run["state"], "succeeded", "{runs:#?}");
        assert_eq!(run["effect"], "changed", "{runs:#?}");
    }
    assert_eq!(remediator.active_capacity_of(HOST).await, 3.0);
    // One that did change something holds the next back.
    remediator
        .post(&payload(
            false,
            &labels,
            "b2b2b2b2b2b2b2b2",
            "2026-11-30T01:10:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(6).await;
    assert_eq!(runs[0]["state"], "skipped", "{runs:#?}");
    assert_eq!(remediator.active_capacity_of(HOST).await, 3.0);
    let notices: i64 = koji_testkit::test_db::connect(&remediator.journal_url)
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM koji_remediator.notices WHERE state = 'pending' AND attempts >= 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        notices, 1,
        "the failure's notice is still being retried, apart"
    );
}
