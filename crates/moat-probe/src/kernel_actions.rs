//! Kernel attack surface a sandbox usually closes with seccomp. Arguments
//! are harmless or invalid on purpose: a call that gets past the filter
//! fails with a telling errno (EINVAL, EFAULT, EBADF...) instead of doing
//! anything, and the caller compares that with the errno the filter returns.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use crate::action::{step, Action, Args, Fail, Outcome};
use crate::errno::Errno;
use crate::fs_actions::io_fail;
use crate::proc_actions::status_fields;
use crate::sys;

#[rustfmt::skip]
pub const ACTIONS: &[Action] = &[
    Action { name: "keyctl", usage: "", help: "KEYCTL_GET_KEYRING_ID of the user keyring (no create); detail = key id", run: keyctl },
    Action { name: "keyctl-read", usage: "KEYID", help: "KEYCTL_READ; detail = payload (text, or hex: if not UTF-8)", run: keyctl_read },
    Action { name: "add-key", usage: "", help: "add_key(\"user\", \"moat-probe\", \"x\") to the process keyring; detail = key id", run: add_key },
    Action { name: "bpf", usage: "", help: "bpf(BPF_MAP_CREATE) with a zeroed attr (EINVAL means it reached the kernel)", run: bpf },
    Action { name: "perf-event-open", usage: "", help: "perf_event_open of the software cpu-clock for this process", run: perf_event_open },
    Action { name: "io-uring-setup", usage: "", help: "io_uring_setup(1, zeroed params); the ring is closed again", run: io_uring_setup },
    Action { name: "userfaultfd", usage: "", help: "userfaultfd(O_CLOEXEC)", run: userfaultfd },
    Action { name: "kexec-load", usage: "", help: "kexec_load with too many segments and a NULL list (EINVAL means it reached the kernel)", run: kexec_load },
    Action { name: "init-module", usage: "", help: "init_module(NULL, 0, \"\") (ENOEXEC means it reached the kernel)", run: init_module },
    Action { name: "open-by-handle-at", usage: "", help: "open_by_handle_at with a zeroed handle (EINVAL means it reached the kernel)", run: open_by_handle_at },
    Action { name: "syscall", usage: "NR", help: "raw syscall NR with every argument zero; detail = result", run: syscall },
    Action { name: "syslog", usage: "", help: "syslog(SYSLOG_ACTION_READ_ALL) into 256 bytes; detail = bytes read", run: syslog },
    Action { name: "personality", usage: "", help: "personality(0xffffffff) query; detail = current persona", run: personality },
    Action { name: "kcmp", usage: "PID", help: "kcmp(self, PID, KCMP_FILE, 0, 0); detail = result", run: kcmp },
    Action { name: "memfd-exec", usage: "", help: "copy /bin/true into a memfd and fexecve it; on success prints nothing and exits 0", run: memfd_exec },
    Action { name: "int80-getpid", usage: "", help: "i386 getpid via int 0x80; detail = result (a seccomp arch check kills the probe: no output)", run: int80_getpid },
    Action { name: "x32-getpid", usage: "", help: "x32 ABI getpid (39 | 0x40000000); detail = result", run: x32_getpid },
    Action { name: "seccomp-status", usage: "", help: "Seccomp and Seccomp_filters from /proc/self/status", run: seccomp_status },
    Action { name: "landlock-status", usage: "", help: "landlock_create_ruleset(NULL, 0, VERSION); detail = ABI version", run: landlock_status },
];

/// Special keyring ids from <linux/keyctl.h>.
const KEY_SPEC_PROCESS_KEYRING: i32 = -2;
const KEY_SPEC_USER_KEYRING: i32 = -4;

fn keyctl(_args: &Args) -> Outcome {
    let id = sys::keyctl_get_keyring_id(KEY_SPEC_USER_KEYRING, false)?;
    Ok(id.to_string())
}

fn keyctl_read(args: &Args) -> Outcome {
    let id: i32 = args.number(0, "KEYID")?;
    let mut buf = vec![0u8; 4096];
    let len = sys::keyctl_read(id, &mut buf)?;
    buf.truncate(len);
    Ok(match std::str::from_utf8(&buf) {
        Ok(text) => text.to_string(),
        Err(_) => format!(
            "hex:{}",
            buf.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    })
}

fn add_key(_args: &Args) -> Outcome {
    let id = sys::add_key(c"user", c"moat-probe", b"x", KEY_SPEC_PROCESS_KEYRING)?;
    Ok(id.to_string())
}

fn bpf(_args: &Args) -> Outcome {
    sys::bpf_map_create_zeroed()?;
    Ok("map created".to_string())
}

fn perf_event_open(_args: &Args) -> Outcome {
    const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
    let fd = sys::perf_event_open_sw(PERF_COUNT_SW_CPU_CLOCK)?;
    Ok(format!("fd={}", fd.as_raw_fd()))
}

fn io_uring_setup(_args: &Args) -> Outcome {
    let fd = sys::io_uring_setup(1)?;
    Ok(format!("fd={}", fd.as_raw_fd()))
}

fn userfaultfd(_args: &Args) -> Outcome {
    let fd = sys::userfaultfd(libc::O_CLOEXEC)?;
    Ok(format!("fd={}", fd.as_raw_fd()))
}

fn kexec_load(_args: &Args) -> Outcome {
    let ret = sys::kexec_load_rejected()?;
    Ok(format!("returned {ret}"))
}

fn init_module(_args: &Args) -> Outcome {
    let ret = sys::init_module_empty()?;
    Ok(format!("returned {ret}"))
}

fn open_by_handle_at(_args: &Args) -> Outcome {
    let fd = sys::open_by_handle_at_empty()?;
    Ok(format!("fd={}", fd.as_raw_fd()))
}

fn syslog(_args: &Args) -> Outcome {
    let mut buf = [0u8; 256];
    let n = sys::syslog_read_all(&mut buf)?;
    Ok(n.to_string())
}

fn personality(_args: &Args) -> Outcome {
    let persona = sys::personality_query()?;
    Ok(format!("persona={persona:#x}"))
}

fn kcmp(args: &Args) -> Outcome {
    let pid: libc::pid_t = args.number(0, "PID")?;
    let me = std::process::id() as libc::pid_t;
    let result = sys::kcmp_file(me, pid, 0, 0)?;
    Ok(format!("result={result}"))
}

/// Runs /bin/true from an anonymous memory file: the fileless-exec trick
/// that bypasses exec restrictions keyed on paths.
fn memfd_exec(_args: &Args) -> Outcome {
    let image = std::fs::read("/bin/true").map_err(|e| io_fail(&e, "read /bin/true"))?;
    let fd = sys::memfd_create(c"moat-probe", libc::MFD_CLOEXEC).map_err(step("memfd_create"))?;
    let mut rest = image.as_slice();
    while !rest.is_empty() {
        match sys::write(fd.as_raw_fd(), rest) {
            Ok(0) => return Err(step("write")(Errno(libc::EIO))),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(Errno(libc::EINTR)) => {}
            Err(e) => return Err(step("write")(e)),
        }
    }
    let argv = [CString::from(c"true")];
    let envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(key, value)| {
            let mut entry = key.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            CString::new(entry).ok()
        })
        .collect();
    sys::default_sigpipe();
    Err(step("fexecve")(sys::fexecve(fd.as_raw_fd(), &argv, &envp)))
}

#[cfg(target_arch = "x86_64")]
fn int80_getpid(_args: &Args) -> Outcome {
    let ret = sys::int80_getpid();
    if ret < 0 {
        return Err(Fail::Errno {
            errno: Errno(-ret),
            detail: format!("int 0x80 returned {ret}"),
        });
    }
    Ok(ret.to_string())
}

#[cfg(not(target_arch = "x86_64"))]
fn int80_getpid(_args: &Args) -> Outcome {
    Err(crate::action::other("int 0x80 exists only on x86", ""))
}

fn x32_getpid(_args: &Args) -> Outcome {
    let ret = sys::x32_getpid()?;
    Ok(ret.to_string())
}

fn seccomp_status(_args: &Args) -> Outcome {
    let fields = status_fields(&["Seccomp", "Seccomp_filters"]);
    let [mode, filters] = fields.as_slice() else {
        return Err(crate::action::other("unexpected status field count", ""));
    };
    Ok(format!("Seccomp={mode} Seccomp_filters={filters}"))
}

fn landlock_status(_args: &Args) -> Outcome {
    let abi = sys::landlock_abi_version()?;
    Ok(abi.to_string())
}

fn syscall(args: &Args) -> Outcome {
    let nr: libc::c_long = args.number(0, "NR")?;
    let ret = sys::syscall_zero(nr)?;
    Ok(format!("returned {ret}"))
}
