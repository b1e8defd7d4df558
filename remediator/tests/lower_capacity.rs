//! `lower_capacity` end to end through the webhook, with Alertmanager's captured payloads, in
//! every Koji layout: the change and its restore as Koji's editHost makes them, the floor,
//! the refusal to restore what someone changed meanwhile, and a hostile host label.

mod support;

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use support::{payload, Remediator};

const HOST: &str = "buildvm-x86-01.example.org";

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "0s"
restore_on_resolve = true
restore_after = "0s"
params = { step = 1.0, floor = 2.5 }
"#;

async fn capacity(remediator: &Remediator, version: KojiVersion) -> f64 {
    let query = if version.has_host_config() {
        "SELECT hc.capacity FROM host h JOIN host_config hc ON hc.host_id = h.id AND hc.active
          WHERE h.name = $1"
    } else {
        "SELECT capacity FROM host WHERE name = $1"
    };
    remediator
        .hub
        .client
        .query_one(query, &[&HOST])
        .await
        .unwrap()
        .get(0)
}

fn labels(host: &str) -> Vec<(&str, &str)> {
    vec![
        ("alertname", "KojiBuilderOverloaded"),
        ("host", host),
        ("severity", "warning"),
    ]
}

async fn lowered_and_restored(version: KojiVersion) {
    let remediator = Remediator::start(version, RULES).await;
    add_host(&remediator.hub.client, version, &HostSpec::new(HOST))
        .await
        .unwrap();
    let table = if version.has_host_config() {
        "host_config"
    } else {
        "host"
    };
    remediator
        .hub
        .client
        .execute(
            &format!("UPDATE {table} SET description = 'x86 builder', comment = 'rack 4'"),
            &[],
        )
        .await
        .unwrap();

    // The captured payload as Alertmanager sent it.
    let firing = support::captured("builder-overloaded-firing.json").to_string();
    let (status, body) = remediator.post(&firing).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs_claimed"], 1);
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(capacity(&remediator, version).await, 3.0);

    if version.has_host_config() {
        let rows = remediator
            .hub
            .client
            .query(
                "SELECT hc.capacity, hc.active, hc.create_event, hc.revoke_event,
                        c.name, r.name, hc.arches, hc.description, hc.comment, hc.enabled
                   FROM host_config hc
                   JOIN users c ON c.id = hc.creator_id
                   LEFT JOIN users r ON r.id = hc.revoker_id
                  ORDER BY hc.create_event",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        let (old, new) = (&rows[0], &rows[1]);
        assert_eq!(old.get::<_, f64>(0), 4.0);
        assert_eq!(old.get::<_, Option<bool>>(1), None, "old row revoked");
        let event: i32 = new.get(2);
        assert_eq!(
            old.get::<_, Option<i32>>(3),
            Some(event),
            "one event revokes and creates"
        );
        assert_eq!(
            old.get::<_, Option<String>>(5).as_deref(),
            Some("koji-remediator")
        );
        assert_eq!(new.get::<_, f64>(0), 3.0);
        assert_eq!(new.get::<_, Option<bool>>(1), Some(true));
        assert_eq!(new.get::<_, Option<i32>>(3), None);
        assert_eq!(new.get::<_, String>(4), "koji-remediator");
        // Every other column carried over.
        assert_eq!(
            new.get::<_, Option<String>>(6).as_deref(),
            Some("x86_64 i686")
        );
        assert_eq!(
            new.get::<_, Option<String>>(7).as_deref(),
            Some("x86 builder")
        );
        assert_eq!(new.get::<_, Option<String>>(8).as_deref(), Some("rack 4"));
        assert!(new.get::<_, bool>(9));
    }

    let resolved = support::captured("builder-overloaded-resolved.json").to_string();
    let (status, body) = remediator.post(&resolved).await;
    assert_eq!(status, 200, "{body}");
    let runs = remediator.finished_runs(2).await;
    assert_eq!(runs[0]["kind"], "restore");
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(capacity(&remediator, version).await, 4.0);
    if version.has_host_config() {
        let (rows, active): (i64, i64) = {
            let row = remediator
                .hub
                .client
                .query_one(
                    "SELECT count(*), count(*) FILTER (WHERE active) FROM host_config",
                    &[],
                )
                .await
                .unwrap();
            (row.get(0), row.get(1))
        };
        assert_eq!((rows, active), (3, 1));
    }

    // Three more occurrences: 4 -> 3 -> 2.5 (the floor) -> nothing to do.
    for (index, expected) in [(1, 3.0), (2, 2.5), (3, 2.5)] {
        let body = payload(
            false,
            &labels(HOST),
            "0f0f0f0f0f0f0f0f",
            &format!("2026-11-28T06:0{index}:00Z"),
        );
        assert_eq!(remediator.post(&body).await.0, 200);
        let runs = remediator.finished_runs(2 + index).await;
        assert_eq!(capacity(&remediator, version).await, expected);
        if index == 3 {
            assert_eq!(runs[0]["state"], "nothing_to_do", "{runs:#?}");
        }
    }
}

#[tokio::test]
async fn lowered_and_restored_before_1_16() {
    lowered_and_restored(KojiVersion::V1_15).await;
}

#[tokio::test]
async fn lowered_and_restored_with_host_config() {
    lowered_and_restored(KojiVersion::V1_16).await;
}

#[tokio::test]
async fn lowered_and_restored_on_1_33() {
    lowered_and_restored(KojiVersion::V1_33).await;
}

/// Someone raised the capacity by hand after the remediator lowered it: the restore leaves
/// their value alone and says why.
#[tokio::test]
async fn a_capacity_changed_meanwhile_is_not_restored() {
    let version = KojiVersion::V1_33;
    let remediator = Remediator::start(version, RULES).await;
    add_host(&remediator.hub.client, version, &HostSpec::new(HOST))
        .await
        .unwrap();
    let firing = payload(
        false,
        &labels(HOST),
        "1111222233334444",
        "2026-11-28T07:00:00Z",
    );
    remediator.post(&firing).await;
    remediator.finished_runs(1).await;
    assert_eq!(capacity(&remediator, version).await, 3.0);
    remediator.set_capacity_as_admin(HOST, 3.0, 8.0).await;
    let resolved = payload(
        true,
        &labels(HOST),
        "1111222233334444",
        "2026-11-28T07:00:00Z",
    );
    remediator.post(&resolved).await;
    let runs = remediator.finished_runs(2).await;
    assert_eq!(runs[0]["state"], "refused", "{runs:#?}");
    assert!(runs[0]["outcome"]
        .as_str()
        .unwrap()
        .contains("someone changed it"));
    assert_eq!(capacity(&remediator, version).await, 8.0);
}

/// SQL in a label is data: it names no host, so nothing changes and nothing is dropped.
#[tokio::test]
async fn a_hostile_host_label_changes_nothing() {
    let version = KojiVersion::V1_33;
    let remediator = Remediator::start(version, RULES).await;
    add_host(&remediator.hub.client, version, &HostSpec::new(HOST))
        .await
        .unwrap();
    let hostile = "x'; DROP TABLE host; --";
    let body = payload(
        false,
        &labels(hostile),
        "5555666677778888",
        "2026-11-28T08:00:00Z",
    );
    assert_eq!(remediator.post(&body).await.0, 200);
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "refused", "{runs:#?}");
    assert_eq!(runs[0]["target"], format!("host:{hostile}"));
    assert_eq!(capacity(&remediator, version).await, 4.0);
    let hosts: i64 = remediator
        .hub
        .client
        .query_one("SELECT count(*) FROM host", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(hosts, 1);
}

/// Capacity changes only under a Koji user Koji itself would let change a host: a user
/// without the `host` permission is refused at start with the command that fixes it, and
/// one that holds it through a group is accepted and changes capacity.
#[tokio::test]
async fn the_koji_user_must_be_one_koji_would_let_change_a_host() {
    use koji_testkit::populate::{ensure_user, grant_permission};
    let hub = koji_testkit::TestDb::koji("perm_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    add_host(&hub.client, KojiVersion::V1_33, &HostSpec::new(HOST))
        .await
        .unwrap();
    let journal = koji_testkit::TestDb::empty("perm_journal").await.unwrap();
    let user = ensure_user(&hub.client, "koji-remediator", 0)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = support::config_text(dir.path(), &hub.url, &journal.url, RULES);
    let config =
        koji_remediator::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let refused = koji_remediator::start(config)
        .await
        .expect_err("no host permission: refused")
        .to_string();
    assert!(
        refused.contains("lacks the host permission")
            && refused.contains("koji grant-permission host koji-remediator"),
        "{refused}"
    );
    // Through a group (a user of usertype 2) holding `host`.
    let group = ensure_user(&hub.client, "koji-ops", 2).await.unwrap();
    grant_permission(&hub.client, "koji-ops", "host")
        .await
        .unwrap();
    hub.client
        .execute(
            "INSERT INTO user_groups (user_id, group_id, creator_id) VALUES ($1, $2, $2)",
            &[&user, &group],
        )
        .await
        .unwrap();
    let hub_url = hub.url.clone();
    let remediator = Remediator::start_on(hub, &hub_url, journal.url.clone(), RULES).await;
    remediator
        .post(&payload(
            false,
            &labels(HOST),
            "9a9a9a9a9a9a9a9a",
            "2026-11-30T09:00:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(capacity(&remediator, KojiVersion::V1_33).await, 3.0);
}
