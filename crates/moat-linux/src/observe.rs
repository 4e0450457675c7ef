//! The denial observer: a thread beside the sandbox that sees the calls
//! its seccomp filter notifies (writes through a path, connects, and the
//! calls the filter refuses), tells which of them a layer refuses, and
//! answers each one.
//!
//! It never decides what is allowed. A write or a connect is always
//! continued, so the mounts, Landlock and the network namespace refuse it
//! exactly as they would unobserved; the observer only predicts their
//! answer from the same facts (a read-only mount, the writable roots, the
//! network mode) to report it. A refused call gets the errno the filter
//! without a listener returns. If the observer is gone, the kernel fails
//! every notified call with ENOSYS: nothing is let through that was not
//! before. If it cannot start, the report says what went unseen.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use moat_spec::{Isolation, Net, RunSpec};

use crate::seccomp::{Filters, WRITE_FLAGS};
use crate::sys::{self, notify, notify::Answer};

/// What was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Write,
    Read,
    Network,
    Syscall,
    Signal,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Write => "write",
            Kind::Read => "read",
            Kind::Network => "network",
            Kind::Syscall => "syscall",
            Kind::Signal => "signal",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Write,
            Kind::Read,
            Kind::Network,
            Kind::Syscall,
            Kind::Signal,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Which layer refused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    Mount,
    Landlock,
    Seccomp,
    NetworkNamespace,
    Proxy,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Mount => "mount",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::NetworkNamespace => "network-namespace",
            Layer::Proxy => "proxy",
        }
    }

    pub fn parse(s: &str) -> Option<Layer> {
        [
            Layer::Mount,
            Layer::Landlock,
            Layer::Seccomp,
            Layer::NetworkNamespace,
            Layer::Proxy,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// One refused action, with how many times it was refused; the process is
/// the first that tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: Kind,
    pub target: String,
    pub layer: Layer,
    /// In moat's pid namespace (what `ps` on the host shows); 0 if unknown.
    pub pid: u32,
    pub process: String,
    pub count: u32,
}

/// What the observer saw of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub denials: Vec<Denial>,
    /// Kinds of denial this run could not see, each with the reason.
    pub unseen: Vec<String>,
}

/// At most this many distinct denials are kept; more are counted.
const MAX_DISTINCT: usize = 512;

/// What the filter lets by unobserved, for speed, where it is refused.
pub const LISTINGS_UNSEEN: &str = "listings of denied directories: a directory opened for \
                                   reading is not observed (a tree walk opens thousands), so \
                                   `ls` of one is hidden but not listed; opens of what is in it \
                                   are";

/// What `--read restricted` leaves unlisted.
pub const RESTRICTED_UNSEEN: &str = "reads outside the readable paths of `--read restricted`: \
                                     they are refused, but not listed";

/// The facts a denial is predicted from, taken from the run's spec.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    isolation: Isolation,
    net: Net,
    /// Landlock-only runs: where writing is allowed (Landlock cannot keep
    /// protected paths inside them read-only; the run reports that loss).
    writable: Vec<PathBuf>,
    /// Paths hidden from the command (masked, or refused by Landlock).
    denied: Vec<PathBuf>,
    /// Only listed paths are readable (`--read restricted`).
    restricted: bool,
    /// The filter without an observer, whose answer a refused call gets.
    plain: Vec<libc::sock_filter>,
}

impl Facts {
    pub(crate) fn new(spec: &RunSpec, temp_dir: Option<&Path>, filters: &Filters) -> Facts {
        let fs = &spec.fs;
        let mut writable = fs.writable.clone();
        writable.extend(temp_dir.map(Path::to_path_buf));
        writable.extend(fs.caches.iter().map(|c| c.run.clone()));
        Facts {
            isolation: spec.isolation,
            net: spec.net,
            writable,
            denied: fs.denied.iter().map(|e| e.path.clone()).collect(),
            restricted: fs.readable.is_some(),
            plain: filters.program.clone(),
        }
    }
}

/// The running observer: answered in moat's own wait for the command
/// ([`Launch::waits_at_once`](crate::Launch)), or by a thread of its own
/// for callers that may do other things first.
#[derive(Debug)]
pub(crate) enum Observer {
    Inline(Watch),
    Thread {
        watch: Arc<Mutex<Watch>>,
        /// Closed to tell the thread the sandbox is gone.
        stop: Option<OwnedFd>,
    },
}

impl Observer {
    /// Starts observing the sandbox that sends its listener on `sock`.
    pub(crate) fn start(sock: OwnedFd, facts: Facts, inline: bool) -> Option<Observer> {
        let watch = Watch::new(sock, facts);
        if inline {
            return Some(Observer::Inline(watch));
        }
        let (stop_read, stop) = sys::fd::pipe().ok()?;
        let watch = Arc::new(Mutex::new(watch));
        let theirs = Arc::clone(&watch);
        crate::with_signals_blocked(|| {
            // Its frames are small; a smaller stack is less to map and
            // to give back.
            std::thread::Builder::new()
                .name("moat-observer".into())
                .stack_size(256 * 1024)
                .spawn(move || run(&theirs, stop_read))
        })
        .ok()?;
        Some(Observer::Thread {
            watch,
            stop: Some(stop),
        })
    }

    /// The descriptor moat's wait polls for input, when it answers the
    /// calls itself.
    pub(crate) fn poll_fd(&self) -> Option<RawFd> {
        match self {
            Observer::Inline(w) => w.fd(),
            Observer::Thread { .. } => None,
        }
    }

    /// Acts on what `poll` said of [`Observer::poll_fd`].
    pub(crate) fn ready(&mut self, revents: libc::c_short) {
        if let Observer::Inline(w) = self {
            w.ready(revents);
        }
    }

    /// What was seen, once every process of the sandbox is gone (no call
    /// can be notified any more). The thread is not waited for: on a
    /// virtual machine, waking it and then being woken by its end costs a
    /// few hundred microseconds of every run.
    pub(crate) fn finish(&mut self) -> Observed {
        match self {
            Observer::Inline(w) => w.observed(),
            Observer::Thread { watch, stop } => {
                stop.take();
                let mut w = watch
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                w.observed()
            }
        }
    }
}

/// What the observer sees.
const OBSERVED: &str = "reads of denied paths, writes, connections and refused system calls";

/// Why nothing could be observed when the sandbox sent no listener.
const NO_LISTENER: &str = "the seccomp filter could not get a listener (moat runs inside \
                           another sandbox that already observes it?), so they were refused \
                           unobserved";

/// One sandbox's listener: taken from the socket the sandbox sends it on,
/// then asked for each notified call, which it answers.
#[derive(Debug)]
pub(crate) struct Watch {
    /// Until the listener comes.
    sock: Option<OwnedFd>,
    listener: Option<OwnedFd>,
    facts: Facts,
    seen: Seen,
    unseen: Vec<String>,
    /// What was seen has been taken: nothing more is done.
    taken: bool,
}

impl Watch {
    fn new(sock: OwnedFd, facts: Facts) -> Watch {
        let mut unseen = Vec::new();
        if facts.isolation != Isolation::LandlockOnly && !facts.denied.is_empty() {
            // (Landlock-only runs may list a denied directory: nothing
            // there is refused.)
            unseen.push(LISTINGS_UNSEEN.to_string());
        }
        if facts.restricted {
            unseen.push(RESTRICTED_UNSEEN.to_string());
        }
        Watch {
            sock: Some(sock),
            listener: None,
            facts,
            seen: Seen::default(),
            unseen,
            taken: false,
        }
    }

    /// What to poll for input: the socket until the listener came, then
    /// the listener; nothing once it hung up (every process that could
    /// be notified is gone).
    fn fd(&self) -> Option<RawFd> {
        if self.taken {
            return None;
        }
        match (&self.sock, &self.listener) {
            (Some(sock), _) => Some(sock.as_raw_fd()),
            (None, Some(listener)) => Some(listener.as_raw_fd()),
            (None, None) => None,
        }
    }

    /// One step, once `poll` said `revents` of [`Watch::fd`]: takes the
    /// listener, or answers one call.
    fn ready(&mut self, revents: libc::c_short) {
        if self.taken || revents == 0 {
            return;
        }
        if self.sock.is_some() {
            self.take_listener();
            return;
        }
        let Some(listener) = &self.listener else {
            return;
        };
        if revents & libc::POLLIN != 0 {
            if let Ok(n) = notify::receive(listener.as_fd()) {
                handle(listener.as_fd(), &n, &self.facts, &mut self.seen);
            }
        } else if revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            self.listener = None;
        }
    }

    /// Takes the listener the sandbox sent, if it is there (the socket
    /// polled readable); an end without one means the sandbox could not
    /// get one.
    fn take_listener(&mut self) {
        let Some(sock) = self.sock.take() else {
            return;
        };
        let readable = sys::fd::poll_one(sock.as_raw_fd(), libc::POLLIN, 0)
            .is_ok_and(|r| r & libc::POLLIN != 0);
        match readable.then(|| sys::fd::recv_fd(sock.as_raw_fd())) {
            Some(Ok(listener)) => self.listener = Some(listener),
            _ => self.unseen.insert(0, format!("{OBSERVED}: {NO_LISTENER}")),
        }
    }

    /// What was seen, once no call can be notified any more; taken once.
    fn observed(&mut self) -> Observed {
        if self.taken {
            return Observed::default();
        }
        // A listener sent but never polled for (the command ended before
        // its first notified call) was still had.
        self.take_listener();
        self.taken = true;
        let seen = std::mem::take(&mut self.seen);
        let mut unseen = std::mem::take(&mut self.unseen);
        if seen.dropped > 0 {
            unseen.push(format!(
                "{} more refusals of other targets were not listed (at most {MAX_DISTINCT} are)",
                seen.dropped
            ));
        }
        Observed {
            denials: seen.map.into_values().collect(),
            unseen,
        }
    }
}

/// The observer's own thread: polls the watch's descriptor until moat
/// says the sandbox is gone, then answers only what is already pending.
fn run(watch: &Mutex<Watch>, stop: OwnedFd) {
    let lock = || {
        watch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    let mut stopping = false;
    loop {
        let Some(fd) = lock().fd() else {
            return;
        };
        let mut fds = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stopping { -1 } else { stop.as_raw_fd() },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        match sys::fd::poll(&mut fds, if stopping { 0 } else { -1 }) {
            Ok(0) => return,
            Ok(_) => {}
            Err(sys::Errno(libc::EINTR)) => continue,
            Err(_) => return,
        }
        if fds[0].revents != 0 {
            let mut w = lock();
            // moat may have taken what was seen in the meantime.
            if w.fd() == Some(fd) {
                w.ready(fds[0].revents);
            }
            continue;
        }
        if fds[1].revents != 0 {
            stopping = true;
        }
    }
}

#[derive(Debug, Default)]
struct Seen {
    map: BTreeMap<(Kind, Layer, String), Denial>,
    dropped: u64,
}

impl Seen {
    fn record(&mut self, kind: Kind, layer: Layer, target: String, pid: u32) {
        let key = (kind, layer, target);
        if let Some(d) = self.map.get_mut(&key) {
            d.count = d.count.saturating_add(1);
            return;
        }
        if self.map.len() >= MAX_DISTINCT {
            self.dropped += 1;
            return;
        }
        let process = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default();
        let (kind, layer, target) = key.clone();
        self.map.insert(
            key,
            Denial {
                kind,
                target,
                layer,
                pid,
                process,
                count: 1,
            },
        );
    }
}

fn handle(listener: BorrowedFd<'_>, n: &notify::Notification, facts: &Facts, seen: &mut Seen) {
    if let Some(errno) = crate::seccomp::answer_without_observer(&facts.plain, n.arch, n.nr, n.args)
    {
        let (kind, target) = refused(n, facts);
        seen.record(kind, Layer::Seccomp, target, n.pid);
        let _ = notify::answer(listener, n.id, Answer::Fail(errno));
        return;
    }
    // Judged before the call goes on: after it, the process may be gone.
    // What was read counts only if the caller is still the one that made
    // the call (not killed, its pid not reused).
    let judged = judge(n, facts);
    if let Some((kind, layer, target)) = judged {
        if notify::still_pending(listener, n.id) {
            seen.record(kind, layer, target, n.pid);
        }
    }
    let _ = notify::answer(listener, n.id, Answer::Continue);
}

/// A call the filter refuses: sockets of the internet families are the
/// network being off; everything else is a system call moat never allows.
fn refused(n: &notify::Notification, facts: &Facts) -> (Kind, String) {
    let family = n.args[0] as u32 as i32;
    if i64::from(n.nr) == libc::SYS_socket
        && facts.net == Net::Off
        && matches!(family, libc::AF_INET | libc::AF_INET6)
    {
        let v = if family == libc::AF_INET {
            "IPv4"
        } else {
            "IPv6"
        };
        return (Kind::Network, format!("an {v} socket"));
    }
    (Kind::Syscall, crate::seccomp::refused_name(n.nr, n.args))
}

/// How a path argument is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The object (following a final symlink) if it exists, else its
    /// directory: opening, truncating, changing the mode.
    Object { follow: bool },
    /// The directory it would be made in.
    NewName,
    /// The directory it is removed from, and the object itself (a mount
    /// point cannot be removed).
    OldName,
}

const AT_FDCWD: i64 = libc::AT_FDCWD as i64;
const O_NOFOLLOW: u64 = libc::O_NOFOLLOW as u64;
const AT_SYMLINK_NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;

/// The paths a notified write names: (directory descriptor, address of
/// the path, how it is judged).
fn write_paths(nr: i64, a: &[u64; 6]) -> Vec<(i64, u64, Reach)> {
    let cwd = AT_FDCWD;
    let fd = |v: u64| v as i32 as i64;
    let object = |follow| Reach::Object { follow };
    match nr {
        libc::SYS_open => vec![(cwd, a[0], object(a[1] & O_NOFOLLOW == 0))],
        libc::SYS_openat => vec![(fd(a[0]), a[1], object(a[2] & O_NOFOLLOW == 0))],
        libc::SYS_creat | libc::SYS_truncate | libc::SYS_chmod => {
            vec![(cwd, a[0], object(true))]
        }
        libc::SYS_fchmodat | libc::SYS_fchmodat2 => {
            vec![(fd(a[0]), a[1], object(a[3] & AT_SYMLINK_NOFOLLOW == 0))]
        }
        libc::SYS_mkdir | libc::SYS_mknod => vec![(cwd, a[0], Reach::NewName)],
        libc::SYS_mkdirat | libc::SYS_mknodat => vec![(fd(a[0]), a[1], Reach::NewName)],
        libc::SYS_unlink | libc::SYS_rmdir => vec![(cwd, a[0], Reach::OldName)],
        libc::SYS_unlinkat => vec![(fd(a[0]), a[1], Reach::OldName)],
        libc::SYS_rename => vec![(cwd, a[0], Reach::OldName), (cwd, a[1], Reach::NewName)],
        libc::SYS_renameat | libc::SYS_renameat2 => vec![
            (fd(a[0]), a[1], Reach::OldName),
            (fd(a[2]), a[3], Reach::NewName),
        ],
        libc::SYS_link => vec![(cwd, a[1], Reach::NewName)],
        libc::SYS_linkat => vec![(fd(a[2]), a[3], Reach::NewName)],
        libc::SYS_symlink => vec![(cwd, a[1], Reach::NewName)],
        libc::SYS_symlinkat => vec![(fd(a[1]), a[2], Reach::NewName)],
        _ => Vec::new(),
    }
}

fn judge(n: &notify::Notification, facts: &Facts) -> Option<(Kind, Layer, String)> {
    let nr = i64::from(n.nr);
    if nr == libc::SYS_connect {
        return judge_connect(n, facts);
    }
    if let Some(target) = signal_target(nr, &n.args) {
        return judge_signal(n.pid, target, facts);
    }
    let read_open = match nr {
        libc::SYS_open => Some((AT_FDCWD, n.args[0], n.args[1])),
        libc::SYS_openat => Some((n.args[0] as i32 as i64, n.args[1], n.args[2])),
        _ => None,
    };
    if let Some((dirfd, addr, flags)) = read_open {
        if flags & u64::from(WRITE_FLAGS) == 0 {
            return judge_read(n.pid, dirfd, addr, facts);
        }
    }
    for (dirfd, addr, reach) in write_paths(nr, &n.args) {
        if let Some(found) = judge_write(n.pid, dirfd, addr, reach, facts) {
            return Some(found);
        }
    }
    None
}

/// The one process a signal call is sent to (its thread group for
/// `tgkill`), as the caller names it; none for process groups or
/// "everyone" (`kill` with 0 or less).
fn signal_target(nr: i64, a: &[u64; 6]) -> Option<i32> {
    let pid = a[0] as i32;
    match nr {
        libc::SYS_kill | libc::SYS_tkill | libc::SYS_tgkill if pid > 0 => Some(pid),
        _ => None,
    }
}

/// A signal to a process outside the sandbox: Landlock's signal scope
/// refuses it. Judged only without a pid namespace (landlock-only runs),
/// where the caller can name processes outside at all; a process is in
/// the sandbox when moat is among its ancestors (moat is the run's
/// subreaper, so orphans of the sandbox stay below it). One of another
/// user is left to the kernel's own permission check, which refuses it
/// first.
fn judge_signal(sender: u32, target: i32, facts: &Facts) -> Option<(Kind, Layer, String)> {
    if facts.isolation != Isolation::LandlockOnly {
        return None;
    }
    let moat = std::process::id() as i32;
    let mut pid = target;
    for _ in 0..4096 {
        if pid == moat {
            return None;
        }
        if pid <= 1 {
            break;
        }
        pid = crate::supervise::parent_of(pid)?;
    }
    let owner = |p: i64| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{p}"))
            .ok()
            .map(|m| m.uid())
    };
    let by = owner(i64::from(sender))?;
    if by != 0 && owner(i64::from(target))? != by {
        return None;
    }
    let comm = std::fs::read_to_string(format!("/proc/{target}/comm")).unwrap_or_default();
    Some((
        Kind::Signal,
        Layer::Landlock,
        format!("pid {target} ({})", comm.trim_end()),
    ))
}

/// Reads the NUL-terminated string at `addr` in `pid`, page by page (a
/// read across into an unmapped page would fail as a whole).
fn read_path(pid: u32, addr: u64) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut at = addr;
    // Every open of the sandbox comes here: no allocation but the result.
    let mut page = [0u8; 4096];
    while out.len() < libc::PATH_MAX as usize {
        let buf = &mut page[..4096 - (at % 4096) as usize];
        let got = notify::read_memory(pid, at, buf).ok()?;
        if got == 0 {
            return None;
        }
        if let Some(end) = buf[..got].iter().position(|b| *b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(out);
        }
        out.extend_from_slice(&buf[..got]);
        at += got as u64;
    }
    None
}

/// The absolute path, in the process's own view, that `path` names from
/// `dirfd`, with `.` and `..` and repeated slashes taken out by name (what
/// a report shows; the check itself resolves it in the process's root).
fn absolute(pid: u32, dirfd: i64, path: &[u8]) -> Option<Vec<u8>> {
    let joined = if path.first() == Some(&b'/') {
        path.to_vec()
    } else {
        let base = if dirfd == AT_FDCWD {
            format!("/proc/{pid}/cwd")
        } else {
            format!("/proc/{pid}/fd/{dirfd}")
        };
        let base = std::fs::read_link(base).ok()?;
        let base = base.as_os_str().as_bytes();
        if base.first() != Some(&b'/') {
            return None;
        }
        let mut j = base.to_vec();
        j.push(b'/');
        j.extend_from_slice(path);
        j
    };
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in joined.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::new();
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|b| *b == b'/') {
        Some(0) | None => b"/",
        Some(i) => &path[..i],
    }
}

fn judge_write(
    pid: u32,
    dirfd: i64,
    addr: u64,
    reach: Reach,
    facts: &Facts,
) -> Option<(Kind, Layer, String)> {
    let raw = read_path(pid, addr)?;
    let abs = absolute(pid, dirfd, &raw)?;
    let shown = String::from_utf8_lossy(&abs).into_owned();
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(format!("/proc/{pid}/root"))
        .ok()?;
    let open = |p: &[u8], follow: bool| {
        let c = CString::new(p).map_err(|_| sys::Errno(libc::EINVAL))?;
        sys::at::open_in_root(root.as_fd(), &c, follow)
    };
    let refused = |fd: &OwnedFd| -> Option<Layer> {
        let st = sys::at::stat_fd(fd.as_raw_fd()).ok()?;
        let kind = st.mode & libc::S_IFMT;
        // Devices, fifos and sockets are written on read-only mounts too.
        if !matches!(kind, libc::S_IFREG | libc::S_IFDIR | libc::S_IFLNK) {
            return None;
        }
        refused_at(fd, facts)
    };
    // Only a name that does not exist yet is judged by its directory; a
    // path this cannot resolve (a magic link such as /proc/self/fd/1) is
    // not judged at all.
    let layer = match reach {
        Reach::Object { follow } => match open(&abs, follow) {
            Ok(fd) => refused(&fd),
            Err(sys::Errno(libc::ENOENT)) => refused(&open(parent(&abs), true).ok()?),
            Err(_) => None,
        },
        Reach::NewName => refused(&open(parent(&abs), true).ok()?),
        Reach::OldName => {
            let object = open(&abs, false).ok().and_then(|fd| refused(&fd));
            object.or_else(|| open(parent(&abs), true).ok().and_then(|fd| refused(&fd)))
        }
    }?;
    Some((Kind::Write, layer, shown))
}

/// An open for reading is refused (or shown an empty mask) when it names a
/// denied path that exists. Judged by the name as given, made absolute
/// (the observer's view of a denied path is the host's): a denied path
/// reached through a symlink to it is hidden just the same, but listed
/// only if the name itself lies under it.
fn judge_read(pid: u32, dirfd: i64, addr: u64, facts: &Facts) -> Option<(Kind, Layer, String)> {
    if facts.denied.is_empty() {
        return None;
    }
    let raw = read_path(pid, addr)?;
    let abs = absolute(pid, dirfd, &raw)?;
    let path = Path::new(std::ffi::OsStr::from_bytes(&abs));
    if !facts.denied.iter().any(|d| path.starts_with(d)) {
        return None;
    }
    // A name that does not exist outside either (a tool probing for an
    // optional file) was not refused by anything.
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return None;
    };
    let layer = if facts.isolation == Isolation::LandlockOnly {
        // Landlock lists a denied directory (its parent's rights reach
        // it); only what is in it is refused.
        if meta.is_dir() {
            return None;
        }
        Layer::Landlock
    } else {
        Layer::Mount
    };
    Some((
        Kind::Read,
        layer,
        String::from_utf8_lossy(&abs).into_owned(),
    ))
}

/// Whether writing what `fd` is (or making something in it) is refused,
/// and by which layer.
fn refused_at(fd: &OwnedFd, facts: &Facts) -> Option<Layer> {
    if facts.isolation != Isolation::LandlockOnly {
        // The sandbox's mounts: everything outside the writable roots,
        // and what is protected inside them, is mounted read-only.
        return sys::at::on_read_only_mount(fd.as_fd())
            .ok()
            .filter(|ro| *ro)
            .map(|_| Layer::Mount);
    }
    // Without a mount namespace, the process sees the host's paths.
    let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
    if facts.writable.iter().any(|r| path.starts_with(r)) {
        None
    } else {
        Some(Layer::Landlock)
    }
}

fn judge_connect(n: &notify::Notification, facts: &Facts) -> Option<(Kind, Layer, String)> {
    if facts.net == Net::Host || facts.isolation == Isolation::LandlockOnly {
        // Landlock-only runs with the network off cannot make an internet
        // socket at all (the filter refuses it, and that is reported).
        return None;
    }
    let len = (n.args[2] as usize).min(128);
    let mut buf = vec![0u8; len];
    let got = notify::read_memory(n.pid, n.args[1], &mut buf).ok()?;
    let addr = socket_address(&buf[..got])?;
    let local = match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback() || ip.is_unspecified(),
        std::net::IpAddr::V6(ip) => ip.is_loopback() || ip.is_unspecified(),
    };
    if local {
        return None;
    }
    let through_proxy =
        moat_spec::TRANSPARENT_PORTS.contains(&addr.port()) || addr.port() == moat_spec::DNS_PORT;
    match facts.net {
        Net::Proxy if through_proxy => None,
        _ => Some((Kind::Network, Layer::NetworkNamespace, addr.to_string())),
    }
}

/// An internet socket address as the kernel takes it (`sockaddr_in` or
/// `sockaddr_in6`); IPv4 mapped into IPv6 shows as IPv4.
fn socket_address(b: &[u8]) -> Option<std::net::SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match i32::from(family) {
        libc::AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        libc::AF_INET6 => {
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let ip = Ipv6Addr::from(ip);
            let ip = match ip.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(ip),
            };
            Some(SocketAddr::new(ip, port))
        }
        _ => None,
    }
}

/// At most this much of the launcher's report: it is written before moat
/// reads it, so it must fit in the channel's socket buffer.
const MAX_ENCODED: usize = 96 * 1024;

/// What the launcher's observer saw, as it tells moat on its channel:
/// one line per denial or unseen kind, text fields in hex so that no name
/// can break a line.
pub fn encode(o: &Observed) -> Vec<u8> {
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let mut out = String::new();
    let mut left_out = 0;
    for d in &o.denials {
        if out.len() > MAX_ENCODED {
            left_out += 1;
            continue;
        }
        out.push_str(&format!(
            "d {} {} {} {} {} {}\n",
            d.kind.as_str(),
            d.layer.as_str(),
            d.pid,
            d.count,
            hex(&d.process),
            hex(&d.target)
        ));
    }
    let mut unseen = o.unseen.clone();
    if left_out > 0 {
        unseen.push(format!(
            "{left_out} more refusals were not passed on by the launcher"
        ));
    }
    for u in &unseen {
        out.push_str(&format!("u {}\n", hex(u)));
    }
    out.into_bytes()
}

/// Reads [`encode`]'s lines; a line that does not parse is dropped and
/// said to be.
pub fn decode(bytes: &[u8]) -> Observed {
    fn unhex(s: &str) -> Option<String> {
        if !s.len().is_multiple_of(2) {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect();
        Some(String::from_utf8_lossy(&bytes?).into_owned())
    }
    let mut o = Observed::default();
    let mut bad = 0;
    for line in String::from_utf8_lossy(bytes).lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let parsed = match f.as_slice() {
            ["d", kind, layer, pid, count, process, target] => (|| {
                o.denials.push(Denial {
                    kind: Kind::parse(kind)?,
                    layer: Layer::parse(layer)?,
                    pid: pid.parse().ok()?,
                    count: count.parse().ok()?,
                    process: unhex(process)?,
                    target: unhex(target)?,
                });
                Some(())
            })(),
            ["u", text] => unhex(text).map(|t| o.unseen.push(t)),
            _ => None,
        };
        if parsed.is_none() {
            bad += 1;
        }
    }
    if bad > 0 {
        o.unseen.push(format!(
            "{bad} lines of the launcher's denial report could not be read"
        ));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shown_absolute_and_clean() {
        let me = std::process::id();
        assert_eq!(
            absolute(me, AT_FDCWD, b"/a//b/./c/../d").as_deref(),
            Some(&b"/a/b/d"[..])
        );
        assert_eq!(absolute(me, AT_FDCWD, b"/..").as_deref(), Some(&b"/"[..]));
        let cwd = std::env::current_dir().map(|p| p.join("x")).ok();
        assert_eq!(
            absolute(me, AT_FDCWD, b"x").map(|v| PathBuf::from(std::ffi::OsStr::from_bytes(&v))),
            cwd
        );
        assert_eq!(parent(b"/a/b"), b"/a");
        assert_eq!(parent(b"/a"), b"/");
    }

    #[test]
    fn socket_addresses_are_read_as_the_kernel_does() {
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&443u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(
            socket_address(&v4).map(|a| a.to_string()).as_deref(),
            Some("10.1.2.3:443")
        );
        let mut v6 = vec![0u8; 28];
        v6[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&22u16.to_be_bytes());
        v6[8..24]
            .copy_from_slice(&std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0a00, 1).octets());
        assert_eq!(
            socket_address(&v6).map(|a| a.to_string()).as_deref(),
            Some("10.0.0.1:22")
        );
        assert_eq!(socket_address(&v4[..6]), None);
    }

    #[test]
    fn the_launchers_report_reads_back() {
        let o = Observed {
            denials: vec![Denial {
                kind: Kind::Write,
                target: "/home/u/a b\nc".into(),
                layer: Layer::Mount,
                pid: 42,
                process: "to uch".into(),
                count: 3,
            }],
            unseen: vec!["reads: x".into()],
        };
        assert_eq!(decode(&encode(&o)), o);
        let broken = decode(b"d write mount x 1 00 00\nz\n");
        assert!(broken.denials.is_empty());
        assert_eq!(broken.unseen.len(), 1);
    }

    #[test]
    fn the_paths_of_each_write() {
        let a = [1, 2, 3, 4, 5, 6];
        assert_eq!(
            write_paths(libc::SYS_renameat2, &a),
            vec![(1, 2, Reach::OldName), (3, 4, Reach::NewName)]
        );
        assert_eq!(
            write_paths(libc::SYS_open, &[7, O_NOFOLLOW | 1, 0, 0, 0, 0]),
            vec![(AT_FDCWD, 7, Reach::Object { follow: false })]
        );
        assert_eq!(
            write_paths(libc::SYS_symlinkat, &a),
            vec![(2, 3, Reach::NewName)]
        );
        assert!(write_paths(libc::SYS_read, &a).is_empty());
    }
}
