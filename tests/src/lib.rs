//! The whole loop on loopback ports: koji-exporter, koji-remediator, Prometheus and
//! Alertmanager as real processes, with their configurations written to a temporary
//! directory and their logs kept there for when a test fails.

pub mod browser;
pub mod rule_expressions;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A binary of this workspace, built by the same `cargo nextest run --workspace`.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let binary = profile_dir.join(name);
    assert!(
        binary.exists(),
        "{} not built; run the workspace's tests",
        binary.display()
    );
    binary
}

/// Where tests leave files for people to look at (screenshots): `test-artifacts` in the
/// target directory, created on first use.
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/test-artifacts
    let target = exe.ancestors().nth(3).expect("target directory");
    let folder = target.join("test-artifacts");
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

pub use koji_testkit::free_port;

/// A child process killed when dropped, with its output in `<dir>/<name>.log`.
pub struct Process {
    name: String,
    log: PathBuf,
    child: Child,
}

impl Process {
    /// Starts `program` with `args`, logging to `dir`.
    pub fn start(dir: &Path, name: &str, program: &Path, args: &[String]) -> Process {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", program.display()));
        Process {
            name: name.to_string(),
            log,
            child,
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!("--- {} ---\n{}", self.name, lines[start..].join("\n"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the workspace binary `binary` (`koji-exporter`, `koji-remediator`) with the
/// configuration `<dir>/<config>`, listening on `127.0.0.1:<port>`, plus `flags`; its log is
/// `<dir>/<log_name>.log`.
pub fn start_binary(
    dir: &Path,
    log_name: &str,
    binary: &str,
    config: &str,
    port: u16,
    flags: &[&str],
) -> Process {
    let mut args = vec![
        "--config.file".to_owned(),
        dir.join(config).display().to_string(),
        "--web.listen-address".to_owned(),
        format!("127.0.0.1:{port}"),
    ];
    args.extend(flags.iter().map(|flag| flag.to_string()));
    Process::start(dir, log_name, &workspace_binary(binary), &args)
}

/// Tokens and databases of a central koji-remediator in a test.
pub struct Central<'a> {
    /// Alertmanager's token (written to `<dir>/webhook.token`).
    pub webhook_token: &'a str,
    /// On-call's API token (written to `<dir>/api.token`).
    pub api_token: &'a str,
    /// The journal's connection string.
    pub journal_url: &'a str,
    /// The hub database's connection string.
    pub hub_url: &'a str,
}

/// Starts a central koji-remediator whose configuration (`<dir>/remediator.toml`) is
/// `[server]` with the token files and `server_extra` lines, `[journal]`, `[hub]`, then
/// `rest` (rules, notify, ...); returns it and its port.
pub fn start_central_remediator(
    dir: &Path,
    central: &Central<'_>,
    server_extra: &str,
    rest: &str,
) -> (Process, u16) {
    std::fs::write(dir.join("webhook.token"), central.webhook_token).unwrap();
    std::fs::write(dir.join("api.token"), central.api_token).unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("remediator.toml"),
        format!(
            "[server]\nwebhook_token_file = \"{d}/webhook.token\"\napi_token_file = \"{d}/api.token\"\n{server_extra}\n\
             [journal]\nurl = \"{}\"\n[hub]\nurl = \"{}\"\n{rest}",
            central.journal_url, central.hub_url
        ),
    )
    .unwrap();
    let port = free_port();
    let process = start_binary(
        dir,
        "koji-remediator",
        "koji-remediator",
        "remediator.toml",
        port,
        &[],
    );
    (process, port)
}

/// `koji-remediator replay --output json` of the journal a loop's central remediator
/// (started by [`start_central_remediator`] in `dir`) wrote, through its own runbook,
/// over the last `since`: the report, after checking the replay is faithful (no
/// difference, nothing set aside).
pub fn faithful_replay(dir: &Path, since: &str) -> serde_json::Value {
    let output = std::process::Command::new(workspace_binary("koji-remediator"))
        .args([
            "replay",
            "--output",
            "json",
            "--since",
            since,
            "--config.file",
        ])
        .arg(dir.join("remediator.toml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let differing: Vec<&serde_json::Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["differs"] == true)
        .collect();
    assert!(
        differing.is_empty(),
        "the replay differs from the journal: {differing:#?}"
    );
    assert_eq!(report["set_aside"], serde_json::json!([]), "{report:#}");
    report
}

/// GETs `url` (with a bearer token when given) and parses the JSON answer; `None` on any
/// failure, for polling with [`wait_for`].
pub async fn get_json(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Option<serde_json::Value> {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.ok()?.json().await.ok()
}

/// `Some(())` when the instant query `expr` returns at least one series from the
/// Prometheus at `prometheus`.
pub async fn query_has_data(client: &reqwest::Client, prometheus: &str, expr: &str) -> Option<()> {
    let body: serde_json::Value = client
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    (!body["data"]["result"].as_array()?.is_empty()).then_some(())
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `limit` with `logs`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, logs: &[&Process], mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            let tails: Vec<String> = logs.iter().map(|p| p.log_tail()).collect();
            panic!("timed out waiting for {what}\n{}", tails.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `alerts/koji.rules.yml` with every `for:` shortened to `for_override`, so a test sees
/// the real expressions fire in seconds.
pub fn fast_rules(repo: &Path, for_override: &str) -> String {
    std::fs::read_to_string(repo.join("alerts/koji.rules.yml"))
        .unwrap()
        .lines()
        .map(|line| match line.trim_start().strip_prefix("for: ") {
            Some(_) => format!(
                "{}for: {for_override}",
                &line[..line.len() - line.trim_start().len()]
            ),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A builder's /proc for koji-exporter's `[paths] procfs`, in `dir/proc`: the fixture's
/// meminfo, stat, vmstat and loadavg, for a test to rewrite as the builder changes.
pub fn builder_procfs(dir: &Path) -> PathBuf {
    let proc = dir.join("proc");
    std::fs::create_dir_all(&proc).unwrap();
    for file in ["meminfo", "stat", "vmstat", "loadavg"] {
        std::fs::copy(
            repo_root().join("tests/fixtures/proc").join(file),
            proc.join(file),
        )
        .unwrap();
    }
    proc
}

/// Starts koji-exporter as on the builder `host`, with only `builder_health` reading the
/// /proc at `proc` (see [`builder_procfs`]); returns it and its port.
pub fn start_builder_exporter(dir: &Path, proc: &Path, host: &str) -> (Process, u16) {
    let port = free_port();
    std::fs::write(
        dir.join("exporter.toml"),
        format!(
            "[paths]\nprocfs = \"{}\"\n[builder]\nhost_name = \"{host}\"\n\
             [collectors]\nkoji_db = false\nkoji_hub = false\nkoji_hosts = false\nkoji_tasks = false\n\
             pg_stat_activity = false\nbuilder_health = true\nfilesystems = false\n\
             services = false\nbuilddirs = false\n",
            proc.display()
        ),
    )
    .unwrap();
    let process = start_binary(
        dir,
        "koji-exporter",
        "koji-exporter",
        "exporter.toml",
        port,
        &[],
    );
    (process, port)
}

/// Starts Alertmanager routing every alert, without delay, to `webhook_url` with the bearer
/// token in `token_file`; returns it and its port.
pub fn start_alertmanager(dir: &Path, webhook_url: &str, token_file: &Path) -> (Process, u16) {
    start_alertmanager_with(dir, webhook_url, token_file, "")
}

/// [`start_alertmanager`] with extra `http_config` lines for the webhook (each starting
/// with ten spaces), e.g. a `tls_config` for an `https://` webhook.
pub fn start_alertmanager_with(
    dir: &Path,
    webhook_url: &str,
    token_file: &Path,
    http_config_extra: &str,
) -> (Process, u16) {
    let port = free_port();
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: remediator\n  group_by: ['alertname', 'instance', 'host', 'mountpoint']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: remediator\n    webhook_configs:\n      - url: {webhook_url}\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials_file: {}\n{http_config_extra}",
            token_file.display()
        ),
    )
    .unwrap();
    let process = Process::start(
        dir,
        "alertmanager",
        Path::new("prometheus-alertmanager"),
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.external-url=http://127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ],
    );
    (process, port)
}

/// The route's `group_by` of alerts/alertmanager.example.yml, as written there (e.g.
/// `['alertname', 'instance', 'host', 'mountpoint']`): the loops use the real grouping.
pub fn example_group_by() -> String {
    let text = std::fs::read_to_string(repo_root().join("alerts/alertmanager.example.yml"))
        .expect("alerts/alertmanager.example.yml");
    text.lines()
        .find_map(|line| line.trim().strip_prefix("group_by: "))
        .expect("a group_by in the example route")
        .to_owned()
}

/// One Alertmanager of a cluster on loopback: it gossips on `cluster_port` with the peers
/// on `peer_ports`, and posts every notification (the example's `group_by`, waits cut to
/// a second) to each of `webhook_urls` with the bearer token in `token_file`. Its log and
/// data are `<dir>/<name>*`; returns it and its web port.
pub fn start_alertmanager_in_cluster(
    dir: &Path,
    name: &str,
    webhook_urls: &[String],
    token_file: &Path,
    cluster_port: u16,
    peer_ports: &[u16],
) -> (Process, u16) {
    let port = free_port();
    let config = dir.join(format!("{name}.yml"));
    let webhooks: String = webhook_urls
        .iter()
        .map(|url| {
            format!(
                "      - url: {url}
        send_resolved: true
        max_alerts: 100
        http_config:
          authorization:
            type: Bearer
            credentials_file: {}
",
                token_file.display()
            )
        })
        .collect();
    std::fs::write(
        &config,
        format!(
            "route:
  receiver: remediators
  group_by: {}
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: remediators
    webhook_configs:
{webhooks}",
            example_group_by()
        ),
    )
    .unwrap();
    let mut args = vec![
        format!("--config.file={}", config.display()),
        format!(
            "--storage.path={}",
            dir.join(format!("{name}-data")).display()
        ),
        format!("--web.listen-address=127.0.0.1:{port}"),
        format!("--web.external-url=http://127.0.0.1:{port}"),
        format!("--cluster.listen-address=127.0.0.1:{cluster_port}"),
        format!("--cluster.advertise-address=127.0.0.1:{cluster_port}"),
        "--cluster.peer-timeout=2s".into(),
        "--cluster.settle-timeout=5s".into(),
        "--cluster.gossip-interval=100ms".into(),
        "--cluster.pushpull-interval=2s".into(),
    ];
    args.extend(
        peer_ports
            .iter()
            .map(|peer| format!("--cluster.peer=127.0.0.1:{peer}")),
    );
    let process = Process::start(dir, name, Path::new("prometheus-alertmanager"), &args);
    (process, port)
}

/// Starts Prometheus scraping `targets` (job name, port) every second, evaluating the real
/// alert rules with `for:` shortened to 2 s, alerting `alertmanager_port`; returns it and
/// its base URL.
pub fn start_prometheus(
    dir: &Path,
    targets: &[(&str, u16)],
    alertmanager_port: u16,
) -> (Process, String) {
    start_prometheus_with(dir, targets, alertmanager_port, "")
}

/// [`start_prometheus`] with extra lines in every scrape job (each starting with four
/// spaces), e.g. `scheme: https` and a `tls_config`.
pub fn start_prometheus_with(
    dir: &Path,
    targets: &[(&str, u16)],
    alertmanager_port: u16,
    job_extra: &str,
) -> (Process, String) {
    prometheus(dir, targets, alertmanager_port, job_extra, "2s", &[])
}

/// [`start_prometheus`] with parts of the rules' text replaced (`(from, to)`, each must
/// occur), e.g. a 30-minute window made seconds long for a loop that must see its alert
/// resolve.
pub fn start_prometheus_with_rewrites(
    dir: &Path,
    targets: &[(&str, u16)],
    alertmanager_port: u16,
    rewrites: &[(&str, &str)],
) -> (Process, String) {
    prometheus(dir, targets, alertmanager_port, "", "2s", rewrites)
}

/// [`start_prometheus`] with every `for:` set to `for_override` instead of 2 s, for a test
/// about a symptom that must not last long enough to fire.
pub fn start_prometheus_with_for(
    dir: &Path,
    targets: &[(&str, u16)],
    alertmanager_port: u16,
    for_override: &str,
) -> (Process, String) {
    prometheus(dir, targets, alertmanager_port, "", for_override, &[])
}

fn prometheus(
    dir: &Path,
    targets: &[(&str, u16)],
    alertmanager_port: u16,
    job_extra: &str,
    for_override: &str,
    rewrites: &[(&str, &str)],
) -> (Process, String) {
    let port = free_port();
    let rules = dir.join("koji.rules.yml");
    let mut text = fast_rules(&repo_root(), for_override);
    for (from, to) in rewrites {
        assert!(text.contains(from), "the rules have no {from:?}");
        text = text.replace(from, to);
    }
    std::fs::write(&rules, text).unwrap();
    let jobs: String = targets
        .iter()
        .map(|(job, target)| {
            format!("  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n{job_extra}")
        })
        .collect();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n\
             scrape_configs:\n{jobs}",
            rules.display()
        ),
    )
    .unwrap();
    let process = Process::start(
        dir,
        "prometheus",
        Path::new("prometheus"),
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.external-url=http://127.0.0.1:{port}"),
            "--rules.alert.resend-delay=1s".into(),
        ],
    );
    (process, format!("http://127.0.0.1:{port}"))
}

/// Whether Prometheus currently has the alert `alertname` pending or firing.
pub async fn alert_active(
    client: &reqwest::Client,
    prometheus: &str,
    alertname: &str,
) -> Option<bool> {
    let body: serde_json::Value = client
        .get(format!("{prometheus}/api/v1/alerts"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        body["data"]["alerts"]
            .as_array()?
            .iter()
            .any(|alert| alert["labels"]["alertname"] == alertname),
    )
}

/// What a [`json_sink`] has received, in order.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// A webhook (a chat bridge's stand-in, for notices) on `listener` that keeps every JSON
/// body posted to `/hook`; its URL and what it received.
pub async fn json_sink_on(listener: tokio::net::TcpListener) -> (String, Received) {
    let received = Received::default();
    let seen = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// [`json_sink_on`] a free loopback port.
pub async fn json_sink() -> (String, Received) {
    json_sink_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
}
