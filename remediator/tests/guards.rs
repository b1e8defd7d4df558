//! The central guards through the webhook: idempotency across repeated and concurrent
//! deliveries, cooldown per target, the pause switch, dry-run, resolved alerts, unmatched
//! alerts, policies that wait for a human, the hourly limit that escalates a fix which
//! keeps being needed, and the metrics that count it all.

mod support;

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use support::{notice_sink, payload, Remediator, API_TOKEN};

const HOST: &str = "buildvm-x86-01.example.org";

fn rules(extra: &str) -> String {
    format!(
        r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
matchers = {{ severity = "warning" }}
action = "lower_capacity"
policy = "auto"
cooldown = "1h"
params = {{ step = 0.5, floor = 2.0 }}

[[rule]]
name = "overloaded-builder-critical"
alertname = "KojiBuilderOverloaded"
matchers = {{ severity = "critical" }}
action = "lower_capacity"
policy = "approve"
params = {{ to = 2.0 }}
{extra}
"#
    )
}

async fn started(extra: &str) -> Remediator {
    let remediator = Remediator::start(KojiVersion::V1_33, &rules(extra)).await;
    for host in [HOST, "buildvm-x86-02.example.org"] {
        add_host(
            &remediator.hub.client,
            KojiVersion::V1_33,
            &HostSpec::new(host),
        )
        .await
        .unwrap();
    }
    remediator
}

async fn capacity(remediator: &Remediator, host: &str) -> f64 {
    remediator
        .hub
        .client
        .query_one(
            "SELECT hc.capacity FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active
              WHERE h.name = $1",
            &[&host],
        )
        .await
        .unwrap()
        .get(0)
}

fn warning(host: &str) -> Vec<(&str, &str)> {
    vec![
        ("alertname", "KojiBuilderOverloaded"),
        ("host", host),
        ("severity", "warning"),
    ]
}

#[tokio::test]
async fn the_same_alert_delivered_50_times_and_3_at_once_runs_once() {
    let remediator = started("").await;
    let body = payload(
        false,
        &warning(HOST),
        "aaaa000011112222",
        "2026-11-28T10:00:00Z",
    );
    for _ in 0..50 {
        let (status, _) = remediator.post(&body).await;
        assert_eq!(status, 200);
    }
    // Three Alertmanager replicas posting another occurrence at the same moment.
    let other = payload(
        false,
        &warning("buildvm-x86-02.example.org"),
        "bbbb000011112222",
        "2026-11-28T10:00:00Z",
    );
    let posts = (0..3).map(|_| remediator.post(&other));
    let answers = futures::future::join_all(posts).await;
    assert!(answers.iter().all(|(status, _)| *status == 200));
    let decisions = remediator.alert_decisions().await;
    let duplicates = decisions
        .iter()
        .filter(|d| d["decision"] == "duplicate")
        .count();
    assert_eq!(duplicates, 49 + 2, "every repeat journaled as a duplicate");
    let claimed: i64 = answers
        .iter()
        .map(|(_, body)| body["runs_claimed"].as_i64().unwrap())
        .sum();
    assert_eq!(claimed, 1, "{answers:?}");

    let runs = remediator.finished_runs(2).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(capacity(&remediator, HOST).await, 3.5);
    assert_eq!(
        capacity(&remediator, "buildvm-x86-02.example.org").await,
        3.5
    );
    let (deliveries, alerts, action_runs) = remediator.journal_counts().await;
    assert_eq!(
        (deliveries, alerts, action_runs),
        (53, 53, 2),
        "every delivery journaled"
    );
}

#[tokio::test]
async fn cooldown_holds_per_target_and_resolved_alerts_do_nothing() {
    let remediator = started("").await;
    let first = payload(
        false,
        &warning(HOST),
        "cccc000011112222",
        "2026-11-28T11:00:00Z",
    );
    remediator.post(&first).await;
    remediator.finished_runs(1).await;
    // A new occurrence for the same host within the hour: held back.
    let again = payload(
        false,
        &warning(HOST),
        "cccc000011112222",
        "2026-11-28T11:20:00Z",
    );
    remediator.post(&again).await;
    let runs = remediator.finished_runs(2).await;
    assert_eq!(runs[0]["state"], "skipped", "{runs:#?}");
    assert!(runs[0]["outcome"].as_str().unwrap().starts_with("cooldown"));
    assert_eq!(capacity(&remediator, HOST).await, 3.5);
    // Another host is another target.
    let other = payload(
        false,
        &warning("buildvm-x86-02.example.org"),
        "dddd000011112222",
        "2026-11-28T11:20:00Z",
    );
    remediator.post(&other).await;
    let runs = remediator.finished_runs(3).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    // This rule has no restore: the resolved alert is journaled and triggers nothing.
    let resolved = payload(
        true,
        &warning(HOST),
        "cccc000011112222",
        "2026-11-28T11:00:00Z",
    );
    let (status, body) = remediator.post(&resolved).await;
    assert_eq!((status, body["runs_claimed"].as_i64()), (200, Some(0)));
    assert_eq!(remediator.runs().await.len(), 3);
    assert_eq!(
        remediator.alert_decisions().await[0]["decision"],
        "resolved_ignored"
    );
    assert_eq!(capacity(&remediator, HOST).await, 3.5);
}

#[tokio::test]
async fn pause_switch_and_dry_run_keep_the_plan_and_apply_nothing() {
    let dry = r#"
[[rule]]
name = "dry"
alertname = "KojiBuilderOverloadedDry"
action = "lower_capacity"
policy = "auto"
dry_run = true
params = { step = 1.0 }
"#;
    let remediator = started(dry).await;
    let url = format!("{}/api/v1/pause", remediator.base);
    // The pause API wants on-call's token, not Alertmanager's.
    let response = remediator
        .client
        .post(&url)
        .bearer_auth(support::WEBHOOK_TOKEN)
        .body(r#"{"paused": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = remediator
        .client
        .post(&url)
        .bearer_auth(API_TOKEN)
        .body(r#"{"paused": true, "by": "oncall@example.org"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let body = payload(
        false,
        &warning(HOST),
        "eeee000011112222",
        "2026-11-28T12:00:00Z",
    );
    remediator.post(&body).await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "paused", "{runs:#?}");
    assert!(runs[0]["plan"].as_str().unwrap().contains("from 4 to 3.5"));
    assert_eq!(capacity(&remediator, HOST).await, 4.0);
    let metrics = remediator
        .client
        .get(format!("{}/metrics", remediator.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("koji_remediator_paused 1"), "{metrics}");

    remediator
        .client
        .post(&url)
        .bearer_auth(API_TOKEN)
        .body(r#"{"paused": false}"#)
        .send()
        .await
        .unwrap();
    let dry_labels = [("alertname", "KojiBuilderOverloadedDry"), ("host", HOST)];
    let body = payload(
        false,
        &dry_labels,
        "ffff000011112222",
        "2026-11-28T12:00:00Z",
    );
    remediator.post(&body).await;
    let runs = remediator.finished_runs(2).await;
    assert_eq!(runs[0]["state"], "dry_run", "{runs:#?}");
    assert_eq!(capacity(&remediator, HOST).await, 4.0);
}

#[tokio::test]
async fn unmatched_and_approval_alerts_are_journaled_and_counted() {
    let escalation = r#"
[[rule]]
name = "shared-storage-full"
alertname = "KojiSharedStorageFull"
action = "escalate"
policy = "notify"
"#;
    let remediator = started(escalation).await;
    let shared = [
        ("alertname", "KojiSharedStorageFull"),
        ("mountpoint", "/mnt/koji"),
    ];
    let body = payload(false, &shared, "5656565656565656", "2026-11-28T13:00:00Z");
    let (status, answer) = remediator.post(&body).await;
    // Claimed for its notice (none is configured here); nothing is applied.
    assert_eq!(
        (status, answer["runs_claimed"].as_i64()),
        (200, Some(1)),
        "{answer}"
    );
    let runs = remediator.runs().await;
    assert_eq!(runs[0]["state"], "notified", "{runs:#?}");
    assert_eq!(runs[0]["target"], "alert:KojiSharedStorageFull");
    let unknown = [("alertname", "SomethingElse"), ("host", HOST)];
    let body = payload(false, &unknown, "1212121212121212", "2026-11-28T13:00:00Z");
    let (status, answer) = remediator.post(&body).await;
    assert_eq!((status, answer["runs_claimed"].as_i64()), (200, Some(0)));
    let (deliveries, alerts, runs) = remediator.journal_counts().await;
    assert_eq!((deliveries, alerts, runs), (2, 2, 1));
    let decisions = remediator.alert_decisions().await;
    assert_eq!(decisions[0]["alertname"], "SomethingElse");
    assert_eq!(decisions[0]["decision"], "unmatched");
    assert_eq!(decisions[0]["rule"], serde_json::Value::Null);
    assert_eq!(decisions[1]["decision"], "notified");
    assert_eq!(decisions[1]["labels"]["mountpoint"], "/mnt/koji");

    let critical = [
        ("alertname", "KojiBuilderOverloaded"),
        ("host", HOST),
        ("severity", "critical"),
    ];
    let body = payload(false, &critical, "3434343434343434", "2026-11-28T13:00:00Z");
    remediator.post(&body).await;
    let runs = remediator.runs().await;
    assert_eq!(runs[0]["state"], "awaiting_approval", "{runs:#?}");
    assert_eq!(
        runs[1]["state"], "notified",
        "nothing ran the escalation: {runs:#?}"
    );
    assert_eq!(capacity(&remediator, HOST).await, 4.0);

    let metrics = remediator
        .client
        .get(format!("{}/metrics", remediator.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("koji_remediator_escalations_pending 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"koji_remediator_alerts_received_total{alertname="other",status="firing"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"koji_remediator_alerts_received_total{alertname="KojiBuilderOverloaded",status="firing"} 1"#),
        "{metrics}"
    );
}

/// `max_runs_per_hour`: a fix that changed the same target that often within the hour is
/// not run again: the run is skipped with why, and on-call gets the notice.
#[tokio::test]
async fn a_fix_over_its_hourly_limit_is_held_and_escalated() {
    let (notices_url, notices) = notice_sink().await;
    let rules = format!(
        r#"
[notify]
webhook_url = "{notices_url}"

[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "0s"
max_runs_per_hour = 2
params = {{ step = 0.5, floor = 2.0 }}
"#
    );
    let remediator = Remediator::start(KojiVersion::V1_33, &rules).await;
    for host in [HOST, "buildvm-x86-02.example.org"] {
        add_host(
            &remediator.hub.client,
            KojiVersion::V1_33,
            &HostSpec::new(host),
        )
        .await
        .unwrap();
    }
    for (n, fingerprint) in ["e1e1e1e1e1e1e1e1", "e2e2e2e2e2e2e2e2", "e3e3e3e3e3e3e3e3"]
        .iter()
        .enumerate()
    {
        let starts = format!("2026-11-30T0{n}:00:00Z");
        remediator
            .post(&payload(false, &warning(HOST), fingerprint, &starts))
            .await;
        remediator.finished_runs(n + 1).await;
    }
    let runs = remediator.finished_runs(3).await;
    assert_eq!(runs[0]["state"], "skipped", "{runs:#?}");
    let outcome = runs[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("2 time(s) within the hour (max_runs_per_hour = 2)"),
        "{outcome}"
    );
    assert_eq!(
        capacity(&remediator, HOST).await,
        3.0,
        "two steps, not three"
    );
    // Another host has its own limit.
    remediator
        .post(&payload(
            false,
            &warning("buildvm-x86-02.example.org"),
            "e4e4e4e4e4e4e4e4",
            "2026-11-30T04:00:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(4).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    // On-call is told, once.
    let mut received = Vec::new();
    for _ in 0..100 {
        received = notices.lock().unwrap().clone();
        if !received.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(received.len(), 1, "{received:?}");
    let text = received[0]["text"].as_str().unwrap();
    assert!(
        text.contains("keeps being needed and needs a human")
            && text.contains("max_runs_per_hour = 2"),
        "{text}"
    );
}
