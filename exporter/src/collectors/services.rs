//! `services`: whether each configured daemon (kojid, kojira, httpd, plague-builder) runs,
//! and since when, from the process table.
//!
//! kojid and kojira are Python scripts: the kernel names the process after the script
//! when it is started directly (`comm`), but `python3 /usr/sbin/kojid` shows the script
//! only as the second argument, so both are matched. The oldest matching process is the
//! daemon itself (httpd's workers are younger). The procfs root is a parameter so tests
//! feed fixtures; processes that exit mid-scan are skipped.

use std::collections::BTreeMap;
use std::path::Path;

use prometheus_client::encoding::EncodeLabelSet;

use super::{CollectContext, CollectError};
use crate::metric_families::{Families, Gauges};

/// Label set of the service gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ServiceLabels {
    /// Configured process name.
    pub service: String,
}

/// One process as read from procfs.
#[derive(Debug, Clone, PartialEq)]
struct Process {
    comm: String,
    argv: Vec<String>,
    /// Start time in clock ticks since boot.
    start_ticks: u64,
}

/// Scans the process table: each wanted name, with the start time (seconds since the epoch)
/// of its oldest process, or `None` when none runs.
pub fn scan(
    procfs: &Path,
    names: &[String],
) -> Result<BTreeMap<String, Option<f64>>, CollectError> {
    let boot_time = boot_time(procfs)?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let mut oldest: BTreeMap<String, Option<u64>> =
        names.iter().map(|name| (name.clone(), None)).collect();
    let entries = std::fs::read_dir(procfs).map_err(|source| CollectError::Proc {
        path: procfs.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // Gone already, or a kernel thread: nothing to match.
        let Some(process) = read_process(&procfs.join(pid)) else {
            continue;
        };
        for (name, start) in oldest.iter_mut() {
            if matches_name(&process, name) {
                *start = Some(start.map_or(process.start_ticks, |s| s.min(process.start_ticks)));
            }
        }
    }
    Ok(oldest
        .into_iter()
        .map(|(name, start)| (name, start.map(|t| boot_time + t as f64 / ticks)))
        .collect())
}

/// `btime` from `/proc/stat`: boot time in seconds since the epoch.
fn boot_time(procfs: &Path) -> Result<f64, CollectError> {
    let path = procfs.join("stat");
    let stat = std::fs::read_to_string(&path).map_err(|source| CollectError::Proc {
        path: path.clone(),
        source,
    })?;
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| CollectError::Malformed(path.display().to_string()))
}

fn read_process(dir: &Path) -> Option<Process> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split at the last `)`.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    // Fields after comm start at field 3 (state); starttime is field 22.
    let start_ticks = stat
        .get(close + 1..)?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let argv = cmdline
        .split(|&byte| byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    Some(Process {
        comm,
        argv,
        start_ticks,
    })
}

fn basename(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

fn matches_name(process: &Process, name: &str) -> bool {
    // comm is cut to 15 bytes by the kernel.
    let comm_matches = process.comm == name
        || (name.len() > 15 && process.comm.len() == 15 && name.starts_with(&process.comm));
    let argv0 = process.argv.first().map(|a| basename(a));
    let interpreted = argv0.is_some_and(|a| a.starts_with("python") || a == "perl" || a == "sh")
        && process.argv.get(1).map(|a| basename(a)) == Some(name);
    comm_matches || argv0 == Some(name) || interpreted
}

/// Reports each configured service.
pub async fn collect(context: &CollectContext) -> Result<Families, CollectError> {
    let procfs = context.config.paths.procfs.clone();
    let names = context.config.services.names.clone();
    let found = tokio::task::spawn_blocking(move || scan(&procfs, &names))
        .await
        .map_err(|error| CollectError::Malformed(format!("process scan: {error}")))??;
    let mut up = Gauges::new(
        "koji_service_up",
        "Whether a process of the service is running.",
    );
    let mut started = Gauges::new(
        "koji_service_start_time_seconds",
        "When the service's oldest process started.",
    );
    for (service, start) in found {
        let labels = ServiceLabels { service };
        up.push(labels.clone(), f64::from(u8::from(start.is_some())));
        if let Some(start) = start {
            started.push(labels, start);
        }
    }
    Ok(vec![up.boxed(), started.boxed()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(comm: &str, argv: &[&str]) -> Process {
        Process {
            comm: comm.into(),
            argv: argv.iter().map(|a| a.to_string()).collect(),
            start_ticks: 1,
        }
    }

    #[test]
    fn names_match_by_comm_argv0_or_script() {
        assert!(matches_name(
            &process("kojid", &["/usr/bin/python3", "/usr/sbin/kojid", "--fg"]),
            "kojid"
        ));
        assert!(matches_name(
            &process("python3", &["python3", "/usr/sbin/kojid"]),
            "kojid"
        ));
        assert!(matches_name(
            &process("httpd", &["/usr/sbin/httpd", "-DFOREGROUND"]),
            "httpd"
        ));
        assert!(matches_name(
            &process("plague-builder", &[]),
            "plague-builder"
        ));
        assert!(!matches_name(
            &process("bash", &["bash", "-c", "kojid"]),
            "kojid"
        ));
        assert!(!matches_name(
            &process("kojid-helper", &["kojid-helper"]),
            "kojid"
        ));
        assert!(!matches_name(
            &process("vim", &["vim", "/usr/sbin/kojid"]),
            "kojid"
        ));
    }
}
