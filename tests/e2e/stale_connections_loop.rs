//! The runbook's "builders won't connect" failure, end to end with every real part: idle
//! `koji` connections left by a "crashed hub" fill a small PostgreSQL's slots;
//! koji-exporter reports them, Prometheus evaluates the real alert rules (with `for:`
//! shortened), Alertmanager posts to koji-remediator, which terminates them; the stale
//! count returns to 0 and the alert resolves, while `koji` connections the fix must not
//! touch (one to another database of the server, one that never ran a query) stay open:
//! the exporter's count and the fix agree on what is stale. Asserted on the database, Prometheus and the
//! journal; the time from symptom to fix is printed. Then every query of every dashboard in
//! `dashboards/`, and every alert rule in its bool form, is evaluated against the running
//! Prometheus and must return data.

use std::time::{Duration, Instant};

use koji_e2e::rule_expressions::bool_form;
use koji_e2e::{
    alert_active, free_port, get_json, query_has_data, repo_root, start_alertmanager, start_binary,
    start_central_remediator, start_prometheus, wait_for, Central,
};
use koji_testkit::mounts::TestMount;
use koji_testkit::populate::add_host;
use koji_testkit::test_db::connect;
use koji_testkit::{HostSpec, KojiVersion, TempCluster, TestDb};
use serde_json::Value;

const WEBHOOK_TOKEN: &str = "e2e-webhook-token-0123456789abcdef";
const API_TOKEN: &str = "e2e-api-token-fedcba9876543210xyz";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_koji_connections_are_found_alerted_and_terminated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A hub database with few slots, so the stale connections visibly fill them.
    let cluster = tokio::task::spawn_blocking(|| {
        TempCluster::start_new(&["max_connections = 30", "superuser_reserved_connections = 3"])
    })
    .await
    .unwrap()
    .expect("a private PostgreSQL cluster");
    let admin = connect(&cluster.url("postgres")).await.unwrap();
    admin.batch_execute("CREATE DATABASE koji").await.unwrap();
    admin
        .batch_execute("CREATE DATABASE koji_other")
        .await
        .unwrap();
    admin.batch_execute("CREATE ROLE koji LOGIN").await.unwrap();
    let hub = connect(&cluster.url("koji")).await.unwrap();
    KojiVersion::V1_33.create_schema(&hub).await.unwrap();
    add_host(
        &hub,
        KojiVersion::V1_33,
        &HostSpec::new("buildvm-x86-01.example.org"),
    )
    .await
    .unwrap();
    // Shared storage (a small tmpfs standing in for /mnt/koji), so the shared-storage
    // rule has its series.
    let shared = d.join("mnt-koji");
    let _shared = TestMount::tmpfs(&shared, "size=4m", "nfs-stand-in:/koji");
    // A build directory of this machine, for the builder collectors.
    let mock = d.join("mock");
    std::fs::create_dir_all(mock.join("f40-build-1-1/root")).unwrap();
    let journal = TestDb::empty("e2e_journal").await.unwrap();

    // koji-exporter on the hub database, stale after 3 s.
    let exporter_port = free_port();
    std::fs::write(
        d.join("exporter.toml"),
        format!(
            "[web]\nscrape_timeout = \"5s\"\n[database]\nurl = \"{}\"\nstale_connection_age = \"3s\"\npool_size = 4\n\
             [builder]\nhost_name = \"buildvm-x86-01.example.org\"\n\
             [builddirs]\nroots = [\"{mock}\"]\ninterval = \"2s\"\n\
             [[filesystems.paths]]\npath = \"/\"\nrole = \"local\"\n\
             [[filesystems.paths]]\npath = \"{mock}\"\nrole = \"local\"\n\
             [[filesystems.paths]]\npath = \"{shared}\"\nrole = \"shared\"\n",
            cluster.url("koji"),
            mock = mock.display(),
            shared = shared.display(),
        ),
    )
    .unwrap();
    let exporter = start_binary(
        d,
        "koji-exporter",
        "koji-exporter",
        "exporter.toml",
        exporter_port,
        &[],
    );

    // koji-remediator with the example's rule, thresholds scaled down.
    let hub_url = cluster.url("koji");
    let central = Central {
        webhook_token: WEBHOOK_TOKEN,
        api_token: API_TOKEN,
        journal_url: &journal.url,
        hub_url: &hub_url,
    };
    let (remediator, remediator_port) = start_central_remediator(
        d,
        &central,
        "",
        r#"
[[rule]]
name = "stale-db-connections"
alertname = "KojiDatabaseStaleConnections"
action = "terminate_stale_connections"
policy = "auto"
cooldown = "0s"
params = { users = ["koji"], older_than = "3s", max_per_run = 100 }
"#,
    );

    let (alertmanager, am_port) = start_alertmanager(
        d,
        &format!("http://127.0.0.1:{remediator_port}/webhook/alertmanager"),
        &d.join("webhook.token"),
    );
    let (prometheus, prom) = start_prometheus(
        d,
        &[
            ("koji-hub", exporter_port),
            ("koji-remediator", remediator_port),
        ],
        am_port,
    );
    let all = [&exporter, &remediator, &alertmanager, &prometheus];
    let client = reqwest::Client::new();
    wait_for(
        "Prometheus to scrape the exporter",
        Duration::from_secs(60),
        &all,
        || async {
            let body = get_json(
                &client,
                &format!("{prom}/api/v1/query?query=koji_db_up"),
                None,
            )
            .await?;
            (body["data"]["result"][0]["value"][1] == "1").then_some(())
        },
    )
    .await;

    // The symptom: a crashed hub's idle connections, 18 of 27 usable slots.
    let base = cluster.url("koji").replace("user=postgres", "");
    let mut stale = Vec::new();
    for _ in 0..18 {
        let client = connect(&format!("{base} user=koji application_name=httpd"))
            .await
            .unwrap();
        client.simple_query("SELECT 1").await.unwrap();
        stale.push(client);
    }
    // Connections that are not stale: a koji one to another database of the server, idle
    // as long as the stale ones, and one to the hub's database that never ran a query.
    let other_database = connect(&format!(
        "{} user=koji application_name=other",
        cluster.url("koji_other").replace("user=postgres", "")
    ))
    .await
    .unwrap();
    other_database.simple_query("SELECT 1").await.unwrap();
    let _never_queried = connect(&format!("{base} user=koji application_name=never-queried"))
        .await
        .unwrap();
    let symptom = Instant::now();

    let journal_url = format!("http://127.0.0.1:{remediator_port}/api/v1/journal");
    let run = wait_for(
        "the remediator to terminate them",
        Duration::from_secs(90),
        &all,
        || async {
            let runs = get_json(&client, &journal_url, Some(API_TOKEN)).await?;
            runs.as_array()?
                .iter()
                .find(|run| run["state"] == "succeeded")
                .cloned()
        },
    )
    .await;
    let fixed_after = symptom.elapsed();
    println!("symptom to fix applied: {:.1} s", fixed_after.as_secs_f64());
    assert_eq!(run["action"], "terminate_stale_connections");
    assert!(
        run["outcome"]
            .as_str()
            .unwrap()
            .contains("terminated 18 of 18"),
        "{run}"
    );

    let koji_left: Vec<(String, String)> = admin
        .query(
            "SELECT datname::text, application_name FROM pg_stat_activity
              WHERE usename = 'koji' ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        koji_left,
        [
            ("koji".to_owned(), "never-queried".to_owned()),
            ("koji_other".to_owned(), "other".to_owned())
        ],
        "every stale koji backend is gone, and only those"
    );
    for client in &stale {
        assert!(client.simple_query("SELECT 1").await.is_err());
    }

    wait_for(
        "the stale count back to 0 and the alert resolved",
        Duration::from_secs(60),
        &all,
        || async {
            let stale = get_json(
                &client,
                &format!(
                    "{prom}/api/v1/query?query=koji_db_stale_connections{{usename=%22koji%22}}"
                ),
                None,
            )
            .await?;
            let result = stale["data"]["result"].as_array()?;
            let zero = result.len() == 1
                && result[0]["metric"]["datname"] == "koji"
                && result[0]["value"][1] == "0";
            let firing = alert_active(&client, &prom, "KojiDatabaseStaleConnections").await?;
            (zero && !firing).then_some(())
        },
    )
    .await;
    println!(
        "symptom to alert resolved: {:.1} s",
        symptom.elapsed().as_secs_f64()
    );

    let queries = dashboard_queries();
    for expr in &queries {
        wait_for(
            &format!("data for dashboard query {expr}"),
            Duration::from_secs(30),
            &all,
            || query_has_data(&client, &prom, expr),
        )
        .await;
    }
    println!("all {} dashboard queries return data", queries.len());

    // Every alert rule, in its bool form (see koji_e2e::rule_expressions), returns data:
    // every metric it reads exists here, with the labels its joins match on.
    let rules = get_json(&client, &format!("{prom}/api/v1/rules?type=alert"), None)
        .await
        .unwrap();
    let mut alerts = Vec::new();
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            alerts.push((
                rule["name"].as_str().unwrap().to_owned(),
                bool_form(rule["query"].as_str().unwrap()),
            ));
        }
    }
    let in_file = std::fs::read_to_string(repo_root().join("alerts/koji.rules.yml"))
        .unwrap()
        .matches("- alert: ")
        .count();
    assert_eq!(alerts.len(), in_file, "{alerts:?}");
    for (name, expr) in &alerts {
        wait_for(
            &format!("data for alert {name}: {expr}"),
            Duration::from_secs(30),
            &all,
            || query_has_data(&client, &prom, expr),
        )
        .await;
    }
    println!(
        "all {} alert rules return data in their bool form",
        alerts.len()
    );
    assert!(other_database.simple_query("SELECT 1").await.is_ok());
    drop(cluster);
}

/// Every panel query of every dashboard, with template variables set to "all".
fn dashboard_queries() -> Vec<String> {
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let board: Value = serde_json::from_str(&text).unwrap();
            for panel in board["panels"].as_array().unwrap() {
                for target in panel["targets"].as_array().unwrap() {
                    let expr = target["expr"].as_str().unwrap();
                    queries.push(expr.replace("$host", ".*").replace("$instance", ".*"));
                }
            }
        }
    }
    assert!(queries.len() >= 25, "{queries:?}");
    queries
}
