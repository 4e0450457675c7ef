//! The messages the sandbox's processes send back to moat over a pipe.
//!
//! Fixed-size records, so the child writes them without allocating and the
//! parent reads them without parsing text. Pipe writes of this size are
//! atomic, so records from the two writers (init and the command) never
//! interleave.

use std::os::fd::RawFd;

use crate::sys;

/// Where in the sandbox's setup something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    ParentDeathSignal = 1,
    ParentGone,
    UidMap,
    SetGroups,
    GidMap,
    /// `index` is the plan operation.
    Mount,
    /// `index`: 0 the HTTP proxy's listener, 1 the SOCKS5 one.
    Proxy,
    Pty,
    Signals,
    Fork,
    Session,
    Terminal,
    Stdio,
    Rlimit,
    Chdir,
    Capabilities,
    NoNewPrivs,
    /// `index` is the inner rule.
    LandlockRule,
    LandlockRestrict,
    /// `index` is the filter.
    Seccomp,
    CloseFds,
    Exec,
    Identity,
    /// The launcher refused or failed; its reason follows as text.
    Launcher,
}

impl Step {
    fn from_u32(v: u32) -> Option<Step> {
        const ALL: [Step; 24] = [
            Step::ParentDeathSignal,
            Step::ParentGone,
            Step::UidMap,
            Step::SetGroups,
            Step::GidMap,
            Step::Mount,
            Step::Proxy,
            Step::Pty,
            Step::Signals,
            Step::Fork,
            Step::Session,
            Step::Terminal,
            Step::Stdio,
            Step::Rlimit,
            Step::Chdir,
            Step::Capabilities,
            Step::NoNewPrivs,
            Step::LandlockRule,
            Step::LandlockRestrict,
            Step::Seccomp,
            Step::CloseFds,
            Step::Exec,
            Step::Identity,
            Step::Launcher,
        ];
        ALL.iter().copied().find(|s| *s as u32 == v)
    }

    /// What the step was doing, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Step::ParentDeathSignal => "asking to die with moat",
            Step::ParentGone => "moat exited during setup",
            Step::UidMap => "mapping the user id into the user namespace",
            Step::SetGroups => "disabling setgroups in the user namespace",
            Step::GidMap => "mapping the group id into the user namespace",
            Step::Mount => "setting up mounts",
            Step::Proxy => "opening the proxy's listeners inside the sandbox",
            Step::Pty => "creating the terminal",
            Step::Signals => "setting up signals",
            Step::Fork => "starting the command's process",
            Step::Session => "starting a new session",
            Step::Terminal => "attaching the terminal",
            Step::Stdio => "setting up standard input and output",
            Step::Rlimit => "setting resource limits",
            Step::Chdir => "entering the working directory",
            Step::Capabilities => "dropping capabilities",
            Step::NoNewPrivs => "setting no_new_privs",
            Step::LandlockRule => "adding a Landlock rule",
            Step::LandlockRestrict => "enforcing Landlock",
            Step::Seccomp => "installing the seccomp filter",
            Step::CloseFds => "closing inherited file descriptors",
            Step::Exec => "starting the command",
            Step::Identity => "becoming the sandbox account",
            Step::Launcher => "the elevated tier's launcher",
        }
    }
}

/// One record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// A setup step failed with `errno`.
    Failed { step: Step, index: u32, errno: i32 },
    /// The command started with this pid (inside the sandbox).
    /// The command runs; `listeners` proxy sockets follow (the launcher's
    /// report only: moat knows how many its own init sends), and which
    /// limits the run's cgroup holds (`cgroup::Placed::bits`).
    Started {
        pid: i32,
        listeners: u32,
        cgroup: u32,
    },
    /// The command exited with a code.
    Exited { code: i32 },
    /// The command was killed by a signal.
    Signaled { signal: i32 },
}

const SIZE: usize = 16;

impl Message {
    fn encode(self) -> [u8; SIZE] {
        let (kind, a, b, c): (u32, u32, u32, i32) = match self {
            Message::Failed { step, index, errno } => (1, step as u32, index, errno),
            Message::Started {
                pid,
                listeners,
                cgroup,
            } => (2, cgroup, listeners, pid),
            Message::Exited { code } => (3, 0, 0, code),
            Message::Signaled { signal } => (4, 0, 0, signal),
        };
        let mut out = [0u8; SIZE];
        out[0..4].copy_from_slice(&kind.to_ne_bytes());
        out[4..8].copy_from_slice(&a.to_ne_bytes());
        out[8..12].copy_from_slice(&b.to_ne_bytes());
        out[12..16].copy_from_slice(&c.to_ne_bytes());
        out
    }

    fn decode(buf: &[u8; SIZE]) -> Option<Message> {
        let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let value = word(12) as i32;
        match word(0) {
            1 => Some(Message::Failed {
                step: Step::from_u32(word(4))?,
                index: word(8),
                errno: value,
            }),
            2 => Some(Message::Started {
                pid: value,
                listeners: word(8),
                cgroup: word(4),
            }),
            3 => Some(Message::Exited { code: value }),
            4 => Some(Message::Signaled { signal: value }),
            _ => None,
        }
    }

    /// Fork-safe: sends the record; errors are ignored because the reader
    /// being gone means moat is gone too.
    pub fn send(self, fd: RawFd) {
        let _ = sys::fd::write_all(fd, &self.encode());
    }
}

/// Reads records from the parent's end of the pipe.
#[derive(Debug)]
pub struct Reader {
    buf: [u8; SIZE],
    filled: usize,
}

impl Reader {
    pub fn new() -> Reader {
        Reader {
            buf: [0; SIZE],
            filled: 0,
        }
    }

    /// Reads what is available; `Ok(None)` at end of file, otherwise the
    /// complete records read (possibly none).
    pub fn read(&mut self, fd: RawFd) -> sys::SysResult<Option<Vec<Message>>> {
        let mut chunk = [0u8; SIZE * 8];
        let n = match sys::fd::read(fd, &mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => n,
            Err(sys::Errno(libc::EAGAIN)) => return Ok(Some(Vec::new())),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for &byte in &chunk[..n] {
            self.buf[self.filled] = byte;
            self.filled += 1;
            if self.filled == SIZE {
                if let Some(m) = Message::decode(&self.buf) {
                    out.push(m);
                }
                self.filled = 0;
            }
        }
        Ok(Some(out))
    }
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for m in [
            Message::Failed {
                step: Step::Mount,
                index: 7,
                errno: libc::EPERM,
            },
            Message::Started {
                pid: 2,
                listeners: 5,
                cgroup: 0x21,
            },
            Message::Exited { code: 127 },
            Message::Signaled { signal: 9 },
        ] {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
        assert_eq!(Message::decode(&[0xff; SIZE]), None);
    }
}
