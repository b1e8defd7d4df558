//! Upgrade safety of the journal: a journal left at every earlier schema version, with the
//! rows that version wrote, is migrated forward at start and its history stays readable;
//! an instance starting while another is mid-migration waits for it and then applies only
//! what is left; two instances starting together on an empty journal migrate it once; and
//! a journal from a newer remediator is refused with a clear error.

mod support;

use std::time::Duration;

use koji_remediator::journal::migrations::{MIGRATIONS, MIGRATION_LOCK};
use koji_testkit::test_db::connect;
use koji_testkit::{KojiVersion, TestDb};
use support::{payload, Remediator};

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "0s"
params = { step = 1.0, floor = 2.0 }
"#;

/// The schema and version table every release creates first.
const VERSION_TABLE: &str = "
CREATE SCHEMA koji_remediator;
CREATE TABLE koji_remediator.schema_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now())";

/// Brings an empty database to `version` as the release that stopped there did.
async fn migrate_as_an_old_release(client: &tokio_postgres::Client, version: i32) {
    client.batch_execute(VERSION_TABLE).await.unwrap();
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= version) {
        client.batch_execute(sql).await.unwrap();
        client
            .execute(
                "INSERT INTO koji_remediator.schema_migrations (version) VALUES ($1)",
                &[v],
            )
            .await
            .unwrap();
    }
}

/// A delivery, its alert and a finished run, with the columns version 1 has.
const OLD_ROWS: &str = r#"
INSERT INTO koji_remediator.deliveries (receiver, group_key, status, alert_count)
     VALUES ('koji-remediator', '{}:{}', 'firing', 1);
INSERT INTO koji_remediator.alerts (delivery_id, fingerprint, status, alertname, labels,
                                    annotations, starts_at, rule, decision)
     VALUES (1, '01d01d01d01d01d0', 'firing', 'KojiBuilderOverloaded',
             '{"alertname": "KojiBuilderOverloaded", "host": "old-builder"}', '{}',
             '2026-01-01T00:00:00Z', 'overloaded-builder', 'run');
INSERT INTO koji_remediator.action_runs (fingerprint, starts_at, action, kind, rule, policy,
                                         target, labels, state, plan_summary, outcome,
                                         started_at, finished_at)
     VALUES ('01d01d01d01d01d0', '2026-01-01T00:00:00Z', 'lower_capacity', 'apply',
             'overloaded-builder', 'auto', 'host:old-builder',
             '{"alertname": "KojiBuilderOverloaded", "host": "old-builder"}', 'succeeded',
             'lower old-builder from 4 to 3', 'capacity of old-builder changed from 4 to 3',
             now(), now());
"#;

async fn versions(journal_url: &str) -> Vec<i32> {
    let client = connect(journal_url).await.unwrap();
    client
        .query(
            "SELECT version FROM koji_remediator.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn all_versions() -> Vec<i32> {
    MIGRATIONS.iter().map(|(v, _)| *v).collect()
}

#[tokio::test]
async fn every_earlier_schema_is_migrated_forward_with_its_history() {
    for from in 0..MIGRATIONS.len() as i32 {
        let journal = TestDb::empty("mig_journal").await.unwrap();
        if from > 0 {
            migrate_as_an_old_release(&journal.client, from).await;
            journal.client.batch_execute(OLD_ROWS).await.unwrap();
        }
        let hub = TestDb::koji("mig_hub", KojiVersion::V1_33).await.unwrap();
        let hub_url = hub.url.clone();
        let remediator = Remediator::start_on(hub, &hub_url, journal.url.clone(), RULES).await;
        assert_eq!(versions(&journal.url).await, all_versions(), "from {from}");
        let runs = remediator.runs().await;
        if from > 0 {
            let old = runs
                .iter()
                .find(|r| r["target"] == "host:old-builder")
                .unwrap_or_else(|| panic!("from {from}: {runs:#?}"));
            assert_eq!(
                old["outcome"],
                "capacity of old-builder changed from 4 to 3"
            );
        }
        // The upgraded journal takes new deliveries and lists escalations.
        let (status, _) = remediator
            .post(&payload(
                false,
                &[("alertname", "KojiBuilderOverloaded"), ("host", "nowhere")],
                "2e02e02e02e02e02",
                "2026-11-28T15:00:00Z",
            ))
            .await;
        assert_eq!(status, 200, "from {from}");
        remediator.escalations().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_waits_for_a_migration_in_progress() {
    let journal = TestDb::empty("mig_wait_journal").await.unwrap();
    let hub = TestDb::koji("mig_wait_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    koji_testkit::populate::ensure_remediator_user(&hub.client)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = support::config_text(dir.path(), &hub.url, &journal.url, RULES);
    let config =
        koji_remediator::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();

    // Instance A has begun migrating: it holds the migration lock.
    let mut first = connect(&journal.url).await.unwrap();
    let migrating = first.transaction().await.unwrap();
    migrating
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .unwrap();

    // Instance B starts meanwhile: it waits (without the lock it would create the whole
    // schema now, and A's next statements would fail).
    let second = tokio::spawn(koji_remediator::start(config.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!second.is_finished(), "B did not wait for A's migration");

    // A applies version 1 and commits.
    migrating.batch_execute(VERSION_TABLE).await.unwrap();
    migrating.batch_execute(MIGRATIONS[0].1).await.unwrap();
    migrating
        .execute(
            "INSERT INTO koji_remediator.schema_migrations (version) VALUES (1)",
            &[],
        )
        .await
        .unwrap();
    // A finishes; B goes on with what is left, and both agree on the result.
    migrating.commit().await.unwrap();
    let app = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("B starts once A is done")
        .unwrap()
        .expect("B starts");
    assert!(app.central.is_some());
    assert_eq!(versions(&journal.url).await, all_versions());

    // Two instances starting together on an empty journal: one migrates, both run.
    let fresh = TestDb::empty("mig_race_journal").await.unwrap();
    let text = support::config_text(dir.path(), &hub.url, &fresh.url, RULES);
    let config =
        koji_remediator::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let (a, b) = tokio::join!(
        koji_remediator::start(config.clone()),
        koji_remediator::start(config.clone())
    );
    a.expect("A starts");
    b.expect("B starts");
    assert_eq!(versions(&fresh.url).await, all_versions());
}

#[tokio::test]
async fn a_journal_from_a_newer_remediator_is_refused() {
    let journal = TestDb::empty("mig_newer_journal").await.unwrap();
    migrate_as_an_old_release(&journal.client, i32::MAX).await;
    journal
        .client
        .batch_execute("INSERT INTO koji_remediator.schema_migrations (version) VALUES (999)")
        .await
        .unwrap();
    let hub = TestDb::koji("mig_newer_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    koji_testkit::populate::ensure_remediator_user(&hub.client)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = support::config_text(dir.path(), &hub.url, &journal.url, RULES);
    let config =
        koji_remediator::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let error = match koji_remediator::start(config).await {
        Ok(_) => panic!("started on a newer journal"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("schema is at version 999, newer than this koji-remediator knows"),
        "{error}"
    );
}
