//! `terminate_stale_connections` end to end: a real idle `koji` backend older than the
//! threshold is terminated; another user's backend of the same age survives; so do a
//! `koji` backend of another database on the server, one that never ran a query, and the
//! remediator's own connections (its planning backend, and any backend named
//! `koji-remediator`, e.g. another replica's). An alert about another database than the
//! remediator's hub database is refused.

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
    let other_role = hub.login_role("other").await.unwrap();
    ensure_role(&hub.client, "koji").await;
    let hub_database = hub.name.clone();
    let elsewhere = koji_testkit::TestDb::empty("stale_elsewhere")
        .await
        .unwrap();
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
    let other_database = connect(&format!(
        "{} user=koji application_name=httpd",
        elsewhere.url.replace("user=postgres", "")
    ))
    .await
    .unwrap();
    other_database.simple_query("SELECT 1").await.unwrap();
    let (koji_pid, other_pid, replica_pid, other_database_pid) = (
        pid(&stale_koji).await,
        pid(&stale_other).await,
        pid(&replica).await,
        pid(&other_database).await,
    );
    // A koji backend that never ran a query (its query_start is NULL): not stale, however
    // old; found by the remediator's admin connection, since asking it would be a query.
    let _never_queried = connect(&as_user("koji", "never-queried")).await.unwrap();
    // pg_backend_pid() was their last query: let it age past the 2 s threshold.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let never_queried_pid: i32 = remediator
        .hub
        .client
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'never-queried'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    // The exporter names the database it counted: an alert about another one is refused.
    let wrong_database = [
        ("alertname", "KojiDatabaseStaleConnections"),
        ("datname", "some_other_koji"),
    ];
    let body = payload(
        false,
        &wrong_database,
        "0123012301230123",
        "2026-11-28T08:00:00Z",
    );
    let (status, answer) = remediator.post(&body).await;
    assert_eq!(status, 200, "{answer}");
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "refused", "{runs:#?}");
    let outcome = runs[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("\"some_other_koji\"") && outcome.contains(&hub_database),
        "{outcome}"
    );
    assert!(stale_koji.simple_query("SELECT 1").await.is_ok());
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let labels = [
        ("alertname", "KojiDatabaseStaleConnections"),
        ("datname", hub_database.as_str()),
        ("severity", "critical"),
    ];
    let body = payload(false, &labels, "abcdabcdabcdabcd", "2026-11-28T09:00:00Z");
    let (status, answer) = remediator.post(&body).await;
    assert_eq!(status, 200, "{answer}");
    let runs = remediator.finished_runs(2).await;
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
    assert!(
        alive.contains(&other_database_pid),
        "a koji backend of another database survives"
    );
    assert!(
        alive.contains(&never_queried_pid),
        "a koji backend that never ran a query survives"
    );
    assert!(
        !plan.contains(&other_database_pid.to_string())
            && !plan.contains(&never_queried_pid.to_string()),
        "{plan}"
    );
    assert!(stale_koji.simple_query("SELECT 1").await.is_err());
    assert!(stale_other.simple_query("SELECT 1").await.is_ok());

    // Nothing stale is left: a new occurrence finds nothing to do.
    let body = payload(false, &labels, "abcdabcdabcdabcd", "2026-11-28T09:30:00Z");
    remediator.post(&body).await;
    let runs = remediator.finished_runs(3).await;
    assert!(
        matches!(runs[0]["state"].as_str(), Some("nothing_to_do" | "skipped")),
        "{runs:#?}"
    );
    drop(other_database);
    drop(journal);
    drop(elsewhere);
}

/// Serves a koji-exporter-like exposition with the hub's httpd start time.
async fn hub_exporter(httpd_started: f64) -> String {
    let body = format!(
        "# TYPE koji_service_start_time_seconds gauge\n\
         koji_service_start_time_seconds{{service=\"kojira\"}} 1.0\n\
         koji_service_start_time_seconds{{service=\"httpd\"}} {httpd_started}\n# EOF\n"
    );
    let app =
        axum::Router::new().route("/metrics", axum::routing::get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The runbook's own rule: only backends older than the running hub belong to a dead one.
#[tokio::test]
async fn only_backends_older_than_the_running_hub_when_asked() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // The hub (re)started an hour ago: a 3-second-old idle backend is its own, not stale.
    let started_long_ago = hub_exporter(now - 3600.0).await;
    // The hub restarts after every query this test makes (a minute from now, as far as the
    // exporter says): the same backend then belongs to the dead hub.
    let started_just_now = hub_exporter(now + 60.0).await;
    let rules = format!(
        r#"
[[rule]]
name = "long-ago"
alertname = "StaleLongAgo"
action = "terminate_stale_connections"
policy = "auto"
params = {{ users = ["koji"], older_than = "1s", hub_metrics_url = "{started_long_ago}" }}

[[rule]]
name = "just-now"
alertname = "StaleJustNow"
action = "terminate_stale_connections"
policy = "auto"
params = {{ users = ["koji"], older_than = "1s", hub_metrics_url = "{started_just_now}" }}

[[rule]]
name = "unreachable"
alertname = "StaleUnreachable"
action = "terminate_stale_connections"
policy = "auto"
params = {{ users = ["koji"], older_than = "1s", hub_metrics_url = "http://127.0.0.1:9/metrics" }}
"#
    );
    let hub = koji_testkit::TestDb::koji("hubstart_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    ensure_role(&hub.client, "koji").await;
    let base = hub.url.replace("user=postgres", "");
    let koji_url = format!("{base} user=koji application_name=httpd");
    let hub_url = hub.url.clone();
    let journal = koji_testkit::TestDb::empty("hubstart_journal")
        .await
        .unwrap();
    let remediator = Remediator::start_on(hub, &hub_url, journal.url.clone(), &rules).await;
    let backend = connect(&koji_url).await.unwrap();
    let backend_pid = pid(&backend).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let post = |alertname: &'static str, fingerprint: &'static str| {
        let labels = [("alertname", alertname)];
        payload(false, &labels, fingerprint, "2026-11-28T15:00:00Z")
    };
    remediator
        .post(&post("StaleUnreachable", "0000000000000001"))
        .await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "refused", "{runs:#?}");
    remediator
        .post(&post("StaleLongAgo", "0000000000000002"))
        .await;
    let runs = remediator.finished_runs(2).await;
    assert_eq!(runs[0]["state"], "nothing_to_do", "{runs:#?}");
    assert!(
        backend.simple_query("SELECT 1").await.is_ok(),
        "the live hub's backend survives"
    );
    // That query made it fresh again: wait past the threshold once more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    remediator
        .post(&post("StaleJustNow", "0000000000000003"))
        .await;
    let runs = remediator.finished_runs(3).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert!(runs[0]["plan"]
        .as_str()
        .unwrap()
        .contains(&backend_pid.to_string()));
    assert!(
        backend.simple_query("SELECT 1").await.is_err(),
        "the dead hub's backend is gone"
    );
    drop(journal);
}
