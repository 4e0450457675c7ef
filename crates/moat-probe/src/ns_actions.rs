//! Namespace and mount actions: the ways a process could rebuild or reshape
//! its own view of the filesystem. Outside a sandbox and as root several of
//! these really change mounts; callers pass throwaway paths.

use std::ffi::CString;
use std::os::fd::AsRawFd;

use crate::action::{step, Action, Args, Fail, Outcome};
use crate::sys;

#[rustfmt::skip]
pub const ACTIONS: &[Action] = &[
    Action { name: "unshare", usage: "FLAG", help: "unshare(2) with one CLONE_NEW* flag: user, mount, net, pid, ipc, uts, cgroup or time", run: unshare },
    Action { name: "clone-newuser", usage: "", help: "raw clone(CLONE_NEWUSER|SIGCHLD); the child exits at once", run: clone_newuser },
    Action { name: "clone3-newuser", usage: "", help: "raw clone3 with flags CLONE_NEWUSER, exit_signal SIGCHLD; the child exits at once", run: clone3_newuser },
    Action { name: "setns", usage: "", help: "setns to our own user namespace (EINVAL means the call reached the kernel)", run: setns },
    Action { name: "mount-tmpfs", usage: "TARGET", help: "mount a tmpfs on TARGET", run: mount_tmpfs },
    Action { name: "umount", usage: "PATH", help: "umount2(PATH, 0)", run: umount },
    Action { name: "umount-detach", usage: "PATH", help: "umount2(PATH, MNT_DETACH)", run: umount_detach },
    Action { name: "bind-mount", usage: "SRC DST", help: "mount(SRC, DST, MS_BIND)", run: bind_mount },
    Action { name: "remount-rw", usage: "PATH", help: "mount(NULL, PATH, NULL, MS_REMOUNT|MS_BIND): drop per-mount flags such as read-only", run: remount_rw },
    Action { name: "open-tree", usage: "PATH", help: "open_tree(PATH, OPEN_TREE_CLONE): detached copy of a mount", run: open_tree },
    Action { name: "fsopen", usage: "", help: "fsopen(\"tmpfs\")", run: fsopen },
    Action { name: "move-mount", usage: "", help: "move_mount with fds -1 and empty paths (EBADF means it reached the kernel)", run: move_mount },
    Action { name: "mount-setattr", usage: "PATH", help: "mount_setattr(PATH) clearing MOUNT_ATTR_RDONLY", run: mount_setattr },
    Action { name: "pivot-root", usage: "", help: "pivot_root(\".\", \".\")", run: pivot_root },
    Action { name: "chroot", usage: "PATH", help: "chroot(2)", run: chroot },
];

fn unshare_flag(name: &str) -> Option<libc::c_int> {
    Some(match name {
        "user" => libc::CLONE_NEWUSER,
        "mount" => libc::CLONE_NEWNS,
        "net" => libc::CLONE_NEWNET,
        "pid" => libc::CLONE_NEWPID,
        "ipc" => libc::CLONE_NEWIPC,
        "uts" => libc::CLONE_NEWUTS,
        "cgroup" => libc::CLONE_NEWCGROUP,
        "time" => libc::CLONE_NEWTIME,
        _ => return None,
    })
}

fn unshare(args: &Args) -> Outcome {
    let name = args.text(0, "FLAG")?;
    let flag = unshare_flag(name).ok_or_else(|| {
        Fail::Usage(format!(
            "FLAG: expected user, mount, net, pid, ipc, uts, cgroup or time, got {name:?}"
        ))
    })?;
    sys::unshare(flag)?;
    Ok(String::new())
}

fn describe_exit(pid: libc::pid_t) -> String {
    match sys::waitpid(pid, 0) {
        Ok(status) if libc::WIFEXITED(status) => {
            format!("child {pid} exited {}", libc::WEXITSTATUS(status))
        }
        Ok(status) if libc::WIFSIGNALED(status) => {
            format!("child {pid} killed by signal {}", libc::WTERMSIG(status))
        }
        Ok(status) => format!("child {pid} wait status {status:#x}"),
        Err(e) => format!("child {pid}; waitpid failed: {e}"),
    }
}

fn clone_newuser(_args: &Args) -> Outcome {
    let pid = sys::clone_newuser()?;
    Ok(describe_exit(pid))
}

fn clone3_newuser(_args: &Args) -> Outcome {
    let pid = sys::clone3_newuser()?;
    Ok(describe_exit(pid))
}

fn setns(_args: &Args) -> Outcome {
    let fd = sys::open(c"/proc/self/ns/user", libc::O_RDONLY, 0).map_err(step("open"))?;
    sys::setns(fd.as_raw_fd(), libc::CLONE_NEWUSER).map_err(step("setns"))?;
    Ok(String::new())
}

fn mount_tmpfs(args: &Args) -> Outcome {
    let target = args.cstring(0, "TARGET")?;
    sys::mount(Some(c"tmpfs"), &target, Some(c"tmpfs"), 0)?;
    Ok(String::new())
}

fn umount_with(args: &Args, flags: libc::c_int) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::umount2(&path, flags)?;
    Ok(String::new())
}

fn umount(args: &Args) -> Outcome {
    umount_with(args, 0)
}

fn umount_detach(args: &Args) -> Outcome {
    umount_with(args, libc::MNT_DETACH)
}

fn bind_mount(args: &Args) -> Outcome {
    let src = args.cstring(0, "SRC")?;
    let dst = args.cstring(1, "DST")?;
    sys::mount(Some(&src), &dst, None, libc::MS_BIND)?;
    Ok(String::new())
}

fn remount_rw(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::mount(None, &path, None, libc::MS_REMOUNT | libc::MS_BIND)?;
    Ok(String::new())
}

fn open_tree(args: &Args) -> Outcome {
    let path: CString = args.cstring(0, "PATH")?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    // Closing the fd (at return) discards the detached copy again.
    let fd = sys::open_tree(&path, flags)?;
    Ok(format!("fd={}", fd.as_raw_fd()))
}

fn fsopen(_args: &Args) -> Outcome {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    let fd = sys::fsopen(c"tmpfs", FSOPEN_CLOEXEC)?;
    Ok(format!("fd={}", fd.as_raw_fd()))
}

fn move_mount(_args: &Args) -> Outcome {
    sys::move_mount_bad_fds()?;
    Ok(String::new())
}

fn mount_setattr(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::mount_setattr_clear(&path, libc::MOUNT_ATTR_RDONLY)?;
    Ok(String::new())
}

fn pivot_root(_args: &Args) -> Outcome {
    sys::pivot_root(c".", c".")?;
    Ok(String::new())
}

fn chroot(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::chroot(&path)?;
    Ok(String::new())
}
