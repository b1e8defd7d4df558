//! The loop with TLS on every hop, with the real Debian Prometheus and Alertmanager: the
//! exporter serves only over mutual TLS and Prometheus scrapes it with its own client
//! certificate (`tls_config`); the remediator's webhook is HTTPS and Alertmanager posts to
//! it with `http_config.tls_config`. A nearly full shared mount fires
//! `KojiSharedStorageFull`, and the alert arrives in the remediator's journal. A client
//! without a certificate gets nothing from the exporter, and plain HTTP gets nothing from
//! either.

use std::time::{Duration, Instant};

use koji_e2e::{
    free_port, get_json, start_alertmanager_with, start_binary, start_central_remediator,
    start_prometheus_with, wait_for, Central,
};
use koji_testkit::certs::TestCa;
use koji_testkit::mounts::TestMount;
use koji_testkit::{KojiVersion, TestDb};

const API_TOKEN: &str = "e2e-tls-api-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_runs_tls_and_the_alert_still_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new(d, "koji-ca");
    ca.issue("exporter", &["127.0.0.1"]);
    ca.issue("remediator", &["127.0.0.1"]);
    let prometheus_cert = ca.issue("prometheus", &["prometheus.example.org"]);
    let stranger = ca.issue("stranger", &["someone-else.example.org"]);
    let shared = d.join("mnt-koji");
    let _mount = TestMount::tmpfs(&shared, "size=8m", "nfs-stand-in:/koji");
    std::fs::write(shared.join("full.img"), vec![1u8; 31 << 18]).unwrap();

    std::fs::write(
        d.join("exporter-web.yml"),
        "tls_server_config:\n  cert_file: exporter.crt\n  key_file: exporter.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: koji-ca.crt\n  client_allowed_sans: [prometheus.example.org]\n",
    )
    .unwrap();
    std::fs::write(
        d.join("exporter.toml"),
        format!(
            "[web]\nconfig_file = \"{}\"\n[[filesystems.paths]]\npath = \"{}\"\nrole = \"shared\"\n",
            d.join("exporter-web.yml").display(),
            shared.display()
        ),
    )
    .unwrap();
    let exporter_port = free_port();
    let exporter = start_binary(
        d,
        "koji-exporter",
        "koji-exporter",
        "exporter.toml",
        exporter_port,
        &["--collector.disable-defaults", "--collector.filesystems"],
    );

    let journal = TestDb::empty("e2e_tls_journal").await.unwrap();
    let hub = TestDb::koji("e2e_tls_hub", KojiVersion::V1_33)
        .await
        .unwrap();
    std::fs::write(
        d.join("remediator-web.yml"),
        "tls_server_config:\n  cert_file: remediator.crt\n  key_file: remediator.key\n",
    )
    .unwrap();
    let central = Central {
        webhook_token: "e2e-tls-webhook-token-0123456789",
        api_token: API_TOKEN,
        journal_url: &journal.url,
        hub_url: &hub.url,
    };
    let (remediator, remediator_port) = start_central_remediator(
        d,
        &central,
        &format!("web_config_file = \"{}/remediator-web.yml\"", d.display()),
        "[[rule]]\nname = \"shared-storage-full\"\nalertname = \"KojiSharedStorageFull\"\naction = \"escalate\"\npolicy = \"notify\"\n",
    );

    let (alertmanager, am_port) = start_alertmanager_with(
        d,
        &format!("https://127.0.0.1:{remediator_port}/webhook/alertmanager"),
        &d.join("webhook.token"),
        &format!(
            "          tls_config:\n            ca_file: {}\n",
            ca.cert_file.display()
        ),
    );
    let (prometheus, prom) = start_prometheus_with(
        d,
        &[("koji-builders", exporter_port)],
        am_port,
        &format!(
            "    scheme: https\n    tls_config:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}\n",
            ca.cert_file.display(),
            prometheus_cert.cert_file.display(),
            prometheus_cert.key_file.display()
        ),
    );
    let all = [&exporter, &remediator, &alertmanager, &prometheus];
    let started = Instant::now();
    let client = reqwest::Client::new();

    // Prometheus scrapes over mutual TLS.
    wait_for(
        "Prometheus to scrape the exporter over TLS",
        Duration::from_secs(60),
        &all,
        || async {
            let targets = get_json(&client, &format!("{prom}/api/v1/targets"), None).await?;
            let target = targets["data"]["activeTargets"].get(0)?.clone();
            let url = target["scrapeUrl"].as_str()?;
            (target["health"] == "up" && url.starts_with("https://")).then_some(())
        },
    )
    .await;

    // Alertmanager posts over TLS; the alert is in the journal.
    let tls_client = |identity: Option<&koji_testkit::certs::Issued>| {
        let tls = koji_tls::client_config::build(
            &ca.cert_file,
            identity.map(|i| (i.cert_file.as_path(), i.key_file.as_path())),
        )
        .unwrap();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .unwrap()
    };
    let on_call = tls_client(None);
    let journaled = wait_for(
        "the alert in the journal, delivered over TLS",
        Duration::from_secs(90),
        &all,
        || async {
            let alerts = get_json(
                &on_call,
                &format!("https://127.0.0.1:{remediator_port}/api/v1/journal/alerts"),
                Some(API_TOKEN),
            )
            .await?;
            alerts
                .as_array()?
                .iter()
                .find(|a| a["alertname"] == "KojiSharedStorageFull")
                .cloned()
        },
    )
    .await;
    println!(
        "shared storage full to journaled, every hop on TLS: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(journaled["decision"], "notified", "{journaled}");

    // Nothing in the clear, nothing without the right client certificate.
    let metrics_url = format!("https://127.0.0.1:{exporter_port}/metrics");
    assert!(on_call.get(&metrics_url).send().await.is_err());
    assert!(tls_client(Some(&stranger))
        .get(&metrics_url)
        .send()
        .await
        .is_err());
    let scraped = tls_client(Some(&prometheus_cert))
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(scraped.contains("koji_filesystem_avail_bytes"), "{scraped}");
    for port in [exporter_port, remediator_port] {
        let plain = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        assert!(
            plain.is_err() || !plain.unwrap().status().is_success(),
            "plain HTTP served on {port}"
        );
    }
}
