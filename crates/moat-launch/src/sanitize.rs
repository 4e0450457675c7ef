//! The launcher's first step: nothing its caller controls survives into
//! what it does as root.
//!
//! A setuid program inherits from its caller the environment, open
//! descriptors, signal dispositions and mask, interval timers, resource
//! limits, umask, working directory and session. Each is put right here,
//! before the request is even read: the environment emptied (no variable
//! can name a path, tool or directory), descriptors closed but stdio and
//! moat's two channels (and stdio made to exist), signals back to their
//! defaults, timers cancelled, limits raised to what the launcher needs
//! (the caller's are kept, to be restored for the command), umask 022,
//! `/` the working directory, no core dumps, a session of its own. Then
//! the ids and capabilities are checked: the launcher runs only as
//! setuid root, with the capabilities it needs.

use moat_linux::launch::{CHANNEL_FD, CONTROL_FD};
use moat_linux::roots::{Ids, Rlimit};

use crate::sys;

/// Who ran the launcher, and what of theirs is restored for the command.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ids: Ids,
    /// Their resource limits, as they were.
    pub limits: Vec<Rlimit>,
}

/// Why the launcher stops before it reads a request.
#[derive(Debug)]
pub enum Stop {
    /// Not started by moat: descriptors 3 and 4 are not its channels.
    NotFromMoat,
    /// Started by moat, but it cannot run safely; the reason goes back.
    Refused(String),
}

/// Every limit there is.
const LIMITS: [libc::__rlimit_resource_t; 16] = [
    libc::RLIMIT_CPU,
    libc::RLIMIT_FSIZE,
    libc::RLIMIT_DATA,
    libc::RLIMIT_STACK,
    libc::RLIMIT_CORE,
    libc::RLIMIT_RSS,
    libc::RLIMIT_NPROC,
    libc::RLIMIT_NOFILE,
    libc::RLIMIT_MEMLOCK,
    libc::RLIMIT_AS,
    libc::RLIMIT_LOCKS,
    libc::RLIMIT_SIGPENDING,
    libc::RLIMIT_MSGQUEUE,
    libc::RLIMIT_NICE,
    libc::RLIMIT_RTPRIO,
    libc::RLIMIT_RTTIME,
];

/// The descriptors the launcher asks for: room for the ruleset, the
/// trees, the pipes, the sockets and the cgroups of a run with many
/// writable roots.
const MIN_FILES: u64 = 1024;

/// Fewer descriptors than this and some step of a run would fail halfway
/// (about 30 are open at once for a run with one writable root): refused
/// at the start instead, where root cannot raise the caller's hard limit.
const FLOOR_FILES: u64 = 64;

/// The usual default stack, which the launcher's deepest step fits in.
const MIN_STACK: u64 = 8 << 20;

/// Capabilities the launcher uses (numbers from linux/capability.h):
/// reaching what root keeps (DAC_OVERRIDE 1, DAC_READ_SEARCH 2), ending
/// runs (KILL 5), becoming the account (SETGID 6, SETUID 7, SETPCAP 8
/// for the securebits), listing the firewall (NET_ADMIN 12), mounts and
/// namespaces (SYS_ADMIN 21). Raising hard limits (SYS_RESOURCE 24) is
/// used where root has it (containers often drop it), not required.
const NEEDED_CAPS: [(u32, &str); 8] = [
    (1, "CAP_DAC_OVERRIDE"),
    (2, "CAP_DAC_READ_SEARCH"),
    (5, "CAP_KILL"),
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (8, "CAP_SETPCAP"),
    (12, "CAP_NET_ADMIN"),
    (21, "CAP_SYS_ADMIN"),
];

fn refused(what: &str, errno: sys::Errno) -> Stop {
    Stop::Refused(format!(
        "the launcher could not {what}: {}",
        std::io::Error::from_raw_os_error(errno)
    ))
}

/// Whether descriptors 3 and 4 are moat's channels (UNIX stream sockets).
pub fn has_channels() -> bool {
    sys::is_unix_stream(CONTROL_FD) && sys::is_unix_stream(CHANNEL_FD)
}

/// Puts the process right; the caller's ids and limits. Must run first in
/// `main`.
pub fn process() -> Result<Caller, Stop> {
    sys::clear_env().map_err(|e| refused("clear its environment", e))?;
    // Descriptors: stdio (the command's), 3 and 4 (moat's channels).
    sys::close_from(CHANNEL_FD as u32 + 1).map_err(|e| refused("close descriptors", e))?;
    for fd in 0..3 {
        if !sys::is_open(fd) {
            sys::null_onto(fd).map_err(|e| refused("open /dev/null", e))?;
        }
    }
    if !has_channels() {
        return Err(Stop::NotFromMoat);
    }
    for fd in [CONTROL_FD, CHANNEL_FD] {
        sys::set_cloexec(fd).map_err(|e| refused("keep its channels to itself", e))?;
    }
    sys::reset_signals().map_err(|e| refused("reset signals", e))?;
    sys::clear_timers().map_err(|e| refused("cancel timers", e))?;
    sys::set_umask(0o022);
    sys::chdir_root().map_err(|e| refused("enter /", e))?;
    sys::set_undumpable().map_err(|e| refused("turn off core dumps", e))?;
    sys::new_session();

    let (ruid, euid, suid) = sys::user_ids();
    let (rgid, _, _) = sys::group_ids();
    if euid != 0 || suid != 0 {
        return Err(Stop::Refused(format!(
            "the launcher is not running as root (effective uid {euid}): it must be installed \
             setuid root, and it cannot be started with no_new_privs set or from a user \
             namespace\nhint: sudo moat setup"
        )));
    }
    let caps = sys::effective_caps().map_err(|e| refused("read its capabilities", e))?;
    if let Some((_, missing)) = NEEDED_CAPS.iter().find(|(c, _)| caps & (1 << c) == 0) {
        return Err(Stop::Refused(format!(
            "the launcher runs without capability {missing} (a bounding set or securebits \
             inherited from its caller), so it cannot build the sandbox"
        )));
    }
    let limits = raise_limits()?;
    Ok(Caller {
        ids: Ids {
            uid: ruid,
            gid: rgid,
        },
        limits,
    })
}

/// Raises the launcher's own limits out of the caller's reach; the
/// caller's, as they were. Without CAP_SYS_RESOURCE a hard limit cannot
/// be raised: then the soft one goes up to it, and a descriptor limit
/// too low to build a run is refused. (RLIMIT_FSIZE matters only for the
/// firewall stamp, whose failed write is harmless: SIGXFSZ is ignored, the
/// write fails, the next run lists the firewall again.)
fn raise_limits() -> Result<Vec<Rlimit>, Stop> {
    let mut saved = Vec::new();
    for resource in LIMITS {
        let (soft, hard) = sys::get_rlimit(resource).map_err(|e| refused("read a limit", e))?;
        saved.push(Rlimit {
            resource,
            soft,
            hard,
        });
        let wanted = match resource {
            // No dumps; the hard limit stays, so the command can get the
            // caller's back once the launcher's privileges are gone.
            libc::RLIMIT_CORE => (0, hard),
            libc::RLIMIT_NOFILE => (soft.max(MIN_FILES), hard.max(MIN_FILES)),
            // Unlimited would change the memory layout of what it runs.
            libc::RLIMIT_STACK => (soft.max(MIN_STACK), hard.max(MIN_STACK)),
            _ => (libc::RLIM_INFINITY, libc::RLIM_INFINITY),
        };
        let set = match sys::set_rlimit(resource, wanted.0, wanted.1) {
            Err(libc::EPERM) => sys::set_rlimit(resource, wanted.0.min(hard), hard),
            other => other,
        };
        set.map_err(|e| refused("set a limit", e))?;
    }
    let (files, _) =
        sys::get_rlimit(libc::RLIMIT_NOFILE).map_err(|e| refused("read a limit", e))?;
    if files < FLOOR_FILES {
        return Err(Stop::Refused(format!(
            "your RLIMIT_NOFILE hard limit ({files}) is below the {FLOOR_FILES} descriptors the \
             launcher needs to build a run, and it cannot raise it here\nhint: ulimit -Hn {FLOOR_FILES}"
        )));
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_is_saved() {
        let mut sorted = LIMITS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), LIMITS.len());
        // 0..=RLIMIT_RTTIME: every resource of linux/resource.h.
        assert_eq!(sorted, (0..=libc::RLIMIT_RTTIME).collect::<Vec<_>>());
    }
}
