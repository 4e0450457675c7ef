//! The shape shared by every action: how it receives its arguments and how it
//! reports what happened.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::str::FromStr;

use crate::errno::Errno;

/// `Ok(detail)` (empty detail is omitted from the report) or a failure.
pub type Outcome = Result<String, Fail>;

/// Why an action did not succeed.
#[derive(Debug)]
pub enum Fail {
    /// The arguments were wrong; nothing was attempted. Reported on stderr
    /// with exit status 2, never as JSON.
    Usage(String),
    /// A syscall failed with this errno; `detail` says which step, if useful.
    Errno { errno: Errno, detail: String },
    /// A failure that has no errno (getaddrinfo codes, protocol surprises).
    Other { error: String, detail: String },
}

impl From<Errno> for Fail {
    fn from(errno: Errno) -> Self {
        Fail::Errno {
            errno,
            detail: String::new(),
        }
    }
}

/// For `map_err`: an errno tagged with the step that produced it, so a
/// multi-syscall action (socket, connect, write...) says where it stopped.
pub fn step(name: &'static str) -> impl Fn(Errno) -> Fail {
    move |errno| Fail::Errno {
        errno,
        detail: name.to_string(),
    }
}

/// A non-errno failure.
pub fn other(error: impl Into<String>, detail: impl Into<String>) -> Fail {
    Fail::Other {
        error: error.into(),
        detail: detail.into(),
    }
}

/// One entry of the action table.
#[derive(Debug)]
pub struct Action {
    pub name: &'static str,
    /// Argument synopsis, e.g. `PATH` or `FAMILY [TYPE [PROTO]]`. The
    /// dispatcher derives the accepted argument count from it: bare words are
    /// required, `[`-prefixed words optional, and `...` means "any number".
    pub usage: &'static str,
    pub help: &'static str,
    pub run: fn(&Args) -> Outcome,
}

impl Action {
    /// Checks the argument count against `usage`.
    pub fn accepts(&self, count: usize) -> bool {
        let words: Vec<&str> = self.usage.split_whitespace().collect();
        let required = words.iter().filter(|w| !w.starts_with('[')).count();
        let variadic = words.iter().any(|w| w.contains("..."));
        count >= required && (variadic || count <= words.len())
    }
}

/// The positional arguments after the action name.
#[derive(Debug)]
pub struct Args {
    values: Vec<OsString>,
}

impl Args {
    pub fn new(values: Vec<OsString>) -> Self {
        Args { values }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn raw(&self, index: usize, what: &str) -> Result<&OsStr, Fail> {
        self.values
            .get(index)
            .map(OsString::as_os_str)
            .ok_or_else(|| Fail::Usage(format!("missing argument {what}")))
    }

    pub fn optional(&self, index: usize) -> Option<&OsStr> {
        self.values.get(index).map(OsString::as_os_str)
    }

    /// A path or other byte string for the kernel; need not be UTF-8.
    pub fn cstring(&self, index: usize, what: &str) -> Result<CString, Fail> {
        to_cstring(self.raw(index, what)?, what)
    }

    pub fn text(&self, index: usize, what: &str) -> Result<&str, Fail> {
        let raw = self.raw(index, what)?;
        raw.to_str()
            .ok_or_else(|| Fail::Usage(format!("{what}: not valid UTF-8: {raw:?}")))
    }

    pub fn number<T: FromStr>(&self, index: usize, what: &str) -> Result<T, Fail> {
        let text = self.text(index, what)?;
        text.trim()
            .parse()
            .map_err(|_| Fail::Usage(format!("{what}: expected a number, got {text:?}")))
    }

    /// All arguments from `index` on, e.g. the argv of `exec`.
    pub fn rest_cstrings(&self, index: usize, what: &str) -> Result<Vec<CString>, Fail> {
        self.values
            .iter()
            .skip(index)
            .map(|v| to_cstring(v, what))
            .collect()
    }
}

pub fn to_cstring(value: &OsStr, what: &str) -> Result<CString, Fail> {
    // argv strings cannot contain NUL, but be exact rather than assume.
    CString::new(value.as_bytes()).map_err(|_| Fail::Usage(format!("{what}: contains a NUL byte")))
}

#[cfg(test)]
mod tests {
    use super::{Action, Args, Outcome};

    fn noop(_: &Args) -> Outcome {
        Ok(String::new())
    }

    fn action(usage: &'static str) -> Action {
        Action {
            name: "x",
            usage,
            help: "",
            run: noop,
        }
    }

    #[test]
    fn argument_counts_follow_usage() {
        assert!(action("").accepts(0));
        assert!(!action("").accepts(1));
        assert!(action("FAMILY [TYPE [PROTO]]").accepts(1));
        assert!(action("FAMILY [TYPE [PROTO]]").accepts(3));
        assert!(!action("FAMILY [TYPE [PROTO]]").accepts(4));
        assert!(!action("FROM TO").accepts(1));
        assert!(action("PATH [ARGS...]").accepts(9));
    }
}
