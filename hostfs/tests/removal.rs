//! `remove_entry` on real file systems (as root): it removes exactly one entry of a root,
//! never follows a symlink out, never enters another file system, and takes no name that
//! could reach outside the root.

use std::ffi::OsStr;
use std::path::Path;

use koji_hostfs::removal::{remove_entry, RemoveError};
use koji_testkit::mounts::{run, TestMount};

#[test]
fn a_tree_is_removed_and_links_out_are_removed_as_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(root.join("build/a/b/c")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), "x").unwrap();
    std::fs::write(root.join("build/a/b/c/file"), "y").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("build/a/link-dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("keep"), root.join("build/link-file")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("top-link")).unwrap();
    std::fs::create_dir(root.join("neighbour")).unwrap();

    let removed = remove_entry(&root, OsStr::new("build")).unwrap();
    assert_eq!(removed, 7, "build, a, b, c, file, link-dir and link-file");
    assert!(!root.join("build").exists());
    assert_eq!(remove_entry(&root, OsStr::new("top-link")).unwrap(), 1);
    assert!(
        root.join("top-link").symlink_metadata().is_err(),
        "the link itself went"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("keep")).unwrap(),
        "x",
        "outside intact"
    );
    assert!(root.join("neighbour").is_dir(), "only the named entry");
    // Gone already: nothing to do, no error.
    assert_eq!(remove_entry(&root, OsStr::new("build")).unwrap(), 0);
}

#[test]
fn another_file_system_inside_is_never_entered() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mount_point = root.join("chroot/root/proc");
    std::fs::create_dir_all(&mount_point).unwrap();
    std::fs::write(root.join("chroot/root/etc-passwd"), "z").unwrap();
    run(&[
        "mount",
        "-t",
        "tmpfs",
        "koji-removal-test",
        mount_point.to_str().unwrap(),
    ]);
    let _mounted = TestMount::adopt(&mount_point);
    std::fs::write(mount_point.join("inside-the-mount"), "keep").unwrap();

    let error = remove_entry(&root, OsStr::new("chroot")).unwrap_err();
    assert!(
        matches!(error, RemoveError::OtherFileSystem(ref path) if path.ends_with("root/proc")),
        "{error:?}"
    );
    assert_eq!(
        std::fs::read_to_string(mount_point.join("inside-the-mount")).unwrap(),
        "keep"
    );
}

#[test]
fn names_that_are_not_one_plain_entry_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(dir.path().join("precious"), "p").unwrap();
    for name in ["", ".", "..", "../precious", "sub/../../precious", "/etc"] {
        let error = remove_entry(&root, OsStr::new(name)).unwrap_err();
        assert!(
            matches!(error, RemoveError::BadName(_)),
            "{name}: {error:?}"
        );
    }
    assert!(dir.path().join("precious").exists());
    assert!(Path::new("/etc/passwd").exists());
}
