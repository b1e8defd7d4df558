//! The journal's database goes away: the webhook answers 503 so Alertmanager retries, acts
//! on nothing, and when the database is back the retried delivery is processed exactly once;
//! runs acknowledged before or during an outage all end, without a restart.

mod support;

use koji_testkit::populate::add_host;
use koji_testkit::test_db::connect;
use koji_testkit::{HostSpec, KojiVersion, TempCluster, TestDb};
use support::{payload, Remediator};

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
params = { step = 1.0 }
"#;

const HOST: &str = "buildvm-x86-01.example.org";

async fn capacity(client: &tokio_postgres::Client) -> f64 {
    client
        .query_one("SELECT capacity FROM host_config WHERE active", &[])
        .await
        .unwrap()
        .get(0)
}

/// A private cluster with an empty `journal` database, to stop and start.
async fn journal_cluster() -> TempCluster {
    let cluster = tokio::task::spawn_blocking(|| TempCluster::start_new(&[]))
        .await
        .unwrap()
        .expect("a private PostgreSQL cluster for the journal");
    let admin = connect(&cluster.url("postgres")).await.unwrap();
    admin
        .batch_execute("CREATE DATABASE journal")
        .await
        .unwrap();
    cluster
}

#[tokio::test]
async fn journal_down_is_503_and_the_retry_runs_once() {
    let cluster = journal_cluster().await;
    let hub = TestDb::koji("outage_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    koji_testkit::populate::ensure_remediator_user(&hub.client)
        .await
        .unwrap();
    add_host(&hub.client, KojiVersion::V1_33, &HostSpec::new(HOST))
        .await
        .unwrap();
    let hub_url = hub.url.clone();
    let remediator = Remediator::start_on(hub, &hub_url, cluster.url("journal"), RULES).await;

    let labels = [
        ("alertname", "KojiBuilderOverloaded"),
        ("host", HOST),
        ("severity", "warning"),
    ];
    let body = payload(false, &labels, "9999888877776666", "2026-11-28T14:00:00Z");

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop().unwrap();
        cluster
    })
    .await
    .unwrap();
    let (status, answer) = remediator.post(&body).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "journal_unavailable");
    assert!(
        !answer["detail"].as_str().unwrap().contains("postgres"),
        "no internals: {answer}"
    );
    assert_eq!(
        capacity(&remediator.hub.client).await,
        4.0,
        "nothing acted on"
    );

    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.start().unwrap();
        cluster
    })
    .await
    .unwrap();
    // Alertmanager retries: the first retry is journaled and claims the run...
    let (status, answer) = remediator.post(&body).await;
    assert_eq!(
        (status, answer["runs_claimed"].as_i64()),
        (200, Some(1)),
        "{answer}"
    );
    // ...and another retry (its answer may have been lost) claims nothing.
    let (status, answer) = remediator.post(&body).await;
    assert_eq!(
        (status, answer["runs_claimed"].as_i64()),
        (200, Some(0)),
        "{answer}"
    );
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(
        capacity(&remediator.hub.client).await,
        3.0,
        "applied exactly once"
    );
}

/// The journal goes away mid-traffic and comes back: every alert acknowledged with 2xx
/// ends as a finished run, applied exactly once, without restarting the remediator (the
/// reconciler picks up what the outage left pending or half-done); alerts answered 503
/// are retried by Alertmanager and then run too.
#[tokio::test]
async fn a_journal_outage_mid_traffic_loses_no_acknowledged_run() {
    let cluster = journal_cluster().await;
    let hub = TestDb::koji("outage_mid_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    koji_testkit::populate::ensure_remediator_user(&hub.client)
        .await
        .unwrap();
    const HOSTS: usize = 40;
    let hosts: Vec<String> = (0..HOSTS)
        .map(|n| format!("buildvm-{n:02}.example.org"))
        .collect();
    for host in &hosts {
        add_host(&hub.client, KojiVersion::V1_33, &HostSpec::new(host))
            .await
            .unwrap();
    }
    let hub_url = hub.url.clone();
    let remediator = Remediator::start_on(hub, &hub_url, cluster.url("journal"), RULES).await;
    let body = |n: usize| {
        let labels = [
            ("alertname", "KojiBuilderOverloaded"),
            ("host", hosts[n].as_str()),
        ];
        payload(false, &labels, &format!("{n:016x}"), "2026-11-30T04:00:00Z")
    };
    let cluster = std::sync::Arc::new(cluster);
    let stopper = cluster.clone();
    let mut unacknowledged = Vec::new();
    let mut stopping = None;
    for n in 0..HOSTS {
        if n == HOSTS / 2 {
            // Mid-traffic, with runs of the first half claimed and in flight.
            let stopper = stopper.clone();
            stopping = Some(tokio::task::spawn_blocking(move || stopper.stop().unwrap()));
        }
        let (status, _) = remediator.post(&body(n)).await;
        match status {
            200 => {}
            503 => unacknowledged.push(n),
            other => panic!("alert {n}: {other}"),
        }
    }
    stopping.unwrap().await.unwrap();
    assert!(!unacknowledged.is_empty(), "the outage was seen");
    let starter = cluster.clone();
    tokio::task::spawn_blocking(move || starter.start().unwrap())
        .await
        .unwrap();
    // Alertmanager retries what got 503.
    for n in &unacknowledged {
        let (status, _) = remediator.post(&body(*n)).await;
        assert_eq!(status, 200);
    }
    let runs = remediator.finished_runs(HOSTS).await;
    assert_eq!(runs.len(), HOSTS, "one run per alert");
    for run in &runs {
        assert_eq!(run["state"], "succeeded", "{run:#}");
    }
    for host in &hosts {
        let (capacity, changes): (f64, i64) = {
            let row = remediator
                .hub
                .client
                .query_one(
                    "SELECT (SELECT hc.capacity FROM host_config hc WHERE hc.host_id = h.id AND hc.active),
                            (SELECT count(*) FROM host_config hc WHERE hc.host_id = h.id AND hc.revoke_event IS NOT NULL)
                       FROM host h WHERE h.name = $1",
                    &[host],
                )
                .await
                .unwrap();
            (row.get(0), row.get(1))
        };
        assert_eq!(
            (capacity, changes),
            (3.0, 1),
            "{host}: lowered exactly once"
        );
    }
}
