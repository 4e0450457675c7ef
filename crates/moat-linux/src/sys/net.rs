//! Bringing up loopback in a new network namespace. Fork-safe.

use super::{check_int, SysResult};

/// Sets `lo` up, so servers the command starts on localhost work inside an
/// otherwise empty network namespace.
pub fn loopback_up() -> SysResult<()> {
    // SAFETY: socket takes integers and returns a new descriptor.
    let sock = check_int(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    let result = (|| {
        // SAFETY: `req` is a live ifreq the kernel reads and writes.
        check_int(unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) })?;
        // SAFETY: reading and writing the flags member of the union that
        // SIOCGIFFLAGS just filled in.
        unsafe {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        }
        // SAFETY: as above.
        check_int(unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) })?;
        Ok(())
    })();
    super::fd::close_raw(sock);
    result
}
