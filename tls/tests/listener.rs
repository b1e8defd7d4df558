//! The TLS listener with real certificates (a throwaway CA from rcgen) and a real client
//! (reqwest over rustls): mutual TLS refuses a client without a certificate, with one from
//! another CA and with one for another name; certificates rotate under load with no failed
//! request; files that do not fit together are refused by name at start.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use koji_testkit::certs::{Issued, TestCa};
use koji_tls::{client_config, serve, Transport};

fn app() -> axum::Router {
    axum::Router::new().route("/", axum::routing::get(|| async { "ok" }))
}

/// Serves `app` with the web config `text` (written to `<dir>/web.yml`); returns the URL.
async fn start(dir: &Path, text: &str) -> String {
    let web = dir.join("web.yml");
    std::fs::write(&web, text).unwrap();
    let transport = Transport::from_web_config(Some(&web)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve(listener, app(), transport, std::future::pending()));
    format!("https://localhost:{port}/")
}

/// A client trusting `ca` (and presenting `identity`), opening a new connection each time.
fn client(ca: &Path, identity: Option<&Issued>) -> reqwest::Client {
    let config = client_config::build(
        ca,
        identity.map(|i| (i.cert_file.as_path(), i.key_file.as_path())),
    )
    .unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    response.text().await.map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn mutual_tls_accepts_only_the_ca_and_the_allowed_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new(d, "koji-ca");
    let other_ca = TestCa::new(d, "other-ca");
    ca.issue("agent", &["localhost", "127.0.0.1"]);
    let central = ca.issue("central", &["central.example.org"]);
    let intruder = ca.issue("intruder", &["builder-42.example.org"]);
    let foreign = other_ca.issue("foreign", &["central.example.org"]);
    let url = start(
        d,
        "tls_server_config:\n  cert_file: agent.crt\n  key_file: agent.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: koji-ca.crt\n  client_allowed_sans: [central.example.org]\n",
    )
    .await;

    assert_eq!(
        get(&client(&ca.cert_file, Some(&central)), &url).await,
        Ok("ok".into())
    );
    for (what, identity) in [
        ("no certificate", None),
        ("a certificate from another CA", Some(&foreign)),
        ("a certificate for another name", Some(&intruder)),
    ] {
        let refused = get(&client(&ca.cert_file, identity), &url).await;
        assert!(refused.is_err(), "{what} was accepted");
    }
    // The server's certificate is checked by the client too: a client trusting only the
    // other CA refuses it.
    assert!(get(&client(&other_ca.cert_file, Some(&central)), &url)
        .await
        .is_err());
    // No plain-text fallback on a TLS port.
    let plain = url.replace("https://", "http://");
    assert!(reqwest::get(&plain)
        .await
        .and_then(|r| r.error_for_status())
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_load_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old_ca = TestCa::new(d, "old-ca");
    let new_ca = TestCa::new(d, "new-ca");
    old_ca.issue("server", &["localhost"]);
    let url = start(
        d,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .await;
    let both = d.join("both.crt");
    std::fs::write(
        &both,
        [
            std::fs::read(&old_ca.cert_file).unwrap(),
            std::fs::read(&new_ca.cert_file).unwrap(),
        ]
        .concat(),
    )
    .unwrap();

    // Clients trusting both CAs hammer the listener, a new handshake per request.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, url, done, served) = (
            client(&both, None),
            url.clone(),
            done.clone(),
            served.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !done.load(Ordering::Relaxed) {
                match get(&client, &url).await {
                    Ok(body) if body == "ok" => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failures.push(format!("{other:?}")),
                }
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Rotate: the new certificate and key replace the old ones by rename, as deployment
    // tools do (each file swapped whole).
    let staged = new_ca.issue("staged", &["localhost"]);
    std::fs::rename(&staged.key_file, d.join("server.key")).unwrap();
    std::fs::rename(&staged.cert_file, d.join("server.crt")).unwrap();

    // Within a few seconds new handshakes present the new certificate: a client trusting
    // only the new CA gets through.
    let only_new = client(&new_ca.cert_file, None);
    let mut rotated = false;
    for _ in 0..100 {
        if get(&only_new, &url).await.is_ok() {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    done.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(worker.await.unwrap());
    }
    assert!(rotated, "the new certificate was never served");
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(
        served.load(Ordering::Relaxed) > 20,
        "too little load to mean anything"
    );
    assert!(
        get(&client(&old_ca.cert_file, None), &url).await.is_err(),
        "old certificate still served"
    );
}

#[test]
fn files_that_do_not_fit_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new(d, "ca");
    let a = ca.issue("a", &["localhost"]);
    let b = ca.issue("b", &["localhost"]);
    let web = d.join("web.yml");
    let error = |text: String| {
        std::fs::write(&web, text).unwrap();
        match Transport::from_web_config(Some(&web)) {
            Ok(_) => panic!("accepted"),
            Err(error) => error.to_string(),
        }
    };
    let mismatched = error(format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        a.cert_file.display(),
        b.key_file.display()
    ));
    assert!(
        mismatched.contains(&b.key_file.display().to_string()),
        "{mismatched}"
    );
    let missing = error("tls_server_config:\n  cert_file: nowhere.crt\n  key_file: b.key\n".into());
    assert!(missing.contains("nowhere.crt"), "{missing}");
    let not_pem = error(format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        web.display(),
        b.key_file.display()
    ));
    assert!(not_pem.contains("web.yml"), "{not_pem}");
    assert!(matches!(
        Transport::from_web_config(None).unwrap(),
        Transport::Plain
    ));
}
