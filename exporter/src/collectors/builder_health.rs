//! `builder_health`: memory, OOM kills, load and CPUs of this machine, from `/proc`.
//!
//! The runbook's OOM section and kojid's own load check (it refuses tasks when the 1-minute
//! load exceeds four times the CPU count) look at exactly these. The procfs root is a
//! parameter (`paths.procfs`, `--path.procfs`) so tests feed fixtures.

use std::path::Path;

use prometheus_client::encoding::EncodeLabelSet;

use super::{CollectContext, CollectError};
use crate::builder_identity::fully_qualified_host_name;
use crate::metric_families::{Counters, Families, Gauges, Infos, NoLabels};

/// What this collector reads, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct BuilderHealth {
    /// `MemTotal` in bytes.
    pub memory_total_bytes: f64,
    /// `MemAvailable` in bytes: what can be allocated without swapping.
    pub memory_available_bytes: f64,
    /// `oom_kill` from vmstat (Linux 4.13+); absent on older kernels.
    pub oom_kills: Option<f64>,
    /// 1-minute load average.
    pub load1: f64,
    /// Online CPUs (the `cpuN` lines of `/proc/stat`).
    pub cpus: f64,
}

/// Reads and parses the procfs files under `procfs`, in one trip to a blocking thread.
pub async fn read(procfs: &Path) -> Result<BuilderHealth, CollectError> {
    let procfs = procfs.to_path_buf();
    tokio::task::spawn_blocking(move || read_blocking(&procfs))
        .await
        .map_err(|error| CollectError::Malformed(format!("procfs read: {error}")))?
}

fn read_blocking(procfs: &Path) -> Result<BuilderHealth, CollectError> {
    let read = |name: &str| {
        let path = procfs.join(name);
        std::fs::read_to_string(&path).map_err(|source| CollectError::Proc { path, source })
    };
    let (meminfo, vmstat, loadavg, stat) = (
        read("meminfo")?,
        read("vmstat")?,
        read("loadavg")?,
        read("stat")?,
    );
    let malformed = |file: &str| CollectError::Malformed(procfs.join(file).display().to_string());
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kib| kib * 1024.0)
    };
    Ok(BuilderHealth {
        memory_total_bytes: kib("MemTotal").ok_or_else(|| malformed("meminfo"))?,
        memory_available_bytes: kib("MemAvailable").ok_or_else(|| malformed("meminfo"))?,
        oom_kills: vmstat
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|value| value.trim().parse().ok()),
        load1: loadavg
            .split_whitespace()
            .next()
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| malformed("loadavg"))?,
        cpus: stat
            .lines()
            .filter(|line| {
                line.strip_prefix("cpu")
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count() as f64,
    })
}

/// Label set of `koji_builder_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct BuilderLabels {
    /// The Koji host name this machine builds as.
    pub host: String,
}

/// The configured Koji host name, else this machine's FQDN, looked up once.
async fn builder_name(context: &CollectContext) -> String {
    if let Some(name) = &context.config.builder.host_name {
        return name.clone();
    }
    context
        .state
        .builder_name
        .get_or_init(|| async {
            tokio::task::spawn_blocking(fully_qualified_host_name)
                .await
                .unwrap_or_else(|_| "localhost".into())
        })
        .await
        .clone()
}

/// Reads this machine's health.
pub async fn collect(context: &CollectContext) -> Result<Families, CollectError> {
    let health = read(&context.config.paths.procfs).await?;
    let host = builder_name(context).await;
    let mut families = vec![
        Infos::new(
            "koji_builder_info",
            "The Koji host name this machine builds as, for joins with koji_host_* series.",
        )
        .with(BuilderLabels { host })
        .boxed(),
        Gauges::single(
            "koji_memory_total_bytes",
            "Physical memory of the machine.",
            health.memory_total_bytes,
        ),
        Gauges::single(
            "koji_memory_available_bytes",
            "Memory available for new work without swapping (MemAvailable).",
            health.memory_available_bytes,
        ),
        Gauges::single("koji_load1", "1-minute load average.", health.load1),
        Gauges::single("koji_cpus", "Online CPUs.", health.cpus),
    ];
    if let Some(kills) = health.oom_kills {
        families.push(
            Counters::<NoLabels>::new(
                "koji_oom_kills_total",
                "Processes the kernel's OOM killer has killed since boot.",
            )
            .with([], kills)
            .boxed(),
        );
    }
    Ok(families)
}
