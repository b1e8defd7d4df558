//! Runs the build-directory scan in the background, on an interval, never during a scrape:
//! walking a million files takes seconds to minutes, a scrape must take milliseconds. The
//! `builddirs` collector serves the latest result with its timestamp.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::builddir_scan::{scan_root, RootScan};
use crate::config::BuilddirsConfig;

/// The latest scan of each root, shared with the collector.
#[derive(Debug, Default, Clone)]
pub struct ScanResults {
    latest: Arc<RwLock<BTreeMap<PathBuf, RootScan>>>,
}

impl ScanResults {
    /// The latest scan of every root that could be scanned.
    pub fn snapshot(&self) -> Vec<RootScan> {
        self.latest
            .read()
            .expect("scan results lock")
            .values()
            .cloned()
            .collect()
    }

    /// Scans every configured root once, off the async runtime, and stores the results. A
    /// root that cannot be scanned (missing, unreadable) drops its earlier result, so stale
    /// figures are never served as current.
    pub async fn scan_all(&self, config: &BuilddirsConfig) {
        for root in &config.roots {
            let owned = root.clone();
            let retention = config.retention;
            let outcome = tokio::task::spawn_blocking(move || {
                scan_root(&owned, retention, SystemTime::now())
            })
            .await;
            let mut latest = self.latest.write().expect("scan results lock");
            match outcome {
                Ok(Ok(scan)) => {
                    tracing::debug!(root = %root.display(), bytes = scan.bytes, "build dirs scanned");
                    latest.insert(root.clone(), scan);
                }
                Ok(Err(error)) => {
                    latest.remove(root);
                    if error.source.kind() == std::io::ErrorKind::NotFound {
                        tracing::debug!(%error, "build dir root absent");
                    } else {
                        tracing::warn!(%error, "build dir root not scanned");
                    }
                }
                Err(join_error) => tracing::error!(%join_error, "build dir scan panicked"),
            }
        }
    }

    /// Scans for ever, `config.interval` apart; the task ends when the runtime does.
    pub fn spawn(&self, config: BuilddirsConfig) -> tokio::task::JoinHandle<()> {
        let results = self.clone();
        tokio::spawn(async move {
            loop {
                results.scan_all(&config).await;
                tokio::time::sleep(config.interval).await;
            }
        })
    }
}
