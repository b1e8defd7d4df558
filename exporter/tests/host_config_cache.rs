//! The host configuration the `koji_hosts` collector keeps between scrapes never outlives
//! a change: against Koji's real hub (`../shared/koji-hub`), capacity, arches, channels
//! and enabled changed through the hub's own calls (`koji edit-host`, `add-host-to-channel`,
//! `remove-host-from-channel`, `disable-host`) show in the very next scrape, and so do a
//! channel's new name and a builder's check-in (neither makes an event), while Koji's
//! other changes (new tags) leave the kept configuration in use. Two cases the hub
//! cannot be made to show are played in SQL (stand-ins, said so below): a change (of a
//! configuration, of a channel membership) whose event id was taken before a later event
//! committed, committing after it; and a host renamed by an administrator's SQL.

mod support;

use std::time::Duration;

use koji_exporter::collectors::CollectorId;
use koji_testkit::{KojiHub, TestDb};
use support::{config_for, scrape, Sample};

const HOST: &str = "buildvm-x86-01.example.org";
const PASSWORD: &str = "builder-password";

fn host_value(samples: &[Sample], name: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get("host").map(String::as_str) == Some(HOST))
        .map(|s| s.value)
}

fn info_label(samples: &[Sample], label: &str) -> String {
    samples
        .iter()
        .find(|s| {
            s.name == "koji_host_info" && s.labels.get("host").map(String::as_str) == Some(HOST)
        })
        .and_then(|s| s.labels.get(label).cloned())
        .unwrap_or_else(|| panic!("no koji_host_info for {HOST}"))
}

/// Takes an event id in `transaction` as Koji's calls do (`get_event()`), uncommitted.
async fn take_event(transaction: &tokio_postgres::Transaction<'_>) -> i32 {
    transaction
        .query_one("SELECT get_event()", &[])
        .await
        .unwrap()
        .get(0)
}

/// `koji_exporter_host_config_reads_total`.
fn config_reads(samples: &[Sample]) -> f64 {
    samples
        .iter()
        .find(|s| s.name == "koji_exporter_host_config_reads_total")
        .map(|s| s.value)
        .expect("koji_exporter_host_config_reads_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_koji_change_shows_in_the_very_next_scrape() {
    let db = TestDb::empty("host_cache").await.unwrap();
    let hub = KojiHub::start(&db, &[]).await.expect("Koji's hub");
    let scraper = koji_exporter::scraper(
        config_for(&db.url, Duration::from_secs(5)),
        vec![CollectorId::KojiHosts],
    )
    .unwrap();
    // A hub without hosts: the collector succeeds with no host series.
    let (_, samples) = scrape(&scraper).await;
    assert!(samples.iter().all(|s| !s.name.starts_with("koji_host_")));
    let success = samples
        .iter()
        .find(|s| s.name == "koji_exporter_collector_success")
        .map(|s| s.value);
    assert_eq!(success, Some(1.0));

    hub.koji_admin(&["add-host", HOST, "x86_64"]).await.unwrap();
    hub.set_password(HOST, PASSWORD).await.unwrap();
    hub.koji_admin(&["add-channel", "secure-boot"])
        .await
        .unwrap();

    let (_, samples) = scrape(&scraper).await;
    assert_eq!(host_value(&samples, "koji_host_capacity"), Some(2.0));
    assert_eq!(host_value(&samples, "koji_host_enabled"), Some(1.0));
    assert_eq!(info_label(&samples, "channels"), "default");
    // A scrape with nothing changed reuses the configuration (same values, no read).
    let read_so_far = config_reads(&samples);
    let (_, again) = scrape(&scraper).await;
    assert_eq!(host_value(&again, "koji_host_capacity"), Some(2.0));
    assert_eq!(config_reads(&again), read_so_far);
    // Nor do Koji's other changes (a busy hub takes an event for every tagging): the
    // configuration is kept until the host tables themselves change.
    hub.koji_admin(&["add-tag", "f45-build"]).await.unwrap();
    hub.koji_admin(&["add-tag", "f45-updates-candidate"])
        .await
        .unwrap();
    let (_, again) = scrape(&scraper).await;
    assert_eq!(host_value(&again, "koji_host_capacity"), Some(2.0));
    assert_eq!(config_reads(&again), read_so_far, "events alone moved");

    hub.koji_admin(&[
        "edit-host",
        HOST,
        "--capacity",
        "6",
        "--arches",
        "x86_64 i686",
    ])
    .await
    .unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(host_value(&samples, "koji_host_capacity"), Some(6.0));
    assert_eq!(info_label(&samples, "arches"), "x86_64 i686");
    assert_eq!(config_reads(&samples), read_so_far + 1.0);

    hub.koji_admin(&["add-host-to-channel", HOST, "secure-boot"])
        .await
        .unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(info_label(&samples, "channels"), "default,secure-boot");

    // Renaming a channel updates `channels` in place, without an event.
    hub.koji_admin(&["edit-channel", "secure-boot", "--name", "signing"])
        .await
        .unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(info_label(&samples, "channels"), "default,signing");

    hub.koji_admin(&["remove-host-from-channel", HOST, "default"])
        .await
        .unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(info_label(&samples, "channels"), "signing");

    // Leaving one channel and joining another between two scrapes: as many memberships
    // as before, a newer one among them.
    hub.koji_admin(&["remove-host-from-channel", HOST, "signing"])
        .await
        .unwrap();
    hub.koji_admin(&["add-host-to-channel", HOST, "default"])
        .await
        .unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(info_label(&samples, "channels"), "default");

    hub.koji_admin(&["disable-host", HOST]).await.unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(host_value(&samples, "koji_host_enabled"), Some(0.0));

    // A check-in makes no event, and is read every scrape.
    assert_eq!(host_value(&samples, "koji_host_ready"), Some(0.0));
    hub.check_in(HOST, PASSWORD).await.unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(host_value(&samples, "koji_host_ready"), Some(1.0));
    assert!(host_value(&samples, "koji_host_last_update_timestamp_seconds").is_some());
    assert_eq!(host_value(&samples, "koji_host_enabled"), Some(0.0));

    // Stand-in for two concurrent hub transactions: the first takes an event id, a second
    // change through the hub takes a later one and commits, a scrape reads (and keeps)
    // that; then the first commits its change under the earlier id. The latest event id
    // did not move, yet the next scrape sees the change.
    let mut late = koji_testkit::test_db::connect(&db.url).await.unwrap();
    let transaction = late.transaction().await.unwrap();
    let event = take_event(&transaction).await;
    hub.koji_admin(&["enable-host", HOST]).await.unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(host_value(&samples, "koji_host_enabled"), Some(1.0));
    let latest: i32 = db
        .client
        .query_one("SELECT max(id) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        latest > event,
        "the hub's change came later ({latest} > {event})"
    );
    transaction
        .execute(
            "UPDATE host_config SET revoke_event = $1, revoker_id = 1, active = NULL
              WHERE host_id = (SELECT id FROM host WHERE name = $2) AND active IS TRUE",
            &[&event, &HOST],
        )
        .await
        .unwrap();
    transaction
        .execute(
            "INSERT INTO host_config (host_id, arches, capacity, description, comment, enabled,
                                      create_event, creator_id)
             SELECT host_id, arches, 3, description, comment, enabled, $1, 1
               FROM host_config WHERE revoke_event = $1",
            &[&event],
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(
        host_value(&samples, "koji_host_capacity"),
        Some(3.0),
        "a change committed late under an earlier event is seen at once"
    );
    let info = hub.koji_anonymous(&["hostinfo", HOST]).await.unwrap();
    assert!(info.contains("Capacity: 3.0"), "Koji agrees: {info}");

    // The same for channel memberships: a transaction takes an event id, the hub adds the
    // host to a channel under a later one and a scrape keeps that; then the first commits,
    // under the earlier id, the host's move from `default` to Koji's own `createrepo` (as a
    // multicall of removeHostFromChannel and addHostToChannel would): as many memberships
    // as before, none newer than the latest.
    let transaction = late.transaction().await.unwrap();
    let event = take_event(&transaction).await;
    hub.koji_admin(&["add-host-to-channel", HOST, "signing"])
        .await
        .unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(info_label(&samples, "channels"), "default,signing");
    transaction
        .execute(
            "UPDATE host_channels SET revoke_event = $1, revoker_id = 1, active = NULL
              WHERE host_id = (SELECT id FROM host WHERE name = $2) AND active IS TRUE
                AND channel_id = (SELECT id FROM channels WHERE name = 'default')",
            &[&event, &HOST],
        )
        .await
        .unwrap();
    transaction
        .execute(
            "INSERT INTO host_channels (host_id, channel_id, create_event, creator_id)
             SELECT h.id, c.id, $1, 1 FROM host h, channels c
              WHERE h.name = $2 AND c.name = 'createrepo'",
            &[&event, &HOST],
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(
        info_label(&samples, "channels"),
        "createrepo,signing",
        "a move committed late under an earlier event is seen at once"
    );
    let info = hub.koji_anonymous(&["hostinfo", HOST]).await.unwrap();
    assert!(info.contains("createrepo"), "Koji agrees: {info}");

    // Koji has no call that renames a host; an administrator's SQL can, without an event
    // (a stand-in by necessity). The kept configuration knows the old name and is read
    // again at once.
    db.client
        .execute(
            "UPDATE host SET name = 'buildvm-x86-99.example.org' WHERE name = $1",
            &[&HOST],
        )
        .await
        .unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(host_value(&samples, "koji_host_capacity"), None);
    let renamed = samples
        .iter()
        .find(|s| {
            s.name == "koji_host_capacity"
                && s.labels.get("host").map(String::as_str) == Some("buildvm-x86-99.example.org")
        })
        .map(|s| s.value);
    assert_eq!(renamed, Some(3.0));
}
