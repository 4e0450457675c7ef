//! Filesystem actions. Each performs the one syscall named by the action on
//! the path as given: no canonicalisation, no retries, no fallbacks, so the
//! errno is exactly what the sandbox made the kernel return.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

use crate::action::{other, step, Action, Args, Fail, Outcome};
use crate::errno::Errno;
use crate::sys;

/// What the write actions put in a file.
pub const PAYLOAD: &[u8] = b"moat-probe\n";

/// read-file and open-proc stop after this many bytes.
pub const READ_LIMIT: usize = 64 * 1024;

const LIST_LIMIT: usize = 50;

#[rustfmt::skip]
pub const ACTIONS: &[Action] = &[
    Action { name: "read-file", usage: "PATH", help: "open O_RDONLY and read up to 64 KiB; detail = bytes read", run: read_file },
    Action { name: "write-file", usage: "PATH", help: "open O_WRONLY|O_CREAT|O_TRUNC 0644 and write \"moat-probe\\n\"", run: write_file },
    Action { name: "append-file", usage: "PATH", help: "open O_WRONLY|O_APPEND (no create) and write \"moat-probe\\n\"", run: append_file },
    Action { name: "create-excl", usage: "PATH", help: "open O_WRONLY|O_CREAT|O_EXCL 0644", run: create_excl },
    Action { name: "truncate", usage: "PATH", help: "truncate(2) to length 0", run: truncate },
    Action { name: "unlink", usage: "PATH", help: "unlink(2)", run: unlink },
    Action { name: "rmdir", usage: "PATH", help: "rmdir(2)", run: rmdir },
    Action { name: "mkdir", usage: "PATH", help: "mkdir(2) mode 0755", run: mkdir },
    Action { name: "rename", usage: "FROM TO", help: "rename(2)", run: rename },
    Action { name: "link", usage: "FROM TO", help: "link(2): hard link TO -> FROM", run: link },
    Action { name: "symlink", usage: "TARGET LINKPATH", help: "symlink(2)", run: symlink },
    Action { name: "chmod", usage: "PATH OCTALMODE", help: "chmod(2), e.g. chmod /x 755", run: chmod },
    Action { name: "chown", usage: "PATH UID GID", help: "chown(2); -1 leaves an id unchanged", run: chown },
    Action { name: "utimes", usage: "PATH", help: "utimensat(2) both times to now", run: utimes },
    Action { name: "setxattr", usage: "PATH NAME VALUE", help: "setxattr(2), e.g. NAME user.moat", run: setxattr },
    Action { name: "mknod-fifo", usage: "PATH", help: "mknod(2) S_IFIFO 0644", run: mknod_fifo },
    Action { name: "list-dir", usage: "PATH", help: "read the directory; detail = sorted names, comma-separated, at most 50", run: list_dir },
    Action { name: "stat", usage: "PATH", help: "lstat(2); detail = mode uid gid size type", run: stat },
    Action { name: "exec", usage: "PATH [ARGS...]", help: "execv(2) PATH with argv PATH ARGS; on success only the program's own output appears", run: exec },
    Action { name: "open-dev", usage: "PATH", help: "open O_RDWR|O_NOCTTY (device nodes)", run: open_dev },
    Action { name: "write-size", usage: "PATH MIB", help: "write MIB mebibytes to PATH (SIGXFSZ ignored, so a size limit shows as EFBIG); detail = bytes written", run: write_size },
    Action { name: "thread-write", usage: "PATH", help: "write-file from a second thread", run: thread_write },
    Action { name: "race-swap", usage: "DIR TARGET ROUNDS", help: "one thread swaps DIR between a directory and a symlink to TARGET (RENAME_EXCHANGE) while another creates DIR/x, up to ROUNDS times or until TARGET/x exists; detail = writes that succeeded", run: race_swap },
];

/// Maps a std I/O error to a failure, keeping the errno when there is one.
pub fn io_fail(err: &io::Error, detail: &str) -> Fail {
    match err.raw_os_error() {
        Some(errno) => Fail::Errno {
            errno: Errno(errno),
            detail: detail.to_string(),
        },
        None => other(err.to_string(), detail),
    }
}

/// Reads from `fd` until EOF or `limit` bytes; returns what was read.
pub fn read_up_to(fd: &impl AsRawFd, limit: usize) -> Result<Vec<u8>, Errno> {
    let mut data = vec![0u8; limit];
    let mut filled = 0;
    while filled < limit {
        let buf = data.get_mut(filled..).unwrap_or_default();
        match sys::read(fd.as_raw_fd(), buf) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(Errno(libc::EINTR)) => continue,
            Err(e) => return Err(e),
        }
    }
    data.truncate(filled);
    Ok(data)
}

fn read_file(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    let fd = sys::open(&path, libc::O_RDONLY, 0).map_err(step("open"))?;
    let data = read_up_to(&fd, READ_LIMIT).map_err(step("read"))?;
    Ok(data.len().to_string())
}

fn open_and_write(path: &CString, flags: i32) -> Outcome {
    let fd = sys::open(path, flags, 0o644).map_err(step("open"))?;
    let n = sys::write(fd.as_raw_fd(), PAYLOAD).map_err(step("write"))?;
    Ok(format!("wrote {n} bytes"))
}

fn write_file(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    open_and_write(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)
}

fn append_file(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    open_and_write(&path, libc::O_WRONLY | libc::O_APPEND)
}

fn create_excl(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::open(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o644)?;
    Ok("created".to_string())
}

fn truncate(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::truncate(&path, 0)?;
    Ok(String::new())
}

fn unlink(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::unlink(&path)?;
    Ok(String::new())
}

fn rmdir(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::rmdir(&path)?;
    Ok(String::new())
}

fn mkdir(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::mkdir(&path, 0o755)?;
    Ok(String::new())
}

fn rename(args: &Args) -> Outcome {
    let from = args.cstring(0, "FROM")?;
    let to = args.cstring(1, "TO")?;
    sys::rename(&from, &to)?;
    Ok(String::new())
}

fn link(args: &Args) -> Outcome {
    let from = args.cstring(0, "FROM")?;
    let to = args.cstring(1, "TO")?;
    sys::link(&from, &to)?;
    Ok(String::new())
}

fn symlink(args: &Args) -> Outcome {
    let target = args.cstring(0, "TARGET")?;
    let linkpath = args.cstring(1, "LINKPATH")?;
    sys::symlink(&target, &linkpath)?;
    Ok(String::new())
}

fn parse_octal_mode(text: &str) -> Result<libc::mode_t, Fail> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 && !digits.is_empty() => Ok(mode),
        _ => Err(Fail::Usage(format!(
            "OCTALMODE: expected an octal mode up to 7777, got {text:?}"
        ))),
    }
}

fn chmod(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    let mode = parse_octal_mode(args.text(1, "OCTALMODE")?)?;
    sys::chmod(&path, mode)?;
    Ok(format!("mode=0o{mode:o}"))
}

/// A uid/gid argument; -1 is chown's "leave unchanged".
fn parse_id(args: &Args, index: usize, what: &str) -> Result<u32, Fail> {
    let id: i64 = args.number(index, what)?;
    if id == -1 {
        return Ok(u32::MAX);
    }
    u32::try_from(id).map_err(|_| Fail::Usage(format!("{what}: out of range: {id}")))
}

fn chown(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    let uid = parse_id(args, 1, "UID")?;
    let gid = parse_id(args, 2, "GID")?;
    sys::chown(&path, uid, gid)?;
    Ok(String::new())
}

fn utimes(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::touch_now(&path)?;
    Ok(String::new())
}

fn setxattr(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    let name = args.cstring(1, "NAME")?;
    let value = args.raw(2, "VALUE")?.as_bytes();
    sys::setxattr(&path, &name, value)?;
    Ok(String::new())
}

fn mknod_fifo(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::mkfifo(&path, 0o644)?;
    Ok(String::new())
}

fn list_dir(args: &Args) -> Outcome {
    let path = args.raw(0, "PATH")?;
    let entries = std::fs::read_dir(path).map_err(|e| io_fail(&e, "opendir"))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_fail(&e, "readdir"))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let total = names.len();
    names.truncate(LIST_LIMIT);
    let mut detail = names.join(",");
    if total > LIST_LIMIT {
        detail.push_str(&format!(",...(+{} more)", total - LIST_LIMIT));
    }
    Ok(detail)
}

fn file_type(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "file",
        libc::S_IFDIR => "dir",
        libc::S_IFLNK => "symlink",
        libc::S_IFSOCK => "socket",
        libc::S_IFIFO => "fifo",
        libc::S_IFCHR => "char",
        libc::S_IFBLK => "block",
        _ => "unknown",
    }
}

fn stat(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    let st = sys::lstat(&path)?;
    Ok(format!(
        "mode=0o{:o} uid={} gid={} size={} type={}",
        st.mode & 0o7777,
        st.uid,
        st.gid,
        st.size,
        file_type(st.mode)
    ))
}

fn exec(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    let argv = args.rest_cstrings(0, "ARGS")?;
    sys::default_sigpipe();
    Err(sys::execv(&path, &argv).into())
}

fn open_dev(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    sys::open(&path, libc::O_RDWR | libc::O_NOCTTY, 0)?;
    Ok("opened".to_string())
}

/// Lossy text for a detail field (file names, payloads are arbitrary bytes).
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// For arguments echoed in details.
pub fn show(value: &OsStr) -> String {
    lossy(value.as_bytes())
}

fn write_size(args: &Args) -> Outcome {
    let path = args.cstring(0, "PATH")?;
    let mib: usize = args.number(1, "MIB")?;
    sys::ignore_sigxfsz();
    let fd = sys::open(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644)
        .map_err(step("open"))?;
    let chunk = vec![b'x'; 1 << 20];
    let mut written = 0usize;
    for _ in 0..mib {
        match sys::write(fd.as_raw_fd(), &chunk) {
            Ok(n) => written += n,
            Err(errno) => {
                return Err(Fail::Errno {
                    errno,
                    detail: format!("after {written} bytes"),
                })
            }
        }
    }
    Ok(format!("wrote {written} bytes"))
}

fn thread_write(args: &Args) -> Outcome {
    let c = args.cstring(0, "PATH")?;
    let worker = std::thread::spawn(move || {
        let fd = sys::open(&c, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644)
            .map_err(step("open"))?;
        let n = sys::write(fd.as_raw_fd(), PAYLOAD).map_err(step("write"))?;
        Ok(format!("wrote {n} bytes from a second thread"))
    });
    worker
        .join()
        .unwrap_or_else(|_| Err(other("the thread panicked", "")))
}

fn race_swap(args: &Args) -> Outcome {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let cdir = args.cstring(0, "DIR")?;
    let target = args.cstring(1, "TARGET")?;
    let rounds: u32 = args.number(2, "ROUNDS")?;
    let with = |base: &CString, suffix: &[u8]| {
        CString::new([base.as_bytes(), suffix].concat())
            .map_err(|_| Fail::Usage("DIR contains a NUL byte".into()))
    };
    let (other, file, landed) = (
        with(&cdir, b".swap")?,
        with(&cdir, b"/x")?,
        with(&target, b"/x")?,
    );
    // DIR always exists: a directory or a symlink to TARGET, by turns,
    // until the writer is done.
    sys::mkdir(&cdir, 0o755).map_err(step("mkdir"))?;
    sys::symlink(&target, &other).map_err(step("symlink"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let swapping = stop.clone();
    let swapper = std::thread::spawn(move || {
        while !swapping.load(Ordering::Relaxed) {
            let _ = sys::exchange(&cdir, &other);
        }
    });
    let mut written = 0u32;
    let mut tries = 0u32;
    while tries < rounds {
        tries += 1;
        if let Ok(fd) = sys::open(&file, libc::O_WRONLY | libc::O_CREAT, 0o644) {
            if sys::write(fd.as_raw_fd(), PAYLOAD).is_ok() {
                written += 1;
            }
        }
        // Stop once a write has landed in TARGET: that is the escape.
        if sys::lstat(&landed).is_ok() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = swapper.join();
    Ok(format!("{written} of {tries} writes succeeded"))
}

#[cfg(test)]
mod tests {
    use super::parse_octal_mode;

    #[test]
    fn octal_modes() {
        assert_eq!(parse_octal_mode("755").ok(), Some(0o755));
        assert_eq!(parse_octal_mode("0o4755").ok(), Some(0o4755));
        assert!(parse_octal_mode("9").is_err());
        assert!(parse_octal_mode("17777").is_err());
        assert!(parse_octal_mode("").is_err());
    }
}
