//! Bringing up loopback in a new network namespace. Fork-safe.

use std::os::fd::RawFd;

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

/// A TCP socket listening on 127.0.0.1:`port` (in the caller's network
/// namespace). Fork-safe.
pub fn listen_loopback(port: u16) -> SysResult<RawFd> {
    // SAFETY: socket takes integers and returns a new descriptor.
    let sock = check_int(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
    })?;
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    let result = (|| {
        // SAFETY: `addr` is a live sockaddr_in of the size passed.
        check_int(unsafe {
            libc::bind(
                sock,
                &addr as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        })?;
        // SAFETY: listen takes a descriptor and a backlog.
        check_int(unsafe { libc::listen(sock, 128) })?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(sock),
        Err(e) => {
            super::fd::close_raw(sock);
            Err(e)
        }
    }
}
