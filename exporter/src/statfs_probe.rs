//! `statvfs` off the async runtime, with a timeout, that never piles up threads on a
//! hung mount.
//!
//! A dead NFS server (or FUSE daemon) makes `statvfs` block in the kernel, possibly for
//! ever. Each probe runs on a blocking thread; the scrape waits at most the timeout. While
//! a probe of a path is still stuck, the next scrapes do not start another one for that
//! path: they report the mount as failing at once, so a hung mount costs one thread, not
//! one per scrape.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What `statvfs` says about a file system, in base units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsStats {
    /// Total size in bytes.
    pub size_bytes: f64,
    /// Bytes available to unprivileged users.
    pub avail_bytes: f64,
    /// Total inodes.
    pub files: f64,
    /// Free inodes.
    pub files_free: f64,
    /// Mounted read-only.
    pub readonly: bool,
}

/// The outcome of probing one path.
#[derive(Debug)]
pub enum ProbeError {
    /// The path does not exist.
    NotFound,
    /// No answer within the timeout.
    Timeout,
    /// An earlier probe of this path is still blocked in the kernel.
    StillStuck,
    /// Any other error from the kernel.
    Io(std::io::Error),
}

/// A probe result: the path with symlinks resolved, and its file system's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    /// The path as the kernel resolved it.
    pub canonical: PathBuf,
    /// Its file system's figures.
    pub stats: FsStats,
}

/// Runs probes and remembers which are stuck.
#[derive(Debug, Default, Clone)]
pub struct StatfsProbe {
    in_flight: Arc<Mutex<HashSet<PathBuf>>>,
}

impl StatfsProbe {
    /// Resolves `path` and stats its file system, giving up after `timeout`.
    pub async fn probe(&self, path: &Path, timeout: Duration) -> Result<Probed, ProbeError> {
        if !self.lock().insert(path.to_path_buf()) {
            return Err(ProbeError::StillStuck);
        }
        let in_flight = self.in_flight.clone();
        let owned = path.to_path_buf();
        let task = tokio::task::spawn_blocking(move || {
            let result = stat_path(&owned);
            // Cleared by the thread itself, so a probe that outlives its timeout frees the
            // path only when the kernel finally answers.
            in_flight.lock().expect("in-flight lock").remove(&owned);
            result
        });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(ProbeError::Io(std::io::Error::other(join_error))),
            Err(_) => Err(ProbeError::Timeout),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<PathBuf>> {
        self.in_flight.lock().expect("in-flight lock")
    }
}

fn stat_path(path: &Path) -> Result<Probed, ProbeError> {
    let not_found = |error: std::io::Error| match error.kind() {
        std::io::ErrorKind::NotFound => ProbeError::NotFound,
        _ => ProbeError::Io(error),
    };
    let canonical = std::fs::canonicalize(path).map_err(not_found)?;
    let stat = rustix::fs::statvfs(&canonical).map_err(|errno| not_found(errno.into()))?;
    let fragment = stat.f_frsize as f64;
    Ok(Probed {
        canonical,
        stats: FsStats {
            size_bytes: stat.f_blocks as f64 * fragment,
            avail_bytes: stat.f_bavail as f64 * fragment,
            files: stat.f_files as f64,
            files_free: stat.f_ffree as f64,
            readonly: stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        },
    })
}
