//! The hub collectors against real Koji-shaped databases of every modelled layout,
//! asserting the values each host, channel and state gets.

mod support;

use std::time::Duration;

use koji_testkit::populate::{add_host, add_task};
use koji_testkit::{HostSpec, KojiVersion, TaskSpec, TaskState, TestDb};
use support::{assert_hub_collectors_succeeded, config_for, find, hub_scraper, scrape, value};

/// A host name built to break naive encoders: quotes, backslashes, a newline, unicode.
const HOSTILE_NAME: &str = "evil\"host\\name\nline-✓.example.org";

async fn populate(db: &TestDb, version: KojiVersion) -> (i32, i32) {
    let mut small = HostSpec::new("buildvm-01.example.org");
    small.capacity = 3.0;
    small.previous_capacity = Some(8.0);
    small.task_load = 1.5;
    small.channels = vec!["default".into(), "createrepo".into()];
    small.update_age_seconds = Some(30.0);
    let small_id = add_host(&db.client, version, &small).await.unwrap();

    let mut hostile = HostSpec::new(HOSTILE_NAME);
    hostile.arches = "aarch64".into();
    hostile.capacity = 2.5;
    hostile.ready = false;
    hostile.enabled = false;
    hostile.update_age_seconds = None;
    let hostile_id = add_host(&db.client, version, &hostile).await.unwrap();

    let tasks = [
        (TaskState::Free, "default", None, 600.0),
        (TaskState::Free, "default", None, 120.0),
        (TaskState::Free, "createrepo", None, 30.0),
        (TaskState::Open, "default", Some(small_id), 300.0),
        (TaskState::Open, "default", Some(small_id), 200.0),
        (TaskState::Assigned, "createrepo", Some(small_id), 10.0),
        (TaskState::Open, "default", Some(hostile_id), 50.0),
        // Finished tasks must count nowhere, however old.
        (TaskState::Closed, "default", Some(small_id), 90_000.0),
        (TaskState::Failed, "default", Some(small_id), 9_000.0),
        (TaskState::Canceled, "default", None, 100_000.0),
    ];
    for (state, channel, host_id, age) in tasks {
        let spec = TaskSpec {
            state,
            channel: channel.into(),
            host_id,
            age_seconds: age,
        };
        add_task(&db.client, &spec).await.unwrap();
    }
    (small_id, hostile_id)
}

async fn check_layout(version: KojiVersion) {
    let db = TestDb::koji("layout", version).await.unwrap();
    populate(&db, version).await;
    let scraper = hub_scraper(config_for(&db.url, Duration::from_secs(5)));
    let (text, samples) = scrape(&scraper).await;

    assert_hub_collectors_succeeded(&samples, &text);
    assert_eq!(value(&samples, "koji_db_up", &[]), 1.0);
    let layout = if version.has_host_config() {
        "host_config"
    } else {
        "pre-1.16"
    };
    assert_eq!(
        value(&samples, "koji_hub_schema_info", &[("layout", layout)]),
        1.0
    );

    let small = [("host", "buildvm-01.example.org")];
    let hostile = [("host", HOSTILE_NAME)];
    // The active host_config row wins over the revoked one with capacity 8.
    assert_eq!(value(&samples, "koji_host_capacity", &small), 3.0);
    assert_eq!(value(&samples, "koji_host_capacity", &hostile), 2.5);
    assert_eq!(value(&samples, "koji_host_task_load", &small), 1.5);
    assert_eq!(value(&samples, "koji_host_ready", &small), 1.0);
    assert_eq!(value(&samples, "koji_host_ready", &hostile), 0.0);
    assert_eq!(value(&samples, "koji_host_enabled", &small), 1.0);
    assert_eq!(value(&samples, "koji_host_enabled", &hostile), 0.0);
    assert_eq!(
        value(
            &samples,
            "koji_host_info",
            &[
                ("host", "buildvm-01.example.org"),
                ("arches", "x86_64 i686"),
                ("channels", "createrepo,default"),
            ],
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "koji_host_info",
            &[
                ("host", HOSTILE_NAME),
                ("arches", "aarch64"),
                ("channels", "default")
            ],
        ),
        1.0
    );
    let host_tasks = |host: &str, state: &str| {
        value(
            &samples,
            "koji_host_tasks",
            &[("host", host), ("state", state)],
        )
    };
    assert_eq!(host_tasks("buildvm-01.example.org", "open"), 2.0);
    assert_eq!(host_tasks("buildvm-01.example.org", "assigned"), 1.0);
    assert_eq!(host_tasks(HOSTILE_NAME, "open"), 1.0);
    assert_eq!(host_tasks(HOSTILE_NAME, "assigned"), 0.0);

    if version.has_update_time() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let last = value(&samples, "koji_host_last_update_timestamp_seconds", &small);
        assert!(
            (now - 30.0 - last).abs() < 5.0,
            "last update {last}, now {now}"
        );
        // Never checked in: no sample rather than a fake epoch 0.
        assert!(find(
            &samples,
            "koji_host_last_update_timestamp_seconds",
            &hostile
        )
        .is_empty());
    } else {
        assert!(find(&samples, "koji_host_last_update_timestamp_seconds", &[]).is_empty());
    }

    let queue = |state: &str, channel: &str| {
        value(
            &samples,
            "koji_tasks",
            &[("state", state), ("channel", channel)],
        )
    };
    assert_eq!(queue("free", "default"), 2.0);
    assert_eq!(queue("free", "createrepo"), 1.0);
    assert_eq!(queue("open", "default"), 3.0);
    assert_eq!(queue("assigned", "createrepo"), 1.0);
    assert_eq!(queue("assigned", "default"), 0.0);
    // Idle channels report zeros instead of vanishing.
    assert_eq!(queue("free", "livemedia"), 0.0);

    let oldest = |channel: &str| {
        value(
            &samples,
            "koji_task_oldest_free_age_seconds",
            &[("channel", channel)],
        )
    };
    assert!(
        (oldest("default") - 600.0).abs() < 5.0,
        "{}",
        oldest("default")
    );
    assert!(
        (oldest("createrepo") - 30.0).abs() < 5.0,
        "{}",
        oldest("createrepo")
    );
    assert_eq!(oldest("maven"), 0.0);
}

#[tokio::test]
async fn koji_1_15_layout_before_host_config() {
    check_layout(KojiVersion::V1_15).await;
}

#[tokio::test]
async fn koji_1_16_layout_with_host_config() {
    check_layout(KojiVersion::V1_16).await;
}

#[tokio::test]
async fn koji_1_33_layout_with_update_time() {
    check_layout(KojiVersion::V1_33).await;
}

/// Task ages are computed by the server, so a session time zone far from UTC must not
/// shift them, even with `timestamp without time zone` columns (Koji 1.15).
#[tokio::test]
async fn ages_are_right_in_any_session_time_zone() {
    for version in [KojiVersion::V1_15, KojiVersion::V1_33] {
        let db = TestDb::koji("timezone", version).await.unwrap();
        db.client
            .batch_execute(&format!(
                "ALTER DATABASE \"{}\" SET timezone TO 'Pacific/Kiritimati'",
                db.name
            ))
            .await
            .unwrap();
        let writer = koji_testkit::test_db::connect(&db.url).await.unwrap();
        add_task(
            &writer,
            &TaskSpec {
                state: TaskState::Free,
                channel: "default".into(),
                host_id: None,
                age_seconds: 3600.0,
            },
        )
        .await
        .unwrap();
        let scraper = hub_scraper(config_for(&db.url, Duration::from_secs(5)));
        let (_, samples) = scrape(&scraper).await;
        let age = value(
            &samples,
            "koji_task_oldest_free_age_seconds",
            &[("channel", "default")],
        );
        assert!((age - 3600.0).abs() < 5.0, "{version:?}: age {age}");
    }
}

/// A database without Koji's tables is not "up": the exporter points at the wrong place.
#[tokio::test]
async fn a_database_without_koji_tables_is_reported_down() {
    let db = TestDb::empty("not_koji").await.unwrap();
    let scraper = hub_scraper(config_for(&db.url, Duration::from_secs(5)));
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(value(&samples, "koji_db_up", &[]), 0.0);
    assert_eq!(
        value(
            &samples,
            "koji_exporter_collector_success",
            &[("collector", "koji_hosts")]
        ),
        0.0
    );
    assert!(find(&samples, "koji_hub_schema_info", &[]).is_empty());
}

/// Koji upgraded from 1.15 to 1.16+ under a running exporter: the remembered layout and the
/// cached statements go stale, and the exporter must find the new layout by itself.
#[tokio::test]
async fn a_koji_upgrade_under_a_running_exporter_is_followed() {
    let db = TestDb::koji("upgrade", KojiVersion::V1_15).await.unwrap();
    let mut spec = HostSpec::new("buildvm-01");
    spec.capacity = 6.0;
    add_host(&db.client, KojiVersion::V1_15, &spec)
        .await
        .unwrap();
    let scraper = hub_scraper(config_for(&db.url, Duration::from_secs(5)));
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(
        value(&samples, "koji_hub_schema_info", &[("layout", "pre-1.16")]),
        1.0
    );
    assert_eq!(
        value(&samples, "koji_host_capacity", &[("host", "buildvm-01")]),
        6.0
    );

    // The essence of Koji's 1.15 to 1.16 schema upgrade (its schema-upgrade-1.15-1.16.sql):
    // `host_config` split from `host`, and versions for `host_channels`.
    db.client
        .batch_execute(
            "CREATE TABLE host_config (
                 host_id INTEGER NOT NULL REFERENCES host(id),
                 arches TEXT,
                 capacity FLOAT CHECK (capacity > 1) NOT NULL DEFAULT 2.0,
                 description TEXT, comment TEXT,
                 enabled BOOLEAN NOT NULL DEFAULT 'true',
                 create_event INTEGER NOT NULL REFERENCES events(id) DEFAULT get_event(),
                 revoke_event INTEGER REFERENCES events(id),
                 creator_id INTEGER NOT NULL REFERENCES users(id),
                 revoker_id INTEGER REFERENCES users(id),
                 active BOOLEAN DEFAULT 'true' CHECK (active),
                 PRIMARY KEY (create_event, host_id),
                 UNIQUE (host_id, active));
             INSERT INTO host_config (host_id, arches, capacity, enabled, creator_id)
                 SELECT id, arches, capacity, enabled, 1 FROM host;
             ALTER TABLE host DROP COLUMN arches, DROP COLUMN capacity,
                 DROP COLUMN description, DROP COLUMN comment, DROP COLUMN enabled;
             ALTER TABLE host_channels
                 ADD COLUMN create_event INTEGER NOT NULL REFERENCES events(id) DEFAULT get_event(),
                 ADD COLUMN revoke_event INTEGER REFERENCES events(id),
                 ADD COLUMN creator_id INTEGER NOT NULL REFERENCES users(id) DEFAULT 1,
                 ADD COLUMN revoker_id INTEGER REFERENCES users(id),
                 ADD COLUMN active BOOLEAN DEFAULT 'true' CHECK (active);
             ALTER TABLE host_channels ADD PRIMARY KEY (create_event, host_id, channel_id);",
        )
        .await
        .unwrap();

    // At most one scrape may miss the hosts while the exporter notices.
    let mut recovered = false;
    for _ in 0..2 {
        let (_, samples) = scrape(&scraper).await;
        assert_eq!(
            value(
                &samples,
                "koji_hub_schema_info",
                &[("layout", "host_config")]
            ),
            1.0
        );
        let hosts_ok = value(
            &samples,
            "koji_exporter_collector_success",
            &[("collector", "koji_hosts")],
        );
        if hosts_ok == 1.0 {
            assert_eq!(
                value(&samples, "koji_host_capacity", &[("host", "buildvm-01")]),
                6.0
            );
            recovered = true;
            break;
        }
    }
    assert!(recovered, "koji_hosts never recovered after the upgrade");
}
