//! A replicated journal: the journal URL names a primary and its synchronous streaming
//! standby (`host=a,b target_session_attrs=read-write`, two private clusters made with
//! `initdb` and `pg_basebackup`). The primary dies in the middle of a cleanup that is
//! applying; while no primary is there deliveries get 503 (Alertmanager retries); once the
//! standby is promoted the same remediator, not restarted, takes the retried delivery
//! exactly once, and the cleanup that was applying ends journaled as succeeded from the
//! agent's own record: applied once, neither lost nor repeated.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use koji_testkit::cluster::ReplicatedPair;
use koji_testkit::mounts::{age_tree, run, TestMount};
use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion, TestDb};
use support::{local_agent, payload, Remediator, HOST};

const OTHER: &str = "buildvm-x86-02.example.org";

fn rules(dir: &Path, root: &Path) -> String {
    // The cleanup stops kojid first; the stop takes 3 s and counts itself, so the test can
    // stop the primary while the run is applying and count how often it really ran.
    let stop = dir.join("stop");
    std::fs::write(
        &stop,
        format!(
            "#!/bin/sh\necho stop >> {}\nsleep 3\n",
            dir.join("stops.log").display()
        ),
    )
    .unwrap();
    run(&["chmod", "+x", stop.to_str().unwrap()]);
    format!(
        r#"
[[rule]]
name = "builder-disk-full"
alertname = "KojiBuilderDiskFull"
action = "clean_build_dirs"
policy = "auto"
cooldown = "0s"
params = {{ target_free_percent = 60 }}

[[rule]]
name = "overloaded"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "0s"
params = {{ step = 1.0, floor = 2.0 }}
{agent}"#,
        agent = local_agent(
            dir,
            &format!(
                "roots = [\"{}\"]\nmax_target_free_percent = 95\nservices = [\"kojid\"]\nis_active_command = [\"true\"]\nstop_command = [\"{}\"]\nstart_command = [\"true\"]",
                root.display(),
                stop.display()
            )
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_fails_over_to_its_promoted_standby_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ReplicatedPair {
        primary,
        standby,
        url: journal_url,
    } = ReplicatedPair::start("journal").await.unwrap();

    let root = d.join("mock");
    let _tmpfs = TestMount::tmpfs(&root, "size=16m", "koji-failover-test");
    std::fs::create_dir_all(root.join("f39-build-1-1")).unwrap();
    std::fs::write(root.join("f39-build-1-1/blob"), vec![1u8; 8 << 20]).unwrap();
    age_tree(&root.join("f39-build-1-1"), 10);
    let hub = TestDb::koji("failover_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    let hub_url = hub.url.clone();
    let remediator = Remediator::start_on(hub, &hub_url, journal_url, &rules(d, &root)).await;
    for host in [HOST, OTHER] {
        add_host(
            &remediator.hub.client,
            KojiVersion::V1_33,
            &HostSpec::new(host),
        )
        .await
        .unwrap();
    }

    // A cleanup starts applying (its service stop takes 3 s) ...
    let disk_full = payload(
        false,
        &[
            ("alertname", "KojiBuilderDiskFull"),
            ("host", HOST),
            ("mountpoint", "/var/lib/mock"),
        ],
        "d15cd15cd15cd15c",
        "2026-11-30T10:00:00Z",
    );
    let (status, answer) = remediator.post(&disk_full).await;
    assert_eq!(status, 200, "{answer}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.join("stops.log").exists() {
        assert!(Instant::now() < deadline, "the cleanup did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... and the primary dies under it.
    primary.stop().unwrap();

    // No primary: a delivery is refused with 503, so Alertmanager keeps it and retries.
    let overloaded = payload(
        false,
        &[("alertname", "KojiBuilderOverloaded"), ("host", OTHER)],
        "0ve40ve40ve40ve4",
        "2026-11-30T10:01:00Z",
    );
    for _ in 0..3 {
        let (status, answer) = remediator.post(&overloaded).await;
        assert_eq!(status, 503, "{answer}");
    }

    // The standby is promoted; the same remediator, not restarted, takes the retry.
    standby.promote().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, answer) = remediator.post(&overloaded).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{answer}");
        assert!(Instant::now() < deadline, "no failover: {answer}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A second retry (Alertmanager's other replica) claims nothing.
    let (status, answer) = remediator.post(&overloaded).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["runs_claimed"], 0, "{answer}");

    let runs = remediator.finished_runs(2).await;
    let state_of = |action: &str| {
        runs.iter()
            .find(|run| run["action"] == action)
            .map(|run| (run["state"].clone(), run["outcome"].clone()))
            .unwrap()
    };
    let (cleanup, outcome) = state_of("clean_build_dirs");
    assert_eq!(cleanup, "succeeded", "{outcome}");
    assert_eq!(state_of("lower_capacity").0, "succeeded");
    // Applied once each: one service stop, one capacity change.
    assert_eq!(
        std::fs::read_to_string(d.join("stops.log")).unwrap(),
        "stop\n"
    );
    assert!(!root.join("f39-build-1-1").exists());
    assert_eq!(remediator.active_capacity_of(OTHER).await, 3.0);
    assert_eq!(remediator.active_capacity_of(HOST).await, 4.0);
    assert_eq!(remediator.journal_counts().await.2, 2, "two runs in all");
}
