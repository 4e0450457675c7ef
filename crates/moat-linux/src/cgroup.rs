//! The elevated tier's cgroup per run: where a run goes, the limits written
//! there, and its removal when the run ends.
//!
//! A controller is bound either to cgroup v2 or, on hybrid machines, to a
//! cgroup v1 hierarchy of its own, so a run gets a directory in each
//! hierarchy it needs:
//!
//! - in v2, always (grouping, accounting, `cgroup.kill`), under setup's
//!   subtree `<v2>/moat`: v2 lets controllers act only on cgroups whose
//!   parent holds no processes, so a run cannot sit below the person's own
//!   cgroup there;
//! - in v1, for each limit v2 cannot take, below the launcher's own cgroup
//!   in that hierarchy, so a run stays inside whatever limits the person
//!   (or the container they are in) already lives under.
//!
//! The run's processes are born in the run's cgroups: init is forked
//! straight into the v2 one (CLONE_INTO_CGROUP), and for v1 ones, which
//! offer no such thing, the launcher moves itself in around the fork.
//! Moving a process waits for an RCU grace period, which here costs 5 to
//! 25 ms, so only runs with limits held in v1 pay it.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::sys;

/// Setup's v2 subtree, below the v2 mount.
pub const V2_SUBTREE: &str = "moat";
/// The name of a run's directory is this and the launcher's pid.
pub const RUN_PREFIX: &str = "moat-run-";

/// What a mounted cgroup hierarchy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// The hierarchy's path at the mount point (not `/` inside containers
    /// that see only their part).
    pub root: String,
    /// `None` for v2; the v1 controllers (and `name=`) otherwise.
    pub v1: Option<Vec<String>>,
}

/// The cgroup hierarchies mounted here, from /proc/self/mountinfo.
pub fn parse_mounts(mountinfo: &str) -> Vec<Hierarchy> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split_whitespace().collect();
            let mut post = post.split_whitespace();
            let fstype = post.next()?;
            let _source = post.next()?;
            let options = post.next().unwrap_or("");
            let (root, mount) = (pre.get(3)?, pre.get(4)?);
            let v1 = match fstype {
                "cgroup2" => None,
                "cgroup" => Some(options.split(',').map(str::to_string).collect()),
                _ => return None,
            };
            Some(Hierarchy {
                mount: PathBuf::from(unescape(mount)),
                root: unescape(root),
                v1,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup in each hierarchy, from /proc/self/cgroup: the
/// controller list ("" for v2) and the path.
pub fn parse_own(proc_cgroup: &str) -> Vec<(String, String)> {
    proc_cgroup
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some((controllers.to_string(), path.to_string()))
        })
        .collect()
}

/// The directory of this process's own cgroup in `h`, given the lines of
/// /proc/self/cgroup; `None` when it lies outside what is mounted.
pub fn own_dir(h: &Hierarchy, own: &[(String, String)]) -> Option<PathBuf> {
    let path = own.iter().find_map(|(c, p)| {
        let matches = match &h.v1 {
            None => c.is_empty(),
            Some(opts) => !c.is_empty() && c.split(',').all(|n| opts.iter().any(|o| o == n)),
        };
        matches.then_some(p.as_str())
    })?;
    let rest = if h.root == "/" {
        path
    } else {
        let r = path.strip_prefix(h.root.as_str())?;
        if !(r.is_empty() || r.starts_with('/')) {
            return None;
        }
        r
    };
    let rest = rest.trim_start_matches('/');
    Some(if rest.is_empty() {
        h.mount.clone()
    } else {
        h.mount.join(rest)
    })
}

/// Where cgroup v2 is mounted (the unified hierarchy, also in hybrid mode).
pub fn v2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_mounts(&info)
        .into_iter()
        .find(|h| h.v1.is_none())
        .map(|h| h.mount)
}

/// moat's v2 subtree.
pub fn subtree(mount: &Path) -> PathBuf {
    mount.join(V2_SUBTREE)
}

/// The controllers listed in a cgroup's `file` (cgroup.controllers or
/// cgroup.subtree_control).
pub fn listed(dir: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The controllers cgroup v2 has here.
pub fn controllers(mount: &Path) -> Vec<String> {
    listed(mount, "cgroup.controllers")
}

/// CFS bandwidth for `millis` thousandths of a CPU: quota and period in
/// microseconds. The kernel wants a quota of at least 1 ms, so very small
/// shares get a longer period.
pub fn cpu_quota(millis: u64) -> (u64, u64) {
    let period = if millis * 100 >= 1000 {
        100_000
    } else {
        1_000_000
    };
    (millis * period / 1000, period)
}

/// The cgroup hierarchies as this process sees them, and its place in
/// each: what both a run's cgroups and the report of where limits go are
/// decided from.
struct Layout {
    hierarchies: Vec<Hierarchy>,
    own: Vec<(String, String)>,
    /// The controllers setup's v2 subtree passes down to runs.
    v2_has: Vec<String>,
}

/// Where a run's limit for a controller goes.
enum Home {
    V2,
    /// Below this directory (the process's own cgroup in that hierarchy).
    V1(PathBuf),
}

impl Layout {
    fn read() -> Result<Layout, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
        let hierarchies = parse_mounts(&mountinfo);
        let v2_has = hierarchies
            .iter()
            .find(|h| h.v1.is_none())
            .map(|h| listed(&subtree(&h.mount), "cgroup.subtree_control"))
            .unwrap_or_default();
        Ok(Layout {
            hierarchies,
            own: parse_own(&own),
            v2_has,
        })
    }

    fn v2(&self) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.v1.is_none())
    }

    /// v2 when setup's subtree passes the controller down, else this
    /// process's own cgroup in the v1 hierarchy that has it.
    fn home(&self, controller: &str) -> Option<Home> {
        if self.v2_has.iter().any(|c| c == controller) {
            return Some(Home::V2);
        }
        let h = self.hierarchies.iter().find(|h| {
            h.v1.as_ref()
                .is_some_and(|o| o.iter().any(|c| c == controller))
        })?;
        own_dir(h, &self.own).map(Home::V1)
    }
}

/// Where runs' `memory`, `pids` and `cpu` limits go on this machine: "cgroup v2",
/// "cgroup v1 (<dir>)", or `None` (per-process rlimits instead).
pub fn placement() -> Vec<(&'static str, Option<String>)> {
    let layout = Layout::read().ok();
    ["memory", "pids", "cpu"]
        .into_iter()
        .map(|c| {
            let at = match layout.as_ref().and_then(|l| l.home(c)) {
                Some(Home::V2) => Some("cgroup v2".to_string()),
                Some(Home::V1(dir)) => Some(format!("cgroup v1 ({})", dir.display())),
                None => None,
            };
            (c, at)
        })
        .collect()
}

/// Every v1 hierarchy's mount point (where setup looks for runs' leftovers).
pub fn v1_mounts() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mounts(&mountinfo)
        .into_iter()
        .filter(|h| h.v1.is_some())
        .map(|h| h.mount)
        .collect()
}

/// The limits a run asks of its cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory: Option<u64>,
    pub processes: Option<u64>,
    /// Thousandths of a CPU.
    pub cpu: Option<u64>,
}

/// Which of the limits a run's cgroup enforces, and with which version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Placed {
    pub memory: Option<u8>,
    pub processes: Option<u8>,
    pub cpu: Option<u8>,
}

impl Placed {
    /// For the launcher's start report: 4 bits per limit.
    pub fn bits(self) -> u32 {
        u32::from(self.memory.unwrap_or(0) & 0xf)
            | u32::from(self.processes.unwrap_or(0) & 0xf) << 4
            | u32::from(self.cpu.unwrap_or(0) & 0xf) << 8
    }

    pub fn from_bits(bits: u32) -> Placed {
        let v = |b: u32| Some((b & 0xf) as u8).filter(|v| *v != 0);
        Placed {
            memory: v(bits),
            processes: v(bits >> 4),
            cpu: v(bits >> 8),
        }
    }
}

/// One of a run's cgroup directories, held by descriptor: the launcher
/// makes and changes it as root, and a name is never resolved again once
/// the directory is made.
#[derive(Debug)]
struct Dir {
    fd: OwnedFd,
    /// Its parent, where it is removed from.
    parent: OwnedFd,
    name: CString,
    /// The cgroup the launcher goes back to (its own in that hierarchy).
    home: OwnedFd,
    /// For messages.
    path: PathBuf,
    v2: bool,
}

/// A run's cgroups; removed (everything in them killed) on drop.
#[derive(Debug)]
pub struct RunCgroup {
    dirs: Vec<Dir>,
    pub placed: Placed,
}

fn fail(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{what} {}: {e}", path.display())
}

const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Opens the cgroup directory at `path` (from the kernel's own mount table)
/// with no symlink on the way; it must be on a cgroup filesystem, where
/// nobody can make a symlink or a regular file.
fn open_cgroup(path: &Path) -> Result<OwnedFd, sys::Errno> {
    let c =
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| sys::Errno(libc::EINVAL))?;
    let fd = sys::at::open_owned(None, &c, libc::O_DIRECTORY | libc::O_RDONLY)?;
    match sys::at::fs_type(fd.as_fd())? {
        CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC => Ok(fd),
        _ => Err(sys::Errno(libc::EXDEV)),
    }
}

/// Writes `value` to the existing control file `file` of the cgroup `dir`.
fn write_at(dir: BorrowedFd<'_>, file: &CStr, value: &str) -> Result<(), sys::Errno> {
    let fd = sys::at::open_at(dir, file, libc::O_WRONLY, 0)?;
    sys::fd::write_all(fd.as_raw_fd(), value.as_bytes())
}

fn cstr(name: &str) -> CString {
    CString::new(name).unwrap_or_default()
}

impl RunCgroup {
    /// Makes the run's cgroups for `limits`, named for the calling
    /// launcher, after removing those of launchers that are gone.
    pub fn create(limits: Limits) -> Result<RunCgroup, String> {
        let layout = Layout::read()?;
        let name = format!("{RUN_PREFIX}{}", std::process::id());
        let mut run = RunCgroup {
            dirs: Vec::new(),
            placed: Placed::default(),
        };
        if let Some(v2) = layout.v2() {
            let parent = subtree(&v2.mount);
            let parent_fd = open_cgroup(&parent).map_err(|e| {
                format!(
                    "the cgroup subtree {} cannot be used ({e})\nhint: sudo moat setup",
                    parent.display()
                )
            })?;
            let st =
                sys::at::stat_fd(parent_fd.as_raw_fd()).map_err(|e| fail("reading", &parent, e))?;
            if st.uid != 0 || st.mode & 0o022 != 0 {
                return Err(format!(
                    "the cgroup subtree {} is not root's alone (owner uid {}, mode {:o})\nhint: sudo moat setup",
                    parent.display(),
                    st.uid,
                    st.mode & 0o7777
                ));
            }
            let home = own_dir(v2, &layout.own).unwrap_or_else(|| v2.mount.clone());
            run.add(parent_fd, &parent, &name, &home, true)?;
        }
        let wants = [
            ("memory", limits.memory),
            ("pids", limits.processes),
            ("cpu", limits.cpu),
        ];
        for (controller, value) in wants {
            let Some(value) = value else { continue };
            let version = match layout.home(controller) {
                None => continue,
                Some(Home::V2) => {
                    run.limit(0, controller, value)?;
                    2
                }
                Some(Home::V1(parent)) => {
                    let at = match run
                        .dirs
                        .iter()
                        .position(|d| d.path.parent() == Some(&parent))
                    {
                        Some(i) => i,
                        None => {
                            let parent_fd =
                                open_cgroup(&parent).map_err(|e| fail("opening", &parent, e))?;
                            run.add(parent_fd, &parent, &name, &parent, false)?;
                            run.dirs.len() - 1
                        }
                    };
                    run.limit(at, controller, value)?;
                    1
                }
            };
            match controller {
                "memory" => run.placed.memory = Some(version),
                "pids" => run.placed.processes = Some(version),
                _ => run.placed.cpu = Some(version),
            }
        }
        Ok(run)
    }

    fn add(
        &mut self,
        parent: OwnedFd,
        parent_path: &Path,
        name: &str,
        home: &Path,
        v2: bool,
    ) -> Result<(), String> {
        sweep(parent.as_fd(), v2);
        let path = parent_path.join(name);
        let c = cstr(name);
        match sys::at::mkdir_at(parent.as_fd(), &c, 0o755) {
            Ok(()) => {}
            // A launcher gone with this pid left it (sweep keeps those whose
            // pid lives, as this one does).
            Err(sys::Errno(libc::EEXIST)) => {
                remove_at(parent.as_fd(), &c, v2)
                    .map_err(|e| fail("removing the stale", &path, e))?;
                sys::at::mkdir_at(parent.as_fd(), &c, 0o755)
                    .map_err(|e| fail("creating", &path, e))?;
            }
            Err(e) => return Err(fail("creating", &path, e)),
        }
        let fd = sys::at::open_at(parent.as_fd(), &c, libc::O_DIRECTORY | libc::O_RDONLY, 0)
            .map_err(|e| fail("opening", &path, e))?;
        let home_fd = open_cgroup(home).map_err(|e| fail("opening", home, e))?;
        self.dirs.push(Dir {
            fd,
            parent,
            name: c,
            home: home_fd,
            path,
            v2,
        });
        Ok(())
    }

    fn limit(&self, at: usize, controller: &str, value: u64) -> Result<(), String> {
        let Some(dir) = self.dirs.get(at) else {
            return Err(format!("no cgroup for the {controller} limit"));
        };
        let v = value.to_string();
        let (quota, period) = cpu_quota(value);
        let cpu_max = format!("{quota} {period}");
        let (quota, period) = (quota.to_string(), period.to_string());
        // (file, value, whether the file must exist)
        let files: Vec<(&str, &str, bool)> = match (controller, dir.v2) {
            // Swap would let the run go past its memory limit.
            ("memory", true) => vec![("memory.max", &v, true), ("memory.swap.max", "0", false)],
            ("memory", false) => vec![
                ("memory.limit_in_bytes", &v, true),
                ("memory.memsw.limit_in_bytes", &v, false),
            ],
            ("cpu", true) => vec![("cpu.max", &cpu_max, true)],
            ("cpu", false) => vec![
                ("cpu.cfs_period_us", &period, true),
                ("cpu.cfs_quota_us", &quota, true),
            ],
            _ => vec![("pids.max", &v, true)],
        };
        for (file, value, required) in files {
            match write_at(dir.fd.as_fd(), &cstr(file), value) {
                Ok(()) => {}
                Err(sys::Errno(libc::ENOENT)) if !required => {}
                Err(e) => return Err(fail("writing", &dir.path.join(file), e)),
            }
        }
        Ok(())
    }

    /// The v2 directory to fork init into.
    pub fn v2_fd(&self) -> Option<std::os::fd::RawFd> {
        self.dirs.iter().find(|d| d.v2).map(|d| d.fd.as_raw_fd())
    }

    /// Moves the calling process into the run's v1 cgroups, and into the
    /// v2 one too with `v2` (where clone3 is refused: old kernels,
    /// container runtimes' seccomp profiles).
    pub fn enter(&self, v2: bool) -> Result<(), String> {
        for d in self.dirs.iter().filter(|d| v2 || !d.v2) {
            write_at(d.fd.as_fd(), c"cgroup.procs", "0")
                .map_err(|e| fail("joining", &d.path, e))?;
        }
        Ok(())
    }

    /// Moves the calling process back to where it was (in v2 too with
    /// `v2`).
    pub fn leave(&self, v2: bool) {
        for d in self.dirs.iter().filter(|d| v2 || !d.v2) {
            let _ = write_at(d.home.as_fd(), c"cgroup.procs", "0");
        }
    }

    /// The run's cgroup directories.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|d| d.path.as_path())
    }

    /// Kills what is left in the run's cgroups and removes them.
    pub fn remove(&mut self) -> Result<(), String> {
        let mut first = Ok(());
        for d in std::mem::take(&mut self.dirs) {
            drop(d.fd);
            if let Err(e) = remove_at(d.parent.as_fd(), &d.name, d.v2) {
                if first.is_ok() {
                    first = Err(fail("removing", &d.path, e));
                }
            }
        }
        first
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Removes the run directories in `parent` whose launcher is gone.
fn sweep(parent: BorrowedFd<'_>, v2: bool) {
    for name in sys::at::names(parent).unwrap_or_default() {
        let Some(pid) = name
            .to_str()
            .ok()
            .and_then(|n| n.strip_prefix(RUN_PREFIX))
            .and_then(|p| p.parse::<libc::pid_t>().ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        // Signal 0 only asks whether the process exists.
        if sys::process::kill(pid, 0) == Err(sys::Errno(libc::ESRCH)) {
            let _ = remove_at(parent, &name, v2);
        }
    }
}

/// Kills whatever runs in the cgroup `name` of `parent` and removes it,
/// deepest first.
fn remove_at(parent: BorrowedFd<'_>, name: &CStr, v2: bool) -> Result<(), sys::Errno> {
    let dir = match sys::at::open_at(parent, name, libc::O_DIRECTORY | libc::O_RDONLY, 0) {
        Ok(d) => d,
        Err(sys::Errno(libc::ENOENT)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if v2 {
        // cgroup.kill (Linux 5.14) ends every process of the subtree at once.
        let _ = write_at(dir.as_fd(), c"cgroup.kill", "1");
    }
    for sub in sys::at::names(dir.as_fd())? {
        // Control files are not directories: only child cgroups open so.
        if sys::at::open_at(dir.as_fd(), &sub, libc::O_DIRECTORY | libc::O_RDONLY, 0).is_ok() {
            remove_at(dir.as_fd(), &sub, v2)?;
        }
    }
    // A killed process leaves the cgroup once it is reaped, which on a
    // loaded machine can take seconds; retry for up to 5 s.
    let mut last = Ok(());
    for _ in 0..1000 {
        if !v2 {
            kill_listed(dir.as_fd());
        }
        last = sys::at::unlink_at(parent, name, true);
        match last {
            Ok(()) | Err(sys::Errno(libc::ENOENT)) => return Ok(()),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
    last
}

fn kill_listed(dir: BorrowedFd<'_>) {
    let Ok(fd) = sys::at::open_at(dir, c"cgroup.procs", libc::O_RDONLY, 0) else {
        return;
    };
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sys::fd::read(fd.as_raw_fd(), &mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    for pid in String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
    {
        let _ = sys::process::kill(pid, libc::SIGKILL);
    }
}

/// Kills whatever runs in the cgroup `dir` and removes it, deepest first
/// (setup's removal of its subtree and of runs' leftovers).
pub fn remove_dir(dir: &Path, v2: bool) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    };
    let parent = match open_cgroup(parent) {
        Ok(p) => p,
        Err(sys::Errno(libc::ENOENT)) => return Ok(()),
        Err(e) => return Err(e.io()),
    };
    let name = CString::new(name.as_encoded_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    remove_at(parent.as_fd(), &name, v2).map_err(sys::Errno::io)
}

/// Every run directory below `dir`, `depth` levels down at most (for
/// setup's checks and removal).
pub fn find_runs(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if e.file_name().to_string_lossy().starts_with(RUN_PREFIX) {
            out.push(e.path());
        } else if depth > 0 {
            find_runs(&e.path(), depth - 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:23 / /sys rw,nosuid - sysfs sysfs rw
35 25 0:30 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
36 35 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 35 0:32 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
38 35 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
39 35 0:34 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
40 35 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 35 0:36 /lxc/c1 /sys/fs/cgroup/blkio\\040x rw - cgroup cgroup rw,blkio
";

    const OWN: &str = "\
9:name=systemd:/user.slice
8:pids:/
5:cpu,cpuacct:/work
4:memory:/process_api/abc
3:blkio:/lxc/c1/inner
0::/user.slice/session-1.scope
";

    fn find<'a>(hs: &'a [Hierarchy], mount: &str) -> &'a Hierarchy {
        hs.iter().find(|h| h.mount == Path::new(mount)).unwrap()
    }

    #[test]
    fn mounts_are_read_with_their_version_and_controllers() {
        let hs = parse_mounts(MOUNTINFO);
        assert_eq!(hs.len(), 6);
        let v2 = find(&hs, "/sys/fs/cgroup/unified");
        assert_eq!(v2.v1, None);
        let mem = find(&hs, "/sys/fs/cgroup/memory");
        assert!(mem.v1.as_ref().unwrap().contains(&"memory".to_string()));
        let blkio = find(&hs, "/sys/fs/cgroup/blkio x");
        assert_eq!(blkio.root, "/lxc/c1");
    }

    #[test]
    fn own_cgroups_resolve_to_directories() {
        let hs = parse_mounts(MOUNTINFO);
        let own = parse_own(OWN);
        let dir = |m: &str| own_dir(find(&hs, m), &own);
        assert_eq!(
            dir("/sys/fs/cgroup/memory"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"))
        );
        assert_eq!(
            dir("/sys/fs/cgroup/pids"),
            Some(PathBuf::from("/sys/fs/cgroup/pids"))
        );
        assert_eq!(
            dir("/sys/fs/cgroup/cpu,cpuacct"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/work"))
        );
        assert_eq!(
            dir("/sys/fs/cgroup/systemd"),
            Some(PathBuf::from("/sys/fs/cgroup/systemd/user.slice"))
        );
        assert_eq!(
            dir("/sys/fs/cgroup/unified"),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/user.slice/session-1.scope"
            ))
        );
        // The mount shows only /lxc/c1 of the hierarchy.
        assert_eq!(
            dir("/sys/fs/cgroup/blkio x"),
            Some(PathBuf::from("/sys/fs/cgroup/blkio x/inner"))
        );
    }

    #[test]
    fn a_cgroup_outside_the_mounted_part_has_no_directory() {
        let hs = parse_mounts(MOUNTINFO);
        let own = parse_own("3:blkio:/lxc/c10/x\n");
        assert_eq!(own_dir(find(&hs, "/sys/fs/cgroup/blkio x"), &own), None);
        let own = parse_own("3:blkio:/other\n");
        assert_eq!(own_dir(find(&hs, "/sys/fs/cgroup/blkio x"), &own), None);
    }

    #[test]
    fn placement_survives_the_start_report() {
        for p in [
            Placed::default(),
            Placed {
                memory: Some(1),
                processes: None,
                cpu: None,
            },
            Placed {
                memory: Some(2),
                processes: Some(1),
                cpu: Some(2),
            },
            Placed {
                memory: None,
                processes: Some(2),
                cpu: Some(1),
            },
        ] {
            assert_eq!(Placed::from_bits(p.bits()), p);
        }
    }

    #[test]
    fn cpu_shares_become_quotas_the_kernel_takes() {
        assert_eq!(cpu_quota(1500), (150_000, 100_000));
        assert_eq!(cpu_quota(10), (1_000, 100_000));
        assert_eq!(cpu_quota(5), (5_000, 1_000_000));
        assert_eq!(cpu_quota(1), (1_000, 1_000_000));
    }

    #[test]
    fn garbage_is_skipped() {
        assert!(parse_mounts("nonsense\n - \n1 2 3 - cgroup").is_empty());
        assert!(parse_own("nonsense\n").is_empty());
    }
}
