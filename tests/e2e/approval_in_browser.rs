//! The escalation story end to end, with on-call in a real browser. A nearly full shared
//! mount (a tmpfs standing in for /mnt/koji) makes Prometheus fire `KojiSharedStorageFull`;
//! Alertmanager posts to koji-remediator, whose rule for it is `approve`: a prepared
//! cleanup of the scratch area (old entries, largest first, until half is free). The
//! remediator plans, journals a pending escalation and mails the outage notice to a real
//! SMTP server. On-call logs in to the approval page in headless Chromium and sees the plan;
//! a forged cross-site form, opened in the same logged-in browser, is refused; on-call
//! approves; the plan runs once, the alert resolves, and the page shows the outcome. The
//! page's simulate form, used in the browser, says what a new occurrence would do and
//! writes nothing. Screenshots are kept in target/test-artifacts.
//!
//! The rule's parameters name the exporter's `instance` as the host, because a shared mount
//! belongs to no Koji builder; sites that prepare such a cleanup do the same.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use koji_e2e::browser::Browser;
use koji_e2e::{
    alert_active, free_port, get_json, start_alertmanager, start_binary, start_central_remediator,
    start_prometheus, wait_for, Central,
};
use koji_testkit::mounts::{age_tree, TestMount};
use koji_testkit::smtp_sink::SmtpSink;
use koji_testkit::{KojiVersion, TestDb};
use serde_json::Value;

const API_TOKEN: &str = "e2e-browser-api-token-0123456789ab";
const ALICE: &str = "alice-e2e-browser-token-0123456789";
const MIB: usize = 1 << 20;

/// Clicks the button `button` and returns the text of the first `css` element of the page
/// that follows (waiting up to 20 s for it).
async fn click_and_read(page: &fantoccini::Client, button: &str, css: &str) -> String {
    page.find(Locator::Id(button))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_storage_full_is_mailed_then_approved_in_chromium_and_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shared = d.join("mnt-koji");
    let _mount = TestMount::tmpfs(&shared, "size=32m", "nfs-stand-in:/koji");
    let scratch = shared.join("scratch");
    for (entry, mib) in [("task_1001", 12), ("task_1002", 10), ("task_1003", 8)] {
        std::fs::create_dir_all(scratch.join(entry)).unwrap();
        std::fs::write(scratch.join(entry).join("result.rpm"), vec![7u8; mib * MIB]).unwrap();
        age_tree(&scratch.join(entry), 10);
    }
    std::fs::create_dir_all(scratch.join("task_2001")).unwrap();
    std::fs::write(scratch.join("task_2001/result.rpm"), vec![7u8; 800 * 1024]).unwrap();
    let smtp = SmtpSink::start(d);

    let exporter_port = free_port();
    std::fs::write(
        d.join("exporter.toml"),
        format!(
            "[[filesystems.paths]]\npath = \"{}\"\nrole = \"shared\"\n",
            shared.display()
        ),
    )
    .unwrap();
    let exporter = start_binary(
        d,
        "koji-exporter",
        "koji-exporter",
        "exporter.toml",
        exporter_port,
        &["--collector.disable-defaults", "--collector.filesystems"],
    );
    let journal = TestDb::empty("e2e_browser_journal").await.unwrap();
    let hub = TestDb::koji("e2e_browser_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    std::fs::write(d.join("alice.token"), ALICE).unwrap();
    let rest = format!(
        r#"
[notify]
contact = "storage-team@example.org"
[notify.smtp]
server = "127.0.0.1"
port = {smtp_port}
from = "koji-remediator@example.org"
to = ["koji-outages@example.org"]
[[oncall]]
name = "alice"
token_file = "{d}/alice.token"
[[rule]]
name = "shared-storage-scratch"
alertname = "KojiSharedStorageFull"
action = "clean_build_dirs"
policy = "approve"
params = {{ host_label = "instance", retention = "7d", target_free_percent = 50 }}
[agent]
token_file = "{d}/local-agent.token"
actions = ["clean_build_dirs"]
host_name = "127.0.0.1:{exporter_port}"
state_dir = "{d}/agent-state"
[agent.clean_build_dirs]
roots = ["{scratch}"]
services = []
"#,
        d = d.display(),
        smtp_port = smtp.port,
        scratch = scratch.display(),
    );
    std::fs::write(
        d.join("local-agent.token"),
        "e2e-browser-local-agent-token-0123",
    )
    .unwrap();
    let central = Central {
        webhook_token: "e2e-browser-webhook-token-0123456",
        api_token: API_TOKEN,
        journal_url: &journal.url,
        hub_url: &hub.url,
    };
    let (remediator, remediator_port) = start_central_remediator(d, &central, "", &rest);
    let (alertmanager, am_port) = start_alertmanager(
        d,
        &format!("http://127.0.0.1:{remediator_port}/webhook/alertmanager"),
        &d.join("webhook.token"),
    );
    let (prometheus, prometheus_url) =
        start_prometheus(d, &[("koji-builders", exporter_port)], am_port);
    let all = [&exporter, &remediator, &alertmanager, &prometheus];
    let started = Instant::now();
    let base = format!("http://127.0.0.1:{remediator_port}");
    let client = reqwest::Client::new();

    // The outage notice arrives by mail, and the escalation waits with its plan.
    let mail = wait_for(
        "the outage notice by mail",
        Duration::from_secs(90),
        &all,
        || async { smtp.messages().into_iter().next() },
    )
    .await;
    println!(
        "shared storage full to notice mailed: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        mail.contains("Subject: OUTAGE NOTICE: KojiSharedStorageFull"),
        "{mail}"
    );
    assert!(mail.contains("Contact: storage-team@example.org"), "{mail}");
    let escalation = wait_for(
        "a planned escalation",
        Duration::from_secs(30),
        &all,
        || {
            let client = client.clone();
            let url = format!("{base}/api/v1/escalations");
            async move {
                let list: Vec<Value> = client
                    .get(url)
                    .bearer_auth(API_TOKEN)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                list.into_iter()
                    .find(|e| e["state"] == "awaiting_approval" && e["plan"].is_string())
            }
        },
    )
    .await;
    let id = escalation["id"].as_i64().unwrap();
    let plan = escalation["plan"].as_str().unwrap().to_owned();
    assert!(
        plan.contains("task_1001") && plan.contains("task_1002"),
        "{plan}"
    );
    assert!(
        !plan.contains("task_2001"),
        "fresh entries are not planned: {plan}"
    );

    // A page on another site that posts an approval as soon as it is opened.
    let forger = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move {
            axum::response::Html(format!(
                r#"<form method="post" action="http://127.0.0.1:{remediator_port}/escalations/{id}/approve">
<input type="hidden" name="csrf" value="guessed"><input type="hidden" name="reason" value="forged"></form>
<script>document.forms[0].submit()</script>"#
            ))
        }),
    );
    let forger_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let forger_port = forger_listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(forger_listener, forger).await.unwrap() });

    let browser = Browser::start(d).await;
    let page = &browser.client;

    // Log in: the page sends the browser to the form first.
    page.goto(&format!("{base}/escalations")).await.unwrap();
    assert_eq!(page.current_url().await.unwrap().path(), "/login");
    page.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    page.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(ALICE)
        .await
        .unwrap();
    page.find(Locator::Id("log-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let row = match page
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id(&format!("escalation-{id}")))
        .await
    {
        Ok(row) => row,
        Err(error) => panic!(
            "{error}: no escalation {id} at {:?}:\n{}\n{}",
            page.current_url().await,
            page.source().await.unwrap_or_default(),
            remediator.log_tail()
        ),
    };
    let row_text = row.text().await.unwrap();
    assert!(row_text.contains("KojiSharedStorageFull"), "{row_text}");
    assert!(
        row_text.contains(&plan),
        "the plan is on the page: {row_text}"
    );
    // Readable at a glance: the alert's summary, relative time, a link to its graph, the
    // notice folded away; sizes in binary units.
    assert!(
        row_text.contains("(just now)") || row_text.contains(" ago)"),
        "{row_text}"
    );
    assert!(row_text.contains("graph"), "{row_text}");
    assert!(row_text.contains("Notice sent"), "{row_text}");
    assert!(row_text.contains("MiB"), "{row_text}");
    let graph = row
        .find(Locator::LinkText("graph"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(graph.starts_with("http://127.0.0.1:"), "{graph}");
    // As on a laptop and on a phone.
    browser.resize(1366, 900).await;
    browser.screenshot("approval-page-pending.png").await;
    browser.resize(390, 844).await;
    browser.screenshot("approval-page-pending-phone.png").await;
    browser.resize(1366, 900).await;

    // "What would this alert do now?": a new occurrence of the same alert pasted into the
    // page's form is decided and planned as a delivery would be, and nothing is written.
    let waiting: Vec<Value> = serde_json::from_value(
        get_json(
            &client,
            &format!("{base}/api/v1/escalations"),
            Some(API_TOKEN),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let labels = waiting.iter().find(|e| e["id"] == id).unwrap()["labels"].clone();
    let pasted = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "koji-remediator",
        "groupKey": "{}:{alertname=\"KojiSharedStorageFull\"}",
        "alerts": [{
            "status": "firing", "labels": labels, "annotations": {},
            "startsAt": "2026-11-30T12:00:00Z", "fingerprint": "5151515151515151"
        }]
    })
    .to_string();
    let journal_before = get_json(&client, &format!("{base}/api/v1/journal"), Some(API_TOKEN))
        .await
        .unwrap();
    page.goto(&format!("{base}/escalations")).await.unwrap();
    page.find(Locator::Id("payload"))
        .await
        .unwrap()
        .send_keys(&pasted)
        .await
        .unwrap();
    let simulated = click_and_read(page, "simulate-button", "#simulated td.would").await;
    assert_eq!(simulated, "plan, and wait for on-call's approval");
    let table = page
        .find(Locator::Id("simulated"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        table.contains("awaiting approval") && table.contains("shared-storage-scratch"),
        "{table}"
    );
    browser.screenshot("approval-page-simulated.png").await;
    assert_eq!(
        get_json(&client, &format!("{base}/api/v1/journal"), Some(API_TOKEN))
            .await
            .unwrap(),
        journal_before,
        "nothing journaled"
    );

    // The forged cross-site approval, in the same logged-in browser: refused.
    page.goto(&format!("http://localhost:{forger_port}/"))
        .await
        .unwrap();
    let refused = wait_for(
        "the forged post's answer",
        Duration::from_secs(10),
        &all,
        || async {
            let source = page.source().await.ok()?;
            source.contains("Refused").then_some(source)
        },
    )
    .await;
    assert!(refused.contains("Refused"), "{refused}");
    assert!(
        scratch.join("task_1001").exists(),
        "nothing applied after the forgery"
    );

    // The real approval.
    page.goto(&format!("{base}/escalations")).await.unwrap();
    page.find(Locator::Id(&format!("reason-{id}")))
        .await
        .unwrap()
        .send_keys("scratch results older than a week; storage team agrees")
        .await
        .unwrap();
    let approve_clicked = Instant::now();
    let status = click_and_read(page, &format!("approve-{id}"), "p.message").await;
    assert_eq!(
        status,
        format!("Escalation {id} approved: its plan is being applied.")
    );
    let outcome = wait_for(
        "the applied plan on the page",
        Duration::from_secs(30),
        &all,
        || async {
            page.goto(&format!("{base}/escalations")).await.ok()?;
            let state = page
                .find(Locator::Css(&format!("#escalation-{id} td.state")))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (!["pending", "running", "applying"].contains(&state.as_str())).then_some(state)
        },
    )
    .await;
    println!(
        "approval clicked to plan applied: {:.1} s",
        approve_clicked.elapsed().as_secs_f64()
    );
    assert_eq!(outcome, "succeeded");
    let shot = browser.screenshot("approval-page-applied.png").await;
    println!("screenshot: {}", shot.display());
    browser.close().await;

    // Applied once, largest first to the target; fresh and remaining old entries kept.
    assert!(!scratch.join("task_1001").exists());
    assert!(!scratch.join("task_1002").exists());
    assert!(scratch.join("task_1003/result.rpm").exists());
    assert!(scratch.join("task_2001/result.rpm").exists());
    let list: Vec<Value> = serde_json::from_value(
        get_json(
            &client,
            &format!("{base}/api/v1/escalations"),
            Some(API_TOKEN),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let entry = list.iter().find(|e| e["id"] == id).unwrap();
    assert_eq!(entry["state"], "succeeded", "{entry}");
    assert_eq!(entry["decided_by"], "alice", "{entry}");
    assert_eq!(
        entry["reason"],
        "scratch results older than a week; storage team agrees"
    );
    let journal_runs: Vec<Value> = serde_json::from_value(
        get_json(&client, &format!("{base}/api/v1/journal"), Some(API_TOKEN))
            .await
            .unwrap(),
    )
    .unwrap();
    let applied = journal_runs
        .iter()
        .filter(|run| run["action"] == "clean_build_dirs" && run["state"] == "succeeded")
        .count();
    assert_eq!(applied, 1, "{journal_runs:#?}");

    // The symptom is gone: the alert resolves.
    wait_for("the alert to resolve", Duration::from_secs(60), &all, || {
        let client = client.clone();
        let url = prometheus_url.clone();
        async move {
            (!alert_active(&client, &url, "KojiSharedStorageFull").await?).then_some(())
        }
    })
    .await;
    println!(
        "symptom to resolved, with a human in the loop: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
