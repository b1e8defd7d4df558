//! A Koji builder's file systems, shared by koji-exporter (which reports them) and
//! koji-remediator (which cleans them).
//!
//! - [`mounts`]: the mount table and which mount holds a path.
//! - [`removal`]: deleting one build-dir entry without following links or leaving its file system.
//! - [`builddir_scan`]: `du -x`-like walk of a build-directory root, with staleness.

pub mod builddir_scan;
pub mod mounts;
pub mod removal;
