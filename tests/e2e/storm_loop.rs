//! An alert storm from a whole fleet through clustered, replicated parts, with parts dying
//! mid-storm. `KojiBuilderOverloaded` fires for every builder of a Koji database (200 here,
//! `STORM_HOSTS=2000` in bench/storm.sh), pushed to two Alertmanagers clustered on
//! loopback (the example's `group_by`: one group per builder), each posting to both
//! koji-remediator replicas, which share one journal on a primary with a synchronous
//! streaming standby (`host=a,b target_session_attrs=read-write`). During the storm one
//! replica is killed with SIGKILL and started again, and the standby is promoted and the
//! old primary stopped. An alert of another action arriving mid-storm is not stuck behind
//! it, and a second alert about ten of the builders is held by the cooldown. Then every builder's capacity was lowered exactly once (one host_config version by
//! the remediator's Koji user), the action's cap was never exceeded, and once the storm
//! resolves every builder is restored exactly once. The figures are printed.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use koji_e2e::{
    free_port, start_alertmanager_in_cluster, start_binary, start_central_remediator, Central,
    Process,
};
use koji_testkit::cluster::ReplicatedPair;
use koji_testkit::generate::{generate, Scale};
use koji_testkit::{KojiVersion, TestDb};
use serde_json::json;

const WEBHOOK_TOKEN: &str = "storm-webhook-token-0123456789abcd";
const API_TOKEN: &str = "storm-api-token-9876543210abcdef";
/// `guards.max_concurrent_per_action`.
const CAP: i64 = 4;
/// Builders that get a second alert mid-storm.
const SECOND_ALERTS: usize = 10;

fn hosts_in_storm() -> i32 {
    std::env::var("STORM_HOSTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
}

/// One query against whichever journal node is the primary now; `None` while there is
/// none (mid-failover).
async fn journal_query(url: &str, sql: &str) -> Option<Vec<tokio_postgres::Row>> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    client.query(sql, &[]).await.ok()
}

async fn journal_count(url: &str, sql: &str) -> Option<i64> {
    Some(journal_query(url, sql).await?.first()?.get(0))
}

/// Waits until `sql` counts at least `want`, failing after `limit` with the logs.
async fn wait_count(url: &str, sql: &str, want: i64, limit: Duration, logs: &[&Process]) {
    let deadline = Instant::now() + limit;
    loop {
        let got = journal_count(url, sql).await;
        if got.is_some_and(|got| got >= want) {
            return;
        }
        if Instant::now() > deadline {
            let tails: Vec<String> = logs.iter().map(|p| p.log_tail()).collect();
            panic!("{sql}: {got:?} of {want}\n{}", tails.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts `alerts` to an Alertmanager's API v2.
async fn push(client: &reqwest::Client, port: u16, alerts: &serde_json::Value) {
    for _ in 0..50 {
        if let Ok(response) = client
            .post(format!("http://127.0.0.1:{port}/api/v2/alerts"))
            .json(alerts)
            .send()
            .await
        {
            if response.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("Alertmanager on {port} refused the alerts");
}

/// Per host, how many host_config versions the remediator's Koji user created: the
/// counts that occur, and how many hosts have each.
async fn changes_per_host(hub: &TestDb) -> Vec<(i64, i64)> {
    hub.client
        .query(
            "SELECT changes, count(*) FROM (
                 SELECT h.id, count(hc.host_id) AS changes
                   FROM host h
                   LEFT JOIN host_config hc ON hc.host_id = h.id AND hc.creator_id =
                        (SELECT id FROM users WHERE name = 'koji-remediator')
                  GROUP BY h.id) per_host
              GROUP BY changes ORDER BY changes",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_storm_through_clustered_parts_changes_each_builder_exactly_once() {
    let n = hosts_in_storm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The journal: a primary and its synchronous standby.
    let ReplicatedPair {
        primary,
        standby,
        url: journal,
    } = ReplicatedPair::start("journal").await.unwrap();

    // The hub: n builders, each enabled at capacity 8 (the fixture's own spread would put
    // some at the floor, where lowering has nothing to do).
    let hub = TestDb::koji("storm_hub", KojiVersion::V1_33).await.unwrap();
    generate(
        &hub.client,
        KojiVersion::V1_33,
        Scale {
            hosts: n,
            extra_channels: 0,
            active_tasks: 0,
            finished_tasks: 0,
        },
    )
    .await
    .unwrap();
    hub.client
        .batch_execute("UPDATE host_config SET capacity = 8, enabled = true WHERE active")
        .await
        .unwrap();
    let hosts: Vec<String> = hub
        .client
        .query("SELECT name FROM host ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(hosts.len(), n as usize);

    // Two replicas of the central remediator on the same journal and hub.
    let central = Central {
        webhook_token: WEBHOOK_TOKEN,
        api_token: API_TOKEN,
        journal_url: &journal,
        hub_url: &hub.url,
    };
    let rules = format!(
        r#"koji_user = "koji-remediator"

[guards]
max_concurrent_per_action = {CAP}
run_lease = "3s"
reconcile_interval = "500ms"

[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "1h"
restore_on_resolve = true
restore_after = "3s"
params = {{ step = 1.0, floor = 2.0 }}

[[rule]]
name = "stale-connections"
alertname = "KojiDatabaseStaleConnections"
action = "terminate_stale_connections"
policy = "auto"
params = {{ users = ["nobody-in-this-test"], older_than = "1h" }}
"#
    );
    let (dir_a, dir_b) = (d.join("replica-a"), d.join("replica-b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let (replica_a, port_a) = start_central_remediator(&dir_a, &central, "", &rules);
    let (replica_b, port_b) = start_central_remediator(&dir_b, &central, "", &rules);
    let mut replica_a = Some(replica_a);

    // Two clustered Alertmanagers, each posting to both replicas.
    let webhooks =
        [port_a, port_b].map(|port| format!("http://127.0.0.1:{port}/webhook/alertmanager"));
    let (gossip_1, gossip_2) = (free_port(), free_port());
    let token = dir_a.join("webhook.token");
    let (am_1, am_port_1) = start_alertmanager_in_cluster(
        d,
        "alertmanager-1",
        &webhooks,
        &token,
        gossip_1,
        &[gossip_2],
    );
    let (am_2, am_port_2) = start_alertmanager_in_cluster(
        d,
        "alertmanager-2",
        &webhooks,
        &token,
        gossip_2,
        &[gossip_1],
    );
    let client = reqwest::Client::new();
    // Both replicas up and the cluster formed before the storm.
    for (port, process) in [(port_a, replica_a.as_ref().unwrap()), (port_b, &replica_b)] {
        koji_e2e::wait_for(
            "a replica to listen",
            Duration::from_secs(30),
            &[process],
            || async {
                client
                    .get(format!("http://127.0.0.1:{port}/healthz"))
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            },
        )
        .await;
    }
    koji_e2e::wait_for(
        "the Alertmanager cluster",
        Duration::from_secs(30),
        &[&am_1, &am_2],
        || async {
            let status = koji_e2e::get_json(
                &client,
                &format!("http://127.0.0.1:{am_port_1}/api/v2/status"),
                None,
            )
            .await?;
            (status["cluster"]["peers"].as_array()?.len() == 2).then_some(())
        },
    )
    .await;

    // The largest number of lower_capacity runs in flight at once, sampled from the journal.
    let max_in_flight = Arc::new(AtomicI64::new(0));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (max_in_flight, samples, journal) =
            (max_in_flight.clone(), samples.clone(), journal.clone());
        tokio::spawn(async move {
            loop {
                if let Some(count) = journal_count(
                    &journal,
                    "SELECT count(*) FROM koji_remediator.action_runs
                      WHERE action = 'lower_capacity' AND state IN ('running', 'applying')
                        AND lease_until > clock_timestamp()",
                )
                .await
                {
                    max_in_flight.fetch_max(count, Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // The storm.
    let storm_start = chrono::Utc::now();
    let alert = |host: &str, ends: Option<chrono::DateTime<chrono::Utc>>| {
        let mut alert = json!({
            "labels": {"alertname": "KojiBuilderOverloaded", "host": host, "severity": "warning"},
            "annotations": {"summary": format!("{host} is overloaded")},
            "startsAt": storm_start.to_rfc3339(),
        });
        if let Some(ends) = ends {
            alert["endsAt"] = json!(ends.to_rfc3339());
        }
        alert
    };
    let firing = json!(hosts.iter().map(|h| alert(h, None)).collect::<Vec<_>>());
    let started = Instant::now();
    push(&client, am_port_1, &firing).await;
    push(&client, am_port_2, &firing).await;
    let all: Vec<&Process> = vec![&replica_b, &am_1, &am_2];
    let ended_sql = "SELECT count(*) FROM koji_remediator.action_runs
                      WHERE action = 'lower_capacity' AND kind = 'apply'
                        AND state NOT IN ('pending', 'running', 'applying')";

    // A tenth in: one replica dies (SIGKILL) and comes back on its port.
    wait_count(
        &journal,
        ended_sql,
        i64::from(n / 10),
        Duration::from_secs(120),
        &all,
    )
    .await;
    drop(replica_a.take());
    let killed_at = started.elapsed();
    let replica_a = start_binary(
        &dir_a,
        "koji-remediator-restarted",
        "koji-remediator",
        "remediator.toml",
        port_a,
        &[],
    );

    // An alert of another action arrives mid-storm: not stuck behind the storm's runs.
    let stale = json!([{
        "labels": {"alertname": "KojiDatabaseStaleConnections", "datname": hub.name},
        "startsAt": chrono::Utc::now().to_rfc3339(),
    }]);
    push(&client, am_port_1, &stale).await;
    push(&client, am_port_2, &stale).await;
    // A second alert about ten of the builders (another severity, so another alert): the
    // cooldown holds whichever of the two starts second, and a held run takes no slot.
    let second = |ends: Option<chrono::DateTime<chrono::Utc>>| {
        let alerts: Vec<serde_json::Value> = hosts[..SECOND_ALERTS]
            .iter()
            .map(|host| {
                let mut alert = alert(host, ends);
                alert["labels"]["severity"] = json!("critical");
                alert
            })
            .collect();
        json!(alerts)
    };
    push(&client, am_port_1, &second(None)).await;
    push(&client, am_port_2, &second(None)).await;

    // Half in: the journal's primary goes away and its standby is promoted.
    wait_count(
        &journal,
        ended_sql,
        i64::from(n / 2),
        Duration::from_secs(120),
        &all,
    )
    .await;
    let other_ended = journal_count(
        &journal,
        "SELECT count(*) FROM koji_remediator.action_runs
          WHERE action = 'terminate_stale_connections' AND state NOT IN ('pending', 'running', 'applying')",
    )
    .await
    .unwrap_or(0);
    primary.stop().unwrap();
    let failover_at = started.elapsed();
    standby.promote().unwrap();
    let all: Vec<&Process> = vec![&replica_a, &replica_b, &am_1, &am_2];
    wait_count(
        &journal,
        "SELECT count(DISTINCT fingerprint) FROM koji_remediator.alerts WHERE alertname = 'KojiBuilderOverloaded'",
        i64::from(n),
        Duration::from_secs(300),
        &all,
    )
    .await;
    let every_run = i64::from(n) + SECOND_ALERTS as i64;
    wait_count(
        &journal,
        ended_sql,
        every_run,
        Duration::from_secs(600),
        &all,
    )
    .await;
    // From the journal's own clock: when the last builder's alert was first journaled,
    // and when the last run ended, counted from the storm's start.
    let since_start = |sql: &str| {
        let sql = sql.replace("{start}", &storm_start.to_rfc3339());
        let journal = journal.clone();
        async move { journal_query(&journal, &sql).await.unwrap()[0].get::<_, f64>(0) }
    };
    let all_journaled = since_start(
        "SELECT extract(epoch FROM max(first) - '{start}'::timestamptz)::float8
           FROM (SELECT min(received_at) AS first FROM koji_remediator.alerts
                  WHERE alertname = 'KojiBuilderOverloaded' GROUP BY fingerprint) firsts",
    )
    .await;
    let all_ended = since_start(
        "SELECT extract(epoch FROM max(finished_at) - '{start}'::timestamptz)::float8
           FROM koji_remediator.action_runs WHERE action = 'lower_capacity' AND kind = 'apply'",
    )
    .await;
    let other_ended = other_ended
        + journal_count(
            &journal,
            "SELECT count(*) FROM koji_remediator.action_runs
              WHERE action = 'terminate_stale_connections' AND state NOT IN ('pending', 'running', 'applying')",
        )
        .await
        .unwrap_or(0);
    let other_took = journal_query(
        &journal,
        "SELECT extract(epoch FROM finished_at - created_at)::float8 FROM koji_remediator.action_runs
          WHERE action = 'terminate_stale_connections'",
    )
    .await
    .and_then(|rows| rows.first().map(|row| row.get::<_, f64>(0)));

    // Exactly once, counted in effect: one lowering per builder, in Koji's own history.
    assert_eq!(
        changes_per_host(&hub).await,
        [(1, i64::from(n))],
        "one change per builder"
    );
    let states = journal_query(
        &journal,
        "SELECT state, count(*) FROM koji_remediator.action_runs
          WHERE action = 'lower_capacity' AND kind = 'apply' GROUP BY state ORDER BY state",
    )
    .await
    .unwrap();
    let states: Vec<(String, i64)> = states.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        states,
        [
            ("skipped".to_string(), SECOND_ALERTS as i64),
            ("succeeded".to_string(), i64::from(n))
        ],
        "{states:?}"
    );
    let held_by_cooldown = journal_count(
        &journal,
        "SELECT count(*) FROM koji_remediator.action_runs
          WHERE state = 'skipped' AND outcome LIKE 'cooldown: %'",
    )
    .await
    .unwrap();
    assert_eq!(held_by_cooldown, SECOND_ALERTS as i64);
    let deliveries = journal_count(&journal, "SELECT count(*) FROM koji_remediator.deliveries")
        .await
        .unwrap();
    let alerts = journal_count(&journal, "SELECT count(*) FROM koji_remediator.alerts")
        .await
        .unwrap();
    let duplicates = journal_count(
        &journal,
        "SELECT count(*) FROM koji_remediator.alerts WHERE decision = 'duplicate'",
    )
    .await
    .unwrap();
    let max = max_in_flight.load(Ordering::Relaxed);
    assert!(max <= CAP, "{max} runs of one action in flight, cap {CAP}");
    assert!(other_ended >= 1, "the other action's run never ended");
    // Fair: it ended while the storm's runs were still draining, not after them.
    let other_ahead: f64 = journal_query(
        &journal,
        "SELECT extract(epoch FROM
                  (SELECT max(finished_at) FROM koji_remediator.action_runs
                    WHERE action = 'lower_capacity' AND kind = 'apply')
                - (SELECT finished_at FROM koji_remediator.action_runs
                    WHERE action = 'terminate_stale_connections'))::float8",
    )
    .await
    .unwrap()[0]
        .get(0);
    assert!(
        other_ahead > 0.0,
        "the other action waited for the storm: {other_ahead} s"
    );

    // The storm resolves: every builder restored exactly once.
    let resolved_at = chrono::Utc::now();
    let resolved = json!(hosts
        .iter()
        .map(|h| alert(h, Some(resolved_at)))
        .collect::<Vec<_>>());
    let resolving = Instant::now();
    push(&client, am_port_1, &resolved).await;
    push(&client, am_port_2, &resolved).await;
    push(&client, am_port_1, &second(Some(resolved_at))).await;
    push(&client, am_port_2, &second(Some(resolved_at))).await;
    wait_count(
        &journal,
        "SELECT count(*) FROM koji_remediator.action_runs
          WHERE action = 'lower_capacity' AND kind = 'restore' AND state = 'succeeded'",
        i64::from(n),
        Duration::from_secs(600),
        &all,
    )
    .await;
    let restored_in = resolving.elapsed();
    sampler.abort();
    assert_eq!(
        changes_per_host(&hub).await,
        [(2, i64::from(n))],
        "one lowering and one restore per builder"
    );
    let back: i64 = hub
        .client
        .query_one(
            "SELECT count(*) FROM host_config WHERE active AND capacity = 8",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(back, i64::from(n));
    let max = max_in_flight.load(Ordering::Relaxed);
    assert!(max <= CAP, "{max} runs of one action in flight, cap {CAP}");

    println!("storm of {n} builders (cap {CAP} per action, 2 replicas, 2 clustered Alertmanagers, primary + synchronous standby):");
    println!(
        "  replica killed at {:.1} s, journal failover at {:.1} s",
        killed_at.as_secs_f64(),
        failover_at.as_secs_f64()
    );
    println!(
        "  every alert journaled {all_journaled:.1} s after the storm began, every run ended after {all_ended:.1} s"
    );
    println!(
        "  most lower_capacity runs in flight at once: {max} (cap {CAP}; {} samples)",
        samples.load(Ordering::Relaxed)
    );
    println!("  deliveries journaled {deliveries}, alert notifications journaled {alerts} ({duplicates} duplicates), runs applied {n}, capacity changes {n}");
    println!(
        "  another action's alert, sent mid-storm: its run ended {} after it was journaled, {:.1} s before the storm's last",
        other_took.map_or("?".into(), |s| format!("{s:.1} s")),
        other_ahead
    );
    println!(
        "  a second alert about {SECOND_ALERTS} of the builders: {held_by_cooldown} held by the cooldown, none changed anything"
    );
    println!(
        "  every builder restored {:.1} s after the storm resolved",
        restored_in.as_secs_f64()
    );
}
