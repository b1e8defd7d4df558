//! The exporter's real output, from a fixed Koji fixture with a hostile host name:
//! compared with the golden file, parsed by the official strict OpenMetrics parser, and
//! linted by `promtool check metrics`.
//!
//! `UPDATE_GOLDEN=1` rewrites `tests/golden/hub.metrics`.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use koji_exporter::collectors::CollectorId;
use koji_exporter::scrape::Format;
use koji_testkit::populate::{add_host, add_task};
use koji_testkit::{HostSpec, KojiVersion, TaskSpec, TaskState, TestDb};
use support::config_for;

/// Families whose values change from run to run (ages, timestamps, durations, other
/// tests' connections) and so are left out of the golden file.
const NON_DETERMINISTIC: &[&str] = &[
    "koji_exporter_collector_duration_seconds",
    // Asserted against pg_postmaster_start_time() in tests/koji_hub_probe.rs.
    "koji_db_server_start_time_seconds",
    "koji_host_last_update_timestamp_seconds",
    "koji_task_oldest_free_age_seconds",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn fixture() -> TestDb {
    let version = KojiVersion::V1_33;
    let db = TestDb::koji("golden", version).await.unwrap();
    let mut a = HostSpec::new("buildvm-a64-01.example.org");
    a.arches = "aarch64".into();
    a.capacity = 6.0;
    a.previous_capacity = Some(4.0);
    a.task_load = 2.5;
    a.channels = vec!["default".into(), "createrepo".into()];
    let a_id = add_host(&db.client, version, &a).await.unwrap();
    let mut b = HostSpec::new("buildvm-x86-02.example.org");
    b.ready = false;
    let b_id = add_host(&db.client, version, &b).await.unwrap();
    let mut hostile = HostSpec::new("q\"uote\\back\nnew-λ");
    hostile.enabled = false;
    add_host(&db.client, version, &hostile).await.unwrap();
    for (state, channel, host_id) in [
        (TaskState::Free, "default", None),
        (TaskState::Free, "default", None),
        (TaskState::Free, "maven", None),
        (TaskState::Open, "default", Some(a_id)),
        (TaskState::Assigned, "createrepo", Some(a_id)),
        (TaskState::Open, "default", Some(b_id)),
        (TaskState::Closed, "default", Some(b_id)),
    ] {
        let spec = TaskSpec {
            state,
            channel: channel.into(),
            host_id,
            age_seconds: 60.0,
        };
        add_task(&db.client, &spec).await.unwrap();
    }
    db
}

/// Drops every line (metadata and samples) of the non-deterministic families.
fn filter_non_deterministic(text: &str) -> String {
    text.lines()
        .filter(|line| {
            let name = match line.strip_prefix("# ") {
                Some(comment) => comment.split_whitespace().nth(1).unwrap_or(""),
                None => line.split(['{', ' ']).next().unwrap_or(""),
            };
            !NON_DETERMINISTIC.contains(&name)
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

#[tokio::test]
async fn golden_metrics_for_a_fixed_fixture() {
    let db = fixture().await;
    let collectors = vec![
        CollectorId::KojiDb,
        CollectorId::KojiHosts,
        CollectorId::KojiTasks,
    ];
    let scraper =
        koji_exporter::scraper(config_for(&db.url, Duration::from_secs(5)), collectors).unwrap();
    let text = scraper
        .scrape(Duration::from_secs(5), Format::OpenMetrics)
        .await;
    compare_with_golden(&text, "hub.metrics");
}

/// The local collectors on procfs fixtures: everything is fixed but collector durations.
#[tokio::test]
async fn golden_metrics_for_builder_fixtures() {
    let mut config = koji_exporter::config::Config::default();
    config.paths.procfs = repo_root().join("tests/fixtures/proc-services");
    config.builder.host_name = Some("buildvm-x86-01.example.org".into());
    let collectors = vec![CollectorId::BuilderHealth, CollectorId::Services];
    let scraper = koji_exporter::scraper(config, collectors).unwrap();
    let text = scraper
        .scrape(Duration::from_secs(5), Format::OpenMetrics)
        .await;
    compare_with_golden(&text, "builder.metrics");
}

/// Compares scraped `text`, non-deterministic families dropped, with `tests/golden/NAME`
/// (rewritten first under `UPDATE_GOLDEN=1`), and lints the golden file with promtool.
fn compare_with_golden(text: &str, name: &str) {
    let actual = filter_non_deterministic(text);
    let golden = repo_root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).expect("golden file; UPDATE_GOLDEN=1 makes it");
    assert_eq!(actual, expected, "metrics differ from {}", golden.display());
    let lint = promtool_check(&expected);
    assert!(
        lint.is_empty(),
        "promtool complaints about the golden file: {lint:?}"
    );
}

/// Runs `promtool check metrics` and returns its complaints, without the one it always
/// makes about OpenMetrics counters (their HELP sits on the family, not `NAME_total`).
fn promtool_check(text: &str) -> Vec<String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; tools/install-test-deps installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let complaints: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&output.stderr).lines())
        .map(str::to_string)
        .filter(|line| !line.trim().is_empty())
        .filter(|line| !(line.contains("_total") && line.contains("no help text")))
        .collect();
    complaints
}

#[tokio::test]
async fn real_output_passes_the_strict_openmetrics_parser_and_promtool() {
    let db = fixture().await;
    let scraper = support::hub_scraper(config_for(&db.url, Duration::from_secs(5)));
    for format in [Format::OpenMetrics, Format::PrometheusText] {
        let text = scraper.scrape(Duration::from_secs(5), format).await;
        assert!(
            text.contains("q\\\"uote\\\\back\\nnew-λ"),
            "escaped name in {text}"
        );
        let lint = promtool_check(&text);
        assert!(
            lint.is_empty(),
            "{format:?}: promtool complaints: {lint:?}\n{text}"
        );
        if format == Format::OpenMetrics {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &text).unwrap();
            let output = Command::new("python3")
                .arg(repo_root().join("tests/openmetrics_check.py"))
                .arg(file.path())
                .output()
                .expect("python3");
            assert!(
                output.status.success(),
                "strict parser rejected the output: {}\n{text}",
                String::from_utf8_lossy(&output.stderr)
            );
            let families = String::from_utf8_lossy(&output.stdout);
            assert!(families.contains("koji_host_info gauge 3"), "{families}");
            assert!(families.contains("koji_db_connections gauge"), "{families}");
        }
    }
}
