//! Starting the launcher as the test account the way a hostile caller
//! would, and stopping it at any system call: the test (root) traces it
//! and counts its system calls, so "killed at each step" means at each
//! one, not at a guessed moment. Every raw call of the tests is here.

#![allow(unsafe_code)]

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// A launcher this process traces, and moat's ends of its channels.
pub struct Traced {
    pub pid: libc::pid_t,
    _control: UnixStream,
    _channel: UnixStream,
    reaped: bool,
}

/// Where a traced launcher is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// Stopped at the entry or exit of system call `nr`.
    Syscall(i64),
    /// Exited with this status, or was killed by this signal (negative).
    Ended(i32),
}

fn check(ret: libc::c_long, what: &str) {
    assert!(ret >= 0, "{what}: {}", std::io::Error::last_os_error());
}

impl Traced {
    /// Starts `launcher` as `uid`/`gid` (with `groups`), traced from its
    /// exec, with `request` already written to its control socket and
    /// the standard streams on /dev/null.
    pub fn start(launcher: &str, uid: u32, gid: u32, groups: &[u32], request: &[u8]) -> Traced {
        let (mut control, control_child) = UnixStream::pair().unwrap();
        let (channel, channel_child) = UnixStream::pair().unwrap();
        let (c3, c4) = (control_child.as_raw_fd(), channel_child.as_raw_fd());
        let groups: Vec<libc::gid_t> = groups.to_vec();
        let mut cmd = Command::new(launcher);
        cmd.env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: the closure runs between fork and exec and makes only
        // async-signal-safe system calls on values prepared before the
        // fork; `groups` is a live vector borrowed for the calls.
        unsafe {
            cmd.pre_exec(move || {
                // dup2'd descriptors are not close-on-exec.
                if libc::dup2(c3, 3) < 0
                    || libc::dup2(c4, 4) < 0
                    || libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                    || libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(control_child);
        drop(channel_child);
        let pid = child.id() as libc::pid_t;
        // The child is ours to wait for, not std's.
        std::mem::forget(child);
        // Read by the launcher once it runs; the socket holds it till then.
        let _ = control.write_all(request);
        let _ = control.shutdown(std::net::Shutdown::Write);
        let mut t = Traced {
            pid,
            _control: control,
            _channel: channel,
            reaped: false,
        };
        // Stopped by SIGTRAP at the exec.
        let status = t.wait();
        assert!(
            libc::WIFSTOPPED(status),
            "the launcher did not stop at its exec: status {status:#x}"
        );
        // SAFETY: `pid` is our stopped tracee; the options are flags.
        check(
            unsafe {
                libc::ptrace(
                    libc::PTRACE_SETOPTIONS,
                    pid,
                    0,
                    libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL,
                )
            },
            "PTRACE_SETOPTIONS",
        );
        t
    }

    fn wait(&mut self) -> libc::c_int {
        let mut status = 0;
        // SAFETY: `status` is a live local waitpid writes into.
        check(
            unsafe { libc::waitpid(self.pid, &mut status, libc::__WALL) } as libc::c_long,
            "waitpid",
        );
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            self.reaped = true;
        }
        status
    }

    /// Lets the launcher run to its next system-call stop (passing on any
    /// signal it got meanwhile), or to its end.
    pub fn next(&mut self) -> At {
        let mut deliver = 0;
        loop {
            // SAFETY: `pid` is our stopped tracee; `deliver` is a signal
            // number (or 0).
            check(
                unsafe { libc::ptrace(libc::PTRACE_SYSCALL, self.pid, 0, deliver) },
                "PTRACE_SYSCALL",
            );
            let status = self.wait();
            if libc::WIFEXITED(status) {
                return At::Ended(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return At::Ended(-libc::WTERMSIG(status));
            }
            let sig = libc::WSTOPSIG(status);
            if sig == libc::SIGTRAP | 0x80 {
                // SAFETY: a zeroed user_regs_struct is a valid buffer
                // PTRACE_GETREGS fills in.
                let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
                // SAFETY: `pid` is stopped and `regs` is a live buffer.
                check(
                    unsafe { libc::ptrace(libc::PTRACE_GETREGS, self.pid, 0, &mut regs) },
                    "PTRACE_GETREGS",
                );
                return At::Syscall(regs.orig_rax as i64);
            }
            // A signal for the launcher: hand it on with the next step.
            deliver = sig;
        }
    }

    /// Sends `signal` to the launcher (as its caller could).
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain integers.
        unsafe { libc::kill(self.pid, signal) };
    }

    /// Kills the launcher and reaps it.
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        while !self.reaped {
            self.wait();
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if !self.reaped {
            self.signal(libc::SIGKILL);
            let mut status = 0;
            // SAFETY: `status` is a live local.
            unsafe { libc::waitpid(self.pid, &mut status, libc::__WALL) };
        }
    }
}

/// The names of the system calls the launcher is stopped at, for messages.
pub fn name(nr: i64) -> String {
    let known: &[(i64, &str)] = &[
        (libc::SYS_openat, "openat"),
        (libc::SYS_openat2, "openat2"),
        (libc::SYS_mkdirat, "mkdirat"),
        (libc::SYS_renameat, "renameat"),
        (libc::SYS_renameat2, "renameat2"),
        (libc::SYS_unlinkat, "unlinkat"),
        (libc::SYS_write, "write"),
        (libc::SYS_read, "read"),
        (libc::SYS_clone, "clone"),
        (libc::SYS_clone3, "clone3"),
        (libc::SYS_mount, "mount"),
        (libc::SYS_open_tree, "open_tree"),
        (libc::SYS_mount_setattr, "mount_setattr"),
        (libc::SYS_wait4, "wait4"),
        (libc::SYS_waitid, "waitid"),
        (libc::SYS_poll, "poll"),
        (libc::SYS_ppoll, "ppoll"),
        (libc::SYS_execve, "execve"),
        (libc::SYS_sendmsg, "sendmsg"),
    ];
    known
        .iter()
        .find(|(n, _)| *n == nr)
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| format!("syscall {nr}"))
}
