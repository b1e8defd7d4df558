//! `terminate_stale_connections` end to end: a real idle `koji` backend older than the
//! threshold is terminated; another user's backend of the same age survives; the
//! remediator's own connections (its planning backend, and any backend named
//! `koji-remediator`, e.g. another replica's) survive too.

mod support;

use std::time::Duration;

use koji_testkit::test_db::connect;
use koji_testkit::KojiVersion;
use support::{payload, Remediator};

const RULES: &str = r#"
[[rule]]
name = "stale-db-connections"
alertname = "KojiDatabaseStaleConnections"
action = "terminate_stale_connections"
policy = "auto"
params = { users = ["koji"], older_than = "2s", max_per_run = 10 }
"#;

async fn ensure_role(admin: &tokio_postgres::Client, role: &str) {
    // Roles are cluster-wide and tests run in parallel: create if missing, tolerate a race.
    let _ = admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE \"{role}\" LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ))
        .await;
}

async fn pid(client: &tokio_postgres::Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn stale_koji_backends_are_terminated_and_nothing_else() {
    let hub = koji_testkit::TestDb::koji("stale_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    let other_role = format!("{}_other", hub.name);
    ensure_role(&hub.client, "koji").await;
    ensure_role(&hub.client, &other_role).await;
    let base = hub.url.replace("user=postgres", "");
    let as_user = |user: &str, application: &str| {
        format!("{base} user={user} application_name={application}")
    };
    // The remediator itself logs in as koji too: the worst case for "never its own".
    let hub_url = as_user("koji", "ignored");
    let journal = koji_testkit::TestDb::empty("stale_journal").await.unwrap();
    let remediator = Remediator::start_on(hub, &hub_url, journal.url.clone(), RULES).await;

    let stale_koji = connect(&as_user("koji", "httpd")).await.unwrap();
    stale_koji.simple_query("SELECT 1").await.unwrap();
    let stale_other = connect(&as_user(&other_role, "httpd")).await.unwrap();
    stale_other.simple_query("SELECT 1").await.unwrap();
    let replica = connect(&as_user("koji", "koji-remediator")).await.unwrap();
    replica.simple_query("SELECT 1").await.unwrap();
    let (koji_pid, other_pid, replica_pid) = (
        pid(&stale_koji).await,
        pid(&stale_other).await,
        pid(&replica).await,
    );
    // pg_backend_pid() was their last query: let it age past the 2 s threshold.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let labels = [
        ("alertname", "KojiDatabaseStaleConnections"),
        ("severity", "critical"),
    ];
    let body = payload(false, &labels, "abcdabcdabcdabcd", "2026-11-28T09:00:00Z");
    let (status, answer) = remediator.post(&body).await;
    assert_eq!(status, 200, "{answer}");
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    let plan = runs[0]["plan"].as_str().unwrap();
    assert!(plan.contains(&koji_pid.to_string()), "{plan}");
    assert!(!plan.contains(&replica_pid.to_string()), "{plan}");

    let alive: Vec<i32> = remediator
        .hub
        .client
        .query("SELECT pid FROM pg_stat_activity", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(!alive.contains(&koji_pid), "the stale koji backend is gone");
    assert!(
        alive.contains(&other_pid),
        "another user's backend survives"
    );
    assert!(
        alive.contains(&replica_pid),
        "a koji-remediator backend survives"
    );
    assert!(stale_koji.simple_query("SELECT 1").await.is_err());
    assert!(stale_other.simple_query("SELECT 1").await.is_ok());

    // Nothing stale is left: a new occurrence finds nothing to do.
    let body = payload(false, &labels, "abcdabcdabcdabcd", "2026-11-28T09:30:00Z");
    remediator.post(&body).await;
    let runs = remediator.finished_runs(2).await;
    assert!(
        matches!(runs[0]["state"].as_str(), Some("nothing_to_do" | "skipped")),
        "{runs:#?}"
    );
    drop(journal);
}
