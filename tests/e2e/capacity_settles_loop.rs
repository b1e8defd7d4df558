//! Capacity settles instead of oscillating, with every real part: a builder whose load
//! follows its Koji capacity (a procfs fixture the test drives: with capacity 4 and build
//! demand high its load is twice its CPUs, otherwise its CPUs), koji-exporter reading it,
//! Prometheus evaluating the real `KojiBuilderOverloaded` (`for:` shortened), Alertmanager,
//! and koji-remediator with `restore_on_resolve` and a quiet period (`restore_after`, 20 s
//! here instead of a day). Demand is high for the first 15 s: capacity goes 4 -> 3 and
//! stays there, though the alert resolves at once; after demand has dropped and the host
//! has been quiet, it steps back to 4 and stays. Two changes in all, where restoring at
//! once would have lowered and raised it again and again while demand was high. The hub
//! is Koji's real hub (`../shared/koji-hub`): the host and the remediator's user are made
//! through its calls, and `koji list-history` shows exactly the two changes, credited to
//! that user. The journal it wrote, replayed through the same runbook, says exactly what
//! happened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use koji_e2e::{start_alertmanager, start_central_remediator, start_prometheus, wait_for, Central};
use koji_testkit::{KojiHub, TestDb};

const WEBHOOK_TOKEN: &str = "settles-webhook-token-0123456789ab";
const API_TOKEN: &str = "settles-api-token-9876543210abcdef";
const HOST: &str = "buildvm-x86-01.example.org";
const USER: &str = "koji-remediator";
/// The fixture's CPUs (tests/fixtures/proc/stat).
const CPUS: f64 = 4.0;
const HIGH_DEMAND: Duration = Duration::from_secs(15);

/// The host's capacity, read from the hub's database (polled every 200 ms; the test
/// checks what Koji itself says at the end).
async fn capacity(hub_db: &TestDb) -> f64 {
    hub_db
        .client
        .query_one(
            "SELECT hc.capacity FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active
              WHERE h.name = $1",
            &[&HOST],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowered_capacity_holds_while_demand_is_high_then_steps_back_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hub_db = TestDb::empty("settles_hub").await.unwrap();
    let hub = KojiHub::start(&hub_db, &[]).await.expect("Koji's hub");
    hub.koji_admin(&["add-host", HOST, "x86_64"]).await.unwrap();
    hub.koji_admin(&["edit-host", HOST, "--capacity", "4"])
        .await
        .unwrap();
    hub.koji_admin(&["add-user", USER]).await.unwrap();
    hub.koji_admin(&["grant-permission", "host", USER])
        .await
        .unwrap();
    let journal = TestDb::empty("settles_journal").await.unwrap();

    // The builder's /proc, whose load the test writes.
    let proc = koji_e2e::builder_procfs(d);
    let write_load = |load: f64| {
        let path = proc.join("loadavg");
        let staged = proc.join("loadavg.new");
        std::fs::write(
            &staged,
            format!("{load:.2} {load:.2} {load:.2} 3/871 402211\n"),
        )
        .unwrap();
        std::fs::rename(staged, path).unwrap();
    };
    write_load(CPUS);

    let (exporter, exporter_port) = koji_e2e::start_builder_exporter(d, &proc, HOST);
    let central = Central {
        webhook_token: WEBHOOK_TOKEN,
        api_token: API_TOKEN,
        journal_url: &journal.url,
        hub_url: &hub_db.url,
    };
    let (remediator, remediator_port) = start_central_remediator(
        d,
        &central,
        "",
        r#"koji_user = "koji-remediator"

[guards]
reconcile_interval = "500ms"

[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "0s"
restore_on_resolve = true
restore_after = "20s"
params = { step = 1.0, floor = 2.0 }
"#,
    );
    let (alertmanager, am_port) = start_alertmanager(
        d,
        &format!("http://127.0.0.1:{remediator_port}/webhook/alertmanager"),
        &d.join("webhook.token"),
    );
    let (prometheus, prom) = start_prometheus(d, &[("koji-builders", exporter_port)], am_port);
    let all = [&exporter, &remediator, &alertmanager, &prometheus];
    let client = reqwest::Client::new();
    wait_for(
        "Prometheus to scrape the builder",
        Duration::from_secs(60),
        &all,
        || async {
            let body = koji_e2e::get_json(
                &client,
                &format!("{prom}/api/v1/query?query=koji_load1"),
                None,
            )
            .await?;
            (!body["data"]["result"].as_array()?.is_empty()).then_some(())
        },
    )
    .await;

    // The builder: load follows capacity while demand is high.
    let high = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let mut timeline: Vec<(f64, f64)> = vec![(0.0, 4.0)];
    let mut demand_dropped_at = None;
    while started.elapsed() < HIGH_DEMAND + Duration::from_secs(35) {
        if started.elapsed() >= HIGH_DEMAND && high.swap(false, Ordering::Relaxed) {
            demand_dropped_at = Some(started.elapsed().as_secs_f64());
        }
        let now = capacity(&hub_db).await;
        if timeline.last().map(|(_, c)| *c) != Some(now) {
            timeline.push((started.elapsed().as_secs_f64(), now));
        }
        let overloaded = high.load(Ordering::Relaxed) && now >= 4.0;
        write_load(if overloaded { 2.0 * CPUS } else { CPUS });
        if !high.load(Ordering::Relaxed) && now == 4.0 && timeline.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("capacity timeline (seconds, capacity): {timeline:?}");
    let dropped = demand_dropped_at.expect("demand dropped");
    let changes: Vec<f64> = timeline.iter().skip(1).map(|(_, c)| *c).collect();
    assert_eq!(
        changes,
        [3.0, 4.0],
        "lowered once, raised once: {timeline:?}"
    );
    assert!(
        timeline[1].0 < dropped && timeline[2].0 > dropped,
        "lowered while demand was high, back up only after it dropped: {timeline:?}"
    );
    // Nothing more happens: it has settled.
    wait_for(
        "a settled capacity",
        Duration::from_secs(10),
        &all,
        || async { (capacity(&hub_db).await == 4.0).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(capacity(&hub_db).await, 4.0);
    let info = hub.koji_anonymous(&["hostinfo", HOST]).await.unwrap();
    assert!(info.contains("Capacity: 4.0"), "{info}");
    assert_eq!(
        hub.host_config_changes(HOST).await.unwrap(),
        [
            "admin: capacity: 2.0 -> 4.0".to_string(),
            format!("{USER}: capacity: 4.0 -> 3.0"),
            format!("{USER}: capacity: 3.0 -> 4.0"),
        ],
        "Koji's history: the administrator's setting, then exactly one lowering and one restore"
    );

    // The journal this loop wrote (Alertmanager's repeats and resolutions, the restore's
    // quiet wait), replayed through the same runbook: exactly what happened.
    let report = koji_e2e::faithful_replay(d, "10m");
    let fates: Vec<(&str, &str)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["status"].as_str().unwrap(),
                row["would"].as_str().unwrap(),
            )
        })
        .filter(|(_, would)| would.starts_with("ran"))
        .collect();
    assert_eq!(
        fates,
        [("firing", "ran: succeeded"), ("resolved", "ran: succeeded")],
        "{report:#}"
    );
}
