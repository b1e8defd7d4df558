//! `POST /api/v1/simulate`: what an alert would do now, decided as a delivery is, with
//! nothing claimed, journaled or applied. An automatic rule shows its plan; after a real
//! run on the host the cooldown holds it; the pause switch makes it plan only; an approval
//! rule plans and waits; an unmatched alert does nothing. Only on-call's API token is
//! accepted. `koji-remediator simulate --alert FILE` says the same from a shell. One
//! payload simulated 100 times changes nothing anywhere (journal, Koji's database,
//! Alertmanager's silences).

mod support;

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use serde_json::Value;
use support::{payload, Remediator, API_TOKEN, HOST, WEBHOOK_TOKEN};

const RULES: &str = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
matchers = { severity = "warning" }
action = "lower_capacity"
policy = "auto"
cooldown = "1h"
params = { step = 1.0, floor = 2.0 }

[[rule]]
name = "overloaded-builder-critical"
alertname = "KojiBuilderOverloaded"
matchers = { severity = "critical" }
action = "lower_capacity"
policy = "approve"
params = { step = 1.0, floor = 2.0 }
"#;

async fn simulate(remediator: &Remediator, body: &str, token: &str) -> (u16, Value) {
    let response = remediator
        .client
        .post(format!("{}/api/v1/simulate", remediator.base))
        .header("Content-Type", "application/json")
        .bearer_auth(token)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Turns the pause switch on or off through the API.
async fn set_paused(remediator: &Remediator, paused: bool) {
    let response = remediator
        .client
        .post(format!("{}/api/v1/pause", remediator.base))
        .bearer_auth(API_TOKEN)
        .json(&serde_json::json!({"paused": paused, "by": "test"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

fn alert(severity: &'static str, fingerprint: &str) -> String {
    payload(
        false,
        &[
            ("alertname", "KojiBuilderOverloaded"),
            ("host", HOST),
            ("severity", severity),
        ],
        fingerprint,
        "2026-11-30T11:00:00Z",
    )
}

#[tokio::test]
async fn an_alert_is_decided_and_planned_as_now_and_nothing_is_written() {
    let remediator = Remediator::start(KojiVersion::V1_33, RULES).await;
    let mut host = HostSpec::new(HOST);
    host.capacity = 4.0;
    add_host(&remediator.hub.client, KojiVersion::V1_33, &host)
        .await
        .unwrap();

    // Only on-call's API token.
    let (status, _) = simulate(
        &remediator,
        &alert("warning", "a1a1a1a1a1a1a1a1"),
        WEBHOOK_TOKEN,
    )
    .await;
    assert_eq!(status, 401);

    let before = remediator.journal_counts().await;
    let (status, answer) = simulate(
        &remediator,
        &alert("warning", "a1a1a1a1a1a1a1a1"),
        API_TOKEN,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let simulated = &answer["alerts"][0];
    assert_eq!(simulated["decision"], "run", "{answer}");
    assert_eq!(simulated["would"], "apply this plan now", "{answer}");
    assert_eq!(
        simulated["plan"],
        format!("set capacity of Koji host {HOST} from 4 to 3 (host_config layout)"),
        "{answer}"
    );
    assert_eq!(simulated["plan_detail"]["to"], 3.0, "{answer}");
    assert_eq!(
        remediator.journal_counts().await,
        before,
        "nothing journaled"
    );
    assert_eq!(
        remediator.active_capacity_of(HOST).await,
        4.0,
        "nothing applied"
    );

    // An approval rule plans and waits; an unmatched alert does nothing.
    let (_, answer) = simulate(
        &remediator,
        &alert("critical", "b2b2b2b2b2b2b2b2"),
        API_TOKEN,
    )
    .await;
    assert_eq!(
        answer["alerts"][0]["decision"], "awaiting_approval",
        "{answer}"
    );
    assert_eq!(
        answer["alerts"][0]["would"], "plan, and wait for on-call's approval",
        "{answer}"
    );
    let unmatched = payload(
        false,
        &[("alertname", "SomethingElse")],
        "c3c3c3c3c3c3c3c3",
        "2026-11-30T11:00:00Z",
    );
    let (_, answer) = simulate(&remediator, &unmatched, API_TOKEN).await;
    assert_eq!(answer["alerts"][0]["decision"], "unmatched", "{answer}");
    assert_eq!(answer["alerts"][0]["would"], "nothing: no run", "{answer}");

    // The pause switch: planned, not applied.
    set_paused(&remediator, true).await;
    let (_, answer) = simulate(
        &remediator,
        &alert("warning", "d4d4d4d4d4d4d4d4"),
        API_TOKEN,
    )
    .await;
    assert_eq!(
        answer["alerts"][0]["would"], "plan only: the pause switch is on",
        "{answer}"
    );
    set_paused(&remediator, false).await;

    // After a real run on the host, its cooldown holds a new occurrence, and the same
    // occurrence again is a duplicate.
    remediator.post(&alert("warning", "e5e5e5e5e5e5e5e5")).await;
    remediator.finished_runs(1).await;
    assert_eq!(remediator.active_capacity_of(HOST).await, 3.0);
    let (_, answer) = simulate(
        &remediator,
        &alert("warning", "e5e5e5e5e5e5e5e5"),
        API_TOKEN,
    )
    .await;
    assert_eq!(answer["alerts"][0]["decision"], "duplicate", "{answer}");
    assert!(
        answer["alerts"][0]["would"]
            .as_str()
            .unwrap()
            .contains("already claimed for this alert occurrence (succeeded)"),
        "{answer}"
    );
    let before = remediator.journal_counts().await;
    let (_, answer) = simulate(
        &remediator,
        &alert("warning", "f6f6f6f6f6f6f6f6"),
        API_TOKEN,
    )
    .await;
    let would = answer["alerts"][0]["would"].as_str().unwrap();
    assert!(would.starts_with("held: cooldown"), "{answer}");
    assert_eq!(
        remediator.journal_counts().await,
        before,
        "nothing journaled"
    );
    assert_eq!(remediator.active_capacity_of(HOST).await, 3.0);
}

/// The command line: the captured payload in a file, the answer in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_says_what_a_captured_alert_would_do() {
    let remediator = Remediator::start(KojiVersion::V1_33, RULES).await;
    let mut host = HostSpec::new(HOST);
    host.capacity = 4.0;
    add_host(&remediator.hub.client, KojiVersion::V1_33, &host)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("api.token");
    std::fs::write(&token, API_TOKEN).unwrap();
    let alert = dir.path().join("alert.json");
    std::fs::write(
        &alert,
        support::captured("builder-overloaded-firing.json").to_string(),
    )
    .unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .args(["simulate", "--url", &remediator.base, "--token-file"])
        .arg(&token)
        .arg("--alert")
        .arg(&alert)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        said.contains("KojiBuilderOverloaded -> run")
            && said.contains("would: apply this plan now")
            && said.contains(&format!(
                "plan: set capacity of Koji host {HOST} from 4 to 3"
            )),
        "{said}"
    );
    assert_eq!(remediator.journal_counts().await, (0, 0, 0));
}

/// One payload simulated 100 times changes nothing anywhere: not the journal, not Koji's
/// database (host configuration, events), not Alertmanager's silences (the remediator is
/// configured to silence alerts while fixes run), not the hub's connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_simulated_100_times_changes_nothing_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("unused.token"), "unused-webhook-token").unwrap();
    let (_alertmanager, am_port) =
        koji_e2e::start_alertmanager(d, "http://127.0.0.1:9/unused", &d.join("unused.token"));
    let am = format!("http://127.0.0.1:{am_port}");
    let client = reqwest::Client::new();
    let silences = || async {
        client
            .get(format!("{am}/api/v2/silences"))
            .send()
            .await
            .ok()?
            .json::<Vec<Value>>()
            .await
            .ok()
    };
    for _ in 0..200 {
        if silences().await.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let rules = format!(
        r#"{RULES}
[[rule]]
name = "stale-connections"
alertname = "KojiDatabaseStaleConnections"
action = "terminate_stale_connections"
policy = "auto"
params = {{ users = ["koji"], older_than = "1s", max_per_run = 10 }}

[silences]
alertmanager_urls = ["{am}"]
duration = "10m"
timeout = "2s"
"#
    );
    let remediator = Remediator::start(KojiVersion::V1_33, &rules).await;
    add_host(
        &remediator.hub.client,
        KojiVersion::V1_33,
        &HostSpec::new(HOST),
    )
    .await
    .unwrap();
    let hub_state = || async {
        let row = remediator
            .hub
            .client
            .query_one(
                "SELECT (SELECT count(*) FROM host_config), (SELECT sum(capacity) FROM host_config WHERE active),
                        (SELECT count(*) FROM events), (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())",
                &[],
            )
            .await
            .unwrap();
        (
            row.get::<_, i64>(0),
            row.get::<_, f64>(1),
            row.get::<_, i64>(2),
            row.get::<_, i64>(3),
        )
    };
    let stale = payload(
        false,
        &[
            ("alertname", "KojiDatabaseStaleConnections"),
            ("datname", remediator.hub.name.as_str()),
        ],
        "5a5a5a5a5a5a5a5a",
        "2026-11-30T11:00:00Z",
    );
    // Warm up once (the remediator's own pools open their connections), then count.
    simulate(&remediator, &stale, API_TOKEN).await;
    simulate(
        &remediator,
        &alert("warning", "4b4b4b4b4b4b4b4b"),
        API_TOKEN,
    )
    .await;
    let journal = remediator.journal_counts().await;
    let hub = hub_state().await;
    for n in 0..100 {
        let body = if n % 2 == 0 {
            alert("warning", "4b4b4b4b4b4b4b4b")
        } else {
            stale.clone()
        };
        let (status, answer) = simulate(&remediator, &body, API_TOKEN).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["alerts"][0]["decision"], "run", "{answer}");
    }
    assert_eq!(remediator.journal_counts().await, journal, "journal rows");
    assert_eq!(hub_state().await, hub, "Koji's database");
    assert_eq!(remediator.active_capacity_of(HOST).await, 4.0);
    assert_eq!(
        silences().await,
        Some(Vec::new()),
        "Alertmanager's silences"
    );
}
