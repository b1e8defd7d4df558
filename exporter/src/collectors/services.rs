//! `services`: whether each configured daemon (kojid, kojira, httpd, plague-builder) runs,
//! and since when, from the process table.
//!
//! kojid and kojira are Python scripts: the kernel names the process after the script
//! when it is started directly (`comm`), but `python3 /usr/sbin/kojid` shows the script
//! only as the second argument, so both are matched; the command line is read only for
//! interpreters, which keeps the scan to one read per process. The oldest matching process is the
//! daemon itself (httpd's workers are younger). The procfs root is a parameter so tests
//! feed fixtures; processes that exit mid-scan are skipped.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use prometheus_client::encoding::EncodeLabelSet;
use rustix::fs::{Dir, Mode, OFlags};

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
    let unreadable = |errno: rustix::io::Errno| CollectError::Proc {
        path: procfs.to_path_buf(),
        source: errno.into(),
    };
    // Each process's files are opened relative to the procfs directory, which saves
    // resolving the procfs path again for every process.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let proc_fd = rustix::fs::open(procfs, flags, Mode::empty()).map_err(unreadable)?;
    let mut entries = Dir::read_from(&proc_fd).map_err(unreadable)?;
    let mut buffer = vec![0u8; 4096];
    while let Some(Ok(entry)) = entries.read() {
        let pid = entry.file_name().to_bytes();
        if pid.is_empty() || !pid.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let pid = String::from_utf8_lossy(pid);
        // Gone already: nothing to match.
        let Some(comm) = read_comm(proc_fd.as_fd(), &pid, &mut buffer) else {
            continue;
        };
        let interpreter = is_interpreter(&comm);
        if !interpreter && !oldest.keys().any(|name| comm_matches(&comm, name)) {
            continue;
        }
        let Some(start_ticks) = read_start_ticks(proc_fd.as_fd(), &pid, &mut buffer) else {
            continue;
        };
        let argv = if interpreter {
            read_argv(&procfs.join(&*pid))
        } else {
            Vec::new()
        };
        let process = Process {
            comm,
            argv,
            start_ticks,
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

/// Reads `PID/comm`, which the kernel produces far more cheaply than `PID/stat`.
fn read_comm(proc_fd: BorrowedFd<'_>, pid: &str, buffer: &mut [u8]) -> Option<String> {
    let text = read_small(proc_fd, &format!("{pid}/comm"), buffer)?;
    Some(text.trim_end_matches('\n').to_string())
}

/// The start time in clock ticks since boot, from `PID/stat`.
fn read_start_ticks(proc_fd: BorrowedFd<'_>, pid: &str, buffer: &mut [u8]) -> Option<u64> {
    let stat = read_small(proc_fd, &format!("{pid}/stat"), buffer)?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split at the last
    // `)`; the fields after it start at field 3 (state), and starttime is field 22.
    let close = stat.rfind(')')?;
    stat.get(close + 1..)?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Reads a small procfs file relative to the procfs directory into `buffer`.
fn read_small<'b>(proc_fd: BorrowedFd<'_>, name: &str, buffer: &'b mut [u8]) -> Option<&'b str> {
    let file = rustix::fs::openat(
        proc_fd,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let length = rustix::io::read(&file, &mut *buffer).ok()?;
    std::str::from_utf8(&buffer[..length]).ok()
}

/// Reads the command line; needed only when the process may be an interpreter running a
/// daemon's script, which saves a read for nearly every process.
fn read_argv(dir: &Path) -> Vec<String> {
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    cmdline
        .split(|&byte| byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// Process names under which a daemon's script may run.
fn is_interpreter(comm: &str) -> bool {
    comm.starts_with("python") || comm == "perl" || comm == "sh" || comm == "bash"
}

fn basename(arg: &str) -> &str {
    arg.rsplit('/').next().unwrap_or(arg)
}

/// comm is the executable's (or script's) name, cut to 15 bytes by the kernel.
fn comm_matches(comm: &str, name: &str) -> bool {
    comm == name || (name.len() > 15 && comm.len() == 15 && name.starts_with(comm))
}

fn matches_name(process: &Process, name: &str) -> bool {
    let argv0 = process.argv.first().map(|a| basename(a));
    let interpreted =
        argv0.is_some_and(is_interpreter) && process.argv.get(1).map(|a| basename(a)) == Some(name);
    comm_matches(&process.comm, name) || interpreted
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
