//! Scans one directory with the build-dir walker and prints its byte total and timing:
//! `cargo run --release -p koji-exporter --example scan_dir -- DIR`. Used by the benchmark.

use std::time::{Duration, SystemTime};

fn main() {
    let root = std::env::args().nth(1).expect("usage: scan_dir DIR");
    let scan = koji_exporter::builddir_scan::scan_root(
        std::path::Path::new(&root),
        Duration::from_secs(7 * 86400),
        SystemTime::now(),
    )
    .expect("scan");
    println!(
        "bytes={} entries={} stale_entries={} errors={} seconds={:.3}",
        scan.bytes,
        scan.entries.len(),
        scan.stale_entries,
        scan.errors,
        scan.duration.as_secs_f64()
    );
}
