//! Recovery and replicas against real PostgreSQL: runs a dead replica left mid-apply are
//! resolved from the world (Koji's history) so restores still happen; the concurrency cap
//! holds across two replicas sharing one journal; starting a replica never touches another
//! live replica's run.

mod support;

use std::time::{Duration, Instant};

use koji_remediator::actions::lower_capacity::CapacityPlan;
use koji_remediator::actions::Plan;
use koji_testkit::populate::add_host;
use koji_testkit::test_db::connect;
use koji_testkit::{HostSpec, KojiVersion, TestDb};
use support::{config_text, payload, Remediator};

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "0s"
restore_on_resolve = true
restore_after = "0s"
params = { step = 1.0, floor = 2.0 }
"#;

/// A run row exactly as a replica killed mid-apply leaves it: `applying` with its plan,
/// owned by a replica whose lease has run out. The moment between Koji's commit and the
/// journal's next write cannot be hit from outside with a signal, so the row is written
/// as that moment leaves it.
async fn left_applying(
    journal: &tokio_postgres::Client,
    host: &str,
    fingerprint: &str,
    starts_at: &str,
) -> i64 {
    let plan = Plan::LowerCapacity(CapacityPlan {
        host: host.into(),
        from: 4.0,
        to: 3.0,
        layout: "host_config".into(),
    });
    let labels = serde_json::json!({"alertname": "KojiBuilderOverloaded", "host": host});
    journal
        .query_one(
            "INSERT INTO koji_remediator.action_runs
                 (fingerprint, starts_at, action, kind, rule, policy, target, labels, state,
                  plan, plan_summary, owner, lease_until, started_at, applying_at, attempts)
             VALUES ($1, $2::text::timestamptz, 'lower_capacity', 'apply', 'overloaded-builder',
                     'auto', 'host:' || $3, $4, 'applying', $5, 'lower it', 'dead:1:0',
                     now() - interval '1 second', now() - interval '10 seconds',
                     now() - interval '10 seconds', 1)
             RETURNING id",
            &[
                &fingerprint,
                &starts_at,
                &host,
                &labels,
                &serde_json::to_value(&plan).unwrap(),
            ],
        )
        .await
        .unwrap()
        .get(0)
}

/// Capacity changes Koji's history shows for `host` (revoked rows).
async fn changes(hub: &tokio_postgres::Client, host: &str) -> i64 {
    hub.query_one(
        "SELECT count(*) FROM host_config hc JOIN host h ON h.id = hc.host_id
          WHERE h.name = $1 AND hc.revoke_event IS NOT NULL",
        &[&host],
    )
    .await
    .unwrap()
    .get(0)
}

async fn capacity(hub: &tokio_postgres::Client, host: &str) -> f64 {
    hub.query_one(
        "SELECT hc.capacity FROM host_config hc JOIN host h ON h.id = hc.host_id
          WHERE h.name = $1 AND hc.active",
        &[&host],
    )
    .await
    .unwrap()
    .get(0)
}

async fn run_state(remediator: &Remediator, id: i64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = remediator.runs().await;
        let run = runs.iter().find(|r| r["id"] == id).cloned().unwrap();
        if !["pending", "running", "applying"]
            .iter()
            .any(|s| run["state"] == *s)
        {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} not resolved: {run:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A notice webhook that keeps every body.
async fn chat_bridge() -> (String, koji_e2e::Received) {
    koji_e2e::json_sink().await
}

#[tokio::test]
async fn runs_cut_off_mid_apply_are_resolved_from_koji_history() {
    let (hook, received) = chat_bridge().await;
    let rules = format!("[notify]\nwebhook_url = \"{hook}\"\nretry_delay = \"100ms\"\n{RULES}");
    let remediator = Remediator::start(KojiVersion::V1_33, &rules).await;
    let hub = &remediator.hub.client;
    let [applied, untouched, moved] = [
        "buildvm-applied.example.org",
        "buildvm-untouched.example.org",
        "buildvm-moved.example.org",
    ];
    for host in [applied, untouched, moved] {
        add_host(hub, KojiVersion::V1_33, &HostSpec::new(host))
            .await
            .unwrap();
    }
    let mut admin = connect(&remediator.hub.url).await.unwrap();
    let layout = koji_db::detect_layout(&admin).await.unwrap();
    // The change of the first run committed in Koji before its replica died.
    koji_db::capacity::change_capacity(&mut admin, layout, applied, 4.0, 3.0, "koji-remediator")
        .await
        .unwrap();
    // Someone else moved the third host's capacity meanwhile: nobody can tell.
    koji_testkit::populate::grant_permission(hub, "admin", "admin")
        .await
        .unwrap();
    koji_db::capacity::change_capacity(&mut admin, layout, moved, 4.0, 2.5, "admin")
        .await
        .unwrap();
    let journal = connect(&remediator.journal_url).await.unwrap();
    let starts = "2026-11-30T02:00:00Z";
    let first = left_applying(&journal, applied, "c0c0c0c0c0c0c0c1", starts).await;
    let second = left_applying(&journal, untouched, "c0c0c0c0c0c0c0c2", starts).await;
    let third = left_applying(&journal, moved, "c0c0c0c0c0c0c0c3", starts).await;

    // The reconciler of the running replica takes them over (no restart needed).
    let run = run_state(&remediator, first).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["effect"], "changed");
    assert!(
        run["outcome"].as_str().unwrap().contains("took effect"),
        "{run:#}"
    );
    let run = run_state(&remediator, second).await;
    assert_eq!(
        run["state"], "succeeded",
        "retried, since nothing took effect: {run:#}"
    );
    assert_eq!(run["attempts"], 2, "{run:#}");
    let run = run_state(&remediator, third).await;
    assert_eq!(run["state"], "interrupted", "{run:#}");
    assert_eq!(run["effect"], "unknown");
    assert_eq!(
        (changes(hub, applied).await, capacity(hub, applied).await),
        (1, 3.0)
    );
    assert_eq!(
        (
            changes(hub, untouched).await,
            capacity(hub, untouched).await
        ),
        (1, 3.0)
    );
    assert_eq!(capacity(hub, moved).await, 2.5, "left alone");
    // The one that cannot be told is on-call's, with a notice; the others notify nobody.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no notice for the interrupted run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(bodies[0]["run"], third);
    let text = bodies[0]["text"].as_str().unwrap();
    assert!(text.contains("INTERRUPTED"), "{text}");

    // The first alert resolves: the change found applied is restored.
    let labels = [("alertname", "KojiBuilderOverloaded"), ("host", applied)];
    remediator
        .post(&payload(true, &labels, "c0c0c0c0c0c0c0c1", starts))
        .await;
    let runs = remediator.finished_runs(4).await;
    assert_eq!(runs[0]["kind"], "restore", "{runs:#?}");
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(capacity(hub, applied).await, 4.0);
}

/// Two replicas on one journal with `max_concurrent_per_action = 1`: the restarts each run
/// makes (a script that records when it starts and ends, taking a second) never overlap,
/// whichever replica received the alert; and a replica starting while the other's run is
/// in flight leaves that run alone.
#[tokio::test]
async fn the_cap_holds_across_replicas_and_a_new_replica_leaves_live_runs_alone() {
    let journal = TestDb::empty("replicas_journal").await.unwrap();
    let hub = TestDb::koji("replicas_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("restarts.log");
    let script = log_dir.path().join("restart");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"start $(date +%s.%N)\" >> {log}\nsleep 1\necho \"end $(date +%s.%N)\" >> {log}\n",
            log = log.display()
        ),
    )
    .unwrap();
    koji_testkit::mounts::run(&["chmod", "+x", script.to_str().unwrap()]);
    let replica = |name: &'static str| {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("local-agent.token");
        std::fs::write(&token, format!("local-agent-token-{name}-0123456789")).unwrap();
        let rules = format!(
            r#"
[[rule]]
name = "restart-kojid"
alertname = "KojiServiceDown"
action = "restart_local_services"
policy = "auto"
cooldown = "0s"

[agent]
token_file = "{token}"
actions = ["restart_local_services"]
host_name = "{host}"

[agent.restart_local_services]
services = ["kojid"]
restart_command = ["{script}"]
is_active_command = ["true"]
"#,
            token = token.display(),
            host = support::HOST,
            script = script.display(),
        );
        let text = config_text(dir.path(), &hub.url, &journal.url, &rules).replace(
            "max_concurrent_per_action = 2",
            "max_concurrent_per_action = 1",
        );
        (dir, text)
    };
    let (dir_a, text_a) = replica("a");
    let (dir_b, text_b) = replica("b");
    let a = Remediator::start_from_text(
        TestDb::empty("replica_a_hub").await.unwrap(),
        journal.url.clone(),
        dir_a,
        &text_a,
    )
    .await;
    let b = Remediator::start_from_text(
        TestDb::empty("replica_b_hub").await.unwrap(),
        journal.url.clone(),
        dir_b,
        &text_b,
    )
    .await;
    let alert = |fingerprint: &str| {
        let labels = [("alertname", "KojiServiceDown"), ("host", support::HOST)];
        payload(false, &labels, fingerprint, "2026-11-30T03:00:00Z")
    };
    let bodies = [
        alert("d0d0d0d0d0d0d0d1"),
        alert("d0d0d0d0d0d0d0d2"),
        alert("d0d0d0d0d0d0d0d3"),
    ];
    let (first, second, third) =
        tokio::join!(a.post(&bodies[0]), b.post(&bodies[1]), a.post(&bodies[2]));
    assert_eq!((first.0, second.0, third.0), (200, 200, 200));
    // A third replica starts while runs are in flight: it must not take them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (dir_c, text_c) = replica("c");
    let _c = Remediator::start_from_text(
        TestDb::empty("replica_c_hub").await.unwrap(),
        journal.url.clone(),
        dir_c,
        &text_c,
    )
    .await;
    let runs = a.finished_runs(3).await;
    for run in &runs {
        assert_eq!(run["state"], "succeeded", "{runs:#?}");
        assert_eq!(run["attempts"], 1, "no run was taken over: {runs:#?}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let times: Vec<(String, f64)> = text
        .lines()
        .map(|line| {
            let (what, at) = line.split_once(' ').unwrap();
            (what.to_string(), at.parse().unwrap())
        })
        .collect();
    assert_eq!(times.len(), 6, "{text}");
    let mut in_flight = 0;
    for (what, _) in &times {
        in_flight += if what == "start" { 1 } else { -1 };
        assert!(in_flight <= 1, "two restarts overlapped:\n{text}");
    }
    drop(b);
}
