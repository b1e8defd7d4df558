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
    for _ in 0..600 {
        let list = remediator.escalations().await;
        let found = list
            .iter()
            .find(|e| e["labels"]["alertname"] == alertname && e["notice"].is_string());
        if let Some(entry) = found {
            return entry["notice"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "no notice journaled for {alertname}: {:#?}",
        remediator.escalations().await
    );
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

/// Without a local relay: STARTTLS required (the relay's certificate from the site CA, for
/// the name configured) and a login. A wrong password is journaled as an undelivered
/// notice saying why.
#[tokio::test]
async fn the_outage_notice_is_mailed_over_starttls_with_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = koji_testkit::certs::TestCa::new(d, "mail-ca");
    let relay = ca.issue("relay", &["127.0.0.1"]);
    let smtpd = SmtpSink::start_secure(
        d,
        &relay.cert_file,
        &relay.key_file,
        "koji-remediator",
        "relay-password-123",
    );
    let rules = |password: &str| {
        std::fs::write(d.join("smtp.password"), format!("{password}\n")).unwrap();
        format!(
            r#"
[notify]
contact = "koji-oncall@example.org"
attempts = 1

[notify.smtp]
server = "127.0.0.1"
port = {port}
tls = "starttls"
ca_file = "{ca}"
username = "koji-remediator"
password_file = "{password_file}"
from = "koji-remediator@example.org"
to = ["koji-outages@example.org"]

[[rule]]
name = "shared-storage-full"
alertname = "KojiSharedStorageFull"
action = "escalate"
policy = "notify"
"#,
            port = smtpd.port,
            ca = ca.cert_file.display(),
            password_file = d.join("smtp.password").display(),
        )
    };
    let shared = [
        ("alertname", "KojiSharedStorageFull"),
        ("mountpoint", "/mnt/koji"),
    ];

    let remediator = Remediator::start(KojiVersion::V1_33, &rules("relay-password-123")).await;
    remediator
        .post(&payload(
            false,
            &shared,
            "5a5a5a5a5a5a5a5a",
            "2026-11-28T09:00:00Z",
        ))
        .await;
    let notice = wait_for_notice(&remediator, "KojiSharedStorageFull").await;
    assert!(
        notice.starts_with("mailed to koji-outages@example.org"),
        "{notice}"
    );
    let mails = smtpd.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("Subject: OUTAGE NOTICE: KojiSharedStorageFull"));
    drop(remediator);

    let remediator = Remediator::start(KojiVersion::V1_33, &rules("not-the-password")).await;
    remediator
        .post(&payload(
            false,
            &shared,
            "5b5b5b5b5b5b5b5b",
            "2026-11-28T09:10:00Z",
        ))
        .await;
    let notice = wait_for_notice(&remediator, "KojiSharedStorageFull").await;
    assert!(!notice.starts_with("mailed"), "{notice}");
    assert!(notice.to_lowercase().contains("authentication"), "{notice}");
    assert!(!notice.contains("not-the-password"), "{notice}");
    assert_eq!(smtpd.messages().len(), 1, "nothing more was accepted");
}
