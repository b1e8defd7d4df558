//! The runbook's "disk space on shared storage": no automatic fix, a human must act. A
//! nearly full shared mount (a tmpfs standing in for /mnt/koji) makes Prometheus fire
//! `KojiSharedStorageFull`; Alertmanager posts to koji-remediator, which journals an
//! escalation and delivers the outage notice to a chat-bridge stand-in; nothing on the
//! mount is touched.

use std::time::{Duration, Instant};

use koji_e2e::{
    free_port, start_alertmanager, start_binary, start_central_remediator, start_prometheus,
    wait_for, Central,
};
use koji_testkit::mounts::TestMount;
use koji_testkit::{KojiVersion, TestDb};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_storage_full_is_escalated_with_a_notice_and_nothing_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shared = d.join("mnt-koji");
    let _mount = TestMount::tmpfs(&shared, "size=32m", "nfs-stand-in:/koji");
    std::fs::create_dir_all(shared.join("packages/bash/5.2")).unwrap();
    std::fs::write(
        shared.join("packages/bash/5.2/bash.rpm"),
        vec![1u8; 31 << 20],
    )
    .unwrap();

    // The chat bridge stand-in.
    let (bridge_url, received) = koji_e2e::json_sink().await;

    let exporter_port = free_port();
    std::fs::write(
        d.join("exporter.toml"),
        format!("[builder]\nhost_name = \"buildvm-x86-02.example.org\"\n[[filesystems.paths]]\npath = \"{}\"\nrole = \"shared\"\n", shared.display()),
    )
    .unwrap();
    let exporter = start_binary(
        d,
        "koji-exporter",
        "koji-exporter",
        "exporter.toml",
        exporter_port,
        &[
            "--collector.disable-defaults",
            "--collector.filesystems",
            "--collector.builder_health",
        ],
    );
    let hub = TestDb::koji("e2e_shared_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    let journal = TestDb::empty("e2e_shared_journal").await.unwrap();
    let rest = format!(
        r#"
[notify]
webhook_url = "{bridge_url}"
contact = "storage-team@example.org"
[[rule]]
name = "shared-storage-full"
alertname = "KojiSharedStorageFull"
action = "escalate"
policy = "notify"
"#
    );
    let central = Central {
        webhook_token: "e2e-shared-webhook-token-01234567",
        api_token: "e2e-shared-api-token-0123456789ab",
        journal_url: &journal.url,
        hub_url: &hub.url,
    };
    let (remediator, remediator_port) = start_central_remediator(d, &central, "", &rest);
    let (alertmanager, am_port) = start_alertmanager(
        d,
        &format!("http://127.0.0.1:{remediator_port}/webhook/alertmanager"),
        &d.join("webhook.token"),
    );
    let (prometheus, _prom) = start_prometheus(d, &[("koji-builders", exporter_port)], am_port);
    let all = [&exporter, &remediator, &alertmanager, &prometheus];
    let started = Instant::now();

    let notice = wait_for(
        "the outage notice",
        Duration::from_secs(90),
        &all,
        || async { received.lock().unwrap().first().cloned() },
    )
    .await;
    println!(
        "shared storage full to notice delivered: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let text = notice["text"].as_str().unwrap();
    assert!(
        text.starts_with("OUTAGE NOTICE: KojiSharedStorageFull"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Shared storage {} has under 5% space left",
            shared.display()
        )),
        "{text}"
    );
    assert!(text.contains("Contact: storage-team@example.org"), "{text}");

    let client = reqwest::Client::new();
    let escalations: Vec<Value> = client
        .get(format!(
            "http://127.0.0.1:{remediator_port}/api/v1/escalations"
        ))
        .bearer_auth("e2e-shared-api-token-0123456789ab")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(escalations[0]["state"], "notified", "{escalations:?}");
    assert!(
        escalations[0]["notice"]
            .as_str()
            .unwrap()
            .starts_with("delivered"),
        "{escalations:?}"
    );
    assert!(
        shared.join("packages/bash/5.2/bash.rpm").exists(),
        "nothing deleted on shared storage"
    );
}
