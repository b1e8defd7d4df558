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

fn central_rules(dir: &Path, agent: &str) -> String {
    std::fs::write(dir.join("forward.token"), FORWARD_TOKEN).unwrap();
    format!(
        r#"
[[rule]]
name = "builder-disk-full"
alertname = "KojiBuilderDiskFull"
action = "clean_build_dirs"
policy = "auto"
cooldown = "0s"
params = {{ target_free_percent = 90 }}

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
        token = dir.join("forward.token").display(),
    )
}

/// The builder's own cleanup policy: `root`, kojid through recording scripts in `dir`.
fn builder_policy(dir: &Path, root: &Path) -> String {
    format!(
        "roots = [\"{}\"]\nmax_target_free_percent = 95\n{}",
        root.display(),
        service_scripts(dir)
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

    let agent = start_agent(
        &dir.path().join("agent-dir").tap_mkdir(),
        None,
        &builder_policy(dir.path(), &root),
    )
    .await;
    let central = Remediator::start(KojiVersion::V1_33, &central_rules(dir.path(), &agent)).await;

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

/// A forwarded cleanup under approval: the builder's agent makes the plan on-call sees
/// (nothing deleted yet), the approval has it applied there; a rule asking for more than
/// the agent's policy allows is refused, and the central journal says so.
#[tokio::test]
async fn approval_of_a_forwarded_cleanup_and_the_agents_bounds_in_the_central_journal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mock").tap_mkdir();
    std::fs::create_dir_all(root.join("f39-build-3-1")).unwrap();
    run(&[
        "touch",
        "-h",
        "-d",
        "10 days ago",
        root.join("f39-build-3-1").to_str().unwrap(),
    ]);
    let agent = start_agent(
        &dir.path().join("agent-dir").tap_mkdir(),
        None,
        &builder_policy(dir.path(), &root),
    )
    .await;
    std::fs::write(dir.path().join("alice.token"), support::ALICE).unwrap();
    let rules = central_rules(dir.path(), &agent)
        .replace("policy = \"auto\"", "policy = \"approve\"")
        .replace("target_free_percent = 90", "target_free_percent = 95")
        + &format!(
            r#"
[[oncall]]
name = "alice"
token_file = "{}"

[[rule]]
name = "builder-disk-full-greedy"
alertname = "KojiBuilderDiskFullGreedy"
action = "clean_build_dirs"
policy = "auto"
cooldown = "0s"
params = {{ retention = "1h" }}
"#,
            dir.path().join("alice.token").display()
        );
    let central = Remediator::start(KojiVersion::V1_33, &rules).await;
    central.post(&disk_full(HOST, "2026-11-30T06:00:00Z")).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let id = loop {
        let escalations = central.escalations().await;
        assert!(
            std::time::Instant::now() < deadline,
            "no plan from the agent: {escalations:#?}"
        );
        if let Some(waiting) = escalations
            .iter()
            .find(|e| e["state"] == "awaiting_approval" && e["plan"].is_string())
        {
            break waiting["id"].as_i64().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let escalations = central.escalations().await;
    let plan = escalations[0]["plan"].as_str().unwrap();
    assert!(
        plan.starts_with(&format!("agent {agent}: ")) && plan.contains("f39-build-3-1"),
        "{plan}"
    );
    assert!(
        root.join("f39-build-3-1").exists(),
        "nothing deleted before approval"
    );
    let response = central
        .client
        .post(format!("{}/api/v1/escalations/{id}/approve", central.base))
        .bearer_auth(support::ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let runs = central.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert!(
        !root.join("f39-build-3-1").exists(),
        "deleted once approved"
    );

    // A rule asking for a retention shorter than the builder allows.
    let labels = [
        ("alertname", "KojiBuilderDiskFullGreedy"),
        ("host", HOST),
        ("mountpoint", "/"),
    ];
    central
        .post(&payload(
            false,
            &labels,
            "f1f1f1f1f1f1f1f1",
            "2026-11-30T06:05:00Z",
        ))
        .await;
    let runs = central.finished_runs(2).await;
    assert_eq!(runs[0]["state"], "refused", "{runs:#?}");
    assert_eq!(runs[0]["effect"], "none", "{runs:#?}");
    let outcome = runs[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("shorter than this machine's min_retention"),
        "{outcome}"
    );
}

/// The trust boundary: whoever holds the forwarding token can only ask. A request naming
/// a command or a path is refused whole (400 naming the field) and nothing runs: the
/// recording stop script stays unrun and an old entry in `/etc`-like directories outside
/// the policy's roots stays; a knob beyond the policy's bounds is refused.
#[tokio::test]
async fn the_agent_takes_nothing_it_runs_or_touches_from_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mock").tap_mkdir();
    let elsewhere = dir.path().join("etc-like").tap_mkdir();
    std::fs::create_dir_all(elsewhere.join("old-config")).unwrap();
    run(&[
        "touch",
        "-h",
        "-d",
        "30 days ago",
        elsewhere.join("old-config").to_str().unwrap(),
    ]);
    let recorded = dir.path().join("evil-ran");
    let evil = dir.path().join("evil.sh");
    std::fs::write(&evil, format!("#!/bin/sh\ntouch {}\n", recorded.display())).unwrap();
    run(&["chmod", "+x", evil.to_str().unwrap()]);
    let agent = start_agent(
        &dir.path().join("agent-dir").tap_mkdir(),
        None,
        &builder_policy(dir.path(), &root),
    )
    .await;
    let client = reqwest::Client::new();
    let url = format!("{agent}/api/v1/agent/run");
    let base = json!({"run": 1, "action": "clean_build_dirs", "labels": {"host": HOST}, "plan_only": false});
    let with = |key: &str, value: serde_json::Value| {
        let mut request = base.clone();
        request[key] = value;
        request
    };
    for token in ["", "wrong-token-wrong-token-wrong", support::WEBHOOK_TOKEN] {
        let response = client
            .post(&url)
            .bearer_auth(token)
            .json(&base)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{token:?}");
    }
    let other_action = with("action", json!("lower_capacity"));
    let response = client
        .post(&url)
        .bearer_auth(FORWARD_TOKEN)
        .json(&other_action)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    for (key, value) in [
        ("stop_command", json!([evil.to_str().unwrap()])),
        ("start_command", json!([evil.to_str().unwrap()])),
        ("roots", json!([elsewhere.to_str().unwrap()])),
        ("procfs", json!("/tmp")),
        ("params", json!({"roots": ["/etc"]})),
    ] {
        let response = client
            .post(&url)
            .bearer_auth(FORWARD_TOKEN)
            .json(&with(key, value))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{key}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("unknown field `{key}`")),
            "{key}: {body}"
        );
    }
    // Knobs with policy-shaped names inside are refused the same way.
    let response = client
        .post(&url)
        .bearer_auth(FORWARD_TOKEN)
        .json(&with(
            "knobs",
            json!({"stop_command": [evil.to_str().unwrap()]}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // A retention shorter than the policy allows is refused, nothing runs.
    let response = client
        .post(&url)
        .bearer_auth(FORWARD_TOKEN)
        .json(&with("knobs", json!({"retention": "0s"})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["state"], "refused", "{body}");
    assert!(
        body["outcome"].as_str().unwrap().contains("min_retention"),
        "{body}"
    );
    assert!(!recorded.exists(), "no command named by a request ever ran");
    assert!(
        elsewhere.join("old-config").exists(),
        "nothing outside the roots moved"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("svc-calls.log")).unwrap_or_default(),
        "",
        "kojid was never stopped"
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
