//! The host filesystem as policy resolution sees it on Linux: the portable
//! [`StdFs`], plus directory link counts where they can be trusted.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use moat_policy::host::StdFs;
use moat_policy::{EntryKind, HostFs};

use crate::sys;

/// Filesystems whose directories' link count is 2 + their number of
/// subdirectories (statfs(2) magic numbers). Others (btrfs, overlayfs,
/// network filesystems) may report anything, so their directories are
/// listed.
const COUNTS_SUBDIRS: &[i64] = &[
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // xfs
    0x0102_1994, // tmpfs
    0x2fc1_2fc1, // zfs
    0xF2F5_2010, // f2fs
];

/// [`HostFs`] for Linux.
#[derive(Debug, Default)]
pub struct LinuxFs {
    // Whether each device's filesystem counts subdirectories.
    devices: RefCell<Vec<(u64, bool)>>,
}

impl LinuxFs {
    pub fn new() -> LinuxFs {
        LinuxFs::default()
    }

    fn counts_subdirs(&self, dev: u64, path: &Path) -> bool {
        if let Some((_, yes)) = self.devices.borrow().iter().find(|(d, _)| *d == dev) {
            return *yes;
        }
        let yes = crate::spec::cpath(path)
            .is_some_and(|c| sys::fd::fs_magic(&c).is_ok_and(|m| COUNTS_SUBDIRS.contains(&m)));
        self.devices.borrow_mut().push((dev, yes));
        yes
    }
}

impl HostFs for LinuxFs {
    fn kind(&self, path: &Path) -> Option<EntryKind> {
        StdFs.kind(path)
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        StdFs.canonicalize(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<(OsString, EntryKind)>> {
        StdFs.read_dir(path)
    }

    fn read_small(&self, path: &Path, limit: usize) -> io::Result<String> {
        StdFs.read_small(path, limit)
    }

    fn subdirs_hint(&self, path: &Path) -> Option<u64> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        if !meta.is_dir() || meta.nlink() < 2 || !self.counts_subdirs(meta.dev(), path) {
            return None;
        }
        Some(meta.nlink() - 2)
    }
}
