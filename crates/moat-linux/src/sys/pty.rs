//! Pseudo-terminals and terminal modes, for `--pty` and for restoring the
//! person's terminal after a run.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::{check_int, SysResult};

/// True if `fd` is a terminal.
pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty takes an integer.
    unsafe { libc::isatty(fd) == 1 }
}

/// A terminal's modes.
#[derive(Clone, Copy)]
pub struct Termios(libc::termios);

impl std::fmt::Debug for Termios {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Termios")
    }
}

pub fn get_termios(fd: RawFd) -> SysResult<Termios> {
    // SAFETY: termios is plain data; tcgetattr fills it in.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a live termios.
    check_int(unsafe { libc::tcgetattr(fd, &mut t) })?;
    Ok(Termios(t))
}

pub fn set_termios(fd: RawFd, t: &Termios) -> SysResult<()> {
    // SAFETY: `t.0` is a live termios the kernel only reads.
    check_int(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t.0) }).map(|_| ())
}

/// The modes with input processing off, for relaying keystrokes verbatim.
pub fn raw(t: &Termios) -> Termios {
    let mut raw = t.0;
    // SAFETY: cfmakeraw only edits the struct it is given.
    unsafe { libc::cfmakeraw(&mut raw) };
    Termios(raw)
}

/// The terminal's end-of-file character (usually ^D).
pub fn eof_char(t: &Termios) -> u8 {
    t.0.c_cc[libc::VEOF]
}

pub fn get_winsize(fd: RawFd) -> SysResult<libc::winsize> {
    // SAFETY: winsize is plain data.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: `ws` is a live winsize TIOCGWINSZ fills in.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) })?;
    Ok(ws)
}

pub fn set_winsize(fd: RawFd, ws: &libc::winsize) -> SysResult<()> {
    // SAFETY: `ws` is a live winsize the kernel only reads.
    check_int(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, ws) }).map(|_| ())
}

/// Fork-safe: opens a new pseudo-terminal from the devpts instance mounted
/// at `ptmx`'s directory, returning `(master, slave)` raw descriptors.
/// Used inside the sandbox, so the terminal belongs to its own /dev/pts.
pub fn open_pair_at(ptmx: &CStr) -> SysResult<(RawFd, RawFd)> {
    let master = super::fd::open(ptmx, libc::O_RDWR | libc::O_NOCTTY, 0)?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from a live local; TIOCGPTPEER takes
    // flags and returns a new descriptor for the peer.
    let slave = unsafe {
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) < 0 {
            let e = super::Errno::last();
            super::fd::close_raw(master);
            return Err(e);
        }
        libc::ioctl(
            master,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        let e = super::Errno::last();
        super::fd::close_raw(master);
        return Err(e);
    }
    Ok((master, slave))
}
