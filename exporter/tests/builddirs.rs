//! The build-directory scan against real trees on a tmpfs the test mounts: byte totals
//! equal `du -s -B1 -x`, staleness judged by the newest change inside an entry, hard links
//! once, symlinks never followed, other file systems never entered but counted as live
//! mounts, entries vanishing mid-scan survived; and the collector serving it all.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use koji_exporter::builddir_scan::scan_root;
use koji_exporter::collectors::CollectorId;
use koji_exporter::config::Config;
use koji_testkit::mounts::{run, TestMount};
use support::{scrape, value};

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

fn write(path: &Path, bytes: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, vec![7u8; bytes]).unwrap();
}

/// Sets the modification time of `path` (not following symlinks) to `days` days ago.
fn age(path: &Path, days: u32) {
    run(&[
        "touch",
        "-h",
        "-d",
        &format!("{days} days ago"),
        path.to_str().unwrap(),
    ]);
}

fn du(path: &Path) -> u64 {
    let output = Command::new("du")
        .args(["-s", "-B1", "-x"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A mock root with one stale build, one old build touched today, hard links, a symlink
/// out of the root, and a live mount inside a chroot.
fn build_tree(root: &Path) -> TestMount {
    let old = root.join("f39-build-101-7");
    write(&old.join("root/usr/lib/libbig.so"), 3 << 20);
    write(&old.join("root/etc/passwd"), 900);
    std::fs::hard_link(old.join("root/etc/passwd"), old.join("root/etc/passwd.bak")).unwrap();
    for path in [
        "root/usr/lib/libbig.so",
        "root/etc/passwd",
        "root/usr/lib",
        "root/usr",
        "root/etc",
        "root",
        "",
    ] {
        age(&old.join(path), 10);
    }

    let recent = root.join("f40-build-202-9");
    write(&recent.join("result/build.log"), 5000);
    write(&recent.join("root/tmp/old.rpm"), 1 << 20);
    age(&recent.join("root/tmp/old.rpm"), 30);
    age(&recent, 30);
    std::os::unix::fs::symlink("/usr", recent.join("root/usr-link")).unwrap();
    let proc_mount = TestMount::tmpfs(&recent.join("root/proc"), "size=256m", "koji-builddir-test");
    write(&recent.join("root/proc/not-ours"), 2 << 20);

    write(&root.join("stray-file"), 12345);
    age(&root.join("stray-file"), 9);
    proc_mount
}

#[test]
fn totals_staleness_links_and_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("var-lib-mock");
    let _root_mount = TestMount::tmpfs(&root, "size=256m", "koji-builddir-test");
    let _proc_mount = build_tree(&root);

    let scan = scan_root(&root, WEEK, SystemTime::now()).unwrap();
    assert_eq!(scan.bytes, du(&root), "byte total as du -s -B1 -x");
    assert_eq!(scan.entries.len(), 3);
    assert_eq!(scan.errors, 0);
    let entry = |name: &str| {
        scan.entries
            .iter()
            .find(|e| e.name == Path::new(name))
            .unwrap()
    };
    assert_eq!(
        entry("f39-build-101-7").bytes,
        du(&root.join("f39-build-101-7"))
    );
    // The mount inside the chroot is not counted: du -x agrees.
    assert_eq!(
        entry("f40-build-202-9").bytes,
        du(&root.join("f40-build-202-9"))
    );
    // Stale: the old build (newest change 10 days ago) and the stray file (9 days); the
    // build touched today is not stale although its directory is 30 days old.
    assert_eq!(scan.stale_entries, 2);
    assert_eq!(
        scan.stale_bytes,
        entry("f39-build-101-7").bytes + entry("stray-file").bytes
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((entry("f40-build-202-9").newest_mtime - now).abs() < 60);
    // Largest first.
    assert_eq!(scan.entries[0].name, Path::new("f39-build-101-7"));
}

#[test]
fn a_symlinked_subtree_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mnt-build");
    let _root_mount = TestMount::tmpfs(&root, "size=256m", "koji-builddir-test");
    std::fs::create_dir(root.join("build")).unwrap();
    std::os::unix::fs::symlink("/usr", root.join("build/escape")).unwrap();
    std::os::unix::fs::symlink("/usr", root.join("escape-at-top")).unwrap();
    let scan = scan_root(&root, WEEK, SystemTime::now()).unwrap();
    // A few KiB of directories and links, not the gigabytes of /usr.
    assert!(scan.bytes < 64 * 1024, "{}", scan.bytes);
    assert_eq!(scan.bytes, du(&root));
}

#[test]
fn entries_vanishing_mid_scan_are_survived() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("var-lib-mock");
    let _root_mount = TestMount::tmpfs(&root, "size=256m", "koji-builddir-test");
    for build in 0..20 {
        for file in 0..50 {
            write(
                &root.join(format!("build-{build}/root/dir-{}/file-{file}", file % 5)),
                100,
            );
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let root = root.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let build = root.join(format!("build-{}", round % 20));
                let _ = std::fs::remove_dir_all(&build);
                for file in 0..50 {
                    let path = build.join(format!("root/dir-{}/file-{file}", file % 5));
                    let _ = std::fs::create_dir_all(path.parent().unwrap());
                    let _ = std::fs::write(&path, [1u8; 100]);
                }
                round += 1;
            }
            round
        })
    };
    for _ in 0..50 {
        let scan = scan_root(&root, WEEK, SystemTime::now()).expect("scan survives churn");
        assert_eq!(scan.errors, 0, "vanished entries are not errors");
        assert!(scan.entries.len() <= 20);
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = churn.join().unwrap();
    assert!(rounds > 0, "the churn thread ran while scanning");
}

#[tokio::test]
async fn the_collector_serves_the_latest_background_scan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("var-lib-mock");
    let _root_mount = TestMount::tmpfs(&root, "size=256m", "koji-builddir-test");
    let _proc_mount = build_tree(&root);
    let missing = dir.path().join("mnt-build");

    let mut config = Config::default();
    config.builddirs.roots = vec![root.clone(), missing.clone()];
    let scraper = koji_exporter::scraper(config, vec![CollectorId::Builddirs]).unwrap();
    // Before any scan: only the live mounts, read at scrape time.
    let (_, samples) = scrape(&scraper).await;
    let root_label = root.display().to_string();
    let at_root = [("root", root_label.as_str())];
    assert_eq!(value(&samples, "koji_builddir_mounts", &at_root), 1.0);
    assert!(support::find(&samples, "koji_builddir_bytes", &[]).is_empty());

    let tasks = scraper.start_background_tasks();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let samples = loop {
        let (_, samples) = scrape(&scraper).await;
        if !support::find(&samples, "koji_builddir_bytes", &[]).is_empty() {
            break samples;
        }
        assert!(std::time::Instant::now() < deadline, "no scan within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tasks.into_iter().for_each(|task| task.abort());
    assert_eq!(
        value(&samples, "koji_builddir_bytes", &at_root),
        du(&root) as f64
    );
    assert_eq!(value(&samples, "koji_builddir_entries", &at_root), 3.0);
    assert_eq!(
        value(&samples, "koji_builddir_stale_entries", &at_root),
        2.0
    );
    assert_eq!(value(&samples, "koji_builddir_scan_errors", &at_root), 0.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let scanned = value(&samples, "koji_builddir_scan_timestamp_seconds", &at_root);
    assert!((now - scanned).abs() < 10.0, "{scanned} vs {now}");
    assert!(value(&samples, "koji_builddir_scan_duration_seconds", &at_root) < 10.0);
    assert_eq!(
        value(&samples, "koji_builddir_retention_seconds", &[]),
        WEEK.as_secs_f64()
    );
    // The missing root is skipped, not reported as empty.
    let missing_label = missing.display().to_string();
    assert!(support::find(&samples, "koji_builddir_bytes", &[("root", &missing_label)]).is_empty());

    // The chroot mount goes away: the next scrape sees it at once.
    drop(_proc_mount);
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(value(&samples, "koji_builddir_mounts", &at_root), 0.0);
}

/// An unreadable directory is counted as an error and skipped; the rest is still summed.
/// The scan runs on a thread that gives up root (to `nobody`, uid 65534) for itself only,
/// since root reads everything.
#[test]
fn unreadable_directories_are_errors_not_failures() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("var-lib-mock");
    let _root_mount = TestMount::tmpfs(&root, "size=256m", "koji-builddir-test");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    write(&root.join("readable/root/file"), 4096);
    write(&root.join("locked/root/secret"), 4096);
    for path in [
        root.clone(),
        root.join("readable"),
        root.join("readable/root"),
    ] {
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    std::fs::set_permissions(
        root.join("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let scan_root_path = root.clone();
    let scan = std::thread::spawn(move || {
        let nobody = rustix::fs::Uid::from_raw(65534);
        rustix::thread::set_thread_uid(nobody).expect("dropping root on this thread");
        scan_root(&scan_root_path, WEEK, SystemTime::now())
    })
    .join()
    .unwrap()
    .expect("the scan itself succeeds");
    assert_eq!(scan.errors, 1, "the locked directory could not be read");
    assert_eq!(scan.entries.len(), 2);
    let readable = scan
        .entries
        .iter()
        .find(|e| e.name == Path::new("readable"))
        .unwrap();
    assert_eq!(readable.bytes, du(&root.join("readable")));
}
