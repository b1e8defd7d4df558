//! The README's database privileges, for real: the SQL blocks marked `sql:hub` and
//! `sql:journal` in README.md run as written (role and database names made unique for
//! this run) on the local PostgreSQL; then koji-exporter and koji-remediator run under
//! exactly those roles: every exporter collector succeeds, the remediator migrates its
//! journal, terminates stale `koji` backends and lowers a capacity. Then grants are taken
//! away one by one and each binary must say what is missing, not crash and not report a
//! comforting "nothing to do".

use std::time::Duration;

use koji_e2e::{
    free_port, get_json, repo_root, start_binary, start_central_remediator, wait_for, Central,
};
use koji_testkit::populate::{add_host, ensure_remediator_user};
use koji_testkit::test_db::connect;
use koji_testkit::{HostSpec, KojiVersion, TestDb};
use serde_json::{json, Value};

const HOST: &str = "buildvm-x86-01.example.org";
const API_TOKEN: &str = "roles-api-token-0123456789abcdef";

/// The SQL block after `<!-- sql:NAME -->` in README.md.
fn readme_sql(name: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let marker = format!("<!-- sql:{name} -->\n```sql\n");
    let start = readme.find(&marker).expect("the README's SQL block") + marker.len();
    let end = readme[start..].find("```").unwrap() + start;
    readme[start..end].to_owned()
}

async fn scrape(port: u16) -> Option<String> {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

fn collector_ok(metrics: &str, collector: &str) -> bool {
    metrics.contains(&format!(
        "koji_exporter_collector_success{{collector=\"{collector}\"}} 1"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_binaries_work_under_exactly_the_readme_grants_and_say_what_is_missing() {
    let hub = TestDb::koji("roles_hub", KojiVersion::V1_33).await.unwrap();
    add_host(&hub.client, KojiVersion::V1_33, &HostSpec::new(HOST))
        .await
        .unwrap();
    ensure_remediator_user(&hub.client).await.unwrap();
    let _ = hub
        .client
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE koji LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        )
        .await;
    let suffix = format!("t{}", std::process::id());
    let exporter_role = format!("koji_exporter_{suffix}");
    let remediator_role = format!("koji_remediator_{suffix}");
    let journal_db = format!("koji_remediator_{suffix}_journal");
    // Roles are cluster-wide: this run's get a suffix, and the journal database's name
    // follows the remediator's role.
    let rename = |sql: String| {
        sql.replace("koji_exporter", &exporter_role)
            .replace("koji_remediator", &remediator_role)
            .replace("DATABASE koji TO", &format!("DATABASE {} TO", hub.name))
    };
    let hub_sql = rename(readme_sql("hub"));
    let journal_sql = rename(readme_sql("journal"));
    assert!(journal_sql.contains(&journal_db), "{journal_sql}");
    assert!(
        hub_sql.contains(&format!("DATABASE {} TO", hub.name)),
        "{hub_sql}"
    );
    hub.client.batch_execute(&hub_sql).await.unwrap();
    let admin = connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
        .await
        .unwrap();
    admin.batch_execute(&journal_sql).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let as_role =
        |role: &str, db: &str| format!("host=127.0.0.1 port=5432 dbname={db} user={role}");

    // The exporter under its role: every hub collector succeeds.
    std::fs::write(
        d.join("exporter.toml"),
        format!(
            "[database]\nurl = \"{}\"\nstale_connection_age = \"1s\"\n",
            as_role(&exporter_role, &hub.name)
        ),
    )
    .unwrap();
    let exporter_port = free_port();
    let exporter = start_binary(
        d,
        "koji-exporter",
        "koji-exporter",
        "exporter.toml",
        exporter_port,
        &[
            "--collector.disable-defaults",
            "--collector.koji_db",
            "--collector.koji_hosts",
            "--collector.koji_tasks",
            "--collector.pg_stat_activity",
        ],
    );
    let hub_collectors = ["koji_db", "koji_hosts", "koji_tasks", "pg_stat_activity"];
    wait_for(
        "every collector to succeed",
        Duration::from_secs(30),
        &[&exporter],
        || async {
            let metrics = scrape(exporter_port).await?;
            hub_collectors
                .iter()
                .all(|c| collector_ok(&metrics, c))
                .then_some(())
        },
    )
    .await;

    // The remediator under its role: journal migrated, stale backends terminated, capacity
    // lowered the way editHost does.
    let journal_url = as_role(&remediator_role, &journal_db);
    let hub_url = as_role(&remediator_role, &hub.name);
    let central = Central {
        webhook_token: "roles-webhook-token-0123456789ab",
        api_token: API_TOKEN,
        journal_url: &journal_url,
        hub_url: &hub_url,
    };
    let (remediator, remediator_port) = start_central_remediator(
        d,
        &central,
        "",
        r#"
[guards]
default_cooldown = "0s"
[[rule]]
name = "stale"
alertname = "KojiDatabaseStaleConnections"
action = "terminate_stale_connections"
policy = "auto"
params = { users = ["koji"], older_than = "1s" }
[[rule]]
name = "overloaded"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
params = { step = 1.0, floor = 2.0 }
"#,
    );
    let base = format!("http://127.0.0.1:{remediator_port}");
    let logs = [&exporter, &remediator];
    let client = reqwest::Client::new();
    let koji_url = format!(
        "host=127.0.0.1 port=5432 dbname={} user=koji application_name=httpd",
        hub.name
    );
    let mut alert_serial = 0;
    let mut post = |alertname: &str, labels: &[(&str, &str)]| {
        alert_serial += 1;
        let mut all = vec![("alertname", alertname)];
        all.extend_from_slice(labels);
        let body = firing(
            &all,
            &format!("{:016x}", alert_serial),
            &format!("2026-11-28T14:{alert_serial:02}:00Z"),
        );
        let request = client
            .post(format!("{base}/webhook/alertmanager"))
            .bearer_auth("roles-webhook-token-0123456789ab")
            .header("content-type", "application/json")
            .body(body);
        async move { request.send().await.map(|r| r.status().as_u16()) }
    };
    // The newest finished run of `action` with an id above `after` (a final state: an
    // `applying` run has not finished).
    let finished_run = |action: &'static str, after: i64| {
        let client = client.clone();
        let url = format!("{base}/api/v1/journal");
        async move {
            let runs = get_json(&client, &url, Some(API_TOKEN)).await?;
            runs.as_array()?
                .iter()
                .find(|r| {
                    r["action"] == action
                        && r["id"].as_i64().unwrap_or(0) > after
                        && !matches!(
                            r["state"].as_str(),
                            Some("pending" | "awaiting_approval" | "running" | "applying")
                        )
                })
                .cloned()
        }
    };
    wait_for(
        "the remediator to listen",
        Duration::from_secs(30),
        &logs,
        || async {
            reqwest::get(format!("{base}/healthz"))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;

    let stale = connect(&koji_url).await.unwrap();
    stale.simple_query("SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        post("KojiDatabaseStaleConnections", &[]).await.unwrap(),
        200
    );
    let run = wait_for("the termination", Duration::from_secs(20), &logs, || {
        finished_run("terminate_stale_connections", 0)
    })
    .await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let mut last_id = run["id"].as_i64().unwrap();
    assert!(stale.simple_query("SELECT 1").await.is_err(), "terminated");

    assert_eq!(
        post("KojiBuilderOverloaded", &[("host", HOST)])
            .await
            .unwrap(),
        200
    );
    let run = wait_for(
        "the capacity change",
        Duration::from_secs(20),
        &logs,
        || finished_run("lower_capacity", 0),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let capacity: f64 = hub
        .client
        .query_one("SELECT capacity FROM host_config WHERE active", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(capacity, 3.0);

    // Less than the README grants: each part says what is missing.
    hub.client
        .batch_execute(&format!(
            "REVOKE pg_monitor FROM {exporter_role}; REVOKE SELECT ON task FROM {exporter_role};"
        ))
        .await
        .unwrap();
    wait_for(
        "the collectors to report the missing grants",
        Duration::from_secs(30),
        &logs,
        || async {
            let metrics = scrape(exporter_port).await?;
            let failing = !collector_ok(&metrics, "pg_stat_activity")
                && !collector_ok(&metrics, "koji_tasks");
            (failing && collector_ok(&metrics, "koji_db")).then_some(())
        },
    )
    .await;
    let exporter_log = exporter.log_tail();
    assert!(
        exporter_log.contains("GRANT pg_monitor (or pg_read_all_stats)"),
        "{exporter_log}"
    );
    assert!(
        exporter_log.contains("permission denied for table task"),
        "{exporter_log}"
    );

    hub.client
        .batch_execute(&format!("REVOKE pg_signal_backend FROM {remediator_role}"))
        .await
        .unwrap();
    let stale = connect(&koji_url).await.unwrap();
    stale.simple_query("SELECT 1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    post("KojiDatabaseStaleConnections", &[]).await.unwrap();
    let run = wait_for(
        "a failed termination",
        Duration::from_secs(20),
        &logs,
        || finished_run("terminate_stale_connections", last_id),
    )
    .await;
    last_id = run["id"].as_i64().unwrap();
    assert_eq!(run["state"], "failed", "{run}");
    let outcome = run["outcome"].as_str().unwrap();
    assert!(outcome.contains("member of pg_signal_backend"), "{outcome}");
    assert!(
        stale.simple_query("SELECT 1").await.is_ok(),
        "nothing terminated"
    );

    hub.client
        .batch_execute(&format!("REVOKE pg_read_all_stats FROM {remediator_role}"))
        .await
        .unwrap();
    post("KojiDatabaseStaleConnections", &[]).await.unwrap();
    let run = wait_for(
        "a refused termination",
        Duration::from_secs(20),
        &logs,
        || finished_run("terminate_stale_connections", last_id),
    )
    .await;
    assert_eq!(run["state"], "refused", "{run}");
    let outcome = run["outcome"].as_str().unwrap();
    assert!(outcome.contains("GRANT pg_read_all_stats"), "{outcome}");
    assert!(
        remediator_alive(&base).await,
        "the remediator keeps serving"
    );

    drop((exporter, remediator));
    drop(stale);
    let cleanup =
        format!("DROP OWNED BY {exporter_role}, {remediator_role}; DROP ROLE {exporter_role}; ");
    hub.client.batch_execute(&cleanup).await.unwrap();
    for statement in [
        format!("DROP DATABASE {journal_db} WITH (FORCE)"),
        format!("DROP ROLE {remediator_role}"),
    ] {
        admin.batch_execute(&statement).await.unwrap();
    }
}

async fn remediator_alive(base: &str) -> bool {
    reqwest::get(format!("{base}/healthz"))
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// An Alertmanager webhook payload (version 4) with one firing alert.
fn firing(labels: &[(&str, &str)], fingerprint: &str, starts_at: &str) -> String {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    json!({
        "version": "4", "status": "firing", "receiver": "koji-remediator",
        "groupKey": "{}:{}", "truncatedAlerts": 0, "externalURL": "http://alertmanager",
        "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {},
        "alerts": [{
            "status": "firing", "labels": labels, "annotations": {},
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus", "fingerprint": fingerprint,
        }],
    })
    .to_string()
}

/// The central example's `[hub]` comment lists the same grants as README's tested SQL:
/// every role, table and sequence granted to koji_remediator there is named in it.
#[test]
fn the_example_names_the_readme_grants() {
    let sql = readme_sql("hub");
    let remediator_grants: String = sql
        .split(';')
        .filter(|statement| statement.contains("GRANT") && statement.contains("koji_remediator"))
        .collect::<Vec<_>>()
        .join(" ");
    let example =
        std::fs::read_to_string(repo_root().join("examples/koji-remediator.toml")).unwrap();
    let hub_comment: String = example
        .lines()
        .skip_while(|line| line.trim() != "[hub]")
        .take_while(|line| line.starts_with('#') || line.trim() == "[hub]")
        .collect::<Vec<_>>()
        .join(" ");
    let mut named = 0;
    for word in remediator_grants
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.contains('_') || word.chars().all(|c| c.is_ascii_lowercase()))
        .filter(|word| !word.is_empty() && *word != "koji_remediator" && *word != "koji")
    {
        assert!(
            hub_comment.contains(word),
            "README grants {word} to koji_remediator; the example's [hub] comment does not say so: {hub_comment}"
        );
        named += 1;
    }
    assert!(named >= 10, "{remediator_grants}");
}
