//! A run taken over from a dead replica counts against its action's cap like a start:
//! found by the 2,000-builder storm (six lower_capacity runs in flight with a cap of four,
//! after a replica was killed: its runs' leases ran out, the other replica filled the
//! slots, then took the dead one's runs over on top; and a replica whose lease ran out
//! during the journal's failover renewed it on top of the runs started meanwhile). Against
//! the real journal: with the cap of 1 held by a live run, the expired lease is not renewed
//! and the run waits; once the slot frees, it is taken over.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use koji_remediator::alertmanager;
use koji_remediator::config::sections::DatabaseConfig;
use koji_remediator::config::Config;
use koji_remediator::journal::runs::{Lease, Start, StartGuards};
use koji_remediator::journal::Journal;
use koji_remediator::runbook;
use koji_testkit::TestDb;

const CONFIG: &str = r#"
[server]
webhook_token_file = "/dev/null"
api_token_file = "/dev/null"
[journal]
url = "host=/nonexistent"
[hub]
url = "host=/nonexistent"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "0s"
"#;

fn lease(owner: &str, seconds: f64) -> Lease {
    Lease {
        owner: Arc::from(owner),
        duration: Duration::from_secs_f64(seconds),
    }
}

#[tokio::test]
async fn a_dead_replicas_run_waits_for_a_slot_before_it_is_taken_over() {
    let db = TestDb::empty("takeover_cap").await.unwrap();
    let pool = koji_remediator::database::pool(
        &DatabaseConfig {
            url: Some(db.url.clone()),
            password_file: None,
        },
        "journal.url",
        "KOJI_TEST_UNUSED_JOURNAL_URL",
        2,
    )
    .unwrap();
    let journal = Journal::new(pool);
    journal.migrate().await.unwrap();
    let config = Config::parse(CONFIG, Path::new("cap.toml")).unwrap();
    let mut ids = Vec::new();
    for (host, fingerprint) in [
        ("builder-a", "aaaa111122223333"),
        ("builder-b", "bbbb111122223333"),
    ] {
        let body = serde_json::json!({
            "version": "4", "status": "firing", "receiver": "r", "groupKey": "g",
            "alerts": [{"status": "firing", "fingerprint": fingerprint,
                        "startsAt": "2026-11-30T10:00:00Z",
                        "labels": {"alertname": "KojiBuilderOverloaded", "host": host}}]
        });
        let payload = alertmanager::parse(body.to_string().as_bytes()).unwrap();
        let decisions: Vec<_> = payload
            .alerts
            .iter()
            .map(|alert| runbook::decide(&config, alert))
            .collect();
        let claimed = journal
            .record_delivery(&payload, &decisions, false)
            .await
            .unwrap();
        ids.push(claimed[0].id);
    }
    let guards = StartGuards {
        cap: 1,
        cooldown: Duration::ZERO,
        restore_after: Duration::ZERO,
        max_runs_per_hour: None,
        notices: false,
    };
    // The replica that will die starts the first run; its lease runs out.
    let started = journal
        .start(ids[0], &lease("dead", 0.5), &guards)
        .await
        .unwrap();
    assert!(matches!(started, Start::Started(_)), "{started:?}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Its run no longer holds the slot: a live replica starts the second run.
    let started = journal
        .start(ids[1], &lease("alive", 1.5), &guards)
        .await
        .unwrap();
    assert!(matches!(started, Start::Started(_)), "{started:?}");
    // The dead replica, were it only slow, cannot revive its lease on top of it either ...
    assert_eq!(
        journal
            .renew_leases(&lease("dead", 0.5), &[ids[0]])
            .await
            .unwrap(),
        0,
        "an expired lease renewed"
    );
    // ... nor is its run taken over on top of it ...
    let taken = journal
        .take_over_expired(ids[0], &lease("rescuer", 30.0), 1)
        .await
        .unwrap();
    assert!(taken.is_none(), "taken over beyond the cap: {taken:?}");
    // ... but once the slot frees (here: the live run's lease ends too), it is.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let taken = journal
        .take_over_expired(ids[0], &lease("rescuer", 30.0), 1)
        .await
        .unwrap()
        .expect("taken over once a slot is free");
    assert_eq!(taken.owner.as_deref(), Some("rescuer"));
}
