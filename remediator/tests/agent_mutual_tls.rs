//! Mutual TLS between the central remediator and an agent, with a throwaway CA: the agent
//! serves TLS and accepts only client certificates from the CA issued to the central
//! instance's name; the central instance presents its certificate and checks the agent's
//! against the host name it forwards to. A forwarded cleanup succeeds; an agent URL whose
//! host name the agent's certificate does not carry is journaled as a certificate failure;
//! clients without a certificate, with one from another CA or for another name, are refused
//! in the handshake, and the bearer token is still required on top.

mod support;

use std::path::Path;

use koji_testkit::certs::{Issued, TestCa};
use koji_testkit::mounts::{age_tree, TestMount};
use koji_testkit::KojiVersion;
use support::{payload, service_scripts, start_agent, Remediator, FORWARD_TOKEN, HOST};

fn central_rules(dir: &Path, ca: &Path, central: &Issued, agent_port: u16) -> String {
    std::fs::write(dir.join("forward.token"), FORWARD_TOKEN).unwrap();
    format!(
        r#"
[[rule]]
name = "builder-disk-full"
alertname = "KojiBuilderDiskFull"
action = "clean_build_dirs"
policy = "auto"
cooldown = "0s"
params = {{ target_free_percent = 60 }}

[forwarding]
token_file = "{token}"
actions = ["clean_build_dirs"]
attempts = 1
timeout = "30s"

[forwarding.tls]
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"

[forwarding.agents]
"{HOST}" = "https://localhost:{agent_port}"
"buildvm-x86-09.example.org" = "https://127.0.0.1:{agent_port}"
"#,
        token = dir.join("forward.token").display(),
        ca = ca.display(),
        cert = central.cert_file.display(),
        key = central.key_file.display(),
    )
}

fn client(ca: &Path, identity: Option<&Issued>) -> reqwest::Client {
    let tls = koji_tls::client_config::build(
        ca,
        identity.map(|i| (i.cert_file.as_path(), i.key_file.as_path())),
    )
    .unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

#[tokio::test]
async fn agents_take_forwarded_runs_only_over_mutual_tls_from_the_central_instance() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new(d, "koji-ca");
    let other_ca = TestCa::new(d, "other-ca");
    ca.issue("agent", &["localhost"]);
    let central = ca.issue("central", &["central.example.org"]);
    let intruder = ca.issue("intruder", &["buildvm-x86-07.example.org"]);
    let foreign = other_ca.issue("foreign", &["central.example.org"]);
    let agent_dir = d.join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let web = agent_dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n  client_allowed_sans: [central.example.org]\n",
            d.join("agent.crt").display(),
            d.join("agent.key").display(),
            ca.cert_file.display()
        ),
    )
    .unwrap();
    let policy = format!(
        "roots = [\"{}\"]\nmax_target_free_percent = 95\n{}",
        d.join("mock").display(),
        service_scripts(d)
    );
    let agent = start_agent(&agent_dir, Some(&web), &policy).await;
    assert!(agent.starts_with("https://localhost:"), "{agent}");
    let agent_port: u16 = agent.rsplit(':').next().unwrap().parse().unwrap();

    // Direct clients: refused in the handshake unless they hold the central certificate,
    // and then still refused without the token.
    let run_url = format!("{agent}/api/v1/agent/run");
    for (what, identity) in [
        ("no certificate", None),
        ("another CA", Some(&foreign)),
        ("another name", Some(&intruder)),
    ] {
        let result = client(&ca.cert_file, identity).post(&run_url).send().await;
        assert!(result.is_err(), "{what}: {result:?}");
    }
    let response = client(&ca.cert_file, Some(&central))
        .post(&run_url)
        .bearer_auth("not-the-forwarding-token-000")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // The central instance forwards a cleanup over mutual TLS.
    let root = d.join("mock");
    let _tmpfs = TestMount::tmpfs(&root, "size=16m", "koji-mtls-test");
    std::fs::create_dir_all(root.join("f39-build-1-1")).unwrap();
    std::fs::write(root.join("f39-build-1-1/blob"), vec![1u8; 10 << 20]).unwrap();
    age_tree(&root.join("f39-build-1-1"), 10);
    let remediator = Remediator::start(
        KojiVersion::V1_33,
        &central_rules(d, &ca.cert_file, &central, agent_port),
    )
    .await;
    let labels = [
        ("alertname", "KojiBuilderDiskFull"),
        ("host", HOST),
        ("mountpoint", "/"),
    ];
    remediator
        .post(&payload(
            false,
            &labels,
            "7a7a7a7a7a7a7a7a",
            "2026-11-28T12:00:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(1).await;
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#?}");
    assert!(!root.join("f39-build-1-1").exists());

    // An agent URL naming a host its certificate does not carry: the central instance
    // refuses to talk to it, and the journal says why.
    let labels = [
        ("alertname", "KojiBuilderDiskFull"),
        ("host", "buildvm-x86-09.example.org"),
        ("mountpoint", "/"),
    ];
    remediator
        .post(&payload(
            false,
            &labels,
            "7b7b7b7b7b7b7b7b",
            "2026-11-28T12:05:00Z",
        ))
        .await;
    let runs = remediator.finished_runs(2).await;
    let failed = runs
        .iter()
        .find(|r| r["target"] == "host:buildvm-x86-09.example.org")
        .unwrap();
    assert_eq!(failed["state"], "failed", "{runs:#?}");
    let outcome = failed["outcome"].as_str().unwrap();
    assert!(outcome.contains("certificate"), "{outcome}");
}

#[test]
fn plain_agent_urls_with_forwarding_tls_are_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new(d, "koji-ca");
    let central = ca.issue("central", &["central.example.org"]);
    let rules = central_rules(d, &ca.cert_file, &central, 1)
        .replace("https://localhost:1", "http://localhost:1");
    let text = support::config_text(d, "host=h", "host=j", &rules);
    let error = koji_remediator::config::Config::parse(&text, Path::new("central.toml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("forwarding.agents"), "{error}");
    let missing_key = central_rules(d, &ca.cert_file, &central, 1).replace(
        &format!("key_file = \"{}\"\n", central.key_file.display()),
        "",
    );
    let text = support::config_text(d, "host=h", "host=j", &missing_key);
    let error = koji_remediator::config::Config::parse(&text, Path::new("central.toml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("forwarding.tls.key_file"), "{error}");
}
