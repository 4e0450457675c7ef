//! What this kernel and machine support, for `moat doctor` and for
//! deciding how a run can be enforced.

use std::path::{Path, PathBuf};

use crate::sys;

/// The machine's sandboxing facilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    pub kernel: String,
    pub arch: &'static str,
    /// Landlock ABI version; 0 when Landlock is unavailable.
    pub landlock_abi: i32,
    /// `Ok` if an unprivileged user namespace with its own mounts could be
    /// created just now; the reason otherwise.
    pub user_namespaces: Result<(), String>,
    /// Whether seccomp filters with errno and kill actions are available.
    pub seccomp: bool,
    /// cgroup v2, if mounted: where and which controllers it offers.
    pub cgroup2: Option<(PathBuf, Vec<String>)>,
    /// Whether the nft tool is installed and the kernel has netfilter
    /// netlink (which nftables needs).
    pub nftables: (bool, bool),
    /// Idmapped mounts need Linux 5.12 and the new mount API.
    pub idmapped_mounts: bool,
    /// The sysctls that decide whether unprivileged user namespaces work.
    pub userns_sysctls: Vec<(String, String)>,
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn kernel_release() -> String {
    read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".to_string())
}

fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let ma: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let mi: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (ma, mi) >= (major, minor)
}

/// Tries a user namespace with a mount namespace in a throw-away child.
pub fn try_user_namespace() -> Result<(), String> {
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as libc::c_ulong;
    // Read before the clone: inside a namespace without a mapping yet, the
    // ids read back as the overflow id.
    let ids = sys_ids();
    match sys::clone::fork_with(flags) {
        Err(e) => Err(format!("clone(CLONE_NEWUSER) failed: {}", e)),
        Ok(sys::clone::Forked::Child) => {
            // In the child: map our ids the way a run does, then mount,
            // using only fork-safe calls until exit.
            let code = userns_child(ids);
            sys::clone::exit_now(code)
        }
        Ok(sys::clone::Forked::Parent { pid, .. }) => match sys::process::wait(pid) {
            Ok(sys::process::Exit::Code(0)) => Ok(()),
            Ok(sys::process::Exit::Code(1)) => Err("writing the uid map was refused".into()),
            Ok(sys::process::Exit::Code(2)) => Err("mounting inside the namespace was refused (an LSM such as AppArmor may be stripping capabilities)".into()),
            Ok(other) => Err(format!("the test process ended with {:?}", other)),
            Err(e) => Err(format!("waiting for the test process: {}", e)),
        },
    }
}

fn userns_child(ids: (u32, u32)) -> i32 {
    // Map nothing but ourselves; deny setgroups first as the kernel asks.
    let mut map = [0u8; 64];
    let uid = ids.0;
    let n = format_map(&mut map, uid);
    if sys::fd::write_file(c"/proc/self/uid_map", &map[..n]).is_err() {
        return 1;
    }
    if sys::fd::write_file(c"/proc/self/setgroups", b"deny").is_err() {
        return 1;
    }
    let gid = ids.1;
    let n = format_map(&mut map, gid);
    if sys::fd::write_file(c"/proc/self/gid_map", &map[..n]).is_err() {
        return 1;
    }
    let private = (libc::MS_REC | libc::MS_PRIVATE) as libc::c_ulong;
    if sys::mount::mount(None, c"/", None, private, None).is_err() {
        return 2;
    }
    0
}

/// The real uid and gid (ids in the parent namespace).
pub(crate) fn sys_ids() -> (u32, u32) {
    // getuid/getgid cannot fail.
    sys::process::ids()
}

/// Writes "ID ID 1" into `buf` without allocating; returns the length.
pub(crate) fn format_map(buf: &mut [u8; 64], id: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut n = 0;
    let mut v = id;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut len = 0;
    for _ in 0..2 {
        for i in (0..n).rev() {
            buf[len] = digits[i];
            len += 1;
        }
        buf[len] = b' ';
        len += 1;
    }
    buf[len] = b'1';
    buf[len + 1] = b'\n';
    len + 2
}

fn cgroup2() -> Option<(PathBuf, Vec<String>)> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mount = mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir))
    })?;
    let controllers = std::fs::read_to_string(mount.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    Some((mount, controllers))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(program).is_file()
}

/// Looks at the machine. Costs a fork (the user-namespace test).
pub fn detect() -> Support {
    let kernel = kernel_release();
    let sysctls = [
        "/proc/sys/user/max_user_namespaces",
        "/proc/sys/kernel/unprivileged_userns_clone",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ]
    .iter()
    .filter_map(|p| read_trim(p).map(|v| (p.trim_start_matches("/proc/sys/").replace('/', "."), v)))
    .collect();
    let seccomp = sys::seccomp::action_available(libc::SECCOMP_RET_KILL_PROCESS)
        && sys::seccomp::action_available(libc::SECCOMP_RET_ERRNO);
    Support {
        idmapped_mounts: kernel_at_least(&kernel, 5, 12),
        kernel,
        arch: std::env::consts::ARCH,
        landlock_abi: sys::landlock::abi_version(),
        user_namespaces: try_user_namespace(),
        seccomp,
        cgroup2: cgroup2(),
        nftables: (on_path("nft"), Path::new("/proc/net/netfilter").exists()),
        userns_sysctls: sysctls,
    }
}

/// Whether tool caches can be layered in runs of `isolation`: overlayfs is
/// there, it takes its layers one by one (Linux 6.7; a user namespace may
/// mount it from 5.11), and the launcher can give them by descriptor
/// (Linux 6.13). The reason when not.
pub fn cache_layers(isolation: moat_spec::Isolation) -> Result<(), String> {
    use moat_spec::Isolation;
    let filesystems = read_trim("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        return Err("the kernel has no overlayfs (modprobe overlay)".into());
    }
    let kernel = kernel_release();
    match isolation {
        Isolation::LandlockOnly => {
            Err("the landlock-only mode has no mounts to lay a cache over".into())
        }
        Isolation::Namespaces if !kernel_at_least(&kernel, 6, 7) => {
            Err("overlayfs layers added one by one in a user namespace need Linux 6.7".into())
        }
        Isolation::Elevated if !kernel_at_least(&kernel, 6, 13) => {
            Err("overlayfs with layers given by descriptor needs Linux 6.13".into())
        }
        _ => Ok(()),
    }
}

/// The Landlock ABI version, without the rest of [`detect`]'s cost.
pub fn landlock_abi() -> i32 {
    sys::landlock::abi_version()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines() {
        let mut buf = [0u8; 64];
        let n = format_map(&mut buf, 1000);
        assert_eq!(&buf[..n], b"1000 1000 1\n");
        let n = format_map(&mut buf, 0);
        assert_eq!(&buf[..n], b"0 0 1\n");
        let n = format_map(&mut buf, u32::MAX);
        assert_eq!(&buf[..n], b"4294967295 4294967295 1\n");
    }

    #[test]
    fn versions() {
        assert!(kernel_at_least("6.18.44-fc", 5, 12));
        assert!(!kernel_at_least("5.4.0", 5, 12));
        assert!(kernel_at_least("5.12", 5, 12));
    }
}
