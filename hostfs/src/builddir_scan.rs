//! Walks a build-directory root (`/var/lib/mock`, `/mnt/build`) the way `du -x` does: the
//! space each top-level entry takes, and how long ago anything inside it changed.
//!
//! The walk is hand-written over directory file descriptors (`openat`, `getdents`,
//! `fstatat` through rustix) rather than path-based walkers: resolving each name relative
//! to its already-open parent is what lets it keep pace with `du` on a million files, and
//! it makes "never follow a symlink" (`AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`) and "never cross
//! into another file system" (`st_dev`) hold for every single entry. Memory stays bounded
//! by the tree's depth (one open directory per level), not its size; only hard-linked
//! files are remembered, to count each once.

use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

/// Deeper directories than this are not entered (and counted as errors): each level holds a
/// file descriptor, and no mock chroot comes near it.
const MAX_DEPTH: usize = 256;

/// One top-level entry of a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryUsage {
    /// Its name in the root.
    pub name: PathBuf,
    /// Allocated bytes of everything inside it (and itself), hard links counted once.
    pub bytes: u64,
    /// The newest modification time (seconds since the epoch) of anything inside it.
    pub newest_mtime: i64,
}

/// The result of scanning one root.
#[derive(Debug, Clone, PartialEq)]
pub struct RootScan {
    /// The root.
    pub root: PathBuf,
    /// Allocated bytes of the root and everything below it on its file system.
    pub bytes: u64,
    /// Top-level entries, largest first.
    pub entries: Vec<EntryUsage>,
    /// Entries whose newest modification is older than the retention.
    pub stale_entries: u64,
    /// Bytes of those entries.
    pub stale_bytes: u64,
    /// Entries that could not be read (permissions, depth); vanished ones are not errors.
    pub errors: u64,
    /// When the scan finished.
    pub finished_at: SystemTime,
    /// How long it took.
    pub duration: Duration,
}

/// Why a root could not be scanned at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot scan {root}: {source}")]
pub struct ScanError {
    /// The root.
    pub root: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Scans `root`; entries whose newest change is older than `now - retention` are stale.
pub fn scan_root(root: &Path, retention: Duration, now: SystemTime) -> Result<RootScan, ScanError> {
    let started = Instant::now();
    let fail = |errno: Errno| ScanError {
        root: root.to_path_buf(),
        source: errno.into(),
    };
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    let root_stat = rustix::fs::fstat(&root_fd).map_err(fail)?;
    let mut walker = Walker {
        device: root_stat.st_dev as u64,
        hard_links: HashSet::new(),
        errors: 0,
    };
    let mut bytes = allocated(&root_stat);
    let mut entries = Vec::new();
    let mut dir = Dir::read_from(&root_fd).map_err(fail)?;
    while let Some(entry) = dir.read() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(_) => {
                walker.errors += 1;
                break;
            }
        };
        let name = entry.file_name();
        if is_dot(name) {
            continue;
        }
        if let Some(usage) = walker.entry_usage(root_fd.as_fd(), name) {
            bytes += usage.bytes;
            entries.push(usage);
        }
    }
    let cutoff = now
        .checked_sub(retention)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    let stale: Vec<&EntryUsage> = entries.iter().filter(|e| e.newest_mtime < cutoff).collect();
    let stale_entries = stale.len() as u64;
    let stale_bytes = stale.iter().map(|e| e.bytes).sum();
    entries.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    Ok(RootScan {
        root: root.to_path_buf(),
        bytes,
        entries,
        stale_entries,
        stale_bytes,
        errors: walker.errors,
        finished_at: SystemTime::now(),
        duration: started.elapsed(),
    })
}

fn is_dot(name: &CStr) -> bool {
    matches!(name.to_bytes(), b"." | b"..")
}

fn allocated(stat: &Stat) -> u64 {
    stat.st_blocks as u64 * 512
}

struct Walker {
    device: u64,
    hard_links: HashSet<(u64, u64)>,
    errors: u64,
}

/// What a stat found worth adding up, or why to skip the entry.
enum Seen {
    Counted {
        bytes: u64,
        mtime: i64,
        is_dir: bool,
    },
    Skip,
}

impl Walker {
    /// Stats `name` in `parent` without following it, and decides whether it counts.
    fn see(&mut self, parent: BorrowedFd<'_>, name: &CStr) -> Seen {
        let stat = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Removed since the directory was read: nothing to count.
            Err(Errno::NOENT) => return Seen::Skip,
            Err(_) => {
                self.errors += 1;
                return Seen::Skip;
            }
        };
        // Another file system mounted here (a chroot's /proc, a bind mount of shared
        // storage) is not this root's to count.
        if stat.st_dev as u64 != self.device {
            return Seen::Skip;
        }
        let is_dir = FileType::from_raw_mode(stat.st_mode as _) == FileType::Directory;
        let duplicate_link = !is_dir
            && stat.st_nlink > 1
            && !self
                .hard_links
                .insert((stat.st_dev as u64, stat.st_ino as u64));
        Seen::Counted {
            bytes: if duplicate_link { 0 } else { allocated(&stat) },
            mtime: stat.st_mtime as i64,
            is_dir,
        }
    }

    /// The usage of one top-level entry and everything below it.
    fn entry_usage(&mut self, root: BorrowedFd<'_>, name: &CStr) -> Option<EntryUsage> {
        let Seen::Counted {
            bytes,
            mtime,
            is_dir,
        } = self.see(root, name)
        else {
            return None;
        };
        let mut usage = EntryUsage {
            name: PathBuf::from(OsStr::from_bytes(name.to_bytes())),
            bytes,
            newest_mtime: mtime,
        };
        if is_dir {
            self.walk(root, name, &mut usage);
        }
        Some(usage)
    }

    /// Depth-first walk below the directory `name` in `parent`, one open handle per level.
    fn walk(&mut self, parent: BorrowedFd<'_>, name: &CStr, usage: &mut EntryUsage) {
        let Some(first) = open_dir(parent, name, &mut self.errors) else {
            return;
        };
        let mut stack = vec![first];
        loop {
            let depth = stack.len();
            let Some(dir) = stack.last_mut() else {
                break;
            };
            let entry = match dir.read() {
                None => {
                    stack.pop();
                    continue;
                }
                Some(Err(_)) => {
                    self.errors += 1;
                    stack.pop();
                    continue;
                }
                Some(Ok(entry)) => entry,
            };
            let child: CString = entry.file_name().to_owned();
            if is_dot(&child) {
                continue;
            }
            let dir_fd = dir.fd().expect("a Dir always has its descriptor");
            let Seen::Counted {
                bytes,
                mtime,
                is_dir,
            } = self.see(dir_fd, &child)
            else {
                continue;
            };
            usage.bytes += bytes;
            usage.newest_mtime = usage.newest_mtime.max(mtime);
            if !is_dir {
                continue;
            }
            if depth >= MAX_DEPTH {
                self.errors += 1;
                continue;
            }
            if let Some(opened) = open_dir(dir_fd, &child, &mut self.errors) {
                stack.push(opened);
            }
        }
    }
}

/// Opens a directory for reading, never through a symlink (it may have been swapped for
/// one since it was stat'ed).
fn open_dir(parent: BorrowedFd<'_>, name: &CStr, errors: &mut u64) -> Option<Dir> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(parent, name, flags, Mode::empty()).and_then(Dir::new) {
        Ok(dir) => Some(dir),
        Err(Errno::NOENT) => None,
        Err(_) => {
            *errors += 1;
            None
        }
    }
}
