//! The cgroup v2 subtree each elevated run gets its cgroup under.

use std::path::{Path, PathBuf};

/// Where cgroup v2 is mounted (the unified hierarchy, also in hybrid mode).
pub fn v2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next() == Some("cgroup2"))
            .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// moat's subtree.
pub fn subtree(mount: &Path) -> PathBuf {
    mount.join("moat")
}

/// The controllers cgroup v2 has here.
pub fn controllers(mount: &Path) -> Vec<String> {
    std::fs::read_to_string(mount.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Kills whatever runs under `dir` and removes it, deepest first.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    // cgroup.kill (Linux 5.14) ends every process of the subtree at once.
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove(&entry.path())?;
        }
    }
    // A killed process leaves the cgroup once it is reaped; retry briefly.
    let mut last = Ok(());
    for _ in 0..100 {
        last = std::fs::remove_dir(dir);
        if last.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    last
}
