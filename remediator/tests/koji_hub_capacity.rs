//! `lower_capacity` against Koji's real hub (`../shared/koji-hub`, see
//! koji_testkit::koji_hub): the host, the users and their permissions are made through the
//! hub's own calls as an administrator would (`koji add-host`, `add-user`,
//! `grant-permission`, `disable-user`), and what the remediator did is read back with
//! `koji hostinfo` and `koji list-history`. The remediator changes capacity exactly when
//! Koji would let its Koji user do so (directly granted, through a group, not blocked),
//! and Koji's history credits that user.

mod support;

use koji_testkit::{KojiHub, TestDb};
use support::{payload, Remediator};

const HOST: &str = "buildvm-x86-01.example.org";
const USER: &str = "koji-remediator";
const PASSWORD: &str = "remediator-password";

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "0s"
restore_on_resolve = true
restore_after = "0s"
params = { step = 1.0, floor = 2.0 }
"#;

fn labels() -> Vec<(&'static str, &'static str)> {
    vec![
        ("alertname", "KojiBuilderOverloaded"),
        ("host", HOST),
        ("severity", "warning"),
    ]
}

/// The capacity `koji hostinfo` shows.
async fn hostinfo_capacity(hub: &KojiHub) -> String {
    let info = hub.koji_anonymous(&["hostinfo", HOST]).await.unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("Capacity: "))
        .unwrap_or_else(|| panic!("no capacity in {info}"))
        .to_owned()
}

/// The capacity changes `koji list-history` shows for the host, with who made them.
async fn capacity_history(hub: &KojiHub) -> Vec<String> {
    hub.host_config_changes(HOST).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_changes_only_as_koji_permits_and_koji_shows_them() {
    let db = TestDb::empty("real_hub").await.unwrap();
    let hub = KojiHub::start(&db, &[]).await.expect("Koji's hub");
    hub.koji_admin(&["add-host", HOST, "x86_64"]).await.unwrap();
    hub.koji_admin(&["edit-host", HOST, "--capacity", "4"])
        .await
        .unwrap();
    hub.koji_admin(&["add-user", USER]).await.unwrap();
    hub.set_password(USER, PASSWORD).await.unwrap();
    let journal = TestDb::empty("real_hub_journal").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = support::config_text(dir.path(), &db.url, &journal.url, RULES);
    let config =
        koji_remediator::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();

    // Without the host permission Koji refuses the change, and so does the remediator.
    let hub_says = hub
        .koji_as(USER, PASSWORD, &["edit-host", HOST, "--capacity", "3"])
        .await
        .expect_err("Koji refuses a user without the host permission")
        .to_string();
    assert!(hub_says.contains("host permission required"), "{hub_says}");
    let refused = koji_remediator::start(config.clone())
        .await
        .expect_err("the remediator refuses it too")
        .to_string();
    assert!(
        refused.contains("lacks the host permission")
            && refused.contains("koji grant-permission host koji-remediator"),
        "{refused}"
    );

    // Holding `host` through a Koji group, Koji allows the change, and so does the
    // remediator's check; revoked again, both refuse.
    hub.koji_admin(&["call", "newGroup", "koji-ops"])
        .await
        .unwrap();
    hub.koji_admin(&["call", "addGroupMember", "koji-ops", USER])
        .await
        .unwrap();
    hub.koji_admin(&["grant-permission", "host", "koji-ops"])
        .await
        .unwrap();
    // (The same capacity: Koji checks the permission, then records no change.)
    hub.koji_as(USER, PASSWORD, &["edit-host", HOST, "--capacity", "4"])
        .await
        .expect("Koji lets a member of a group with `host` edit the host");
    let hub_db = koji_testkit::test_db::connect(&db.url).await.unwrap();
    koji_db::capacity::check_changer(&hub_db, USER)
        .await
        .expect("the remediator agrees");
    hub.koji_admin(&["revoke-permission", "host", "koji-ops"])
        .await
        .unwrap();
    koji_db::capacity::check_changer(&hub_db, USER)
        .await
        .expect_err("and agrees once it is revoked");

    // Granted directly through the hub, as README's setup says.
    hub.koji_admin(&["grant-permission", "host", USER])
        .await
        .unwrap();
    let remediator = Remediator::start_from_text(db, journal.url.clone(), dir, &text).await;
    let firing = payload(false, &labels(), "5e5e5e5e5e5e5e5e", "2026-11-30T09:00:00Z");
    let (status, body) = remediator.post(&firing).await;
    assert_eq!(status, 200, "{body}");
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(hostinfo_capacity(&hub).await, "3.0");

    let resolved = payload(true, &labels(), "5e5e5e5e5e5e5e5e", "2026-11-30T09:00:00Z");
    assert_eq!(remediator.post(&resolved).await.0, 200);
    let runs = remediator.finished_runs(2).await;
    assert_eq!(runs[0]["kind"], "restore", "{runs:#?}");
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert_eq!(hostinfo_capacity(&hub).await, "4.0");
    assert_eq!(
        capacity_history(&hub).await,
        [
            "admin: capacity: 2.0 -> 4.0",
            "koji-remediator: capacity: 4.0 -> 3.0",
            "koji-remediator: capacity: 3.0 -> 4.0",
        ],
        "Koji's history credits each change to the user that made it"
    );
    // Koji itself still accepts changes after the remediator's (its rows are Koji's own).
    hub.koji_as(USER, PASSWORD, &["edit-host", HOST, "--capacity", "4.5"])
        .await
        .expect("Koji lets the permitted user edit the host");
    assert_eq!(hostinfo_capacity(&hub).await, "4.5");

    // Blocked in Koji while the remediator runs: both refuse the next change.
    hub.koji_admin(&["disable-user", USER]).await.unwrap();
    let hub_says = hub
        .koji_as(USER, PASSWORD, &["edit-host", HOST, "--capacity", "3"])
        .await
        .expect_err("Koji refuses a blocked user")
        .to_string();
    assert!(hub_says.contains("not allowed"), "{hub_says}");
    let firing = payload(false, &labels(), "6f6f6f6f6f6f6f6f", "2026-11-30T10:00:00Z");
    assert_eq!(remediator.post(&firing).await.0, 200);
    // A failure that changed nothing (on-call gets the failure notice: the automation
    // needs a human to unblock its user).
    let runs = remediator.finished_runs(3).await;
    assert_eq!(runs[0]["state"], "failed", "{runs:#?}");
    assert_eq!(runs[0]["effect"], "none", "{runs:#?}");
    let outcome = runs[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("before changing anything")
            && outcome.contains("the user is blocked in Koji")
            && outcome.contains("koji enable-user koji-remediator"),
        "{outcome}"
    );
    assert_eq!(hostinfo_capacity(&hub).await, "4.5", "nothing changed");
    assert_eq!(capacity_history(&hub).await.len(), 4);
    drop(journal);
}
