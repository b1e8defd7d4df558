//! `services` against a procfs fixture with known start times, and against this machine's
//! real process table with daemons the test starts itself.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use koji_exporter::collectors::CollectorId;
use koji_exporter::config::Config;
use support::{find, scrape, value, Sample};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

async fn scrape_services(procfs: PathBuf, names: &[&str]) -> Vec<Sample> {
    let mut config = Config::default();
    config.paths.procfs = procfs;
    config.services.names = names.iter().map(|n| n.to_string()).collect();
    let scraper = koji_exporter::scraper(config, vec![CollectorId::Services]).unwrap();
    scrape(&scraper).await.1
}

#[tokio::test]
async fn fixture_processes_with_known_start_times() {
    let samples = scrape_services(
        fixture("proc-services"),
        &["kojid", "kojira", "httpd", "tmux: server (1)"],
    )
    .await;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let boot = 1_764_300_000.0;
    let up = |service: &str| value(&samples, "koji_service_up", &[("service", service)]);
    let started = |service: &str| {
        value(
            &samples,
            "koji_service_start_time_seconds",
            &[("service", service)],
        )
    };
    assert_eq!(up("kojid"), 1.0);
    assert_eq!(started("kojid"), boot + 5000.0 / ticks);
    // The oldest httpd is the parent daemon, not a younger worker.
    assert_eq!(up("httpd"), 1.0);
    assert_eq!(started("httpd"), boot + 3000.0 / ticks);
    assert_eq!(up("tmux: server (1)"), 1.0);
    assert_eq!(up("kojira"), 0.0);
    assert!(find(
        &samples,
        "koji_service_start_time_seconds",
        &[("service", "kojira")]
    )
    .is_empty());
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn real_daemons_started_by_the_test() {
    let dir = tempfile::tempdir().unwrap();
    // A binary named like the daemon, and a Python script run through the interpreter.
    let daemon = dir.path().join("koji-test-daemon");
    std::fs::copy("/bin/sleep", &daemon).unwrap();
    let script = dir.path().join("koji-test-script");
    std::fs::write(&script, "import time\ntime.sleep(30)\n").unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let _daemon = Running(Command::new(&daemon).arg("30").spawn().unwrap());
    let _script = Running(Command::new("python3").arg(&script).spawn().unwrap());
    // Until both have exec'ed (a busy machine takes a while), the children carry the
    // test's own name.
    let mut samples = Vec::new();
    for _ in 0..100 {
        samples = scrape_services(
            PathBuf::from("/proc"),
            &["koji-test-daemon", "koji-test-script", "koji-test-absent"],
        )
        .await;
        let up = |s: &str| value(&samples, "koji_service_up", &[("service", s)]);
        if up("koji-test-daemon") == 1.0 && up("koji-test-script") == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for service in ["koji-test-daemon", "koji-test-script"] {
        assert_eq!(
            value(&samples, "koji_service_up", &[("service", service)]),
            1.0
        );
        let started = value(
            &samples,
            "koji_service_start_time_seconds",
            &[("service", service)],
        );
        assert!(
            (started - now).abs() < 3.0,
            "{service} started {started}, now {now}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "koji_service_up",
            &[("service", "koji-test-absent")]
        ),
        0.0
    );
}
