//! `kill -9` at the moments that used to lose work, with the real binary: a notice queued
//! but not yet delivered is sent after the restart; an agent killed while kojid was stopped
//! for a cleanup starts kojid again when it comes back and says so to the central side.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use koji_e2e::Process;
use koji_testkit::mounts::run;
use koji_testkit::{KojiVersion, TestDb};
use serde_json::{json, Value};
use support::{config_text, payload, FORWARD_TOKEN, HOST};

use koji_testkit::free_port;

fn start(dir: &Path, name: &str, config: &str, port: u16) -> Process {
    Process::start(
        dir,
        name,
        Path::new(env!("CARGO_BIN_EXE_koji-remediator")),
        &[
            "--config.file".into(),
            dir.join(config).display().to_string(),
            "--web.listen-address".into(),
            format!("127.0.0.1:{port}"),
        ],
    )
}

async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts `body` to the webhook at `base` until it is journaled (the process may still be
/// starting).
async fn journaled(client: &reqwest::Client, base: &str, body: &str) {
    wait_for("the alert journaled", || async move {
        let response = client
            .post(format!("{base}/webhook/alertmanager"))
            .bearer_auth(support::WEBHOOK_TOKEN)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .ok()?;
        (response.status() == 200).then_some(())
    })
    .await;
}

/// Waits until the builder's call log shows kojid stopped by a cleanup.
async fn kojid_stopped(log: &Path) {
    wait_for("kojid stopped by the cleanup", || async move {
        std::fs::read_to_string(log)
            .ok()
            .filter(|calls| calls.contains("stop kojid"))
    })
    .await;
}

/// A chat bridge on `port` that keeps every body it receives.
async fn chat_bridge(port: u16) -> koji_e2e::Received {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    koji_e2e::json_sink_on(listener).await.1
}

/// A builder for an agent in `d`: an old build-dir entry `entry` under `d/mock`, kojid
/// running, service scripts that record every call in `d/calls.log` and take
/// `stop_seconds` to stop kojid, and `d/agent.toml` with the cleanup policy using them.
/// Returns (the root, kojid's running marker, the call log).
fn builder(d: &Path, entry: &str, stop_seconds: u32) -> (PathBuf, PathBuf, PathBuf) {
    let root = d.join("mock");
    std::fs::create_dir_all(root.join(entry)).unwrap();
    run(&[
        "touch",
        "-h",
        "-d",
        "10 days ago",
        root.join(entry).to_str().unwrap(),
    ]);
    let state = d.join("kojid-running");
    std::fs::write(&state, "").unwrap();
    let log = d.join("calls.log");
    for (name, body) in [
        ("is-active", format!("test -e {}", state.display())),
        (
            "stop",
            format!(
                "rm -f {}; echo \"stop $1\" >> {}; sleep {stop_seconds}",
                state.display(),
                log.display()
            ),
        ),
        (
            "start",
            format!(
                "touch {}; echo \"start $1\" >> {}",
                state.display(),
                log.display()
            ),
        ),
    ] {
        std::fs::write(d.join(name), format!("#!/bin/sh\n{body}\n")).unwrap();
        run(&["chmod", "+x", d.join(name).to_str().unwrap()]);
    }
    std::fs::write(d.join("agent.token"), FORWARD_TOKEN).unwrap();
    std::fs::write(
        d.join("agent.toml"),
        format!(
            "[agent]\ntoken_file = \"{dd}/agent.token\"\nactions = [\"clean_build_dirs\"]\nhost_name = \"{HOST}\"\nstate_dir = \"{dd}/state\"\n\n\
             [agent.clean_build_dirs]\nroots = [\"{root}\"]\nmax_target_free_percent = 99\nservices = [\"kojid\"]\n\
             is_active_command = [\"{dd}/is-active\"]\nstop_command = [\"{dd}/stop\"]\nstart_command = [\"{dd}/start\"]\n",
            dd = d.display(),
            root = root.display()
        ),
    )
    .unwrap();
    (root, state, log)
}

#[tokio::test]
async fn a_notice_queued_before_a_kill_is_sent_after_the_restart() {
    let hub = TestDb::koji("crash_notice_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    let journal = TestDb::empty("crash_notice_journal").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The notice webhook is down while the first process runs.
    let bridge_port = free_port();
    let rules = format!(
        r#"
[notify]
webhook_url = "http://127.0.0.1:{bridge_port}/hook"
attempts = 100
retry_delay = "300ms"

[[rule]]
name = "shared-storage-full"
alertname = "KojiSharedStorageFull"
action = "escalate"
policy = "notify"
"#
    );
    std::fs::write(
        d.join("remediator.toml"),
        config_text(d, &hub.url, &journal.url, &rules),
    )
    .unwrap();
    let port = free_port();
    let first = start(d, "first", "remediator.toml", port);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let labels = [
        ("alertname", "KojiSharedStorageFull"),
        ("mountpoint", "/mnt/koji"),
    ];
    let body = payload(false, &labels, "e0e0e0e0e0e0e0e0", "2026-11-30T05:00:00Z");
    journaled(&client, &base, &body).await;
    let db = koji_testkit::test_db::connect(&journal.url).await.unwrap();
    wait_for("a failed attempt at the notice", || {
        let db = &db;
        async move {
            let attempts: i32 = db
                .query_one("SELECT attempts FROM koji_remediator.notices", &[])
                .await
                .ok()?
                .get(0);
            (attempts >= 1).then_some(())
        }
    })
    .await;
    drop(first); // kill -9
    let received = chat_bridge(bridge_port).await;
    let _second = start(d, "second", "remediator.toml", port);
    let notice: String = wait_for("the notice journaled as delivered", || {
        let db = &db;
        async move {
            db.query_one(
                "SELECT notice FROM koji_remediator.action_runs WHERE notice IS NOT NULL",
                &[],
            )
            .await
            .ok()
            .map(|row| row.get(0))
        }
    })
    .await;
    assert!(
        notice.starts_with("delivered to the notice webhook on attempt"),
        "{notice}"
    );
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "delivered once: {bodies:#?}");
    assert!(bodies[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("OUTAGE NOTICE: KojiSharedStorageFull"));
}

#[tokio::test]
async fn an_agent_killed_mid_cleanup_starts_kojid_again_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // kojid runs; stopping it takes long enough to kill the agent meanwhile.
    let (_root, state, log) = builder(d, "f39-build-1-1", 30);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/api/v1/agent/run");
    let first = start(d, "agent-first", "agent.toml", port);
    let client = reqwest::Client::new();
    let request = json!({
        "run": 41, "action": "clean_build_dirs", "labels": {"host": HOST},
        "plan_only": false, "knobs": {"target_free_percent": 99}
    });
    let in_flight = {
        let client = client.clone();
        let url = url.clone();
        let request = request.clone();
        tokio::spawn(async move {
            loop {
                let sent = client
                    .post(&url)
                    .bearer_auth(FORWARD_TOKEN)
                    .json(&request)
                    .send()
                    .await;
                if sent.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    kojid_stopped(&log).await;
    drop(first); // kill -9, kojid down
    in_flight.abort();
    assert!(!state.exists(), "kojid is down");
    let _second = start(d, "agent-second", "agent.toml", port);
    wait_for("kojid started again by the restarted agent", || {
        let state = state.clone();
        async move { state.exists().then_some(()) }
    })
    .await;
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls, "stop kojid\nstart kojid\n");
    // The next answer tells the central side, which journals it with that run.
    let mut plan_only = request.clone();
    plan_only["plan_only"] = json!(true);
    plan_only["run"] = json!(42);
    let answer: Value = wait_for("the restarted agent to answer", || {
        let client = client.clone();
        let url = url.clone();
        let plan_only = plan_only.clone();
        async move {
            let response = client
                .post(&url)
                .bearer_auth(FORWARD_TOKEN)
                .json(&plan_only)
                .send()
                .await
                .ok()?;
            response.json().await.ok()
        }
    })
    .await;
    let recovery = answer["recovery"].to_string();
    assert!(
        recovery.contains("started kojid again: run 41 had stopped it"),
        "{answer:#}"
    );
}

/// The central remediator is killed while the builder's agent applies a forwarded cleanup:
/// the next central replica asks the agent how the run ended and journals that, without a
/// second cleanup; a retried request for the same run is answered from the agent's record.
#[tokio::test]
async fn a_central_killed_mid_forward_learns_the_outcome_from_the_agent() {
    let hub = TestDb::koji("crash_forward_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    let journal = TestDb::empty("crash_forward_journal").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (root, _state, log) = builder(d, "f39-build-5-1", 2);
    let agent_port = free_port();
    let _agent = start(d, "agent", "agent.toml", agent_port);
    std::fs::write(d.join("forward.token"), FORWARD_TOKEN).unwrap();
    let rules = format!(
        r#"
[[rule]]
name = "builder-disk-full"
alertname = "KojiBuilderDiskFull"
action = "clean_build_dirs"
policy = "auto"
cooldown = "0s"
params = {{ target_free_percent = 99 }}

[forwarding]
token_file = "{dd}/forward.token"
actions = ["clean_build_dirs"]
attempts = 1
timeout = "30s"

[forwarding.agents]
"{HOST}" = "http://127.0.0.1:{agent_port}"
"#,
        dd = d.display()
    );
    std::fs::write(
        d.join("remediator.toml"),
        config_text(d, &hub.url, &journal.url, &rules),
    )
    .unwrap();
    let port = free_port();
    let first = start(d, "central-first", "remediator.toml", port);
    let client = reqwest::Client::new();
    let labels = [
        ("alertname", "KojiBuilderDiskFull"),
        ("host", HOST),
        ("mountpoint", "/"),
    ];
    let body = payload(false, &labels, "f5f5f5f5f5f5f5f5", "2026-11-30T07:00:00Z");
    journaled(&client, &format!("http://127.0.0.1:{port}"), &body).await;
    kojid_stopped(&log).await;
    drop(first); // kill -9 while the agent applies
    let _second = start(d, "central-second", "remediator.toml", port);
    let db = koji_testkit::test_db::connect(&journal.url).await.unwrap();
    let (state_name, outcome, attempts): (String, String, i32) =
        wait_for("the run resolved by the second central", || {
            let db = &db;
            async move {
                let row = db
                    .query_one(
                        "SELECT state, outcome, attempts FROM koji_remediator.action_runs",
                        &[],
                    )
                    .await
                    .ok()?;
                let state: String = row.get(0);
                (state != "applying" && state != "running").then(|| (state, row.get(1), row.get(2)))
            }
        })
        .await;
    assert_eq!(state_name, "succeeded", "{outcome}");
    assert!(outcome.contains("the agent's record"), "{outcome}");
    assert_eq!(attempts, 1, "not started again");
    assert!(!root.join("f39-build-5-1").exists());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "stop kojid\nstart kojid\n",
        "one cleanup"
    );
    // The same request again (a retry whose answer was lost): answered from the record.
    let id: i64 = db
        .query_one("SELECT id FROM koji_remediator.action_runs", &[])
        .await
        .unwrap()
        .get(0);
    let journal_id: String = db
        .query_one(
            "SELECT value #>> '{}' FROM koji_remediator.settings WHERE key = 'journal_id'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let again: Value = client
        .post(format!("http://127.0.0.1:{agent_port}/api/v1/agent/run"))
        .bearer_auth(FORWARD_TOKEN)
        .json(&json!({
            "journal": journal_id, "run": id, "action": "clean_build_dirs", "labels": {"host": HOST},
            "plan_only": false, "knobs": {"target_free_percent": 99.0, "host_label": "host"}
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["state"], "succeeded", "{again:#}");
    assert!(
        again["outcome"]
            .as_str()
            .unwrap()
            .contains("answered from this agent's record"),
        "{again:#}"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "stop kojid\nstart kojid\n",
        "still one cleanup"
    );
}
