//! The HTTP surface, through the router and through the real binary: metrics in both
//! formats, health, flags, a bad config refused before listening, SIGTERM honoured.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use koji_testkit::free_port;

/// A database URL nothing answers on.
fn dead_database_url() -> String {
    format!("postgresql://koji@127.0.0.1:{}/koji", free_port())
}

#[tokio::test]
async fn router_serves_metrics_health_and_content_types() {
    let config = support::config_for(&dead_database_url(), Duration::from_secs(2));
    let app = koji_exporter::server::app(support::hub_scraper(config));

    let response = app
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let request = Request::get("/metrics")
        .header(header::ACCEPT, "application/openmetrics-text;version=1.0.0")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(
        support::value(&support::parse(&text), "koji_db_up", &[]),
        0.0
    );

    let response = app
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(!String::from_utf8_lossy(&body).contains("# EOF"));
}

/// Prometheus asks for gzip on every scrape (`Accept-Encoding: gzip`): the answer is
/// compressed, and decompressed it is the same exposition; a scraper that does not ask gets
/// it uncompressed.
#[tokio::test]
async fn metrics_are_gzipped_when_asked_and_only_then() {
    use std::io::Read;
    let config = support::config_for(&dead_database_url(), Duration::from_secs(2));
    let app = koji_exporter::server::app(support::hub_scraper(config));
    let openmetrics = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let request = Request::get("/metrics")
        .header(header::ACCEPT, openmetrics)
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
    let compressed = response.into_body().collect().await.unwrap().to_bytes();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .expect("a gzip body");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(
        support::value(&support::parse(&text), "koji_db_up", &[]),
        0.0
    );
    assert!(
        compressed.len() * 3 < text.len(),
        "{} bytes compressed from {}",
        compressed.len(),
        text.len()
    );

    let request = Request::get("/metrics")
        .header(header::ACCEPT, openmetrics)
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert!(response.headers().get(header::CONTENT_ENCODING).is_none());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).ends_with("# EOF\n"));
}

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn exporter(args: &[&str], db_url: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_koji-exporter"));
    command
        .args(args)
        .env_remove("KOJI_EXPORTER_DB_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = db_url {
        command.env("KOJI_EXPORTER_DB_URL", url);
    }
    command
}

async fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = reqwest::get(format!("{base}/healthz")).await {
            if response.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "exporter never became healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the real binary on a free port with `args` and a dead database; returns it with
/// its base URL once it answers `/healthz`.
async fn start_exporter(args: &[&str]) -> (Exporter, String) {
    let address = format!("127.0.0.1:{}", free_port());
    let mut all_args = vec!["--web.listen-address", address.as_str()];
    all_args.extend_from_slice(args);
    let child = exporter(&all_args, Some(&dead_database_url()))
        .spawn()
        .unwrap();
    let base = format!("http://{address}");
    let running = Exporter(child);
    wait_healthy(&base).await;
    (running, base)
}

async fn fetch_samples(base: &str) -> Vec<support::Sample> {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    support::parse(&response.text().await.unwrap())
}

/// The README's quick start: no config file at all, no database reachable.
#[tokio::test]
async fn the_binary_runs_on_its_embedded_default_and_stops_on_sigterm() {
    let (mut exporter, base) = start_exporter(&["--log.format", "json"]).await;
    let samples = fetch_samples(&base).await;
    assert_eq!(support::value(&samples, "koji_db_up", &[]), 0.0);
    assert_eq!(
        support::value(
            &samples,
            "koji_exporter_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // The local collector serves this machine's metrics without any database.
    assert!(support::value(&samples, "koji_memory_total_bytes", &[]) > 0.0);

    let status = Command::new("kill")
        .args(["-TERM", &exporter.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    let exit = loop {
        if let Some(exit) = exporter.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit within 5 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn collector_flags_choose_what_runs() {
    let (_exporter, base) =
        start_exporter(&["--collector.disable-defaults", "--collector.koji_db"]).await;
    let samples = fetch_samples(&base).await;
    let collectors: Vec<&str> = support::find(&samples, "koji_exporter_collector_success", &[])
        .iter()
        .map(|s| s.labels["collector"].as_str())
        .collect();
    assert_eq!(collectors, vec!["koji_db"]);
}

#[test]
fn a_bad_config_file_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[database]\nstale_conection_age = \"40m\"\n").unwrap();
    let output = exporter(&["--config.file", path.to_str().unwrap()], None)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("stale_conection_age"), "{stderr}");
}

#[test]
fn check_config_validates_and_exits() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/koji-exporter.toml"
    );
    let output = exporter(&["--config.file", example, "--check-config"], None)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("koji_db, koji_hub, koji_hosts, koji_tasks, pg_stat_activity"),
        "{stdout}"
    );

    let output = exporter(
        &["--config.file", example, "--check-config"],
        Some("not a url ==="),
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("KOJI_EXPORTER_DB_URL"));
}

#[test]
fn check_config_validates_the_builder_example_and_its_web_config() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let builder = repo.join("examples/koji-exporter-builder.toml");
    let dir = tempfile::tempdir().unwrap();
    let web = koji_testkit::examples::install_file(
        &repo,
        "/etc/koji-exporter/web-config-exporter.yml",
        dir.path(),
    );
    let output = exporter(
        &[
            "--config.file",
            builder.to_str().unwrap(),
            "--web.config.file",
            web.to_str().unwrap(),
            "--check-config",
        ],
        None,
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("filesystems"), "{stdout}");

    // A web config naming a key that is not there fails the check, naming the file.
    std::fs::remove_file(web.parent().unwrap().join("tls/exporter.key")).unwrap();
    let output = exporter(
        &[
            "--config.file",
            builder.to_str().unwrap(),
            "--web.config.file",
            web.to_str().unwrap(),
            "--check-config",
        ],
        None,
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exporter.key"), "{stderr}");
}

#[test]
fn plain_http_beyond_loopback_must_be_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exporter.toml");
    std::fs::write(&config, "[web]\nlisten_address = \"0.0.0.0:0\"\n").unwrap();
    let output = exporter(
        &["--config.file", config.to_str().unwrap(), "--check-config"],
        None,
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing plain HTTP on 0.0.0.0:0")
            && stderr.contains("web.allow_plain_http"),
        "{stderr}"
    );
    std::fs::write(
        &config,
        "[web]\nlisten_address = \"0.0.0.0:0\"\nallow_plain_http = true\n",
    )
    .unwrap();
    let output = exporter(
        &["--config.file", config.to_str().unwrap(), "--check-config"],
        None,
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
}

/// Logs that go to a file or the journal carry no colour escape codes.
#[test]
fn logs_off_a_terminal_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let mut child = exporter(&["--web.listen-address", "127.0.0.1:0"], None)
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
        if text.contains("koji-exporter listening") {
            break text;
        }
        assert!(Instant::now() < deadline, "no log line: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(!text.contains('\u{1b}'), "escape codes in {text:?}");
}

/// The listener's limits come from `[web]`: an idle or slowloris connection is closed after
/// `header_read_timeout`, and with `max_connections` held by idle clients a new scrape waits
/// in the backlog until one of them is closed, then is served.
#[tokio::test]
async fn listener_limits_come_from_the_web_section() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exporter.toml");
    std::fs::write(
        &config,
        "[web]\nheader_read_timeout = \"1s\"\nmax_connections = 2\nshutdown_drain = \"1s\"\n\
         [collectors]\nkoji_db = false\nkoji_hosts = false\nkoji_tasks = false\npg_stat_activity = false\n",
    )
    .unwrap();
    let (_exporter, base) = start_exporter(&["--config.file", config.to_str().unwrap()]).await;
    let address = base.trim_start_matches("http://").to_owned();
    // Two connections: one idle, one that sends half a header and stops (slowloris).
    let idle = std::net::TcpStream::connect(&address).unwrap();
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // Both slots are held: a scrape now waits for one of them to be closed (after 1 s).
    let started = Instant::now();
    let scraped = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::get(format!("{base}/healthz")),
    )
    .await
    .expect("served once a slot frees")
    .unwrap();
    assert!(scraped.status().is_success());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "the scrape waited {waited:?} for a slot"
    );
    for mut stream in [idle, slow] {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buffer = Vec::new();
        // Closed by the server (a 408 or nothing, then end of stream), not left open.
        let read = stream.read_to_end(&mut buffer);
        assert!(
            read.is_ok(),
            "still open after the header timeout: {read:?}"
        );
    }
}
