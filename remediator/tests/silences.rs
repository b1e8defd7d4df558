//! Silences against a real `prometheus-alertmanager`: while a (deliberately slow) build-dir
//! cleanup runs, its alert is silenced with exact matchers, and the silence mutes that
//! alert and no other, even with a regex-looking label value; when the run ends the
//! silence is expired and the journal says so. A `lower_capacity` run is never silenced
//! (its restore needs the resolved notification). An unreachable Alertmanager does not
//! stop the fix.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use koji_e2e::start_alertmanager;
use koji_testkit::mounts::{age_tree, run, TestMount};
use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use serde_json::{json, Value};
use support::{payload, Remediator};

const HOST: &str = "buildvm-x86-01.example.org";

fn labels() -> Vec<(&'static str, &'static str)> {
    vec![
        ("alertname", "KojiBuilderDiskFull"),
        ("host", HOST),
        ("mountpoint", ".*"),
    ]
}

/// A cleanup rule whose service stop takes `stop_seconds`, so the run is seen in flight.
fn rules(dir: &Path, root: &Path, alertmanager: &str, stop_seconds: u32) -> String {
    let stop = dir.join("stop");
    std::fs::write(&stop, format!("#!/bin/sh\nsleep {stop_seconds}\n")).unwrap();
    run(&["chmod", "+x", stop.to_str().unwrap()]);
    format!(
        r#"
[silences]
alertmanager_urls = ["{alertmanager}"]
duration = "10m"
timeout = "2s"

[[rule]]
name = "builder-disk-full"
alertname = "KojiBuilderDiskFull"
action = "clean_build_dirs"
policy = "auto"
cooldown = "0s"
params = {{ target_free_percent = 60 }}

[[rule]]
name = "overloaded"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
cooldown = "0s"
params = {{ step = 1.0, floor = 2.0 }}
{agent}"#,
        agent = support::local_agent(
            dir,
            &format!(
                "roots = [\"{}\"]\nmax_target_free_percent = 95\nservices = [\"kojid\"]\nis_active_command = [\"true\"]\nstop_command = [\"{}\"]\nstart_command = [\"true\"]",
                root.display(),
                stop.display()
            )
        ),
    )
}

fn old_entry(root: &Path, name: &str) {
    std::fs::create_dir_all(root.join(name)).unwrap();
    std::fs::write(root.join(name).join("blob"), vec![1u8; 8 << 20]).unwrap();
    age_tree(&root.join(name), 10);
}

async fn silences(client: &reqwest::Client, alertmanager: &str) -> Vec<Value> {
    client
        .get(format!("{alertmanager}/api/v2/silences"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Alertmanager's view of alerts it was sent: (labels' mountpoint, state, silenced by).
async fn alert_states(
    client: &reqwest::Client,
    alertmanager: &str,
) -> Vec<(String, String, Value)> {
    let alerts: Vec<Value> = client
        .get(format!("{alertmanager}/api/v2/alerts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alerts
        .iter()
        .map(|a| {
            (
                a["labels"]["mountpoint"].as_str().unwrap_or("").to_owned(),
                a["status"]["state"].as_str().unwrap_or("").to_owned(),
                a["status"]["silencedBy"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_fix_is_silenced_exactly_and_unsilenced_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("unused.token"), "unused-webhook-token").unwrap();
    let (_alertmanager, am_port) =
        start_alertmanager(d, "http://127.0.0.1:9/unused", &d.join("unused.token"));
    let am = format!("http://127.0.0.1:{am_port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{am}/-/ready")).send().await.is_err() {
        assert!(Instant::now() < deadline, "Alertmanager did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let root = d.join("mock");
    let _tmpfs = TestMount::tmpfs(&root, "size=16m", "koji-silence-test");
    old_entry(&root, "f39-build-1-1");
    let remediator = Remediator::start(KojiVersion::V1_33, &rules(d, &root, &am, 3)).await;
    add_host(
        &remediator.hub.client,
        KojiVersion::V1_33,
        &HostSpec::new(HOST),
    )
    .await
    .unwrap();
    remediator
        .post(&payload(
            false,
            &labels(),
            "5111e5111e5111e5",
            "2026-11-28T10:00:00Z",
        ))
        .await;

    // While the run is in flight: one active silence, exact matchers on every label.
    let silence = loop {
        let active: Vec<Value> = silences(&client, &am)
            .await
            .into_iter()
            .filter(|s| s["status"]["state"] == "active")
            .collect();
        if let Some(first) = active.first() {
            assert_eq!(active.len(), 1, "{active:#?}");
            break first.clone();
        }
        assert!(Instant::now() < deadline, "no silence while the fix runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(silence["createdBy"], "koji-remediator");
    assert!(
        silence["comment"]
            .as_str()
            .unwrap()
            .contains("clean_build_dirs (builder-disk-full) in progress"),
        "{silence}"
    );
    let mut matchers: Vec<(String, String, bool)> = silence["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["value"].as_str().unwrap().to_owned(),
                m["isRegex"].as_bool().unwrap(),
            )
        })
        .collect();
    matchers.sort();
    assert_eq!(
        matchers,
        vec![
            ("alertname".into(), "KojiBuilderDiskFull".into(), false),
            ("host".into(), HOST.into(), false),
            ("mountpoint".into(), ".*".into(), false),
        ]
    );
    // It mutes the alert it is for, and not the same alert on another mount point.
    let id = silence["id"].as_str().unwrap().to_owned();
    let sent = json!([
        {"labels": {"alertname": "KojiBuilderDiskFull", "host": HOST, "mountpoint": ".*"}},
        {"labels": {"alertname": "KojiBuilderDiskFull", "host": HOST, "mountpoint": "/var/lib/mock"}},
    ]);
    let response = client
        .post(format!("{am}/api/v2/alerts"))
        .json(&sent)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let mut states = alert_states(&client, &am).await;
    states.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(
        (states[0].1.as_str(), &states[0].2),
        ("suppressed", &json!([id]))
    );
    assert_eq!(
        (states[1].0.as_str(), states[1].1.as_str()),
        ("/var/lib/mock", "active")
    );

    // After the run: the silence is expired and the journal says it was there.
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    let outcome = runs[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.ends_with(&format!(
            "; alert silenced in Alertmanager while it ran ({id})"
        )),
        "{outcome}"
    );
    let after = silences(&client, &am).await;
    let ours = after.iter().find(|s| s["id"] == id.as_str()).unwrap();
    assert_eq!(ours["status"]["state"], "expired", "{ours}");
    let metrics = client
        .get(format!("{}/metrics", remediator.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "koji_remediator_silence_requests_total{operation=\"create\",result=\"ok\"} 1",
        "koji_remediator_silence_requests_total{operation=\"remove\",result=\"ok\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }

    // A capacity change is never silenced: its restore hangs on the resolved notification.
    remediator
        .post(&payload(
            false,
            &[("alertname", "KojiBuilderOverloaded"), ("host", HOST)],
            "0ae0ae0ae0ae0ae0",
            "2026-11-28T10:05:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(2).await;
    let capacity_run = runs
        .iter()
        .find(|r| r["action"] == "lower_capacity")
        .unwrap();
    assert_eq!(capacity_run["state"], "succeeded", "{runs:#?}");
    assert!(!capacity_run["outcome"]
        .as_str()
        .unwrap()
        .contains("silence"));
    assert_eq!(silences(&client, &am).await.len(), 1, "no second silence");
}

#[tokio::test]
async fn an_unreachable_alertmanager_does_not_stop_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("mock");
    let _tmpfs = TestMount::tmpfs(&root, "size=16m", "koji-silence-test");
    old_entry(&root, "f39-build-2-1");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let remediator = Remediator::start(
        KojiVersion::V1_33,
        &rules(d, &root, &format!("http://127.0.0.1:{closed}"), 0),
    )
    .await;
    remediator
        .post(&payload(
            false,
            &labels(),
            "5222e5222e5222e5",
            "2026-11-28T11:00:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert!(!root.join("f39-build-2-1").exists());
    let outcome = runs[0]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("; no Alertmanager silence (http://127.0.0.1:"),
        "{outcome}"
    );
}
