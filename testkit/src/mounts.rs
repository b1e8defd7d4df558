//! Mounts made by tests (which run as root), undone when dropped, also when the test
//! fails: tmpfs of a known size, bind mounts, read-only bind mounts.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mount point this test owns; lazily unmounted on drop.
#[derive(Debug)]
pub struct TestMount(PathBuf);

impl TestMount {
    /// Mounts a tmpfs at `target` (created if missing) with `options` (e.g.
    /// `size=64m,nr_inodes=1000`), naming its source `source` (shown as the device).
    pub fn tmpfs(target: &Path, options: &str, source: &str) -> TestMount {
        std::fs::create_dir_all(target).unwrap();
        run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            options,
            source,
            path_str(target),
        ]);
        TestMount(target.to_path_buf())
    }

    /// Bind-mounts `source` at `target` (created if missing).
    pub fn bind(source: &Path, target: &Path) -> TestMount {
        std::fs::create_dir_all(target).unwrap();
        run(&["mount", "--bind", path_str(source), path_str(target)]);
        TestMount(target.to_path_buf())
    }

    /// Bind-mounts `source` at `target`, read-only.
    pub fn read_only_bind(source: &Path, target: &Path) -> TestMount {
        let mount = TestMount::bind(source, target);
        run(&["mount", "-o", "remount,ro,bind", path_str(target)]);
        mount
    }

    /// Takes charge of unmounting whatever gets mounted at `target` (by a script, say).
    pub fn adopt(target: &Path) -> TestMount {
        TestMount(target.to_path_buf())
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Runs a command and panics unless it succeeds.
pub fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|error| panic!("{}: {error}", args[0]));
    assert!(status.success(), "{args:?} failed");
}

/// Sets every modification time in the tree at `path` (this file system only, symlinks
/// not followed) to `days` days ago.
pub fn age_tree(path: &Path, days: u32) {
    let when = format!("{days} days ago");
    run(&[
        "find",
        path_str(path),
        "-xdev",
        "-exec",
        "touch",
        "-h",
        "-d",
        &when,
        "{}",
        "+",
    ]);
}
