//! The run lifecycle against a real journal: occurrences end (a resolved notification
//! arriving before a late firing one of the same occurrence leaves the host untouched), and
//! a run that failed before changing anything starts no cooldown.

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

#[tokio::test]
async fn a_run_that_changed_nothing_starts_no_cooldown() {
    let remediator = Remediator::start(KojiVersion::V1_33, RULES).await;
    let labels = [("alertname", "KojiBuilderOverloaded"), ("host", HOST)];
    // No such host yet: refused, nothing changed.
    remediator
        .post(&payload(
            false,
            &labels,
            "b2b2b2b2b2b2b2b2",
            "2026-11-30T01:00:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "refused", "{runs:#?}");
    assert_eq!(runs[0]["effect"], "none", "{runs:#?}");
    add_host(
        &remediator.hub.client,
        KojiVersion::V1_33,
        &HostSpec::new(HOST),
    )
    .await
    .unwrap();
    // A new occurrence within the hour: not held back by the cooldown.
    remediator
        .post(&payload(
            false,
            &labels,
            "b2b2b2b2b2b2b2b2",
            "2026-11-30T01:05:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(2).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(runs[0]["effect"], "changed", "{runs:#?}");
    assert_eq!(remediator.active_capacity().await, 3.0);
    // And one that did change something holds the next back.
    remediator
        .post(&payload(
            false,
            &labels,
            "b2b2b2b2b2b2b2b2",
            "2026-11-30T01:10:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(3).await;
    assert_eq!(runs[0]["state"], "skipped", "{runs:#?}");
    assert_eq!(remediator.active_capacity().await, 3.0);
}
