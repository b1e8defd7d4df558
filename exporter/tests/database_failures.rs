//! A database that refuses, hangs, is slow or restarts never hangs or fails a scrape, and
//! the exporter recovers by itself.

mod support;

use std::time::{Duration, Instant};

use koji_testkit::populate::add_host;
use koji_testkit::test_db::connect;
use koji_testkit::{HostSpec, KojiVersion, TempCluster, TestDb};
use support::{assert_hub_collectors_succeeded, config_for, hub_scraper, scrape, value};

fn success(samples: &[support::Sample], collector: &str) -> f64 {
    value(
        samples,
        "koji_exporter_collector_success",
        &[("collector", collector)],
    )
}

#[tokio::test]
async fn refused_connection_reports_db_down_at_once() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = koji_testkit::free_port();
    let url = format!("host=127.0.0.1 port={port} user=koji dbname=koji");
    let scraper = hub_scraper(config_for(&url, Duration::from_secs(5)));
    let started = Instant::now();
    let (text, samples) = scrape(&scraper).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(value(&samples, "koji_db_up", &[]), 0.0);
    assert_eq!(success(&samples, "koji_db"), 1.0);
    assert_eq!(success(&samples, "koji_hosts"), 0.0);
    assert!(text.contains("koji_exporter_build_info"), "{text}");
}

/// A server that accepts connections and never answers (a hung host or a stuck proxy).
#[tokio::test]
async fn silent_server_reports_db_down_within_the_scrape_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("host=127.0.0.1 port={port} user=koji dbname=koji");
    let scraper = hub_scraper(config_for(&url, Duration::from_secs(1)));
    let started = Instant::now();
    let (_, samples) = scrape(&scraper).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(1500),
        "scrape took {elapsed:?}"
    );
    assert_eq!(value(&samples, "koji_db_up", &[]), 0.0);
    assert_eq!(success(&samples, "koji_tasks"), 0.0);
    holder.abort();
}

/// A Koji 1.33 database with one host, a scraper with `scrape_timeout`, and a scrape taken
/// while another session holds `table` locked exclusively: the scraper, the database, the
/// locking session (`ROLLBACK` releases it), the scrape's samples and how long it took.
async fn scrape_with_table_locked(
    name: &str,
    table: &str,
    scrape_timeout: Duration,
) -> (
    std::sync::Arc<koji_exporter::scrape::Scraper>,
    TestDb,
    tokio_postgres::Client,
    Vec<support::Sample>,
    Duration,
) {
    let db = TestDb::koji(name, KojiVersion::V1_33).await.unwrap();
    add_host(&db.client, KojiVersion::V1_33, &HostSpec::new("buildvm-01"))
        .await
        .unwrap();
    let scraper = hub_scraper(config_for(&db.url, scrape_timeout));
    let locker = connect(&db.url).await.unwrap();
    locker
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let (_, samples) = scrape(&scraper).await;
    let elapsed = started.elapsed();
    (scraper, db, locker, samples, elapsed)
}

/// A statement blocked longer than the scrape timeout costs only its own collector, and
/// the next scrape after the blockage clears is whole again.
#[tokio::test]
async fn statement_slower_than_the_scrape_timeout() {
    let (scraper, _db, locker, samples, elapsed) =
        scrape_with_table_locked("slow", "host_config", Duration::from_secs(1)).await;
    assert!(
        elapsed < Duration::from_millis(1500),
        "scrape took {elapsed:?}"
    );
    assert_eq!(success(&samples, "koji_hosts"), 0.0);
    assert_eq!(success(&samples, "koji_tasks"), 1.0);
    assert_eq!(value(&samples, "koji_db_up", &[]), 1.0);
    assert!(samples.iter().all(|s| s.name != "koji_host_capacity"));

    locker.batch_execute("ROLLBACK").await.unwrap();
    let (text, samples) = scrape(&scraper).await;
    assert_eq!(success(&samples, "koji_hosts"), 1.0, "{text}");
    assert_eq!(
        value(&samples, "koji_host_capacity", &[("host", "buildvm-01")]),
        4.0
    );
}

/// The hub collectors share one connection: a statement waiting for a lock (a Koji
/// upgrade's DDL, `VACUUM FULL task`) gives up after `lock_timeout` instead of holding the
/// statements queued behind it, so the collectors reading other tables, and `koji_db_up`,
/// are still answered in time.
#[tokio::test]
async fn a_locked_table_costs_only_the_collectors_reading_it() {
    let (scraper, _db, locker, samples, elapsed) =
        scrape_with_table_locked("locked_task", "task", Duration::from_secs(2)).await;
    assert!(
        elapsed < Duration::from_millis(1500),
        "scrape took {elapsed:?}: the lock wait outlived lock_timeout"
    );
    assert_eq!(success(&samples, "koji_tasks"), 0.0);
    assert_eq!(success(&samples, "koji_hosts"), 0.0);
    assert_eq!(success(&samples, "pg_stat_activity"), 1.0);
    assert_eq!(success(&samples, "koji_db"), 1.0);
    assert_eq!(value(&samples, "koji_db_up", &[]), 1.0);
    assert!(samples
        .iter()
        .any(|s| s.name == "koji_db_server_start_time_seconds"));

    locker.batch_execute("ROLLBACK").await.unwrap();
    let (text, samples) = scrape(&scraper).await;
    assert_hub_collectors_succeeded(&samples, &text);
}

/// The database restarts under a running exporter: down while it is away, whole again on
/// the first scrape after it returns, without restarting the exporter.
#[tokio::test]
async fn database_restart_is_survived_without_restarting_the_exporter() {
    let cluster = tokio::task::spawn_blocking(|| TempCluster::start_new(&[]))
        .await
        .unwrap()
        .expect("a private PostgreSQL cluster");
    let admin = connect(&cluster.url("postgres")).await.unwrap();
    admin.batch_execute("CREATE DATABASE koji").await.unwrap();
    let koji = connect(&cluster.url("koji")).await.unwrap();
    KojiVersion::V1_33.create_schema(&koji).await.unwrap();
    add_host(&koji, KojiVersion::V1_33, &HostSpec::new("buildvm-01"))
        .await
        .unwrap();

    let scraper = hub_scraper(config_for(&cluster.url("koji"), Duration::from_secs(2)));
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(value(&samples, "koji_db_up", &[]), 1.0);
    assert_eq!(success(&samples, "koji_hosts"), 1.0);

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop().unwrap();
        cluster
    })
    .await
    .unwrap();
    let started = Instant::now();
    let (_, samples) = scrape(&scraper).await;
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert_eq!(value(&samples, "koji_db_up", &[]), 0.0);
    assert_eq!(success(&samples, "koji_hosts"), 0.0);

    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.start().unwrap();
        cluster
    })
    .await
    .unwrap();
    let (text, samples) = scrape(&scraper).await;
    assert_eq!(value(&samples, "koji_db_up", &[]), 1.0, "{text}");
    for collector in ["koji_hosts", "koji_tasks", "pg_stat_activity"] {
        assert_eq!(success(&samples, collector), 1.0, "{collector}: {text}");
    }
    assert_eq!(
        value(&samples, "koji_host_capacity", &[("host", "buildvm-01")]),
        4.0
    );
}
