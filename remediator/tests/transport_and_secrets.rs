//! The real binary on TLS (`--web.config.file`), with debug logging: SIGHUP reloads the
//! TLS files; tokens rotate by replacing their file; a peer that keeps failing authentication is refused with 429 while
//! another address is served; and no secret, neither a configured token nor a guessed one
//! nor the TLS key, appears in the logs, `/metrics`, the journal (API and tables) or any
//! error body.

mod support;

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use koji_testkit::certs::TestCa;
use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion, TestDb};

const NEW_WEBHOOK: &str = "rotated-webhook-token-8675309";
const GUESS: &str = "mallory-guessed-token-31337";

fn client(ca: &std::path::Path, from: &str) -> reqwest::Client {
    let tls = koji_tls::client_config::build(ca, None).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .local_address(from.parse::<IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_guessing_is_slowed_and_no_secret_leaks() {
    let hub = TestDb::koji("sec_hub", KojiVersion::V1_33).await.unwrap();
    koji_testkit::populate::ensure_remediator_user(&hub.client)
        .await
        .unwrap();
    add_host(
        &hub.client,
        KojiVersion::V1_33,
        &HostSpec::new(support::HOST),
    )
    .await
    .unwrap();
    let journal = TestDb::empty("sec_journal").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new(d, "ca");
    let server = ca.issue("server", &["localhost"]);
    std::fs::write(
        d.join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    let rules = support::approve_lowering_rules(d);
    let config = d.join("koji-remediator.toml");
    std::fs::write(
        &config,
        support::config_text(d, &hub.url, &journal.url, &rules),
    )
    .unwrap();
    let port = koji_testkit::free_port();
    let log = d.join("remediator.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .args(["--config.file", config.to_str().unwrap()])
        .args(["--web.config.file", d.join("web.yml").to_str().unwrap()])
        .args(["--web.listen-address", &format!("0.0.0.0:{port}")])
        .args(["--log.level", "debug"])
        .stdout(Stdio::from(log_file.try_clone().unwrap()))
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let on_call = client(&ca.cert_file, "127.0.0.1");
    let deadline = Instant::now() + Duration::from_secs(15);
    while on_call.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "never listened on TLS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut bodies = Vec::new();

    // Ordinary use: an alert, the journal, a log-in.
    let firing = support::payload(
        false,
        &[
            ("alertname", "KojiBuilderOverloaded"),
            ("host", support::HOST),
        ],
        "5ec5ec5ec5ec5ec5",
        "2026-11-28T13:00:00Z",
    );
    let post = |token: &str, from: &reqwest::Client| {
        from.post(format!("{base}/webhook/alertmanager"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(firing.clone())
            .send()
    };
    assert_eq!(
        post(support::WEBHOOK_TOKEN, &on_call)
            .await
            .unwrap()
            .status(),
        200
    );
    let login = on_call
        .post(format!("{base}/login"))
        .form(&[("name", "alice"), ("token", support::ALICE)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.ends_with("; Secure"),
        "over TLS the cookie is Secure: {cookie}"
    );

    // Rotation: the webhook token file is replaced; the old token stops working at once.
    std::fs::write(d.join("webhook.new"), NEW_WEBHOOK).unwrap();
    std::fs::rename(d.join("webhook.new"), d.join("webhook.token")).unwrap();
    let old = post(support::WEBHOOK_TOKEN, &on_call).await.unwrap();
    assert_eq!(old.status(), 401);
    bodies.push(old.text().await.unwrap());
    assert_eq!(post(NEW_WEBHOOK, &on_call).await.unwrap().status(), 200);

    // Guessing from another address: after MAX_FAILURES its further failures of that
    // credential kind get 429; its other kinds, its valid requests, and everyone else are
    // served; a success forgives.
    let mallory = client(&ca.cert_file, "127.0.0.2");
    for _ in 0..koji_remediator::http::auth_limit::MAX_FAILURES {
        let response = post(GUESS, &mallory).await.unwrap();
        assert_eq!(response.status(), 401);
        bodies.push(response.text().await.unwrap());
    }
    let limited = post(GUESS, &mallory).await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    bodies.push(limited.text().await.unwrap());
    let bad_login = mallory
        .post(format!("{base}/login"))
        .form(&[("name", "alice"), ("token", GUESS)])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_login.status(), 401, "another credential kind");
    for path in ["/metrics", "/healthz"] {
        let response = mallory.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} is never limited");
    }
    assert_eq!(
        post(NEW_WEBHOOK, &mallory).await.unwrap().status(),
        200,
        "a valid token is never refused for the address's failures"
    );
    assert_eq!(
        post(GUESS, &mallory).await.unwrap().status(),
        401,
        "the success forgave the failures"
    );
    assert_eq!(post(NEW_WEBHOOK, &on_call).await.unwrap().status(), 200);

    // SIGHUP reloads the TLS files at once (unchanged files are otherwise left alone, so
    // the log line comes from the signal, not from the change watcher).
    let before = std::fs::read_to_string(&log)
        .unwrap()
        .matches("TLS certificate and settings reloaded")
        .count();
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    // The watcher never reloads unchanged files, so however long this takes, the line
    // can only come from the signal.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = std::fs::read_to_string(&log)
            .unwrap()
            .matches("TLS certificate and settings reloaded")
            .count();
        if now > before {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload TLS");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        on_call
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let metrics = on_call
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "koji_remediator_auth_failures_total{endpoint=\"webhook\"} 13",
        "koji_remediator_auth_failures_total{endpoint=\"approval_page\"} 1",
        "koji_remediator_auth_rate_limited_total 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    bodies.push(metrics);
    for path in [
        "/api/v1/journal",
        "/api/v1/journal/alerts",
        "/api/v1/escalations",
    ] {
        let response = on_call
            .get(format!("{base}{path}"))
            .bearer_auth(support::API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        bodies.push(response.text().await.unwrap());
    }
    let tables = koji_testkit::test_db::connect(&journal.url).await.unwrap();
    for table in ["deliveries", "alerts", "action_runs", "settings"] {
        for row in tables
            .query(
                &format!("SELECT row_to_json(t)::text FROM koji_remediator.{table} t"),
                &[],
            )
            .await
            .unwrap()
        {
            bodies.push(row.get(0));
        }
    }
    stop(&mut child);
    bodies.push(std::fs::read_to_string(&log).unwrap());

    let key_pem = std::fs::read_to_string(&server.key_file).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap().to_owned();
    for secret in [
        support::WEBHOOK_TOKEN,
        support::API_TOKEN,
        support::ALICE,
        NEW_WEBHOOK,
        GUESS,
        key_body.as_str(),
    ] {
        for body in &bodies {
            assert!(!body.contains(secret), "{secret} leaked into:\n{body}");
        }
    }
    assert!(
        bodies.last().unwrap().contains("koji-remediator listening"),
        "the log was captured"
    );
}

/// Stops the child with SIGTERM (so its log is complete) and waits for it.
fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
