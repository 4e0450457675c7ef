//! The seccomp filter: one reviewed table, compiled by [`crate::bpf`].
//!
//! The program checks the architecture first and kills on a mismatch, so
//! `int 0x80` cannot reach the i386 table. It then answers every syscall
//! number above the highest one reviewed here with ENOSYS (new syscalls are
//! refused until someone reads them, and x32 numbers, which have bit 30
//! set, land there too). After that, a deny table answers EPERM, or ENOSYS
//! for calls whose callers fall back gracefully on it (clone3 to clone,
//! io_uring to plain I/O).
//!
//! ioctl requests are compared on their low 32 bits only, as the kernel
//! does: comparing all 64 would let `TIOCSTI | 1 << 32` through
//! (CVE-2019-10063).

use crate::bpf::{self, Action, Cmp, Entry, Rule};

#[cfg(target_arch = "x86_64")]
mod arch {
    pub const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    /// One past the highest x86_64 syscall reviewed for this table
    /// (file_setattr, 469, Linux 6.17).
    pub const FIRST_UNREVIEWED: u32 = 470;
}

#[cfg(not(target_arch = "x86_64"))]
compile_error!("moat's seccomp table has been reviewed for x86_64 only");

/// Calls that are refused outright, each with the reason.
const DENY: &[(i64, &str, &str)] = &[
    (
        libc::SYS_ptrace,
        "ptrace",
        "reads and rewrites other processes",
    ),
    (
        libc::SYS_process_vm_readv,
        "process_vm_readv",
        "reads other processes' memory",
    ),
    (
        libc::SYS_process_vm_writev,
        "process_vm_writev",
        "writes other processes' memory",
    ),
    (
        libc::SYS_process_madvise,
        "process_madvise",
        "acts on other processes' memory",
    ),
    (
        libc::SYS_pidfd_getfd,
        "pidfd_getfd",
        "steals other processes' descriptors",
    ),
    (
        libc::SYS_kcmp,
        "kcmp",
        "probes other processes' kernel objects",
    ),
    (
        libc::SYS_keyctl,
        "keyctl",
        "kernel keyrings are not namespaced",
    ),
    (
        libc::SYS_add_key,
        "add_key",
        "kernel keyrings are not namespaced",
    ),
    (
        libc::SYS_request_key,
        "request_key",
        "kernel keyrings are not namespaced",
    ),
    (libc::SYS_bpf, "bpf", "kernel attack surface"),
    (
        libc::SYS_perf_event_open,
        "perf_event_open",
        "kernel attack surface and side channels",
    ),
    (
        libc::SYS_userfaultfd,
        "userfaultfd",
        "widens kernel race windows",
    ),
    (
        libc::SYS_mount,
        "mount",
        "mounts could undo the sandbox's view",
    ),
    (
        libc::SYS_umount2,
        "umount2",
        "unmounting would reveal what masks hide",
    ),
    (libc::SYS_pivot_root, "pivot_root", "changes the root"),
    (
        libc::SYS_chroot,
        "chroot",
        "chroot tricks escape path checks",
    ),
    (libc::SYS_fsopen, "fsopen", "new mount API"),
    (libc::SYS_fsconfig, "fsconfig", "new mount API"),
    (libc::SYS_fsmount, "fsmount", "new mount API"),
    (libc::SYS_fspick, "fspick", "new mount API"),
    (libc::SYS_open_tree, "open_tree", "new mount API"),
    (467, "open_tree_attr", "new mount API"),
    (libc::SYS_move_mount, "move_mount", "new mount API"),
    (libc::SYS_mount_setattr, "mount_setattr", "new mount API"),
    (
        libc::SYS_unshare,
        "unshare",
        "new namespaces expose kernel attack surface",
    ),
    (libc::SYS_setns, "setns", "joining namespaces"),
    (libc::SYS_kexec_load, "kexec_load", "loads a kernel"),
    (
        libc::SYS_kexec_file_load,
        "kexec_file_load",
        "loads a kernel",
    ),
    (libc::SYS_init_module, "init_module", "loads kernel code"),
    (libc::SYS_finit_module, "finit_module", "loads kernel code"),
    (
        libc::SYS_delete_module,
        "delete_module",
        "unloads kernel code",
    ),
    (libc::SYS_reboot, "reboot", "host control"),
    (libc::SYS_swapon, "swapon", "host control"),
    (libc::SYS_swapoff, "swapoff", "host control"),
    (libc::SYS_syslog, "syslog", "reads the kernel log"),
    (libc::SYS_acct, "acct", "host control"),
    (libc::SYS_quotactl, "quotactl", "host control"),
    (libc::SYS_quotactl_fd, "quotactl_fd", "host control"),
    (libc::SYS_settimeofday, "settimeofday", "host clock"),
    (libc::SYS_clock_settime, "clock_settime", "host clock"),
    (libc::SYS_clock_adjtime, "clock_adjtime", "host clock"),
    (
        libc::SYS_open_by_handle_at,
        "open_by_handle_at",
        "opens files by handle, bypassing paths",
    ),
    (
        libc::SYS_fanotify_init,
        "fanotify_init",
        "watches the host's filesystem",
    ),
    (
        libc::SYS_lookup_dcookie,
        "lookup_dcookie",
        "kernel attack surface",
    ),
    (libc::SYS_iopl, "iopl", "raw hardware access"),
    (libc::SYS_ioperm, "ioperm", "raw hardware access"),
    (libc::SYS_uselib, "uselib", "obsolete loader"),
    (libc::SYS_vhangup, "vhangup", "hangs up terminals"),
    (libc::SYS__sysctl, "_sysctl", "obsolete"),
    (libc::SYS_sysfs, "sysfs", "obsolete"),
    (libc::SYS_nfsservctl, "nfsservctl", "obsolete"),
];

/// Calls answered with ENOSYS: their callers fall back when they see it.
const ENOSYS: &[(i64, &str, &str)] = &[
    (
        libc::SYS_openat2,
        "openat2",
        "its mode lives in memory seccomp cannot read (see SETID_MODES); libc falls back to openat",
    ),
    (
        libc::SYS_clone3,
        "clone3",
        "its flags live in memory seccomp cannot read; libc falls back to clone",
    ),
    (
        libc::SYS_io_uring_setup,
        "io_uring_setup",
        "io_uring operations bypass this filter",
    ),
    (
        libc::SYS_io_uring_enter,
        "io_uring_enter",
        "io_uring operations bypass this filter",
    ),
    (
        libc::SYS_io_uring_register,
        "io_uring_register",
        "io_uring operations bypass this filter",
    ),
];

/// Terminal ioctls that are refused: pushing input into a terminal
/// (TIOCSTI, TIOCLINUX), changing its line discipline (TIOCSETD loads
/// kernel modules) and redirecting the console (TIOCCONS).
const DENY_IOCTLS: &[(u64, &str)] = &[
    (0x5412, "TIOCSTI"),
    (0x541C, "TIOCLINUX"),
    (0x5423, "TIOCSETD"),
    (0x541D, "TIOCCONS"),
];

/// Calls that set a file's mode: the index of the mode argument, and for
/// the open family the index of the flags, which decide whether the mode
/// means anything (O_CREAT or O_TMPFILE); without them the kernel ignores
/// the mode register, which may hold anything.
/// Setting the setuid or setgid bit is refused: a command that runs as
/// root inside (the person is root) would otherwise leave setuid-root
/// programs in the workspace for any local user to run.
const SETID_MODES: &[(i64, &str, u8, Option<u8>)] = &[
    (libc::SYS_chmod, "chmod", 1, None),
    (libc::SYS_fchmod, "fchmod", 1, None),
    (libc::SYS_fchmodat, "fchmodat", 2, None),
    (libc::SYS_fchmodat2, "fchmodat2", 2, None),
    (libc::SYS_open, "open", 2, Some(1)),
    (libc::SYS_openat, "openat", 3, Some(2)),
    (libc::SYS_creat, "creat", 1, None),
    (libc::SYS_mknod, "mknod", 1, None),
    (libc::SYS_mknodat, "mknodat", 2, None),
];

/// O_CREAT | __O_TMPFILE: the open flags that make the mode count.
const MODE_FLAGS: u32 = 0o100 | 0o20000000;

const S_ISUID_GID: u32 = 0o6000;

/// Namespace flags refused in clone(2).
const CLONE_NAMESPACES: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

const IPPROTO_MPTCP: u64 = 262;

/// What the filter allows of sockets ([`moat_spec::RunSpec::sockets`]).
pub use moat_spec::Sockets;

/// The compiled filter, without and with an observer.
#[derive(Debug, Clone)]
pub struct Filters {
    pub program: Vec<libc::sock_filter>,
    pub observed: Vec<libc::sock_filter>,
}

/// Calls that send a signal to one process: with an observer they are
/// notified, so that it can tell those Landlock's signal scope refuses.
const SIGNALS: &[i64] = &[libc::SYS_kill, libc::SYS_tkill, libc::SYS_tgkill];

/// Calls that change the file system through a path. With an observer
/// they are notified, so that it can tell which of them a layer refuses.
const WRITES: &[i64] = &[
    libc::SYS_creat,
    libc::SYS_truncate,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rmdir,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_chmod,
    libc::SYS_fchmodat,
    libc::SYS_fchmodat2,
];

/// Opens, with the index of their flags. With an observer they are
/// notified: one for writing may be refused by a layer, and one for
/// reading may name a denied path; but not a directory opened for reading
/// (a tree walk opens thousands, and each notification costs a round trip
/// to the observer).
const OPENS: &[(i64, u8)] = &[(libc::SYS_open, 1), (libc::SYS_openat, 2)];

/// The open flags of an open that may change a file.
pub(crate) const WRITE_FLAGS: u32 =
    (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u32;

fn entries(sockets: Sockets) -> Vec<Entry> {
    let mut out = Vec::new();
    let eperm = Action::Errno(libc::EPERM as u16);
    let plain = |nr: i64, errno: i32| Entry {
        nr: nr as u32,
        rules: vec![Rule::always(Action::Errno(errno as u16))],
    };
    let when = |tests: Vec<(u8, Cmp)>| Rule {
        when: tests,
        action: eperm,
    };
    for (nr, _name, _why) in DENY {
        out.push(plain(*nr, libc::EPERM));
    }
    for (nr, _name, _why) in ENOSYS {
        out.push(plain(*nr, libc::ENOSYS));
    }
    out.push(Entry {
        nr: libc::SYS_ioctl as u32,
        rules: DENY_IOCTLS
            .iter()
            .map(|(request, _)| when(vec![(1, Cmp::Eq(*request as u32))]))
            .collect(),
    });
    for (nr, _name, mode, flags) in SETID_MODES {
        let mut rule = vec![(*mode, Cmp::AnyBit(S_ISUID_GID))];
        if let Some(flags) = flags {
            rule.insert(0, (*flags, Cmp::AnyBit(MODE_FLAGS)));
        }
        out.push(Entry {
            nr: *nr as u32,
            rules: vec![when(rule)],
        });
    }
    let namespaces = CLONE_NAMESPACES.iter().fold(0u32, |acc, f| acc | *f as u32);
    out.push(Entry {
        nr: libc::SYS_clone as u32,
        rules: vec![when(vec![(0, Cmp::AnyBit(namespaces))])],
    });
    // Socket families other than the allowed ones (module autoloading of
    // rare protocols, raw packet access, vsock to the hypervisor), and
    // MPTCP, which Landlock's TCP rules do not see.
    let allowed: &[i32] = match sockets {
        Sockets::UnixAndIp => &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6],
        Sockets::UnixOnly => &[libc::AF_UNIX],
    };
    out.push(Entry {
        nr: libc::SYS_socket as u32,
        rules: vec![
            when(allowed.iter().map(|f| (0, Cmp::Ne(*f as u32))).collect()),
            when(vec![(2, Cmp::Eq(IPPROTO_MPTCP as u32))]),
        ],
    });
    out.push(Entry {
        nr: libc::SYS_socketpair as u32,
        rules: vec![when(vec![(0, Cmp::Ne(libc::AF_UNIX as u32))])],
    });
    out
}

/// The table for an observer: every refusal with EPERM is notified instead
/// (the observer answers it with [`answer_without_observer`]), and so are
/// writes through a path and connects, which it continues.
fn observed_entries(sockets: Sockets) -> Vec<Entry> {
    let mut out = entries(sockets);
    for e in out.iter_mut() {
        for rule in e.rules.iter_mut() {
            if rule.action == Action::Errno(libc::EPERM as u16) {
                rule.action = Action::Notify;
            }
        }
    }
    let mut notify = |nr: i64, rule: Rule| match out.iter_mut().find(|e| e.nr == nr as u32) {
        Some(e) => e.rules.push(rule),
        None => out.push(Entry {
            nr: nr as u32,
            rules: vec![rule],
        }),
    };
    for nr in WRITES {
        notify(*nr, Rule::always(Action::Notify));
    }
    for (nr, flags) in OPENS {
        let when = |bits| vec![(*flags, Cmp::AnyBit(bits))];
        notify(
            *nr,
            Rule {
                when: when(WRITE_FLAGS),
                action: Action::Notify,
            },
        );
        notify(
            *nr,
            Rule {
                when: when(libc::O_DIRECTORY as u32),
                action: Action::Allow,
            },
        );
        notify(*nr, Rule::always(Action::Notify));
    }
    notify(libc::SYS_connect, Rule::always(Action::Notify));
    for nr in SIGNALS {
        notify(*nr, Rule::always(Action::Notify));
    }
    out
}

/// Compiles the filter for `sockets`, with and without an observer.
pub fn build(sockets: Sockets) -> Result<Filters, bpf::BpfError> {
    let compile = |entries| {
        bpf::compile(&bpf::Filter {
            audit_arch: arch::AUDIT_ARCH,
            first_unknown: arch::FIRST_UNREVIEWED,
            unknown: Action::Errno(libc::ENOSYS as u16),
            entries,
        })
    };
    Ok(Filters {
        program: compile(entries(sockets))?,
        observed: compile(observed_entries(sockets))?,
    })
}

/// What the filter without an observer (`program`, [`Filters::program`])
/// answers a call the observer was notified of: the errno it would have
/// failed with, or `None` when it would have let it through.
pub fn answer_without_observer(
    program: &[libc::sock_filter],
    arch: u32,
    nr: i32,
    args: [u64; 6],
) -> Option<i32> {
    let ret = bpf::evaluate(program, arch, nr as u32, args);
    match ret & libc::SECCOMP_RET_ACTION_FULL {
        libc::SECCOMP_RET_ALLOW => None,
        libc::SECCOMP_RET_ERRNO => Some((ret & libc::SECCOMP_RET_DATA) as i32),
        _ => Some(libc::EPERM),
    }
}

/// The name of a refused call, for the run report: the syscall, and the
/// argument that made it refused where one did.
pub fn refused_name(nr: i32, args: [u64; 6]) -> String {
    let nr = i64::from(nr);
    if let Some((_, name, _)) = DENY.iter().find(|(n, _, _)| *n == nr) {
        return (*name).to_string();
    }
    if let Some((_, name, _, _)) = SETID_MODES.iter().find(|(n, _, _, _)| *n == nr) {
        return format!("{name} with a setuid or setgid mode");
    }
    match nr {
        libc::SYS_ioctl => {
            let request = args[1] as u32 as u64;
            match DENY_IOCTLS.iter().find(|(r, _)| *r == request) {
                Some((_, name)) => format!("ioctl {name}"),
                None => format!("ioctl {request:#x}"),
            }
        }
        libc::SYS_clone => "clone with new namespaces".into(),
        libc::SYS_socket if args[2] as u32 as u64 == IPPROTO_MPTCP => "socket (MPTCP)".into(),
        libc::SYS_socket => format!("socket (address family {})", args[0] as u32),
        libc::SYS_socketpair => format!("socketpair (address family {})", args[0] as u32),
        _ => format!("syscall {nr}"),
    }
}

/// The table as text, for `moat policy show` and the README.
pub fn describe() -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for (_, name, why) in DENY {
        out.push((format!("{} -> EPERM", name), why));
    }
    for (_, name, why) in ENOSYS {
        out.push((format!("{} -> ENOSYS", name), why));
    }
    for (_, name, _, _) in SETID_MODES {
        out.push((
            format!("{} with a setuid/setgid mode -> EPERM", name),
            "setuid programs left in the workspace",
        ));
    }
    for (req, name) in DENY_IOCTLS {
        out.push((
            format!("ioctl {:#x} ({}) -> EPERM", req, name),
            "terminal injection or reconfiguration",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &Filters, nr: i64, args: [u64; 6]) -> u32 {
        bpf::evaluate(&f.program, arch::AUDIT_ARCH, nr as u32, args)
    }

    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS_RET: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_table_does_what_it_says() {
        let f = build(Sockets::UnixAndIp).unwrap();
        assert_eq!(run(&f, libc::SYS_ptrace, [0; 6]), EPERM);
        assert_eq!(run(&f, libc::SYS_clone3, [0; 6]), ENOSYS_RET);
        assert_eq!(run(&f, libc::SYS_read, [0; 6]), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&f, libc::SYS_fchmodat, [0, 0, 0o4755, 0, 0, 0]), EPERM);
        // open's mode counts only with O_CREAT or O_TMPFILE.
        let at = |flags: u64, mode: u64| run(&f, libc::SYS_openat, [0, 0, flags, mode, 0, 0]);
        assert_eq!(at(0o100, 0o4755), EPERM);
        assert_eq!(at(0o20200000, 0o2755), EPERM);
        assert_eq!(at(0, 0o4755), libc::SECCOMP_RET_ALLOW);
        assert_eq!(at(0o100, 0o755), libc::SECCOMP_RET_ALLOW);
        assert_eq!(
            run(&f, libc::SYS_fchmodat, [0, 0, 0o755, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(&f, libc::SYS_openat, [0, 0, 0o101, 0o2755, 0, 0]),
            EPERM
        );
        assert_eq!(
            run(&f, libc::SYS_openat, [0, 0, 0o101, 0o644, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(run(&f, libc::SYS_openat2, [0; 6]), ENOSYS_RET);
        assert_eq!(run(&f, 470, [0; 6]), ENOSYS_RET);
        assert_eq!(run(&f, libc::SYS_ioctl, [0, 0x5412, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            run(&f, libc::SYS_ioctl, [0, 0x1_0000_5412, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(
            run(&f, libc::SYS_ioctl, [0, 0x5401, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        let newuser = libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64;
        assert_eq!(run(&f, libc::SYS_clone, [newuser, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            run(&f, libc::SYS_clone, [0x3d0f00, 0, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(&f, libc::SYS_socket, [libc::AF_INET as u64, 1, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(
            run(
                &f,
                libc::SYS_socket,
                [libc::AF_INET as u64, 1, 262, 0, 0, 0]
            ),
            EPERM
        );
        assert_eq!(
            run(
                &f,
                libc::SYS_socket,
                [libc::AF_NETLINK as u64, 3, 0, 0, 0, 0]
            ),
            EPERM
        );
        assert_eq!(
            run(&f, libc::SYS_socket, [libc::AF_VSOCK as u64, 1, 0, 0, 0, 0]),
            EPERM
        );
        let unix_only = build(Sockets::UnixOnly).unwrap();
        assert_eq!(
            run(
                &unix_only,
                libc::SYS_socket,
                [libc::AF_INET6 as u64, 2, 0, 0, 0, 0]
            ),
            EPERM
        );
        assert_eq!(
            run(
                &unix_only,
                libc::SYS_socket,
                [libc::AF_UNIX as u64, 1, 0, 0, 0, 0]
            ),
            libc::SECCOMP_RET_ALLOW
        );
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_observed_table_notifies_refusals_writes_and_connects_only() {
        let f = build(Sockets::UnixAndIp).unwrap();
        let observed =
            |nr: i64, args: [u64; 6]| bpf::evaluate(&f.observed, arch::AUDIT_ARCH, nr as u32, args);
        let notify = libc::SECCOMP_RET_USER_NOTIF;
        assert_eq!(observed(libc::SYS_ptrace, [0; 6]), notify);
        assert_eq!(
            observed(libc::SYS_openat, [0, 0, 0o101, 0o644, 0, 0]),
            notify
        );
        assert_eq!(
            observed(libc::SYS_openat, [0, 0, 0o101, 0o4755, 0, 0]),
            notify
        );
        assert_eq!(observed(libc::SYS_open, [0, 0o1000, 0, 0, 0, 0]), notify);
        assert_eq!(observed(libc::SYS_mkdir, [0; 6]), notify);
        assert_eq!(observed(libc::SYS_connect, [0; 6]), notify);
        assert_eq!(observed(libc::SYS_kill, [1, 15, 0, 0, 0, 0]), notify);
        assert_eq!(observed(libc::SYS_tgkill, [1, 1, 15, 0, 0, 0]), notify);
        assert_eq!(observed(libc::SYS_ioctl, [0, 0x5412, 0, 0, 0, 0]), notify);
        // Opens for reading too (a denied path may be read); reads of
        // open files, and what callers fall back from, never trap.
        let o_cloexec_rdonly = 0o2000000;
        assert_eq!(
            observed(libc::SYS_openat, [0, 0, o_cloexec_rdonly, 0, 0, 0]),
            notify
        );
        let o_directory = 0o200000;
        assert_eq!(
            observed(
                libc::SYS_openat,
                [0, 0, o_cloexec_rdonly | o_directory, 0, 0, 0]
            ),
            libc::SECCOMP_RET_ALLOW,
            "a directory opened for reading"
        );
        assert_eq!(
            observed(
                libc::SYS_open,
                [0, o_directory | 0o20000000 | 2, 0, 0, 0, 0]
            ),
            notify,
            "O_TMPFILE"
        );
        assert_eq!(observed(libc::SYS_read, [0; 6]), libc::SECCOMP_RET_ALLOW);
        assert_eq!(
            observed(libc::SYS_newfstatat, [0; 6]),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(
            observed(libc::SYS_ioctl, [0, 0x5401, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(observed(libc::SYS_clone3, [0; 6]), ENOSYS_RET);
        // The observer answers as the plain filter would.
        let arch = arch::AUDIT_ARCH;
        let nr = |n: i64| n as i32;
        assert_eq!(
            answer_without_observer(&f.program, arch, nr(libc::SYS_ptrace), [0; 6]),
            Some(libc::EPERM)
        );
        assert_eq!(
            answer_without_observer(
                &f.program,
                arch,
                nr(libc::SYS_openat),
                [0, 0, 0o101, 0o4755, 0, 0]
            ),
            Some(libc::EPERM)
        );
        assert_eq!(
            answer_without_observer(
                &f.program,
                arch,
                nr(libc::SYS_openat),
                [0, 0, 0o101, 0o644, 0, 0]
            ),
            None
        );
        assert_eq!(
            answer_without_observer(&f.program, arch, nr(libc::SYS_connect), [0; 6]),
            None
        );
        assert_eq!(refused_name(nr(libc::SYS_ptrace), [0; 6]), "ptrace");
        assert_eq!(
            refused_name(nr(libc::SYS_ioctl), [0, 0x5412, 0, 0, 0, 0]),
            "ioctl TIOCSTI"
        );
        assert_eq!(
            refused_name(nr(libc::SYS_fchmodat), [0; 6]),
            "fchmodat with a setuid or setgid mode"
        );
    }

    #[test]
    fn the_dispatch_is_short() {
        // The binary search keeps the path for an allowed syscall to a
        // dozen instructions, whatever the table's size.
        let f = build(Sockets::UnixAndIp)
            .map(|f| f.program.len().max(f.observed.len()))
            .unwrap_or(usize::MAX);
        assert!(f < 600, "program is {f} instructions");
    }
}
