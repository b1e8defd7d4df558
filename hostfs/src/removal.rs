//! Deletes one top-level entry of a build-directory root, safely.
//!
//! Everything is done relative to open directory descriptors, never by path: a name is
//! looked at with `AT_SYMLINK_NOFOLLOW`, directories are opened with `O_NOFOLLOW`, so a
//! symlink anywhere inside is removed as a link and never followed; a directory on another
//! device (a mount point) stops the removal of the entry with an error instead of being
//! entered; nothing outside the root's entry can be reached. Entries vanishing meanwhile
//! are not errors.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Why an entry was not (completely) removed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RemoveError {
    /// The name is not a plain entry name (empty, `.`, `..`, or with a `/`).
    #[error("{0:?} is not a plain entry name")]
    BadName(String),
    /// A directory inside is another file system (a mount): nothing below it was touched.
    #[error("another file system is mounted at {0}: not entered")]
    OtherFileSystem(String),
    /// A system call failed.
    #[error("{path}: {errno}")]
    Io {
        /// Where, relative to the root.
        path: String,
        /// The error.
        errno: Errno,
    },
}

/// Removes `root/name` and everything below it on the root's file system; returns how
/// many inodes were removed. `root` is opened here; `name` must be a single component.
pub fn remove_entry(root: &Path, name: &OsStr) -> Result<u64, RemoveError> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(RemoveError::BadName(name.to_string_lossy().into_owned()));
    }
    let io = |path: &str| {
        let path = path.to_string();
        move |errno| RemoveError::Io { path, errno }
    };
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io("."))?;
    let device = rustix::fs::fstat(&root_fd).map_err(io("."))?.st_dev as u64;
    let name = CString::new(bytes)
        .map_err(|_| RemoveError::BadName(name.to_string_lossy().into_owned()))?;
    let display = name.to_string_lossy().into_owned();
    let stat = match rustix::fs::statat(&root_fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(0),
        Err(errno) => {
            return Err(RemoveError::Io {
                path: display,
                errno,
            })
        }
    };
    if FileType::from_raw_mode(stat.st_mode as _) != FileType::Directory {
        return unlink(root_fd.as_fd(), &name, false, &display).map(|_| 1);
    }
    if stat.st_dev as u64 != device {
        return Err(RemoveError::OtherFileSystem(display));
    }
    let removed = empty_directory(root_fd.as_fd(), &name, device, &display)?;
    unlink(root_fd.as_fd(), &name, true, &display)?;
    Ok(removed + 1)
}

fn unlink(
    parent: BorrowedFd<'_>,
    name: &CStr,
    directory: bool,
    path: &str,
) -> Result<(), RemoveError> {
    let flags = if directory {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    match rustix::fs::unlinkat(parent, name, flags) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(errno) => Err(RemoveError::Io {
            path: path.to_string(),
            errno,
        }),
    }
}

fn open_directory(
    parent: BorrowedFd<'_>,
    name: &CStr,
    path: &str,
) -> Result<Option<OwnedFd>, RemoveError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(RemoveError::Io {
            path: path.to_string(),
            errno,
        }),
    }
}

/// One directory being emptied: its descriptor, its listing, its name in its parent.
struct Level {
    fd: OwnedFd,
    listing: Dir,
    name: CString,
    path: String,
}

/// Empties the directory `name` in `parent`, depth first, one open directory per level.
fn empty_directory(
    parent: BorrowedFd<'_>,
    name: &CStr,
    device: u64,
    path: &str,
) -> Result<u64, RemoveError> {
    let mut removed = 0;
    let Some(fd) = open_directory(parent, name, path)? else {
        return Ok(0);
    };
    let listing = Dir::read_from(&fd).map_err(|errno| RemoveError::Io {
        path: path.to_string(),
        errno,
    })?;
    let mut stack = vec![Level {
        fd,
        listing,
        name: name.to_owned(),
        path: path.to_string(),
    }];
    while let Some(level) = stack.last_mut() {
        let entry = match level.listing.read() {
            None => {
                let done = stack.pop().expect("non-empty");
                if let Some(parent_level) = stack.last() {
                    unlink(parent_level.fd.as_fd(), &done.name, true, &done.path)?;
                    removed += 1;
                }
                continue;
            }
            Some(Err(errno)) => {
                return Err(RemoveError::Io {
                    path: level.path.clone(),
                    errno,
                })
            }
            Some(Ok(entry)) => entry,
        };
        let child = entry.file_name().to_owned();
        if matches!(child.to_bytes(), b"." | b"..") {
            continue;
        }
        let child_path = format!(
            "{}/{}",
            level.path,
            OsStr::from_bytes(child.to_bytes()).to_string_lossy()
        );
        let stat = match rustix::fs::statat(&level.fd, &child, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::NOENT) => continue,
            Err(errno) => {
                return Err(RemoveError::Io {
                    path: child_path,
                    errno,
                })
            }
        };
        if FileType::from_raw_mode(stat.st_mode as _) != FileType::Directory {
            unlink(level.fd.as_fd(), &child, false, &child_path)?;
            removed += 1;
            continue;
        }
        if stat.st_dev as u64 != device {
            return Err(RemoveError::OtherFileSystem(child_path));
        }
        let Some(fd) = open_directory(level.fd.as_fd(), &child, &child_path)? else {
            continue;
        };
        // The directory may have been swapped for a mount between stat and open.
        let opened = rustix::fs::fstat(&fd).map_err(|errno| RemoveError::Io {
            path: child_path.clone(),
            errno,
        })?;
        if opened.st_dev as u64 != device {
            return Err(RemoveError::OtherFileSystem(child_path));
        }
        let listing = Dir::read_from(&fd).map_err(|errno| RemoveError::Io {
            path: child_path.clone(),
            errno,
        })?;
        stack.push(Level {
            fd,
            listing,
            name: child,
            path: child_path,
        });
    }
    Ok(removed)
}
