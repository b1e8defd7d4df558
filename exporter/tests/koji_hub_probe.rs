//! The `koji_hub` collector against Koji's real hub (`../shared/koji-hub`, see
//! koji_testkit::koji_hub): `koji_hub_up 1` while the hub answers `getLastEvent`, 0 once
//! its process is gone while its database still answers (the runbook's "restart the hub"
//! case), and 0 for an HTTP server that is not a hub (a stand-in: the real hub cannot be
//! made to answer with something other than XML-RPC). `koji_db_server_start_time_seconds`
//! is the server's own `pg_postmaster_start_time()`.

mod support;

use std::time::Duration;

use koji_exporter::collectors::CollectorId;
use koji_testkit::{KojiHub, TestDb};
use support::{config_for, scrape, value};

fn scraper(db_url: &str, hub_url: &str) -> std::sync::Arc<koji_exporter::scrape::Scraper> {
    let mut config = config_for(db_url, Duration::from_secs(5));
    config.hub.url = hub_url.to_owned();
    config.hub.probe_timeout = Duration::from_secs(2);
    koji_exporter::scraper(config, vec![CollectorId::KojiDb, CollectorId::KojiHub]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_is_up_while_it_answers_and_down_when_it_does_not() {
    let db = TestDb::empty("hub_probe").await.unwrap();
    let hub = KojiHub::start(&db, &[]).await.expect("Koji's hub");
    let scraper = scraper(&db.url, &hub.url);

    let (_, samples) = scrape(&scraper).await;
    assert_eq!(value(&samples, "koji_hub_up", &[]), 1.0);
    assert_eq!(value(&samples, "koji_db_up", &[]), 1.0);
    let took = value(&samples, "koji_hub_probe_duration_seconds", &[]);
    assert!(took > 0.0 && took < 2.0, "{took}");
    assert_eq!(
        value(
            &samples,
            "koji_exporter_collector_success",
            &[("collector", "koji_hub")]
        ),
        1.0
    );
    let started: f64 = db
        .client
        .query_one(
            "SELECT extract(epoch FROM pg_postmaster_start_time())::float8",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        (value(&samples, "koji_db_server_start_time_seconds", &[]) - started).abs() < 0.001,
        "the server's own start time"
    );

    // The hub's process is gone; its database still answers.
    drop(hub);
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(value(&samples, "koji_hub_up", &[]), 0.0);
    assert_eq!(value(&samples, "koji_db_up", &[]), 1.0);
    assert_eq!(
        value(
            &samples,
            "koji_exporter_collector_success",
            &[("collector", "koji_hub")]
        ),
        1.0,
        "a hub that does not answer is a measurement, not a collector failure"
    );
}

/// A stand-in: an HTTP server answering 200 with something that is not XML-RPC, and one
/// that never answers (bounded by the probe timeout).
#[tokio::test]
async fn a_server_that_is_not_a_hub_or_does_not_answer_is_down() {
    let db = TestDb::empty("hub_probe_fake").await.unwrap();
    let app = axum::Router::new()
        .route("/kojihub", axum::routing::post(|| async { "hello" }))
        .route(
            "/slow",
            axum::routing::post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (_, samples) = scrape(&scraper(&db.url, &format!("{base}/kojihub"))).await;
    assert_eq!(value(&samples, "koji_hub_up", &[]), 0.0);
    let started = std::time::Instant::now();
    let (_, samples) = scrape(&scraper(&db.url, &format!("{base}/slow"))).await;
    assert_eq!(value(&samples, "koji_hub_up", &[]), 0.0);
    let took = value(&samples, "koji_hub_probe_duration_seconds", &[]);
    assert!(
        (1.9..3.0).contains(&took),
        "bounded by the probe timeout: {took}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}
