//! `filesystems`: size, free space, inodes, read-only flag and errors of each mount that
//! holds a watched path, and which path lives on which mount.
//!
//! The runbook's disk-space sections: a builder's `/`, `/var/lib/mock` and `/mnt/build`
//! (local: cleanable) and the build system's `/mnt/koji`, `/pub/*` and scratch (shared: a
//! human must act). A hung mount reports `koji_filesystem_device_error 1` within the stat
//! timeout while the other mounts are still reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prometheus_client::encoding::EncodeLabelSet;

use super::{CollectContext, CollectError};
use crate::config::WatchedPath;
use crate::metric_families::{Families, Gauges, Infos};
use crate::mounts::{mount_for, normalize, Mount};
use crate::statfs_probe::{FsStats, ProbeError};

/// Label set of the per-mount gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
pub struct MountLabels {
    /// Mount point.
    pub mountpoint: String,
    /// Mount source.
    pub device: String,
    /// File system type.
    pub fstype: String,
}

/// Label set of `koji_filesystem_role_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RoleLabels {
    /// The watched path as configured.
    pub path: String,
    /// The mount point holding it.
    pub mountpoint: String,
    /// `local` or `shared`.
    pub role: String,
}

/// What the scrape learnt about one mount.
#[derive(Debug, Default)]
struct MountReport {
    stats: Option<FsStats>,
    error: bool,
}

/// Probes every watched path concurrently and reports their mounts.
pub async fn collect(context: &CollectContext) -> Result<Families, CollectError> {
    let mounts = context.mounts().await?;
    let settings = &context.config.filesystems;
    let probes = settings.paths.iter().map(|watched| async move {
        let outcome = context
            .state
            .statfs
            .probe(&watched.path, settings.stat_timeout)
            .await;
        (watched, outcome)
    });
    let outcomes = futures::future::join_all(probes).await;

    let mut reports: BTreeMap<MountLabels, MountReport> = BTreeMap::new();
    let mut roles = Infos::new(
        "koji_filesystem_role_info",
        "Which mount holds each watched path, and whose problem it is when full (local, shared).",
    );
    for (watched, outcome) in outcomes {
        let (resolved, stats) = match outcome {
            Ok(probed) => (probed.canonical, Some(probed.stats)),
            Err(ProbeError::NotFound) => {
                note_missing(context, &watched.path, true);
                continue;
            }
            Err(error) => {
                tracing::debug!(path = %watched.path.display(), ?error, "file system probe failed");
                (normalize(&watched.path), None)
            }
        };
        note_missing(context, &watched.path, false);
        let Some(mount) = mount_for(&resolved, mounts) else {
            continue;
        };
        let labels = mount_labels(mount);
        roles.push(role_labels(watched, mount));
        let report = reports.entry(labels).or_default();
        match stats {
            Some(stats) => report.stats = report.stats.or(Some(stats)),
            None => report.error = true,
        }
    }
    Ok(families(reports, roles))
}

fn mount_labels(mount: &Mount) -> MountLabels {
    MountLabels {
        mountpoint: mount.mount_point.display().to_string(),
        device: mount.device.clone(),
        fstype: mount.fstype.clone(),
    }
}

fn role_labels(watched: &WatchedPath, mount: &Mount) -> RoleLabels {
    RoleLabels {
        path: watched.path.display().to_string(),
        mountpoint: mount.mount_point.display().to_string(),
        role: watched.role.label().to_string(),
    }
}

/// Logs a missing watched path once, and again only after it has come and gone.
fn note_missing(context: &CollectContext, path: &Path, missing: bool) {
    let mut logged = context
        .state
        .missing_paths
        .lock()
        .expect("missing paths lock");
    if missing && logged.insert(PathBuf::from(path)) {
        tracing::info!(path = %path.display(), "watched path does not exist; skipped");
    } else if !missing {
        logged.remove(path);
    }
}

fn families(reports: BTreeMap<MountLabels, MountReport>, roles: Infos<RoleLabels>) -> Families {
    let mut size = Gauges::new("koji_filesystem_size_bytes", "File system size.");
    let mut avail = Gauges::new(
        "koji_filesystem_avail_bytes",
        "Space available to unprivileged users.",
    );
    let mut files = Gauges::new("koji_filesystem_files", "Total inodes.");
    let mut files_free = Gauges::new("koji_filesystem_files_free", "Free inodes.");
    let mut readonly = Gauges::new(
        "koji_filesystem_readonly",
        "Whether the mount is read-only.",
    );
    let mut device_error = Gauges::new(
        "koji_filesystem_device_error",
        "Whether statvfs failed or hung for the mount this scrape.",
    );
    for (labels, report) in reports {
        device_error.push(labels.clone(), f64::from(u8::from(report.error)));
        if let Some(stats) = report.stats {
            size.push(labels.clone(), stats.size_bytes);
            avail.push(labels.clone(), stats.avail_bytes);
            files.push(labels.clone(), stats.files);
            files_free.push(labels.clone(), stats.files_free);
            readonly.push(labels, f64::from(u8::from(stats.readonly)));
        }
    }
    vec![
        size.boxed(),
        avail.boxed(),
        files.boxed(),
        files_free.boxed(),
        readonly.boxed(),
        device_error.boxed(),
        roles.boxed(),
    ]
}
