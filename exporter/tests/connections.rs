//! `pg_stat_activity` against the real server: connection counts, ages and stale
//! connections of a user of our own, and the slot settings.

mod support;

use std::time::Duration;

use koji_testkit::test_db::connect;
use koji_testkit::{KojiVersion, TestDb};
use support::{assert_hub_collectors_succeeded, config_for, hub_scraper, scrape, value};

#[tokio::test]
async fn connections_by_user_and_state_with_ages_and_stale_counts() {
    let db = TestDb::koji("connections", KojiVersion::V1_33)
        .await
        .unwrap();
    // A user of this test alone, so other tests' connections never count; dropped after.
    let user = db.login_role("koji").await.unwrap();
    let user_url = format!("{} user={user}", db.url.replace("user=postgres", ""));
    let mut idle = Vec::new();
    for _ in 0..2 {
        let client = connect(&user_url).await.unwrap();
        client.simple_query("SELECT 1").await.unwrap();
        idle.push(client);
    }
    // Never stale, whatever their age: one that never ran a query, and idle ones of
    // another database on the same server (the fix acts on neither).
    let never_queried = connect(&user_url).await.unwrap();
    let elsewhere = TestDb::empty("connections_elsewhere").await.unwrap();
    elsewhere
        .client
        .batch_execute(&format!(
            "GRANT ALL ON DATABASE \"{}\" TO \"{user}\"",
            elsewhere.name
        ))
        .await
        .unwrap();
    let elsewhere_url = format!("{} user={user}", elsewhere.url.replace("user=postgres", ""));
    let other_database = connect(&elsewhere_url).await.unwrap();
    other_database.simple_query("SELECT 1").await.unwrap();
    let busy = connect(&user_url).await.unwrap();
    let _kept = (never_queried, other_database);
    let sleeper = tokio::spawn(async move {
        let _ = busy.simple_query("SELECT pg_sleep(30)").await;
    });
    tokio::time::sleep(Duration::from_millis(1600)).await;

    let mut config = config_for(&db.url, Duration::from_secs(5));
    config.database.stale_connection_age = Duration::from_secs(1);
    config.database.koji_users = vec!["koji".into(), user.clone()];
    let scraper = hub_scraper(config);
    let (text, samples) = scrape(&scraper).await;

    let connections = |state: &str| {
        value(
            &samples,
            "koji_db_connections",
            &[("datname", &db.name), ("usename", &user), ("state", state)],
        )
    };
    assert_eq!(
        connections("idle"),
        3.0,
        "two that ran a query, one that never did: {text}"
    );
    assert_eq!(connections("active"), 1.0, "{text}");
    assert_eq!(
        value(
            &samples,
            "koji_db_connections",
            &[
                ("datname", &elsewhere.name),
                ("usename", &user),
                ("state", "idle")
            ],
        ),
        1.0,
        "{text}"
    );
    let connection_age = value(
        &samples,
        "koji_db_connection_max_age_seconds",
        &[("usename", &user), ("state", "idle")],
    );
    assert!((1.5..30.0).contains(&connection_age), "{connection_age}");
    let query_age = value(
        &samples,
        "koji_db_query_max_age_seconds",
        &[("usename", &user), ("state", "active")],
    );
    assert!((1.5..30.0).contains(&query_age), "{query_age}");
    // Stale: the three of the hub's database that last started a query more than the 1 s
    // threshold ago; not the one that never ran a query, nor the one in another database.
    assert_eq!(
        value(
            &samples,
            "koji_db_stale_connections",
            &[("datname", &db.name), ("usename", &user)]
        ),
        3.0
    );
    // A configured user with no connections still has a series, at 0.
    assert_eq!(
        value(
            &samples,
            "koji_db_stale_connections",
            &[("datname", &db.name), ("usename", "koji")]
        ),
        0.0
    );
    assert_eq!(
        value(&samples, "koji_db_stale_connection_threshold_seconds", &[]),
        1.0
    );

    let settings = db
        .client
        .query_one(
            "SELECT current_setting('max_connections')::float8,
                    current_setting('superuser_reserved_connections')::float8",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        value(&samples, "koji_db_max_connections", &[]),
        settings.get::<_, f64>(0)
    );
    assert_eq!(
        value(&samples, "koji_db_superuser_reserved_connections", &[]),
        settings.get::<_, f64>(1)
    );

    // With the default 40-minute threshold none of them is stale.
    let mut config = config_for(&db.url, Duration::from_secs(5));
    config.database.koji_users = vec![user.clone()];
    let (_, samples) = scrape(&hub_scraper(config)).await;
    assert_eq!(
        value(&samples, "koji_db_stale_connections", &[("usename", &user)]),
        0.0
    );

    sleeper.abort();
    drop(idle);
    db.client
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{user}'"
        ))
        .await
        .unwrap();
}

/// The hub collectors of one scrape share one connection (their statements pipelined on it),
/// so a scrape takes one of the hub's connection slots and two scrapes at once (two
/// Prometheus replicas) take two, however many collectors read the database.
#[tokio::test]
async fn a_scrape_holds_one_hub_connection() {
    let db = TestDb::koji("one_connection", KojiVersion::V1_33)
        .await
        .unwrap();
    let scraper = hub_scraper(config_for(&db.url, Duration::from_secs(5)));
    let exporter_connections = || async {
        let rows = db
            .client
            .query(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = $1 AND application_name = 'koji-exporter'",
                &[&db.name],
            )
            .await
            .unwrap();
        rows[0].get::<_, i64>(0)
    };

    let (text, samples) = scrape(&scraper).await;
    assert_hub_collectors_succeeded(&samples, &text);
    assert_eq!(exporter_connections().await, 1);

    let (first, second) = tokio::join!(scrape(&scraper), scrape(&scraper));
    for (text, samples) in [first, second] {
        assert_hub_collectors_succeeded(&samples, &text);
    }
    assert_eq!(exporter_connections().await, 2);
}
