//! Network actions. HOST may be an address literal or a name; a name is
//! resolved with getaddrinfo first, and a resolution failure is reported as
//! such (errno null) so it is not mistaken for a blocked connect.

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::action::{other, step, to_cstring, Action, Args, Fail, Outcome};
use crate::fs_actions::{show, PAYLOAD};
use crate::sys::{self, SockAddr};

#[rustfmt::skip]
pub const ACTIONS: &[Action] = &[
    Action { name: "connect-tcp", usage: "HOST PORT", help: "IPv4 TCP connect, then write a line; ok if connect succeeded", run: connect_tcp },
    Action { name: "connect-tcp6", usage: "HOST PORT", help: "IPv6 TCP connect, then write a line; ok if connect succeeded", run: connect_tcp6 },
    Action { name: "connect-mptcp", usage: "HOST PORT", help: "IPv4 connect on socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)", run: connect_mptcp },
    Action { name: "send-udp", usage: "HOST PORT", help: "IPv4 UDP sendto of one line; ok if sendto succeeded", run: send_udp },
    Action { name: "send-udp6", usage: "HOST PORT", help: "IPv6 UDP sendto of one line; ok if sendto succeeded", run: send_udp6 },
    Action { name: "ping", usage: "HOST", help: "send one ICMP echo request on an unprivileged ICMP socket; ok if sendto succeeded", run: ping },
    Action { name: "raw-socket", usage: "", help: "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)", run: raw_socket },
    Action { name: "socket", usage: "FAMILY [TYPE [PROTO]]", help: "socket(2) with numeric arguments (TYPE defaults to SOCK_STREAM=1, PROTO to 0), e.g. 16 3 0 for netlink", run: socket },
    Action { name: "connect-unix", usage: "PATH", help: "connect a SOCK_STREAM unix socket to PATH and write a line", run: connect_unix },
    Action { name: "connect-abstract", usage: "NAME", help: "connect a SOCK_STREAM unix socket to the abstract address \\0NAME and write a line", run: connect_abstract },
    Action { name: "tcp-listen-loopback", usage: "", help: "listen on 127.0.0.1:0, connect to it, accept and exchange a byte; detail = port", run: tcp_listen_loopback },
    Action { name: "dns-lookup", usage: "NAME", help: "getaddrinfo(NAME); detail = first address; failure error = gai_strerror text", run: dns_lookup },
];

fn port(args: &Args, index: usize) -> Result<u16, Fail> {
    args.number(index, "PORT")
}

/// Resolves HOST to one address of `family` (AF_INET or AF_INET6).
fn resolve(args: &Args, index: usize, family: libc::c_int) -> Result<IpAddr, Fail> {
    let host = args.text(index, "HOST")?;
    let want_v4 = family == libc::AF_INET;
    if let Ok(ip) = host.parse::<IpAddr>() {
        if ip.is_ipv4() != want_v4 {
            let expected = if want_v4 { "IPv4" } else { "IPv6" };
            return Err(Fail::Usage(format!(
                "HOST: {host} is not an {expected} address"
            )));
        }
        return Ok(ip);
    }
    let name = CString::new(host).map_err(|_| Fail::Usage("HOST: contains a NUL byte".into()))?;
    lookup(&name, family)
}

fn lookup(name: &CString, family: libc::c_int) -> Result<IpAddr, Fail> {
    match sys::getaddrinfo(name, family) {
        Ok(addrs) => addrs
            .first()
            .copied()
            .ok_or_else(|| other("no addresses", "getaddrinfo")),
        Err(gai) => Err(match gai.errno {
            Some(errno) => Fail::Errno {
                errno,
                detail: format!("getaddrinfo: {}", gai.message),
            },
            None => other(gai.message, format!("getaddrinfo code {}", gai.code)),
        }),
    }
}

/// Connects a stream socket and then tries to write one line. Success means
/// the connect succeeded; the write result is only evidence in the detail.
fn connect_stream(fd: &OwnedFd, addr: &SockAddr, shown: &str) -> Outcome {
    sys::connect(fd.as_raw_fd(), addr).map_err(step("connect"))?;
    let wrote = match sys::write(fd.as_raw_fd(), PAYLOAD) {
        Ok(n) => format!("wrote {n} bytes"),
        Err(e) => format!("write failed: {e}"),
    };
    Ok(format!("connected to {shown}; {wrote}"))
}

fn connect_ip(args: &Args, family: libc::c_int, protocol: libc::c_int) -> Outcome {
    // PORT is checked first: resolving a name is already network activity.
    let port = port(args, 1)?;
    let ip = resolve(args, 0, family)?;
    let addr = SocketAddr::new(ip, port);
    let fd = sys::socket(family, libc::SOCK_STREAM, protocol).map_err(step("socket"))?;
    connect_stream(&fd, &SockAddr::Ip(addr), &addr.to_string())
}

fn connect_tcp(args: &Args) -> Outcome {
    connect_ip(args, libc::AF_INET, 0)
}

fn connect_tcp6(args: &Args) -> Outcome {
    connect_ip(args, libc::AF_INET6, 0)
}

fn connect_mptcp(args: &Args) -> Outcome {
    connect_ip(args, libc::AF_INET, libc::IPPROTO_MPTCP)
}

fn send_udp_to(args: &Args, family: libc::c_int) -> Outcome {
    // PORT is checked first: resolving a name is already network activity.
    let port = port(args, 1)?;
    let ip = resolve(args, 0, family)?;
    let addr = SocketAddr::new(ip, port);
    let fd = sys::socket(family, libc::SOCK_DGRAM, 0).map_err(step("socket"))?;
    let n = sys::sendto(fd.as_raw_fd(), PAYLOAD, &SockAddr::Ip(addr)).map_err(step("sendto"))?;
    Ok(format!("sent {n} bytes to {addr}"))
}

fn send_udp(args: &Args) -> Outcome {
    send_udp_to(args, libc::AF_INET)
}

fn send_udp6(args: &Args) -> Outcome {
    send_udp_to(args, libc::AF_INET6)
}

/// An ICMP echo request. On a ping socket the kernel overwrites the
/// identifier, but the checksum is filled in anyway so the packet is valid
/// however it is sent.
fn echo_request() -> Vec<u8> {
    const ICMP_ECHO: u8 = 8;
    let mut packet = vec![ICMP_ECHO, 0, 0, 0, 0, 0, 0, 1];
    packet.extend_from_slice(b"moat-probe");
    let checksum = internet_checksum(&packet).to_be_bytes();
    packet[2] = checksum[0];
    packet[3] = checksum[1];
    packet
}

fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => u32::from(u16::from_be_bytes([*hi, *lo])),
            [hi] => u32::from(u16::from_be_bytes([*hi, 0])),
            _ => 0,
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ping(args: &Args) -> Outcome {
    let ip = resolve(args, 0, libc::AF_INET)?;
    let fd =
        sys::socket(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP).map_err(step("socket"))?;
    let addr = SockAddr::Ip(SocketAddr::new(ip, 0));
    let n = sys::sendto(fd.as_raw_fd(), &echo_request(), &addr).map_err(step("sendto"))?;
    Ok(format!("sent {n}-byte echo request to {ip}"))
}

fn raw_socket(_args: &Args) -> Outcome {
    let fd = sys::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP)?;
    Ok(format!("fd={}", fd.as_raw_fd()))
}

fn socket(args: &Args) -> Outcome {
    let family: libc::c_int = args.number(0, "FAMILY")?;
    let ty: libc::c_int = if args.len() > 1 {
        args.number(1, "TYPE")?
    } else {
        libc::SOCK_STREAM
    };
    let protocol: libc::c_int = if args.len() > 2 {
        args.number(2, "PROTO")?
    } else {
        0
    };
    let fd = sys::socket(family, ty, protocol)?;
    Ok(format!("fd={}", fd.as_raw_fd()))
}

/// sun_path holds 108 bytes; a path needs one of them for its NUL.
fn unix_addr(bytes: Vec<u8>, what: &str) -> Result<SockAddr, Fail> {
    let limit = if bytes.first() == Some(&0) { 108 } else { 107 };
    if bytes.len() > limit || bytes.is_empty() {
        return Err(Fail::Usage(format!(
            "{what}: must be 1 to {limit} bytes for a unix socket address"
        )));
    }
    Ok(SockAddr::Unix(bytes))
}

fn connect_unix(args: &Args) -> Outcome {
    let path = args.raw(0, "PATH")?;
    let addr = unix_addr(path.as_bytes().to_vec(), "PATH")?;
    let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).map_err(step("socket"))?;
    connect_stream(&fd, &addr, &show(path))
}

fn connect_abstract(args: &Args) -> Outcome {
    let name = args.raw(0, "NAME")?;
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(name.as_bytes());
    let addr = unix_addr(bytes, "NAME")?;
    let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).map_err(step("socket"))?;
    connect_stream(&fd, &addr, &format!("@{}", show(name)))
}

/// Everything a local server needs: socket, bind, listen, connect, accept,
/// and data both ways. Blocking calls cannot deadlock here because the
/// connect completes from the listen backlog before accept is called.
fn tcp_listen_loopback(_args: &Args) -> Outcome {
    let loopback = SockAddr::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    let server = sys::socket(libc::AF_INET, libc::SOCK_STREAM, 0).map_err(step("socket"))?;
    sys::bind(server.as_raw_fd(), &loopback).map_err(step("bind"))?;
    sys::listen(server.as_raw_fd(), 1).map_err(step("listen"))?;
    let port = sys::local_port_v4(server.as_raw_fd()).map_err(step("getsockname"))?;
    let target = SockAddr::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    let client = sys::socket(libc::AF_INET, libc::SOCK_STREAM, 0).map_err(step("client socket"))?;
    sys::connect(client.as_raw_fd(), &target).map_err(step("connect"))?;
    let conn = sys::accept(server.as_raw_fd()).map_err(step("accept"))?;
    exchange_byte(&client, &conn, b'p').map_err(|f| with_port(f, port))?;
    exchange_byte(&conn, &client, b'q').map_err(|f| with_port(f, port))?;
    Ok(port.to_string())
}

fn exchange_byte(from: &OwnedFd, to: &OwnedFd, byte: u8) -> Result<(), Fail> {
    sys::write(from.as_raw_fd(), &[byte]).map_err(step("write"))?;
    let mut buf = [0u8; 1];
    let n = sys::read(to.as_raw_fd(), &mut buf).map_err(step("read"))?;
    if n != 1 || buf[0] != byte {
        return Err(other("byte exchange mismatch", format!("read {n} bytes")));
    }
    Ok(())
}

fn with_port(fail: Fail, port: u16) -> Fail {
    match fail {
        Fail::Errno { errno, detail } => Fail::Errno {
            errno,
            detail: format!("{detail} (port {port})"),
        },
        Fail::Other { error, detail } => Fail::Other {
            error,
            detail: format!("{detail} (port {port})"),
        },
        usage @ Fail::Usage(_) => usage,
    }
}

fn dns_lookup(args: &Args) -> Outcome {
    let name = to_cstring(args.raw(0, "NAME")?, "NAME")?;
    let ip = lookup(&name, libc::AF_UNSPEC)?;
    Ok(ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::{echo_request, internet_checksum};

    #[test]
    fn checksum_of_packet_with_checksum_is_zero() {
        assert_eq!(internet_checksum(&echo_request()), 0);
    }
}
