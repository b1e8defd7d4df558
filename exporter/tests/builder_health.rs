//! `builder_health` against procfs fixtures with known values, and against this machine's
//! real `/proc`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use koji_exporter::collectors::builder_health;
use koji_exporter::collectors::CollectorId;
use koji_exporter::config::Config;
use support::{find, scrape, value};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

async fn scrape_with_procfs(procfs: PathBuf) -> Vec<support::Sample> {
    let mut config = Config::default();
    config.paths.procfs = procfs;
    config.web.scrape_timeout = Duration::from_secs(2);
    let scraper = koji_exporter::scraper(config, vec![CollectorId::BuilderHealth]).unwrap();
    scrape(&scraper).await.1
}

#[tokio::test]
async fn fixture_values_are_exported_in_base_units() {
    let samples = scrape_with_procfs(fixture("proc")).await;
    assert_eq!(
        value(&samples, "koji_memory_total_bytes", &[]),
        16315068.0 * 1024.0
    );
    assert_eq!(
        value(&samples, "koji_memory_available_bytes", &[]),
        9437184.0 * 1024.0
    );
    assert_eq!(value(&samples, "koji_oom_kills_total", &[]), 7.0);
    assert_eq!(value(&samples, "koji_load1", &[]), 12.5);
    assert_eq!(value(&samples, "koji_cpus", &[]), 4.0);
    assert_eq!(
        value(
            &samples,
            "koji_exporter_collector_success",
            &[("collector", "builder_health")]
        ),
        1.0
    );
}

#[tokio::test]
async fn kernels_without_oom_kill_omit_the_counter() {
    let samples = scrape_with_procfs(fixture("proc-old-kernel")).await;
    assert!(find(&samples, "koji_oom_kills_total", &[]).is_empty());
    assert_eq!(value(&samples, "koji_cpus", &[]), 4.0);
}

#[tokio::test]
async fn a_missing_procfs_fails_only_this_collector() {
    let samples = scrape_with_procfs(PathBuf::from("/nonexistent/proc")).await;
    assert_eq!(
        value(
            &samples,
            "koji_exporter_collector_success",
            &[("collector", "builder_health")]
        ),
        0.0
    );
    assert!(find(&samples, "koji_memory_total_bytes", &[]).is_empty());
}

#[tokio::test]
async fn real_proc_agrees_with_the_system_tools() {
    let health = builder_health::read(Path::new("/proc")).await.unwrap();
    let online = Command::new("getconf")
        .arg("_NPROCESSORS_ONLN")
        .output()
        .unwrap();
    let online: f64 = String::from_utf8_lossy(&online.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(health.cpus, online);
    // `free -b` reports MemTotal in bytes.
    let free = Command::new("free").arg("-b").output().unwrap();
    let free = String::from_utf8_lossy(&free.stdout);
    let total: f64 = free
        .lines()
        .find(|line| line.starts_with("Mem:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap();
    assert_eq!(health.memory_total_bytes, total);
    assert!(health.memory_available_bytes > 0.0);
    assert!(health.memory_available_bytes <= health.memory_total_bytes);
    assert!(health.load1 >= 0.0);
}

#[tokio::test]
async fn builder_info_names_the_koji_host() {
    let mut config = Config::default();
    config.builder.host_name = Some("buildvm-x86-07.example.org".into());
    let scraper = koji_exporter::scraper(config, vec![CollectorId::BuilderHealth]).unwrap();
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(
        value(
            &samples,
            "koji_builder_info",
            &[("host", "buildvm-x86-07.example.org")]
        ),
        1.0
    );
    // Without configuration: this machine's (fully qualified, where resolvable) name.
    let scraper =
        koji_exporter::scraper(Config::default(), vec![CollectorId::BuilderHealth]).unwrap();
    let (_, samples) = scrape(&scraper).await;
    let node = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let host = &find(&samples, "koji_builder_info", &[])[0].labels["host"];
    assert!(host.starts_with(&node), "{host} vs {node}");
}
