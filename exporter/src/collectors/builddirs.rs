//! `builddirs`: the latest background scan of each build-directory root, and the mount
//! points still active below it (leftover chroot mounts: a mock root's `/proc`, a bind
//! mount of shared storage), read fresh from the mount table at every scrape.

use std::time::UNIX_EPOCH;

use prometheus_client::encoding::EncodeLabelSet;

use super::{CollectContext, CollectError};
use crate::metric_families::{Families, Gauges};
use crate::mounts::mounts_below;

/// Label set of the build-dir gauges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RootLabels {
    /// The scanned root.
    pub root: String,
}

/// Serves the latest scans.
pub async fn collect(context: &CollectContext) -> Result<Families, CollectError> {
    let mounts = context.mounts().await?;
    let gauge = |name, help| Gauges::<RootLabels>::new(name, help);
    let mut bytes = gauge(
        "koji_builddir_bytes",
        "Allocated bytes below the root (like du -x).",
    );
    let mut entries = gauge("koji_builddir_entries", "Top-level entries in the root.");
    let mut stale_bytes = gauge(
        "koji_builddir_stale_bytes",
        "Bytes of top-level entries unchanged for longer than the retention.",
    );
    let mut stale_entries = gauge(
        "koji_builddir_stale_entries",
        "Top-level entries unchanged (newest mtime inside) for longer than the retention.",
    );
    let mut errors = gauge(
        "koji_builddir_scan_errors",
        "Entries the last scan could not read (permissions, depth).",
    );
    let mut scanned_at = gauge(
        "koji_builddir_scan_timestamp_seconds",
        "When the last scan of the root finished.",
    );
    let mut duration = gauge(
        "koji_builddir_scan_duration_seconds",
        "How long the last scan of the root took.",
    );
    let mut live_mounts = gauge(
        "koji_builddir_mounts",
        "Mount points still active below the root (leftover chroot mounts).",
    );
    for root in &context.config.builddirs.roots {
        let labels = RootLabels {
            root: root.display().to_string(),
        };
        live_mounts.push(labels, mounts_below(root, mounts).count() as f64);
    }
    for scan in context.state.builddirs.snapshot() {
        let labels = RootLabels {
            root: scan.root.display().to_string(),
        };
        bytes.push(labels.clone(), scan.bytes as f64);
        entries.push(labels.clone(), scan.entries.len() as f64);
        stale_bytes.push(labels.clone(), scan.stale_bytes as f64);
        stale_entries.push(labels.clone(), scan.stale_entries as f64);
        errors.push(labels.clone(), scan.errors as f64);
        let finished = scan
            .finished_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        scanned_at.push(labels.clone(), finished.as_secs_f64());
        duration.push(labels, scan.duration.as_secs_f64());
    }
    Ok(vec![
        bytes.boxed(),
        entries.boxed(),
        stale_bytes.boxed(),
        stale_entries.boxed(),
        errors.boxed(),
        scanned_at.boxed(),
        duration.boxed(),
        live_mounts.boxed(),
        Gauges::single(
            "koji_builddir_retention_seconds",
            "Age beyond which a build-dir entry counts as stale (configured).",
            context.config.builddirs.retention.as_secs_f64(),
        ),
    ])
}
