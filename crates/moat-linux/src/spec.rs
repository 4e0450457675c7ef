//! Everything the sandbox's processes need, computed by the parent before
//! the fork so the child only makes system calls.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::plan::Op;

/// A NUL-terminated vector of C strings and the pointer array execve wants.
#[derive(Debug)]
pub struct CVec {
    // The pointers point into these strings' heap buffers, which do not move
    // when the Vec holding the CStrings does.
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CVec {
    pub fn new<I, S>(items: I) -> Result<CVec, S>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr> + Clone,
    {
        let mut strings = Vec::new();
        for item in items {
            match CString::new(item.as_ref().as_bytes()) {
                Ok(c) => strings.push(c),
                Err(_) => return Err(item),
            }
        }
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(CVec {
            _strings: strings,
            ptrs,
        })
    }

    pub fn ptrs(&self) -> &[*const libc::c_char] {
        &self.ptrs
    }
}

/// The environment as `NAME=VALUE` strings.
pub fn env_strings(vars: &[(OsString, OsString)]) -> Vec<OsString> {
    vars.iter()
        .map(|(n, v)| {
            let mut s = n.clone();
            s.push("=");
            s.push(v);
            s
        })
        .collect()
}

/// Where `program` may be found, in the order execvp would try: itself if
/// it holds a slash, otherwise each entry of `path_var` (an empty entry
/// meaning the working directory).
pub fn exec_candidates(program: &OsStr, path_var: Option<&OsStr>) -> Vec<CString> {
    let bytes = program.as_bytes();
    if bytes.is_empty() {
        return Vec::new();
    }
    if bytes.contains(&b'/') {
        return CString::new(bytes).into_iter().collect();
    }
    let path_var = path_var
        .map(OsStr::as_bytes)
        .unwrap_or(b"/usr/local/bin:/usr/bin:/bin");
    path_var
        .split(|b| *b == b':')
        .filter_map(|dir| {
            let dir = if dir.is_empty() { b"." as &[u8] } else { dir };
            let mut full = dir.to_vec();
            full.push(b'/');
            full.extend_from_slice(bytes);
            CString::new(full).ok()
        })
        .collect()
}

/// A descriptor the child dups onto a standard stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// Keep what moat itself has on that stream.
    Inherit,
    /// Use this descriptor.
    Fd(RawFd),
}

/// The pre-computed plan for the sandbox's first process ("init") and the
/// command's process.
#[derive(Debug)]
pub struct ChildSpec {
    pub report: RawFd,
    /// Read end of a pipe whose write end only moat holds: it hangs up when
    /// moat is gone.
    pub lifeline: RawFd,
    /// moat's write end, which the child inherits and closes first.
    pub lifeline_parent: RawFd,
    /// `Some` when a user namespace is created: the id map contents.
    pub id_maps: Option<(Vec<u8>, Vec<u8>)>,
    pub ops: Vec<Op>,
    /// Detached mounts, filled in by the child (allocated here).
    pub slots: Vec<RawFd>,
    /// Detached mounts the parent cloned from checked descriptors (the
    /// elevated tier's writable roots and home), taken by the plan's
    /// `Source::Tree` steps.
    pub trees: Vec<RawFd>,
    pub ruleset: Option<RawFd>,
    pub inner_rules: Vec<(CString, u64)>,
    pub filters: Vec<Vec<libc::sock_filter>>,
    /// The denial observer: the filter with notifications, installed
    /// instead of the first of `filters` when the kernel gives it a
    /// listener, and the socket that listener is sent to moat on.
    pub observe: Option<(Vec<libc::sock_filter>, RawFd)>,
    /// (resource, soft, hard), in order: the elevated tier's caller's own
    /// limits first, then the policy's.
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    pub cwd: CString,
    pub exec_paths: Vec<CString>,
    pub argv: CVec,
    pub envp: CVec,
    pub stdio: [Stdio; 3],
    /// With `network = allow`: the socket on which init sends moat the
    /// proxy's listening sockets, opened inside the sandbox's network
    /// namespace (see [`crate::PROXY_PORTS`]).
    pub proxy: Option<RawFd>,
    /// Where the DNS stub answers (with `proxy`): 127.0.0.1 and the
    /// host's name servers, which are local addresses inside.
    pub dns: Vec<std::net::IpAddr>,
    /// With `--pty`: the socket on which init sends the terminal's master
    /// side to moat, and the initial window size.
    pub pty: Option<(RawFd, Option<libc::winsize>)>,
    /// The elevated tier: the user namespace whose mapping idmapped
    /// attaches use (-1 when none), and the sandbox account (uid, gid)
    /// init becomes once the mounts are made.
    pub idmap: RawFd,
    pub account: Option<(u32, u32)>,
    /// Whether init runs in its own pid namespace (it reaps and forwards
    /// signals) or the command runs directly.
    pub init: bool,
}

/// The C string of a path.
pub fn cpath(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_execvp() {
        let c = |v: Vec<CString>| -> Vec<String> {
            v.into_iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(c(exec_candidates(OsStr::new("./run"), None)), ["./run"]);
        assert_eq!(
            c(exec_candidates(
                OsStr::new("ls"),
                Some(OsStr::new("/a::/b"))
            )),
            ["/a/ls", "./ls", "/b/ls"]
        );
        assert!(exec_candidates(OsStr::new(""), None).is_empty());
    }

    #[test]
    fn cvec_is_null_terminated() {
        let v = CVec::new(["a", "b"]).ok();
        assert_eq!(v.as_ref().map(|v| v.ptrs().len()), Some(3));
        assert!(v.is_some_and(|v| v.ptrs()[2].is_null()));
        assert!(CVec::new(["a\0b"]).is_err());
    }
}
