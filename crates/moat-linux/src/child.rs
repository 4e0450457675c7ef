//! The code that runs after the fork: the sandbox's init and the command's
//! process.
//!
//! Everything here is fork-safe: moat may have other threads (the network
//! proxy), and a lock one of them held at the fork stays held in the child
//! forever. So no allocation, no locks, no Rust I/O: only the `sys`
//! wrappers, with every argument prepared by the parent in a
//! [`ChildSpec`]. Failures are sent as fixed-size records and the process
//! exits.
//!
//! Order in init: die with moat, map ids, run the mount plan, open the
//! terminal, fork the command, then reap and forward signals until the
//! command ends. Order in the command: new session, terminal, signals,
//! limits, working directory, capabilities, no_new_privs, Landlock,
//! seccomp, close inherited descriptors, exec.

use std::os::fd::RawFd;

use crate::plan::{FileId, Op, Source};
use crate::spec::{ChildSpec, Stdio};
use crate::sys::{self, Errno, SysResult};
use crate::wire::{Message, Step};

/// Exit status when the sandbox could not be set up (as `env` and
/// `timeout` use 125 for their own failures).
pub const SETUP_FAILED: i32 = 125;

fn fail(report: RawFd, step: Step, index: u32, errno: Errno) -> ! {
    Message::Failed {
        step,
        index,
        errno: errno.0,
    }
    .send(report);
    sys::clone::exit_now(SETUP_FAILED)
}

fn must<T>(report: RawFd, step: Step, index: u32, result: SysResult<T>) -> T {
    match result {
        Ok(v) => v,
        Err(e) => fail(report, step, index, e),
    }
}

/// Sends the socket `made` to moat on `sock` and closes init's copy.
fn pass_socket(report: RawFd, sock: RawFd, index: u32, made: SysResult<RawFd>) {
    let fd = must(report, Step::Proxy, index, made);
    must(report, Step::Proxy, index, sys::fd::send_fd(sock, fd));
    sys::fd::close_raw(fd);
}

/// Asks for SIGKILL when moat (the parent) dies, then makes sure it has
/// not died already: before the request took effect, its lifeline would
/// have hung up. `index` tells the two places this runs apart.
fn die_with_moat(spec: &ChildSpec, index: u32) {
    must(
        spec.report,
        Step::ParentDeathSignal,
        index,
        sys::process::set_parent_death_signal(libc::SIGKILL),
    );
    let revents = must(
        spec.report,
        Step::ParentGone,
        index,
        sys::fd::poll_one(spec.lifeline, libc::POLLIN, 0),
    );
    if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        sys::clone::exit_now(SETUP_FAILED);
    }
}

/// The first process inside the sandbox. Never returns.
pub fn init_main(spec: &mut ChildSpec) -> ! {
    let report = spec.report;
    // Held here, moat's end would keep the lifeline from ever hanging up.
    sys::fd::close_raw(spec.lifeline_parent);
    die_with_moat(spec, 0);
    if let Some((uid_map, gid_map)) = &spec.id_maps {
        must(
            report,
            Step::UidMap,
            0,
            sys::fd::write_file(c"/proc/self/uid_map", uid_map),
        );
        must(
            report,
            Step::SetGroups,
            0,
            sys::fd::write_file(c"/proc/self/setgroups", b"deny"),
        );
        must(
            report,
            Step::GidMap,
            0,
            sys::fd::write_file(c"/proc/self/gid_map", gid_map),
        );
    }
    let mut empty_mount: RawFd = -1;
    for (i, op) in spec.ops.iter().enumerate() {
        let result = run_op(
            op,
            &mut spec.slots,
            &mut spec.trees,
            &mut empty_mount,
            spec.idmap,
        );
        must(report, Step::Mount, i as u32, result);
    }
    if empty_mount >= 0 {
        sys::fd::close_raw(empty_mount);
    }

    if let Some(sock) = spec.proxy {
        for (i, port) in crate::PROXY_PORTS.iter().enumerate() {
            pass_socket(report, sock, i as u32, sys::net::listen_loopback(*port));
        }
        // Transparent mode: every address is local, so a program that
        // ignores the proxy variables reaches moat's listeners on ports
        // 80 and 443 (and its DNS stub) whatever address it dials; any
        // other port is refused at once.
        must(report, Step::Proxy, 10, sys::net::route_everything_local());
        for (i, port) in crate::TRANSPARENT_PORTS.iter().enumerate() {
            pass_socket(report, sock, 20 + i as u32, sys::net::listen_any(*port));
        }
        for (i, ip) in spec.dns.iter().enumerate() {
            pass_socket(
                report,
                sock,
                30 + i as u32,
                sys::net::bind_udp(*ip, crate::DNS_PORT),
            );
        }
        sys::fd::close_raw(sock);
    }

    let mut pty_slave: RawFd = -1;
    if let Some((sock, winsize)) = spec.pty {
        let (master, slave) = must(report, Step::Pty, 0, sys::pty::open_pair_at(c"/dev/ptmx"));
        if let Some(ws) = winsize {
            must(report, Step::Pty, 1, sys::pty::set_winsize(master, &ws));
        }
        must(report, Step::Pty, 2, sys::fd::send_fd(sock, master));
        sys::fd::close_raw(master);
        sys::fd::close_raw(sock);
        pty_slave = slave;
    }

    if let Some(account) = spec.account {
        // The elevated tier: init is real root until here. It becomes the
        // sandbox account with nothing left of root (the command inherits
        // that), so nothing in the sandbox is more privileged than the
        // command.
        must(
            report,
            Step::Identity,
            0,
            sys::caps::drop_all_as(Some(account)),
        );
        if spec.idmap >= 0 {
            sys::fd::close_raw(spec.idmap);
        }
        // A change of credentials clears the parent-death signal.
        die_with_moat(spec, 1);
    }

    if !spec.init {
        command_main(spec, pty_slave);
    }
    // Block everything: signals are taken with sigwaitinfo below, and a
    // blocked signal is never discarded, even for a namespace's init.
    let all = sys::signal::SigSet::full();
    must(
        report,
        Step::Signals,
        0,
        sys::signal::mask(libc::SIG_SETMASK, &all),
    );
    let pid = match must(report, Step::Fork, 0, sys::clone::fork_plain()) {
        None => command_main(spec, pty_slave),
        Some(pid) => pid,
    };
    Message::Started {
        pid,
        listeners: 0,
        cgroup: 0,
    }
    .send(report);
    // init keeps only the report pipe: the command's terminal, moat's
    // descriptors and the ruleset are no business of a process that
    // outlives every step of setup.
    let _ = sys::fd::close_from_except(0, report);
    reap_loop(report, pid, &all)
}

fn reap_loop(report: RawFd, command: libc::pid_t, all: &sys::signal::SigSet) -> ! {
    loop {
        let signal = match sys::signal::wait(all) {
            Ok(s) => s,
            Err(_) => continue,
        };
        match signal {
            libc::SIGCHLD => {
                while let Ok(Some((pid, exit))) = sys::process::reap(-1) {
                    if pid != command {
                        continue;
                    }
                    // The run ends with the command: nothing it left behind
                    // may outlive it. Everything is killed and reaped before
                    // moat hears of the end, so what moat does next (the
                    // audit) sees a sandbox where nothing runs any more.
                    kill_everything_else();
                    match exit {
                        sys::process::Exit::Code(code) => {
                            Message::Exited { code }.send(report);
                            sys::clone::exit_now(code)
                        }
                        sys::process::Exit::Signal(signal) => {
                            Message::Signaled { signal }.send(report);
                            sys::clone::exit_now(128 + signal)
                        }
                    }
                }
            }
            // The command leads its own process group; a shell pipeline in
            // it gets the signal as it would from a terminal.
            libc::SIGINT
            | libc::SIGTERM
            | libc::SIGHUP
            | libc::SIGQUIT
            | libc::SIGUSR1
            | libc::SIGUSR2
            | libc::SIGWINCH
            | libc::SIGCONT
            | libc::SIGTSTP
            | libc::SIGALRM
                if sys::process::kill(-command, signal).is_err() =>
            {
                let _ = sys::process::kill(command, signal);
            }
            _ => {}
        }
    }
}

/// Kills every other process of the pid namespace and waits until all are
/// gone. Fork-safe.
fn kill_everything_else() {
    // From a namespace's init, pid -1 means every process in it but init.
    let _ = sys::process::kill(-1, libc::SIGKILL);
    while sys::process::wait(-1).is_ok() {}
}

/// Fork-safe: whether what `fd` is still is `expect` (ESTALE if not).
fn same_as(fd: RawFd, expect: Option<FileId>) -> SysResult<()> {
    let Some(want) = expect else {
        return Ok(());
    };
    let st = sys::at::stat_fd(fd)?;
    if st.dev == want.dev && st.ino == want.ino {
        Ok(())
    } else {
        Err(Errno(libc::ESTALE))
    }
}

/// Fork-safe: attaches `mount` onto `target`, reached with no symlink on
/// the way and, with `expect`, only if it is that directory.
fn attach_checked(mount: RawFd, target: &std::ffi::CStr, expect: Option<FileId>) -> SysResult<()> {
    let at = sys::at::open_no_symlinks(None, target, libc::O_PATH)?;
    let result = same_as(at, expect).and_then(|()| sys::mount::attach_fd(mount, at));
    sys::fd::close_raw(at);
    result
}

/// Fork-safe: makes the detached tmpfs `mnt` (a file moat wrote for the
/// sandbox) read-only, with nothing to run or open as a device on it.
fn seal(mnt: RawFd) -> SysResult<()> {
    use crate::sys::mount::*;
    set_attr(
        mnt,
        c"",
        true,
        false,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        0,
    )
}

/// Fork-safe: writes to `bundle.pem` on the tmpfs `mnt` the bundle at
/// `system` followed by `extra`, through a buffer on the stack.
fn write_bundle(mnt: RawFd, system: &std::ffi::CStr, extra: &[u8]) -> SysResult<()> {
    let out = sys::fd::openat(
        mnt,
        c"bundle.pem",
        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
        0o444,
    )?;
    let copied = sys::fd::open(system, libc::O_RDONLY | libc::O_CLOEXEC, 0).and_then(|src| {
        let mut buf = [0u8; 4096];
        let copied = loop {
            match sys::fd::read(src, &mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if let Err(e) = sys::fd::write_all(out, &buf[..n]) {
                        break Err(e);
                    }
                }
                Err(Errno(libc::EINTR)) => {}
                Err(e) => break Err(e),
            }
        };
        sys::fd::close_raw(src);
        copied
    });
    let result = copied
        .and_then(|()| sys::fd::write_all(out, b"\n"))
        .and_then(|()| sys::fd::write_all(out, extra));
    sys::fd::close_raw(out);
    result
}

fn run_op(
    op: &Op,
    slots: &mut [RawFd],
    trees: &mut [RawFd],
    empty_mount: &mut RawFd,
    userns: RawFd,
) -> SysResult<()> {
    use crate::sys::mount::*;
    let slot_fd =
        |slots: &[RawFd], slot: usize| slots.get(slot).copied().ok_or(Errno(libc::EINVAL));
    match op {
        Op::MakePrivate => mount(
            None,
            c"/",
            None,
            (libc::MS_REC | libc::MS_PRIVATE) as libc::c_ulong,
            None,
        ),
        Op::Clone {
            slot,
            source,
            recursive,
        } => {
            let fd = match source {
                Source::Path { path, expect } => {
                    let fd = clone_tree(libc::AT_FDCWD, path, *recursive)?;
                    if let Err(e) = same_as(fd, *expect) {
                        sys::fd::close_raw(fd);
                        return Err(e);
                    }
                    fd
                }
                // The parent's clone: taken over, so it is closed once.
                Source::Tree { index, .. } => match trees.get_mut(*index) {
                    Some(t) if *t >= 0 => std::mem::replace(t, -1),
                    _ => return Err(Errno(libc::EBADF)),
                },
            };
            match slots.get_mut(*slot) {
                Some(s) => {
                    *s = fd;
                    Ok(())
                }
                None => Err(Errno(libc::EINVAL)),
            }
        }
        Op::Overlay {
            slot,
            lower,
            shared,
            upper,
            work,
        } => {
            let fd = overlay_paths(&[shared, lower], upper, work)?;
            match slots.get_mut(*slot) {
                Some(s) => {
                    *s = fd;
                    Ok(())
                }
                None => {
                    sys::fd::close_raw(fd);
                    Err(Errno(libc::EINVAL))
                }
            }
        }
        Op::LockDown => set_attr(
            libc::AT_FDCWD,
            c"/",
            false,
            true,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            0,
        ),
        Op::Tmpfs {
            target,
            options,
            flags,
        } => mount(
            Some(c"tmpfs"),
            target,
            Some(c"tmpfs"),
            *flags,
            Some(options),
        ),
        Op::Mkdir { path, mode } => sys::fd::mkdir(path, *mode),
        Op::Touch { path } => sys::fd::touch(path, 0o644),
        Op::Symlink { target, link } => sys::fd::symlink(target, link),
        Op::Attach {
            slot,
            target,
            set,
            idmap,
            expect,
        } => {
            let fd = slot_fd(slots, *slot)?;
            if *idmap {
                if userns < 0 {
                    return Err(Errno(libc::EINVAL));
                }
                set_idmap(fd, userns, *set)?;
            } else if *set != 0 {
                set_attr(fd, c"", true, true, *set, 0)?;
            }
            let result = attach_checked(fd, target, *expect);
            sys::fd::close_raw(fd);
            result
        }
        Op::BindSelf { path, read_only } => {
            let fd = clone_tree(libc::AT_FDCWD, path, true)?;
            let result = (|| {
                if *read_only {
                    set_attr(
                        fd,
                        c"",
                        true,
                        true,
                        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                        0,
                    )?;
                }
                attach(fd, path)
            })();
            sys::fd::close_raw(fd);
            result
        }
        Op::EmptyFile { under } => {
            let mnt = detached_tmpfs(&[c"mode=0555", c"size=4k"], 0)?;
            let file = sys::fd::openat(mnt, c"empty", libc::O_CREAT | libc::O_WRONLY, 0)?;
            sys::fd::close_raw(file);
            seal(mnt)?;
            // Kept open even if the attach fails, so the caller closes it.
            *empty_mount = mnt;
            attach(mnt, under)
        }
        Op::MaskFile { target, transient } => {
            let fd = clone_tree(*empty_mount, c"empty", false)?;
            let result = attach(fd, target);
            sys::fd::close_raw(fd);
            match result {
                // Gone, or below a directory the sandbox cannot search
                // (another person's 0750 home): nothing to hide from it.
                Err(Errno(libc::ENOENT | libc::EACCES)) if *transient => Ok(()),
                other => other,
            }
        }
        Op::TrustBundle {
            under,
            target,
            extra,
        } => {
            let mnt = detached_tmpfs(&[c"mode=0555", c"size=8m"], 0)?;
            let result = write_bundle(mnt, target, extra)
                .and_then(|()| seal(mnt))
                .and_then(|()| attach(mnt, under))
                .and_then(|()| {
                    let fd = clone_tree(mnt, c"bundle.pem", false)?;
                    let attached = attach(fd, target);
                    sys::fd::close_raw(fd);
                    attached
                });
            sys::fd::close_raw(mnt);
            result
        }
        Op::MaskDir { target } => mount(
            Some(c"tmpfs"),
            target,
            Some(c"tmpfs"),
            (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as libc::c_ulong,
            Some(c"mode=000,size=4k"),
        ),
        Op::Proc { target } => mount(
            Some(c"proc"),
            target,
            Some(c"proc"),
            (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC) as libc::c_ulong,
            None,
        ),
        Op::Devpts { target } => mount(
            Some(c"devpts"),
            target,
            Some(c"devpts"),
            (libc::MS_NOSUID | libc::MS_NOEXEC) as libc::c_ulong,
            Some(c"newinstance,ptmxmode=0666,mode=620"),
        ),
        Op::SetAttr { path, set } => set_attr(libc::AT_FDCWD, path, false, false, *set, 0),
        Op::LoopbackUp => sys::net::loopback_up(),
    }
}

/// The command's process: applies the process, privilege, Landlock and
/// seccomp layers, then execs. Never returns.
fn command_main(spec: &ChildSpec, pty_slave: RawFd) -> ! {
    let report = spec.report;
    must(report, Step::Session, 0, sys::process::new_session());
    if pty_slave >= 0 {
        must(
            report,
            Step::Terminal,
            0,
            sys::process::set_controlling_tty(pty_slave),
        );
        for target in 0..3 {
            must(
                report,
                Step::Stdio,
                target as u32,
                sys::fd::dup_to(pty_slave, target),
            );
        }
    } else {
        for (target, stdio) in spec.stdio.iter().enumerate() {
            if let Stdio::Fd(fd) = stdio {
                must(
                    report,
                    Step::Stdio,
                    target as u32,
                    sys::fd::dup_to(*fd, target as RawFd),
                );
            }
        }
    }
    let none = sys::signal::SigSet::empty();
    must(
        report,
        Step::Signals,
        1,
        sys::signal::mask(libc::SIG_SETMASK, &none),
    );
    // moat (as every Rust program) ignores SIGPIPE, and the launcher
    // SIGXFSZ too; the command must not inherit that.
    must(
        report,
        Step::Signals,
        2,
        sys::signal::set_default(libc::SIGPIPE),
    );
    must(
        report,
        Step::Signals,
        3,
        sys::signal::set_default(libc::SIGXFSZ),
    );
    for (i, (resource, soft, hard)) in spec.rlimits.iter().enumerate() {
        must(
            report,
            Step::Rlimit,
            i as u32,
            sys::process::set_rlimit(*resource, *soft, *hard),
        );
    }
    must(report, Step::Chdir, 0, sys::fd::chdir(&spec.cwd));
    must(report, Step::Capabilities, 0, sys::caps::drop_all());
    must(report, Step::NoNewPrivs, 0, sys::caps::set_no_new_privs());
    if let Some(ruleset) = spec.ruleset {
        for (i, (path, access)) in spec.inner_rules.iter().enumerate() {
            must(
                report,
                Step::LandlockRule,
                i as u32,
                sys::landlock::allow_beneath(ruleset, path, *access),
            );
        }
        must(
            report,
            Step::LandlockRestrict,
            0,
            sys::landlock::restrict_self(ruleset),
        );
        sys::fd::close_raw(ruleset);
    }
    let mut observed = false;
    if let Some((program, sock)) = &spec.observe {
        // Without a listener (a sandbox around moat already observes this
        // process: EBUSY) the plain filter below refuses the same calls,
        // unobserved; the observer then finds no listener and says so.
        if let Ok(listener) = sys::notify::install_with_listener(program) {
            // Set before the first call can be notified (only a matter of
            // speed; older kernels refuse it).
            let _ = sys::notify::wake_synchronously(listener);
            must(report, Step::Seccomp, 10, sys::fd::send_fd(*sock, listener));
            sys::fd::close_raw(listener);
            observed = true;
        }
        sys::fd::close_raw(*sock);
    }
    for (i, filter) in spec.filters.iter().enumerate() {
        if i == 0 && observed {
            continue;
        }
        must(
            report,
            Step::Seccomp,
            i as u32,
            sys::seccomp::install(filter),
        );
    }
    must(report, Step::CloseFds, 0, sys::fd::cloexec_from(3));

    let mut last = Errno(libc::ENOENT);
    let mut denied = None;
    for path in &spec.exec_paths {
        let e = sys::process::exec(path, spec.argv.ptrs(), spec.envp.ptrs());
        match e.0 {
            libc::EACCES => denied = Some(e),
            libc::ENOENT | libc::ENOTDIR => {}
            _ => {
                last = e;
                break;
            }
        }
        last = e;
    }
    let errno = denied.unwrap_or(last);
    Message::Failed {
        step: Step::Exec,
        index: 0,
        errno: errno.0,
    }
    .send(report);
    let code = if errno.0 == libc::ENOENT || errno.0 == libc::ENOTDIR {
        127
    } else {
        126
    };
    sys::clone::exit_now(code)
}
