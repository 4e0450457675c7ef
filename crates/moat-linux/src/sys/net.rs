//! The sandbox's own network namespace: loopback, the proxy's
//! listeners, and the route that makes every address local. Fork-safe.

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

fn close_on_error<T>(sock: RawFd, result: SysResult<T>) -> SysResult<T> {
    if result.is_err() {
        super::fd::close_raw(sock);
    }
    result
}

/// The socket address of `ip`:`port`, for bind. Fork-safe.
fn sockaddr(ip: std::net::IpAddr, port: u16) -> (libc::sockaddr_in6, libc::socklen_t, libc::c_int) {
    // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    match ip {
        std::net::IpAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in (16 bytes) fits in sockaddr_in6 (28
            // bytes); both are plain data, and the copy is byte for byte.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    &sin as *const libc::sockaddr_in as *const u8,
                    &mut storage as *mut libc::sockaddr_in6 as *mut u8,
                    std::mem::size_of::<libc::sockaddr_in>(),
                );
            }
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                libc::AF_INET,
            )
        }
        std::net::IpAddr::V6(v6) => {
            storage.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            storage.sin6_port = port.to_be();
            storage.sin6_addr.s6_addr = v6.octets();
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                libc::AF_INET6,
            )
        }
    }
}

fn bound(kind: libc::c_int, ip: std::net::IpAddr, port: u16, dual: bool) -> SysResult<RawFd> {
    let (addr, len, family) = sockaddr(ip, port);
    // SAFETY: socket takes integers and returns a new descriptor.
    let sock = check_int(unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) })?;
    let result = (|| {
        if family == libc::AF_INET6 {
            let v6only: libc::c_int = if dual { 0 } else { 1 };
            // SAFETY: `v6only` is a live int of the size passed.
            check_int(unsafe {
                libc::setsockopt(
                    sock,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_V6ONLY,
                    &v6only as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            })?;
        }
        // SAFETY: `addr` is a live socket address of at least `len` bytes.
        check_int(unsafe {
            libc::bind(
                sock,
                &addr as *const libc::sockaddr_in6 as *const libc::sockaddr,
                len,
            )
        })?;
        Ok(())
    })();
    close_on_error(sock, result).map(|()| sock)
}

/// A TCP socket listening at `port` on every address, IPv4 and IPv6 (or
/// IPv4 only where the kernel has no IPv6). Fork-safe.
pub fn listen_any(port: u16) -> SysResult<RawFd> {
    let sock = match bound(
        libc::SOCK_STREAM,
        std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        port,
        true,
    ) {
        Ok(s) => s,
        Err(super::Errno(libc::EAFNOSUPPORT)) => bound(
            libc::SOCK_STREAM,
            std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            port,
            false,
        )?,
        Err(e) => return Err(e),
    };
    // SAFETY: listen takes a descriptor and a backlog.
    close_on_error(sock, check_int(unsafe { libc::listen(sock, 128) })).map(|_| sock)
}

/// A UDP socket bound to `ip`:`port`. Fork-safe.
pub fn bind_udp(ip: std::net::IpAddr, port: u16) -> SysResult<RawFd> {
    bound(libc::SOCK_DGRAM, ip, port, false)
}

/// Makes every address local to this network namespace ("AnyIP"): a route
/// of type local for 0.0.0.0/0 (and ::/0 where there is IPv6) through
/// loopback. A connection to any address then reaches the listeners bound
/// to every address, which see where it was going as their local address;
/// one to a port nobody listens on is refused at once. Fork-safe.
pub fn route_everything_local() -> SysResult<()> {
    route_local(libc::AF_INET as u8)?;
    // Without IPv6 there is nothing to route.
    match route_local(libc::AF_INET6 as u8) {
        Err(super::Errno(libc::EAFNOSUPPORT | libc::EOPNOTSUPP)) => Ok(()),
        other => other,
    }
}

fn route_local(family: u8) -> SysResult<()> {
    // nlmsghdr (16) + rtmsg (12) + RTA_OIF (8).
    const LEN: usize = 36;
    const RTM_NEWROUTE: u16 = 24;
    const RT_TABLE_LOCAL: u8 = 255;
    const RTPROT_BOOT: u8 = 3;
    const RT_SCOPE_HOST: u8 = 254;
    const RTN_LOCAL: u8 = 2;
    const RTA_OIF: u16 = 4;
    // The loopback device is interface 1 in every network namespace.
    const LOOPBACK_IFINDEX: u32 = 1;
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut msg = [0u8; LEN];
    msg[0..4].copy_from_slice(&(LEN as u32).to_ne_bytes());
    msg[4..6].copy_from_slice(&RTM_NEWROUTE.to_ne_bytes());
    msg[6..8].copy_from_slice(&flags.to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // rtmsg: family, dst_len 0, src_len 0, tos 0, table, protocol, scope,
    // type, flags 0.
    msg[16] = family;
    msg[20] = RT_TABLE_LOCAL;
    msg[21] = RTPROT_BOOT;
    msg[22] = RT_SCOPE_HOST;
    msg[23] = RTN_LOCAL;
    msg[28..30].copy_from_slice(&8u16.to_ne_bytes());
    msg[30..32].copy_from_slice(&RTA_OIF.to_ne_bytes());
    msg[32..36].copy_from_slice(&LOOPBACK_IFINDEX.to_ne_bytes());
    // SAFETY: socket takes integers and returns a new descriptor.
    let sock = check_int(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    })?;
    let result = (|| {
        // SAFETY: `msg` is a live buffer of the length passed.
        let sent = unsafe { libc::send(sock, msg.as_ptr().cast(), LEN, 0) };
        if sent < 0 {
            return Err(super::Errno::last());
        }
        let mut ack = [0u8; 256];
        // SAFETY: `ack` is a live, writable buffer of the length passed.
        let n = unsafe { libc::recv(sock, ack.as_mut_ptr().cast(), ack.len(), 0) };
        if n < 20 {
            return Err(super::Errno(libc::EPROTO));
        }
        // An NLMSG_ERROR record; error 0 is the acknowledgement.
        let errno = i32::from_ne_bytes([ack[16], ack[17], ack[18], ack[19]]);
        if errno != 0 {
            return Err(super::Errno(-errno));
        }
        Ok(())
    })();
    super::fd::close_raw(sock);
    result
}
