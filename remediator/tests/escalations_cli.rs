//! `koji-remediator escalations list|approve|reject` against a running remediator, with a
//! personal on-call token from a file; the webhook's token is refused.

mod support;

use std::process::Command;

use koji_testkit::populate::add_host;
use koji_testkit::{HostSpec, KojiVersion};
use support::{payload, Remediator};

const BOB: &str = "bob-oncall-token-abcdef0123456789";

/// Runs the command line; `args` may start with options of `escalations` (`--ca-file`)
/// before the action.
fn cli(base: &str, token_file: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_koji-remediator"))
        .args(["escalations", "--url", base, "--token-file"])
        .arg(token_file)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn list_approve_and_refusals_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let bob = dir.path().join("bob.token");
    std::fs::write(&bob, format!("{BOB}\n")).unwrap();
    let webhook = dir.path().join("webhook.token");
    std::fs::write(&webhook, support::WEBHOOK_TOKEN).unwrap();
    let rules = format!(
        r#"
[[oncall]]
name = "bob"
token_file = "{}"

[[rule]]
name = "overloaded-builder"
alertname = "KojiBuilderOverloaded"
action = "lower_capacity"
policy = "approve"
params = {{ step = 1.0 }}
"#,
        bob.display()
    );
    let remediator = Remediator::start(KojiVersion::V1_33, &rules).await;
    add_host(
        &remediator.hub.client,
        KojiVersion::V1_33,
        &HostSpec::new("buildvm-x86-01.example.org"),
    )
    .await
    .unwrap();
    let labels = [
        ("alertname", "KojiBuilderOverloaded"),
        ("host", "buildvm-x86-01.example.org"),
    ];
    remediator
        .post(&payload(
            false,
            &labels,
            "c1c1c1c1c1c1c1c1",
            "2026-11-28T10:00:00Z",
        ))
        .await;

    let base = remediator.base.clone();
    let mut listed = String::new();
    for _ in 0..100 {
        let (ok, text) = tokio::task::spawn_blocking({
            let (base, bob) = (base.clone(), bob.clone());
            move || cli(&base, &bob, &["list"])
        })
        .await
        .unwrap();
        assert!(ok, "{text}");
        listed = text;
        if listed.contains("from 4 to 3") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        listed.contains("awaiting_approval") && listed.contains("from 4 to 3"),
        "{listed}"
    );
    let id = listed.split_whitespace().next().unwrap().to_string();

    let run = |args: Vec<String>, token: std::path::PathBuf| {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(&base, &token, &args)
        })
    };
    let (ok, text) = run(vec!["approve".into(), id.clone()], webhook.clone())
        .await
        .unwrap();
    assert!(
        !ok && text.contains("401"),
        "the webhook token decides nothing: {text}"
    );
    let (ok, text) = run(
        vec![
            "approve".into(),
            id.clone(),
            "--reason".into(),
            "load from plague".into(),
        ],
        bob.clone(),
    )
    .await
    .unwrap();
    assert!(ok && text.contains("approved by bob"), "{text}");
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    let (ok, text) = run(vec!["approve".into(), id], bob).await.unwrap();
    assert!(
        !ok && text.contains("409"),
        "approving twice is refused: {text}"
    );
}

/// Against a remediator on HTTPS with a site CA: `--ca-file` trusts it; without it the
/// command fails and says the certificate is the problem. (Multi-threaded: the command
/// runs blocking while the server answers.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_reaches_a_tls_remediator_with_the_site_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = koji_testkit::certs::TestCa::new(d, "site-ca");
    ca.issue("remediator", &["localhost"]);
    std::fs::write(
        d.join("web.yml"),
        "tls_server_config:\n  cert_file: remediator.crt\n  key_file: remediator.key\n",
    )
    .unwrap();
    let journal = koji_testkit::TestDb::empty("cli_tls_journal")
        .await
        .unwrap();
    let hub = koji_testkit::TestDb::koji("cli_tls_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    koji_testkit::populate::ensure_remediator_user(&hub.client)
        .await
        .unwrap();
    let rules = support::approve_lowering_rules(d);
    let text = support::config_text(d, &hub.url, &journal.url, &rules);
    let config =
        koji_remediator::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let app = koji_remediator::start(config).await.unwrap();
    let transport = koji_tls::Transport::from_web_config(Some(&d.join("web.yml"))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(koji_remediator::http::run(
        listener,
        app,
        transport,
        std::future::pending(),
    ));

    let token = d.join("alice.token");
    let ca_file = ca.cert_file.to_str().unwrap().to_owned();
    let (ok, text) = cli(&base, &token, &["--ca-file", &ca_file, "list"]);
    assert!(ok, "{text}");
    assert_eq!(text.trim(), "no escalations");
    let (ok, text) = cli(&base, &token, &["list"]);
    assert!(!ok);
    assert!(text.contains("certificate"), "{text}");
}
