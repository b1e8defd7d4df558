//! The mount table (`/proc/self/mountinfo`) and which mount holds a path.
//!
//! mountinfo rather than `/proc/mounts` because it escapes spaces and tells a bind mount's
//! source subtree; mounts stacked on the same mount point are listed in mount order, so
//! the last one is the one a path lookup sees.

use std::path::{Component, Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The subtree of the source file system mounted there (`/` unless a bind mount).
    pub root: String,
    /// File system type (`ext4`, `xfs`, `nfs4`, `tmpfs`, ...).
    pub fstype: String,
    /// The mount source: a device, `server:/export`, or a name such as `tmpfs`.
    pub device: String,
    /// Per-mount options (`rw`, `ro`, `nosuid`, ...).
    pub options: String,
}

/// Why the mount table could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed mountinfo line {line}: {text:?}")]
pub struct MountinfoError {
    /// 1-based line number.
    pub line: usize,
    /// The line.
    pub text: String,
}

/// Parses mountinfo text.
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, MountinfoError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            parse_line(line).ok_or_else(|| MountinfoError {
                line: index + 1,
                text: line.to_string(),
            })
        })
        .collect()
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`:
/// the optional fields end at the lone `-`.
fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split(' ');
    let _mount_id = fields.next()?;
    let _parent_id = fields.next()?;
    let _major_minor = fields.next()?;
    let root = unescape(fields.next()?);
    let mount_point = PathBuf::from(unescape(fields.next()?));
    let options = fields.next()?.to_string();
    let mut rest = after.split(' ');
    let fstype = rest.next()?.to_string();
    let device = unescape(rest.next()?);
    Some(Mount {
        mount_point,
        root,
        fstype,
        device,
        options,
    })
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[index], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes `.` and resolves `..` lexically, without touching the file system (which may
/// hang on a dead mount).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The mount that holds `path` (absolute, symlinks already resolved): the longest mount
/// point that is a prefix of it, and of equal ones the last mounted.
pub fn mount_for<'a>(path: &Path, mounts: &'a [Mount]) -> Option<&'a Mount> {
    let path = normalize(path);
    mounts
        .iter()
        .filter(|mount| path.starts_with(&mount.mount_point))
        .max_by_key(|mount| mount.mount_point.components().count())
        .and_then(|longest| {
            mounts
                .iter()
                .rev()
                .find(|mount| mount.mount_point == longest.mount_point)
        })
}

/// Mounts strictly below `root` (leftover chroot mounts such as a mock root's `/proc`).
pub fn mounts_below<'a>(root: &Path, mounts: &'a [Mount]) -> impl Iterator<Item = &'a Mount> {
    let root = normalize(root);
    mounts
        .iter()
        .filter(move |mount| mount.mount_point != root && mount.mount_point.starts_with(&root))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 253:1 / / rw,relatime shared:1 - xfs /dev/mapper/root rw,attr2
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 253:2 / /var/lib/mock rw,relatime shared:20 - ext4 /dev/vdb1 rw
41 22 0:45 / /mnt/koji rw,relatime shared:30 - nfs4 nfs.example.org:/koji rw,vers=4.2
42 40 0:21 / /var/lib/mock/f40-build-1-2/root/proc rw,relatime - proc proc rw
43 40 0:45 /packages /var/lib/mock/f40-build-1-2/root/mnt/koji ro,relatime - nfs4 nfs.example.org:/koji ro
44 22 0:50 / /mnt/build rw,relatime - tmpfs tmpfs rw,size=1024k
45 44 0:51 / /mnt/build rw,relatime - tmpfs scratch rw,size=2048k
46 22 0:52 / /srv/with\\040space rw - tmpfs odd\\134name rw
";

    fn mounts() -> Vec<Mount> {
        parse_mountinfo(MOUNTINFO).unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let mounts = mounts();
        let at = |path: &str| mount_for(Path::new(path), &mounts).unwrap().device.clone();
        assert_eq!(at("/"), "/dev/mapper/root");
        assert_eq!(at("/var/lib"), "/dev/mapper/root");
        assert_eq!(at("/var/lib/mock"), "/dev/vdb1");
        assert_eq!(at("/var/lib/mock/f40-build-1-2/root/usr"), "/dev/vdb1");
        assert_eq!(
            at("/var/lib/mocker"),
            "/dev/mapper/root",
            "prefix by component"
        );
        assert_eq!(at("/mnt/koji/packages/foo"), "nfs.example.org:/koji");
        assert_eq!(
            at("/var/lib/mock/../../../mnt/koji"),
            "nfs.example.org:/koji"
        );
    }

    #[test]
    fn a_mount_on_top_of_a_mount_is_the_one_seen() {
        let mounts = mounts();
        let mount = mount_for(Path::new("/mnt/build/x"), &mounts).unwrap();
        assert_eq!(mount.device, "scratch");
    }

    #[test]
    fn bind_mounts_keep_their_source_subtree() {
        let mounts = mounts();
        let bind = mount_for(
            Path::new("/var/lib/mock/f40-build-1-2/root/mnt/koji/a"),
            &mounts,
        )
        .unwrap();
        assert_eq!(bind.root, "/packages");
        assert_eq!(bind.fstype, "nfs4");
        assert!(bind.options.starts_with("ro"));
    }

    #[test]
    fn escapes_are_undone() {
        let mounts = mounts();
        let odd = mount_for(Path::new("/srv/with space/x"), &mounts).unwrap();
        assert_eq!(odd.mount_point, Path::new("/srv/with space"));
        assert_eq!(odd.device, "odd\\name");
    }

    #[test]
    fn mounts_below_a_root_are_the_chroot_leftovers() {
        let mounts = mounts();
        let below: Vec<_> = mounts_below(Path::new("/var/lib/mock"), &mounts)
            .map(|m| m.mount_point.display().to_string())
            .collect();
        assert_eq!(
            below,
            vec![
                "/var/lib/mock/f40-build-1-2/root/proc",
                "/var/lib/mock/f40-build-1-2/root/mnt/koji"
            ]
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let error = parse_mountinfo("22 1 253:1 / / rw - xfs /dev/root rw\ngarbage\n").unwrap_err();
        assert_eq!(error.line, 2);
    }
}
