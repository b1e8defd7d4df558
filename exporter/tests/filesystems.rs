//! `filesystems` against real mounts made by the test (it runs as root): tmpfs of known
//! size filled to known levels, a read-only bind mount, a mount on top of a mount, a
//! symlinked path, a missing path, and a hung FUSE mount whose daemon never answers.

mod support;

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use koji_exporter::collectors::CollectorId;
use koji_exporter::config::{Config, Role, WatchedPath};
use koji_exporter::scrape::Scraper;
use koji_testkit::mounts::TestMount;
use support::{find, scrape, value, Sample};

const MIB: f64 = 1024.0 * 1024.0;

fn fill(path: &Path, mib: usize) {
    std::fs::write(path, vec![0x55u8; mib * 1024 * 1024]).unwrap();
}

fn scraper(paths: Vec<WatchedPath>, stat_timeout: Duration) -> std::sync::Arc<Scraper> {
    let mut config = Config::default();
    config.filesystems.paths = paths;
    config.filesystems.stat_timeout = stat_timeout;
    koji_exporter::scraper(config, vec![CollectorId::Filesystems]).unwrap()
}

fn watched(path: &Path, role: Role) -> WatchedPath {
    WatchedPath {
        path: path.to_path_buf(),
        role,
    }
}

fn at(mountpoint: &Path) -> Vec<(&'static str, String)> {
    vec![("mountpoint", mountpoint.display().to_string())]
}

fn mount_value(samples: &[Sample], name: &str, mountpoint: &Path) -> f64 {
    let labels = at(mountpoint);
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    value(samples, name, &labels)
}

#[tokio::test]
async fn tmpfs_of_known_size_filled_to_known_levels() {
    let dir = tempfile::tempdir().unwrap();
    let mock = dir.path().join("var-lib-mock");
    let _mount = TestMount::tmpfs(&mock, "size=64m,nr_inodes=1000", "koji-test-64m");
    std::fs::create_dir(mock.join("f40-build-1-1")).unwrap();
    fill(&mock.join("f40-build-1-1/big"), 16);
    let link = dir.path().join("mnt-build");
    std::os::unix::fs::symlink(mock.join("f40-build-1-1"), &link).unwrap();

    let scraper = scraper(
        vec![
            watched(&mock, Role::Local),
            watched(&link, Role::Local),
            watched(&dir.path().join("does-not-exist"), Role::Shared),
        ],
        Duration::from_secs(2),
    );
    let (text, samples) = scrape(&scraper).await;
    assert_eq!(
        mount_value(&samples, "koji_filesystem_size_bytes", &mock),
        64.0 * MIB,
        "{text}"
    );
    assert_eq!(
        mount_value(&samples, "koji_filesystem_avail_bytes", &mock),
        48.0 * MIB
    );
    assert_eq!(
        mount_value(&samples, "koji_filesystem_files", &mock),
        1000.0
    );
    // The root directory, the build directory and the file.
    assert_eq!(
        mount_value(&samples, "koji_filesystem_files_free", &mock),
        997.0
    );
    assert_eq!(
        mount_value(&samples, "koji_filesystem_readonly", &mock),
        0.0
    );
    assert_eq!(
        mount_value(&samples, "koji_filesystem_device_error", &mock),
        0.0
    );
    let labels = &find(&samples, "koji_filesystem_size_bytes", &[])[0].labels;
    assert_eq!(labels["device"], "koji-test-64m");
    assert_eq!(labels["fstype"], "tmpfs");

    // The symlinked path resolves to the mount its target lives on.
    let mock_text = mock.display().to_string();
    let link_text = link.display().to_string();
    let roles = find(
        &samples,
        "koji_filesystem_role_info",
        &[("mountpoint", &mock_text)],
    );
    let paths: Vec<&str> = roles.iter().map(|s| s.labels["path"].as_str()).collect();
    assert_eq!(paths, vec![mock_text.as_str(), link_text.as_str()]);
    // The missing path is skipped, not reported on some other mount.
    assert_eq!(find(&samples, "koji_filesystem_role_info", &[]).len(), 2);

    // Filling further shows at the next scrape.
    fill(&mock.join("f40-build-1-1/bigger"), 8);
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(
        mount_value(&samples, "koji_filesystem_avail_bytes", &mock),
        40.0 * MIB
    );
}

#[tokio::test]
async fn read_only_bind_mounts_and_mounts_on_top_of_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("mnt-koji");
    let _lower = TestMount::tmpfs(&shared, "size=32m,nr_inodes=500", "koji-test-32m");
    // A second tmpfs stacked on the same mount point hides the first.
    let _upper = TestMount::tmpfs(&shared, "size=16m,nr_inodes=500", "koji-test-16m");
    std::fs::create_dir(shared.join("packages")).unwrap();
    let chroot_view = dir.path().join("chroot-mnt-koji");
    let _bind = TestMount::read_only_bind(&shared.join("packages"), &chroot_view);

    let scraper = scraper(
        vec![
            watched(&shared, Role::Shared),
            watched(&chroot_view, Role::Local),
        ],
        Duration::from_secs(2),
    );
    let (text, samples) = scrape(&scraper).await;
    assert_eq!(
        mount_value(&samples, "koji_filesystem_size_bytes", &shared),
        16.0 * MIB,
        "{text}"
    );
    assert_eq!(
        mount_value(&samples, "koji_filesystem_readonly", &shared),
        0.0
    );
    assert_eq!(
        mount_value(&samples, "koji_filesystem_readonly", &chroot_view),
        1.0
    );
    assert_eq!(
        mount_value(&samples, "koji_filesystem_size_bytes", &chroot_view),
        16.0 * MIB
    );
    let shared_text = shared.display().to_string();
    assert_eq!(
        value(
            &samples,
            "koji_filesystem_role_info",
            &[
                ("path", &shared_text),
                ("mountpoint", &shared_text),
                ("role", "shared")
            ]
        ),
        1.0
    );
}

/// A FUSE mount whose daemon never answers: every access blocks in the kernel, as with a
/// dead NFS server. Dropping it aborts the connection (blocked calls fail) and detaches it.
struct DeadFuseMount {
    device: Option<std::fs::File>,
    target: PathBuf,
}

impl DeadFuseMount {
    fn new(target: &Path) -> DeadFuseMount {
        std::fs::create_dir_all(target).unwrap();
        let device = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .expect("/dev/fuse");
        let options = CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            device.as_raw_fd()
        ))
        .unwrap();
        rustix::mount::mount(
            "koji-dead-nfs",
            target,
            "fuse",
            rustix::mount::MountFlags::empty(),
            options.as_c_str(),
        )
        .expect("mounting a FUSE file system (needs root and /dev/fuse)");
        DeadFuseMount {
            device: Some(device),
            target: target.to_path_buf(),
        }
    }
}

impl Drop for DeadFuseMount {
    fn drop(&mut self) {
        drop(self.device.take());
        let _ = rustix::mount::unmount(&self.target, rustix::mount::UnmountFlags::DETACH);
    }
}

#[tokio::test]
async fn a_hung_mount_reports_a_device_error_without_hanging_the_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = dir.path().join("var-lib-mock");
    let _tmpfs = TestMount::tmpfs(&healthy, "size=8m,nr_inodes=100", "koji-test-8m");
    let hung = dir.path().join("mnt-koji");
    let dead = DeadFuseMount::new(&hung);

    let scraper = scraper(
        vec![watched(&healthy, Role::Local), watched(&hung, Role::Shared)],
        Duration::from_millis(500),
    );
    let started = Instant::now();
    let (text, samples) = scrape(&scraper).await;
    let first = started.elapsed();
    assert!(first < Duration::from_millis(1500), "scrape took {first:?}");
    assert_eq!(
        mount_value(&samples, "koji_filesystem_device_error", &hung),
        1.0,
        "{text}"
    );
    assert!(find(
        &samples,
        "koji_filesystem_size_bytes",
        &[("fstype", "fuse")]
    )
    .is_empty());
    assert_eq!(
        mount_value(&samples, "koji_filesystem_size_bytes", &healthy),
        8.0 * MIB
    );
    assert_eq!(
        mount_value(&samples, "koji_filesystem_device_error", &healthy),
        0.0
    );
    assert_eq!(
        value(
            &samples,
            "koji_exporter_collector_success",
            &[("collector", "filesystems")]
        ),
        1.0
    );

    // The first probe is still stuck: the next scrape does not wait for (or add) another.
    let started = Instant::now();
    let (_, samples) = scrape(&scraper).await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        mount_value(&samples, "koji_filesystem_device_error", &hung),
        1.0
    );

    // The daemon goes away for good: the stuck call fails, and later scrapes report the
    // mount as failing at once rather than hanging.
    drop(dead);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, samples) = scrape(&scraper).await;
    assert_eq!(
        mount_value(&samples, "koji_filesystem_size_bytes", &healthy),
        8.0 * MIB
    );
}
