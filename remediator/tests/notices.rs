//! Outage notices for escalations, posted as JSON to a webhook (a chat bridge stand-in run
//! by the test, which fails the first delivery to exercise the retry), rendered from the
//! template, with the delivery result journaled.

mod support;

use std::sync::{Arc, Mutex};

use koji_testkit::populate::add_host;
use koji_testkit::smtp_sink::SmtpSink;
use koji_testkit::{HostSpec, KojiVersion};
use serde_json::Value;
use support::{payload, Remediator};

/// A webhook that answers 500 to the first request and 200 after, keeping every body.
async fn chat_bridge() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let mut bodies = seen.lock().unwrap();
                bodies.push(body);
                if bodies.len() == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test]
async fn escalations_send_an_outage_notice_with_retries() {
    let (url, received) = chat_bridge().await;
    let rules = format!(
        r#"
[notify]
webhook_url = "{url}"
contact = "storage-team@example.org"
retry_delay = "100ms"

[[rule]]
name = "shared-storage-full"
alertname = "KojiSharedStorageFull"
action = "escalate"
policy = "notify"

[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "approve"
params = {{ step = 1.0 }}
"#
    );
    let remediator = Remediator::start(KojiVersion::V1_33, &rules).await;
    add_host(
        &remediator.hub.client,
        KojiVersion::V1_33,
        &HostSpec::new("buildvm-x86-01.example.org"),
    )
    .await
    .unwrap();

    let shared = [
        ("alertname", "KojiSharedStorageFull"),
        ("mountpoint", "/mnt/koji"),
    ];
    remediator
        .post(&payload(
            false,
            &shared,
            "5151515151515151",
            "2026-11-28T08:00:00Z",
        ))
        .await;
    let notice = wait_for_notice(&remediator, "KojiSharedStorageFull").await;
    assert!(
        notice.starts_with("delivered to the notice webhook on attempt 2"),
        "{notice}"
    );
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "one failed delivery, one retry");
    let text = bodies[1]["text"].as_str().unwrap();
    assert!(
        text.starts_with("OUTAGE NOTICE: KojiSharedStorageFull"),
        "{text}"
    );
    assert!(text.contains("Since: 2026-11-28T08:00:00+00:00"), "{text}");
    assert!(
        text.contains("For a human: KojiSharedStorageFull needs a human"),
        "{text}"
    );
    assert!(text.contains("Contact: storage-team@example.org"), "{text}");
    // The annotations of Alertmanager's payload are in it.
    assert!(
        text.contains("What is affected: Builder buildvm-x86-01.example.org runs more"),
        "{text}"
    );
    assert_eq!(bodies[1]["alertname"], "KojiSharedStorageFull");
    assert_eq!(bodies[1]["policy"], "notify");

    // An approval rule's notice carries the plan waiting for approval.
    let overloaded = [
        ("alertname", "KojiBuilderOverloaded"),
        ("host", "buildvm-x86-01.example.org"),
    ];
    remediator
        .post(&payload(
            false,
            &overloaded,
            "6161616161616161",
            "2026-11-28T08:05:00Z",
        ))
        .await;
    wait_for_notice(&remediator, "KojiBuilderOverloaded").await;
    let bodies = received.lock().unwrap().clone();
    let text = bodies.last().unwrap()["text"].as_str().unwrap();
    assert!(
        text.contains("Planned, waiting for approval: set capacity of Koji host buildvm-x86-01.example.org from 4 to 3"),
        "{text}"
    );
}

async fn wait_for_notice(remediator: &Remediator, alertname: &str) -> String {
    for _ in 0..200 {
        let list = remediator.escalations().await;
        let found = list
            .iter()
            .find(|e| e["labels"]["alertname"] == alertname && e["notice"].is_string());
        if let Some(entry) = found {
            return entry["notice"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no notice journaled for {alertname}");
}

/// A real SMTP server (Python's aiosmtpd, writing a maildir) receives the notice.
#[tokio::test]
async fn the_outage_notice_is_mailed_through_smtp() {
    let dir = tempfile::tempdir().unwrap();
    let smtpd = SmtpSink::start(dir.path());
    let port = smtpd.port;
    let rules = format!(
        r#"
[notify]
contact = "koji-oncall@example.org"
retry_delay = "100ms"

[notify.smtp]
server = "127.0.0.1"
port = {port}
from = "koji-remediator@example.org"
to = ["koji-outages@example.org", "oncall@example.org"]

[[rule]]
name = "shared-storage-full"
alertname = "KojiSharedStorageFull"
action = "escalate"
policy = "notify"
"#
    );
    let remediator = Remediator::start(KojiVersion::V1_33, &rules).await;
    let shared = [
        ("alertname", "KojiSharedStorageFull"),
        ("mountpoint", "/pub/fedora"),
    ];
    remediator
        .post(&payload(
            false,
            &shared,
            "7171717171717171",
            "2026-11-28T09:00:00Z",
        ))
        .await;
    let notice = wait_for_notice(&remediator, "KojiSharedStorageFull").await;
    assert!(
        notice.starts_with("mailed to koji-outages@example.org, oncall@example.org on attempt 1"),
        "{notice}"
    );
    let mails = smtpd.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(
        mail.contains("Subject: OUTAGE NOTICE: KojiSharedStorageFull"),
        "{mail}"
    );
    assert!(mail.contains("From: koji-remediator@example.org"), "{mail}");
    assert!(mail.contains("koji-outages@example.org"), "{mail}");
    assert!(mail.contains("Contact: koji-oncall@example.org"), "{mail}");
}
