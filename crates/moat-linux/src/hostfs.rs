//! The host filesystem as policy resolution sees it on Linux: the portable
//! [`StdFs`], plus directory link counts where they can be trusted.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    devices: Mutex<Vec<(u64, bool)>>,
}

impl LinuxFs {
    pub fn new() -> LinuxFs {
        LinuxFs::default()
    }

    fn counts_subdirs(&self, dev: u64, path: &Path) -> bool {
        let known = |devices: &Vec<(u64, bool)>| {
            devices.iter().find(|(d, _)| *d == dev).map(|(_, yes)| *yes)
        };
        if let Some(yes) = self.devices.lock().ok().and_then(|d| known(&d)) {
            return yes;
        }
        let yes = crate::spec::cpath(path)
            .is_some_and(|c| sys::fd::fs_magic(&c).is_ok_and(|m| COUNTS_SUBDIRS.contains(&m)));
        if let Ok(mut d) = self.devices.lock() {
            d.push((dev, yes));
        }
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

    /// Each lookup is a system call of about a microsecond; a level of
    /// hundreds of directories is shared with a second thread. (Not one per
    /// CPU: asking how many there are reads cgroup files, which costs more
    /// than the split saves.)
    fn survey(&self, dirs: &[PathBuf]) -> Vec<(Option<u64>, Option<EntryKind>)> {
        let one = |d: &PathBuf| (self.subdirs_hint(d), self.kind(&d.join(".git")));
        if dirs.len() < PER_THREAD * 2 {
            return dirs.iter().map(one).collect();
        }
        let (mine, theirs) = dirs.split_at(dirs.len() / 2);
        std::thread::scope(|s| {
            let other = s.spawn(move || theirs.iter().map(one).collect::<Vec<_>>());
            let mut out: Vec<_> = mine.iter().map(one).collect();
            // A thread that could not finish: its half is done here.
            out.extend(
                other
                    .join()
                    .unwrap_or_else(|_| theirs.iter().map(one).collect()),
            );
            out
        })
    }
}

/// Fewer directories than this per thread are not worth a thread.
const PER_THREAD: usize = 64;
