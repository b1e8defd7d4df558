//! The real koji-remediator binary: serves the webhook from its configuration file, acts,
//! and on SIGTERM finishes what is in flight and exits cleanly.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion, TestDb};

#[tokio::test]
async fn serves_acts_and_stops_on_sigterm() {
    let hub = TestDb::koji("bin_hub", KojiVersion::V1_16).await.unwrap();
    koji_testkit::populate::ensure_remediator_user(&hub.client)
        .await
        .unwrap();
    add_host(
        &hub.client,
        KojiVersion::V1_16,
        &HostSpec::new("buildvm-x86-01.example.org"),
    )
    .await
    .unwrap();
    let journal = TestDb::empty("bin_journal").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = r#"
[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "auto"
params = { step = 1.0 }
"#;
    let config = dir.path().join("koji-remediator.toml");
    std::fs::write(
        &config,
        support::config_text(dir.path(), &hub.url, &journal.url, rules),
    )
    .unwrap();
    let port = koji_testkit::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .args([
            "--config.file",
            config.to_str().unwrap(),
            "--log.format",
            "json",
        ])
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let firing = support::captured("builder-overloaded-firing.json").to_string();
    let response = client
        .post(format!("{base}/webhook/alertmanager"))
        .bearer_auth(support::WEBHOOK_TOKEN)
        .header("Content-Type", "application/json")
        .body(firing)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let capacity = || async {
        hub.client
            .query_one("SELECT capacity FROM host_config WHERE active", &[])
            .await
            .unwrap()
            .get::<_, f64>(0)
    };
    while capacity().await != 3.0 {
        assert!(Instant::now() < deadline, "capacity never lowered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The capacity is committed before the run is journaled as finished and counted: wait
    // for the count.
    let counted = r#"koji_remediator_actions_total{action="lower_capacity",outcome="succeeded"} 1"#;
    loop {
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(counted) {
            break;
        }
        assert!(Instant::now() < deadline, "{counted} not in:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}
