//! Agent mode over real HTTP: a central remediator forwards a builder's disk-full run to the
//! agent on that builder, which cleans its build directory; the central journal tells the
//! whole story. Wrong tokens and actions the agent does not run are rejected; an
//! unreachable agent and a hostile host label are journaled as failures and refusals.

mod support;

use std::path::{Path, PathBuf};

use koji_testkit::mounts::{run, TestMount};
use koji_testkit::KojiVersion;
use serde_json::json;
use support::{payload, service_scripts, start_agent, Remediator, FORWARD_TOKEN, HOST};

fn central_rules(dir: &Path, root: &Path, agent: &str) -> String {
    std::fs::write(dir.join("forward.token"), FORWARD_TOKEN).unwrap();
    let services = service_scripts(dir);
    format!(
        r#"
[[rule]]
name = "builder-disk-full"
alertname = "KojiBuilderDiskFull"
action = "clean_build_dirs"
policy = "auto"
cooldown = "0s"
params = {{ roots = ["{root}"], target_free_percent = 90, {services} }}

[forwarding]
token_file = "{token}"
actions = ["clean_build_dirs"]
url_template = "http://{{host}}:9"
attempts = 2
retry_delay = "100ms"
timeout = "30s"

[forwarding.agents]
"{HOST}" = "{agent}"
"#,
        root = root.display(),
        token = dir.join("forward.token").display(),
    )
}

fn disk_full(host: &str, starts_at: &str) -> String {
    let labels = [
        ("alertname", "KojiBuilderDiskFull"),
        ("host", host),
        ("mountpoint", "/"),
    ];
    payload(false, &labels, "f0f0f0f0f0f0f0f0", starts_at)
}

#[tokio::test]
async fn a_disk_full_alert_is_cleaned_by_the_builders_agent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mock");
    std::fs::create_dir_all(&root).unwrap();
    run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=32m",
        "koji-agent-test",
        root.to_str().unwrap(),
    ]);
    let _mount = TestMount::adopt(&root);
    std::fs::create_dir_all(root.join("f39-build-1-1/root")).unwrap();
    std::fs::write(root.join("f39-build-1-1/root/blob"), vec![0u8; 4 << 20]).unwrap();
    run(&[
        "find",
        root.join("f39-build-1-1").to_str().unwrap(),
        "-exec",
        "touch",
        "-h",
        "-d",
        "10 days ago",
        "{}",
        "+",
    ]);
    std::fs::create_dir_all(root.join("f40-build-2-1")).unwrap();

    let agent = start_agent(&dir.path().join("agent-dir").tap_mkdir(), None).await;
    let central = Remediator::start(
        KojiVersion::V1_33,
        &central_rules(dir.path(), &root, &agent),
    )
    .await;

    let (status, body) = central.post(&disk_full(HOST, "2026-11-28T20:00:00Z")).await;
    assert_eq!(status, 200, "{body}");
    let runs = central.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert!(
        runs[0]["outcome"]
            .as_str()
            .unwrap()
            .starts_with(&format!("agent {agent}")),
        "{runs:#?}"
    );
    assert!(
        runs[0]["plan"].as_str().unwrap().contains("f39-build-1-1"),
        "{runs:#?}"
    );
    assert!(
        !root.join("f39-build-1-1").exists(),
        "the agent deleted the old entry"
    );
    assert!(root.join("f40-build-2-1").exists());
    // kojid was stopped for the cleanup and runs again.
    let calls = std::fs::read_to_string(dir.path().join("svc-calls.log")).unwrap();
    assert_eq!(calls, "stop kojid\nstart kojid\n");
    assert!(dir.path().join("svc-state/kojid").exists());
    let decisions = central.alert_decisions().await;
    assert_eq!(
        decisions[0]["decision"], "run",
        "the whole story is in the journal"
    );

    // A builder without a mapped agent: the template points at a closed port.
    let (status, _) = central
        .post(&disk_full("127.0.0.1", "2026-11-28T20:05:00Z"))
        .await;
    assert_eq!(status, 200);
    let runs = central.finished_runs(2).await;
    assert_eq!(runs[0]["state"], "failed", "{runs:#?}");
    assert!(
        runs[0]["outcome"]
            .as_str()
            .unwrap()
            .contains("failed 2 time(s)"),
        "{runs:#?}"
    );

    // A label that would make the template point elsewhere: refused, nothing sent.
    central
        .post(&disk_full(
            "evil.example.org/steal?x=",
            "2026-11-28T20:10:00Z",
        ))
        .await;
    let runs = central.finished_runs(3).await;
    assert_eq!(runs[0]["state"], "refused", "{runs:#?}");
    assert!(runs[0]["outcome"]
        .as_str()
        .unwrap()
        .contains("not a plain host name"));
}

#[tokio::test]
async fn the_agent_rejects_wrong_tokens_and_actions_it_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(dir.path(), None).await;
    let client = reqwest::Client::new();
    let url = format!("{agent}/api/v1/agent/run");
    let request = json!({
        "run": 1, "action": "lower_capacity", "params": {}, "labels": {"host": HOST},
        "plan_only": false
    });
    for token in ["", "wrong-token-wrong-token-wrong", support::WEBHOOK_TOKEN] {
        let response = client
            .post(&url)
            .bearer_auth(token)
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{token:?}");
    }
    let response = client
        .post(&url)
        .bearer_auth(FORWARD_TOKEN)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let bad_params = json!({
        "run": 1, "action": "clean_build_dirs", "params": {"roots": ["/"], "local_host": HOST},
        "labels": {"host": HOST}, "plan_only": false
    });
    let response = client
        .post(&url)
        .bearer_auth(FORWARD_TOKEN)
        .json(&bad_params)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        400,
        "an agent re-checks the parameters"
    );
    // No webhook on an agent-only instance.
    let response = client
        .post(format!("{agent}/webhook/alertmanager"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
