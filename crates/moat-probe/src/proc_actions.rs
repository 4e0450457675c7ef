//! Process actions: signalling, tracing and inspecting other processes, and
//! leaving processes behind.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use crate::action::{other, step, Action, Args, Fail, Outcome};
use crate::errno::Errno;
use crate::fs_actions::{io_fail, read_up_to, PAYLOAD, READ_LIMIT};
use crate::sys::{self, Forked};

#[rustfmt::skip]
pub const ACTIONS: &[Action] = &[
    Action { name: "kill", usage: "PID SIGNUM", help: "kill(2)", run: kill },
    Action { name: "ptrace-attach", usage: "PID", help: "PTRACE_SEIZE; on success interrupt, wait and detach at once", run: ptrace_attach },
    Action { name: "open-proc", usage: "PID FILE", help: "open /proc/PID/FILE and read up to 64 KiB (FILE e.g. mem, environ, root/etc/hostname; mem is read at its first readable mapping)", run: open_proc },
    Action { name: "process-vm-readv", usage: "PID", help: "process_vm_readv 1 byte at the address of a local variable; EFAULT means the call reached the target's memory map", run: process_vm_readv },
    Action { name: "pidfd-getfd", usage: "PID FD", help: "pidfd_open + pidfd_getfd: duplicate another process's fd", run: pidfd_getfd },
    Action { name: "pidfd-signal", usage: "PID SIGNUM", help: "pidfd_open + pidfd_send_signal", run: pidfd_signal },
    Action { name: "spawn-orphan", usage: "SECONDS PATH", help: "double-fork a grandchild that setsid()s, sleeps, then writes \"alive\\n\" to PATH; reports at once (detail = grandchild pid)", run: spawn_orphan },
    Action { name: "fork-count", usage: "N", help: "fork up to N children that sleep 2 s; ok if all N forks succeeded; detail = forks that succeeded", run: fork_count },
    Action { name: "ids", usage: "", help: "uid/gid/pid/session ids, no_new_privs, seccomp mode and capability sets", run: ids },
    Action { name: "list-fds", usage: "", help: "open fds from /proc/self/fd (without the one used to list it)", run: list_fds },
    Action { name: "write-fd", usage: "FD", help: "write \"moat-probe\\n\" to an inherited fd", run: write_fd },
    Action { name: "sleep", usage: "SECONDS", help: "sleep, then report ok", run: sleep },
    Action { name: "cpu-burn", usage: "SECONDS SHARE", help: "spin for SECONDS of wall-clock time; ok if that got more than SHARE of a CPU (0.5 is half), else THROTTLED; detail = CPU seconds used", run: cpu_burn },
    Action { name: "alloc", usage: "MIB", help: "reserve MIB mebibytes and touch every page; ENOMEM when a limit stops it", run: alloc },
    Action { name: "sigio", usage: "PID", help: "make PID the owner of a pipe with O_ASYNC and write to it: the kernel sends PID SIGIO (which kills a process that does not handle it)", run: sigio },
];

fn pid(args: &Args, index: usize) -> Result<libc::pid_t, Fail> {
    args.number(index, "PID")
}

fn seconds(args: &Args, index: usize) -> Result<Duration, Fail> {
    let secs: f64 = args.number(index, "SECONDS")?;
    Duration::try_from_secs_f64(secs).map_err(|_| {
        Fail::Usage(format!(
            "SECONDS: expected a non-negative number, got {secs}"
        ))
    })
}

fn kill(args: &Args) -> Outcome {
    let pid = pid(args, 0)?;
    let signal: libc::c_int = args.number(1, "SIGNUM")?;
    sys::kill(pid, signal)?;
    Ok(String::new())
}

fn ptrace_attach(args: &Args) -> Outcome {
    let pid = pid(args, 0)?;
    sys::ptrace_seize(pid).map_err(step("PTRACE_SEIZE"))?;
    // A seized tracee keeps running, and PTRACE_DETACH only works on a
    // stopped one: stop it, wait for the stop, then let go. If any of this
    // fails, our exit detaches anyway.
    let detached = sys::ptrace_interrupt(pid)
        .and_then(|()| sys::waitpid(pid, libc::__WALL))
        .and_then(|_| sys::ptrace_detach(pid));
    Ok(match detached {
        Ok(()) => "seized; detached".to_string(),
        Err(e) => format!("seized; detach failed: {e} (exit detaches)"),
    })
}

fn proc_path(args: &Args) -> Result<CString, Fail> {
    let pid = args.raw(0, "PID")?.as_bytes();
    let file = args.raw(1, "FILE")?.as_bytes();
    let mut path = b"/proc/".to_vec();
    path.extend_from_slice(pid);
    path.push(b'/');
    path.extend_from_slice(file);
    CString::new(path).map_err(|_| Fail::Usage("PID/FILE: contains a NUL byte".into()))
}

fn open_proc(args: &Args) -> Outcome {
    let path = proc_path(args)?;
    let fd = sys::open(&path, libc::O_RDONLY, 0).map_err(step("open"))?;
    if args.raw(1, "FILE")?.as_bytes() == b"mem" {
        return read_mem(args, &fd);
    }
    let data = read_up_to(&fd, READ_LIMIT).map_err(step("read"))?;
    Ok(format!("read {} bytes", data.len()))
}

/// Offset 0 of /proc/PID/mem is never mapped, so a read there fails with EIO
/// even when access is allowed. Read where the target has readable memory
/// instead (its first readable mapping, normally the executable).
fn read_mem(args: &Args, fd: &OwnedFd) -> Outcome {
    let offset = first_readable_mapping(args).unwrap_or(0);
    let mut buf = [0u8; 16];
    let offset_i64 = i64::try_from(offset).unwrap_or(i64::MAX);
    let n = sys::pread(fd.as_raw_fd(), &mut buf, offset_i64).map_err(|errno| Fail::Errno {
        errno,
        detail: format!("opened; read at {offset:#x} failed"),
    })?;
    Ok(format!("read {n} bytes at {offset:#x}"))
}

fn first_readable_mapping(args: &Args) -> Option<u64> {
    let pid = args.raw(0, "PID").ok()?.as_bytes();
    let mut path = b"/proc/".to_vec();
    path.extend_from_slice(pid);
    path.extend_from_slice(b"/maps");
    let fd = sys::open(&CString::new(path).ok()?, libc::O_RDONLY, 0).ok()?;
    let maps = read_up_to(&fd, READ_LIMIT).ok()?;
    String::from_utf8_lossy(&maps).lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let perms = fields.next()?;
        // vvar pages are readable in maps but not through /proc/PID/mem.
        if !perms.starts_with('r') || line.contains("[vvar") {
            return None;
        }
        u64::from_str_radix(range.split('-').next()?, 16).ok()
    })
}

fn process_vm_readv(args: &Args) -> Outcome {
    let pid = pid(args, 0)?;
    let marker = std::hint::black_box(0x5au8);
    let addr = std::ptr::from_ref(&marker) as usize;
    let mut buf = [0u8; 1];
    let n = sys::process_vm_readv(pid, addr, &mut buf).map_err(|errno| Fail::Errno {
        errno,
        detail: format!("address {addr:#x}"),
    })?;
    Ok(format!("read {n} byte(s) at {addr:#x}"))
}

fn pidfd_getfd(args: &Args) -> Outcome {
    let pid = pid(args, 0)?;
    let target_fd: libc::c_int = args.number(1, "FD")?;
    let pidfd = sys::pidfd_open(pid).map_err(step("pidfd_open"))?;
    let got = sys::pidfd_getfd(pidfd.as_raw_fd(), target_fd).map_err(step("pidfd_getfd"))?;
    Ok(format!("got fd {}", got.as_raw_fd()))
}

fn pidfd_signal(args: &Args) -> Outcome {
    let pid = pid(args, 0)?;
    let signal: libc::c_int = args.number(1, "SIGNUM")?;
    let pidfd = sys::pidfd_open(pid).map_err(step("pidfd_open"))?;
    sys::pidfd_send_signal(pidfd.as_raw_fd(), signal).map_err(step("pidfd_send_signal"))?;
    Ok(String::new())
}

fn spawn_orphan(args: &Args) -> Outcome {
    let delay = seconds(args, 0)?;
    let path = args.cstring(1, "PATH")?;
    let (reader, writer) = sys::pipe().map_err(step("pipe"))?;
    match sys::fork().map_err(step("fork"))? {
        Forked::Child => {
            drop(reader);
            let message = match sys::fork() {
                Ok(Forked::Child) => {
                    drop(writer);
                    orphan_body(delay, &path)
                }
                Ok(Forked::Parent(grandchild)) => grandchild,
                Err(Errno(errno)) => -errno,
            };
            // The parent learns the grandchild's pid (or -errno) from us.
            let _ = sys::write(writer.as_raw_fd(), &message.to_ne_bytes());
            sys::exit_now(0)
        }
        Forked::Parent(child) => {
            drop(writer);
            let mut buf = [0u8; 4];
            let n = sys::read(reader.as_raw_fd(), &mut buf).map_err(step("read from child"))?;
            let _ = sys::waitpid(child, 0);
            let message = i32::from_ne_bytes(buf);
            if n != buf.len() {
                Err(other(
                    "child reported nothing",
                    format!("child pid {child}"),
                ))
            } else if message < 0 {
                Err(Fail::Errno {
                    errno: Errno(-message),
                    detail: "second fork".to_string(),
                })
            } else {
                Ok(format!("grandchild pid {message}"))
            }
        }
    }
}

/// The detached grandchild. It gives up every inherited descriptor first
/// (stdio included), so a caller reading our output to EOF is not held up by
/// it for SECONDS.
fn orphan_body(delay: Duration, path: &CString) -> ! {
    // Plain close(2) rather than close_range: a filter that killed the
    // grandchild here would pass for a sandbox that reaps orphans. Without
    // /proc, the low fds are closed blindly.
    let inherited = open_fds().unwrap_or_else(|_| (0..1024).collect());
    for fd in inherited {
        sys::close_raw(fd);
    }
    let _ = sys::setsid();
    std::thread::sleep(delay);
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    if let Ok(fd) = sys::open(path, flags, 0o644) {
        let _ = sys::write(fd.as_raw_fd(), b"alive\n");
    }
    sys::exit_now(0)
}

fn fork_count(args: &Args) -> Outcome {
    let wanted: u32 = args.number(0, "N")?;
    let mut children = Vec::new();
    let mut failure = None;
    for _ in 0..wanted {
        match sys::fork() {
            Ok(Forked::Child) => {
                std::thread::sleep(Duration::from_secs(2));
                sys::exit_now(0)
            }
            Ok(Forked::Parent(pid)) => children.push(pid),
            Err(errno) => {
                failure = Some(errno);
                break;
            }
        }
    }
    for &pid in &children {
        let _ = sys::waitpid(pid, 0);
    }
    let count = children.len().to_string();
    match failure {
        None => Ok(count),
        Some(errno) => Err(Fail::Errno {
            errno,
            detail: count,
        }),
    }
}

/// Values of `Name:` lines in /proc/self/status, "?" when unavailable.
pub fn status_fields(names: &[&str]) -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    names
        .iter()
        .map(|name| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map_or_else(|| "?".to_string(), |v| v.trim().to_string())
        })
        .collect()
}

fn ids(_args: &Args) -> Outcome {
    let ids = sys::ids();
    let fields = status_fields(&[
        "NoNewPrivs",
        "Seccomp",
        "CapEff",
        "CapPrm",
        "CapBnd",
        "CapAmb",
    ]);
    let [nnp, seccomp, capeff, capprm, capbnd, capamb] = fields.as_slice() else {
        return Err(other("unexpected status field count", ""));
    };
    Ok(format!(
        "uid={} euid={} gid={} pid={} ppid={} sid={} pgid={} nnp={nnp} seccomp={seccomp} capeff={capeff} capprm={capprm} capbnd={capbnd} capamb={capamb}",
        ids.uid, ids.euid, ids.gid, ids.pid, ids.ppid, ids.sid, ids.pgid
    ))
}

/// The fds open in this process, sorted, from /proc/self/fd.
fn open_fds() -> Result<Vec<i32>, Fail> {
    let mut fds = Vec::new();
    {
        let entries = std::fs::read_dir("/proc/self/fd").map_err(|e| io_fail(&e, "opendir"))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_fail(&e, "readdir"))?;
            if let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() {
                fds.push(fd);
            }
        }
    }
    // The directory's own fd was listed too; it is closed now, so dropping
    // every fd that is no longer open removes exactly that one.
    fds.retain(|&fd| sys::fd_is_open(fd));
    fds.sort_unstable();
    Ok(fds)
}

fn list_fds(_args: &Args) -> Outcome {
    let shown: Vec<String> = open_fds()?.iter().map(i32::to_string).collect();
    Ok(shown.join(","))
}

fn write_fd(args: &Args) -> Outcome {
    let fd: libc::c_int = args.number(0, "FD")?;
    let n = sys::write(fd, PAYLOAD)?;
    Ok(format!("wrote {n} bytes"))
}

fn sleep(args: &Args) -> Outcome {
    let delay = seconds(args, 0)?;
    std::thread::sleep(delay);
    Ok(format!("slept {}s", delay.as_secs_f64()))
}

fn sigio(args: &Args) -> Outcome {
    let target = pid(args, 0)?;
    let (read_end, write_end) = sys::pipe().map_err(step("pipe"))?;
    sys::set_owner(read_end.as_raw_fd(), target).map_err(step("F_SETOWN"))?;
    sys::set_async(read_end.as_raw_fd()).map_err(step("O_ASYNC"))?;
    sys::write(write_end.as_raw_fd(), b"x").map_err(step("write"))?;
    Ok(format!("SIGIO raised for pid {target}"))
}

fn cpu_burn(args: &Args) -> Outcome {
    let wall = seconds(args, 0)?;
    let share: f64 = args.number(1, "SHARE")?;
    let start = std::time::Instant::now();
    let before = sys::cpu_seconds();
    while start.elapsed() < wall {
        std::hint::spin_loop();
    }
    let used = sys::cpu_seconds() - before;
    let detail = format!("{used:.2} s of CPU in {:.2} s", wall.as_secs_f64());
    if used > share * wall.as_secs_f64() {
        Ok(detail)
    } else {
        Err(Fail::Other {
            error: "THROTTLED".into(),
            detail,
        })
    }
}

fn alloc(args: &Args) -> Outcome {
    let mib: usize = args.number(0, "MIB")?;
    let bytes = mib
        .checked_mul(1 << 20)
        .ok_or_else(|| Fail::Usage(format!("MIB: {mib} is too large")))?;
    let mut block: Vec<u8> = Vec::new();
    block
        .try_reserve_exact(bytes)
        .map_err(|_| step("reserve")(Errno(libc::ENOMEM)))?;
    block.resize(bytes, 0);
    for i in (0..bytes).step_by(4096) {
        block[i] = 1;
    }
    Ok(format!("touched {mib} MiB"))
}
