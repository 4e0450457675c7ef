//! The nftables ruleset's generation number, read over netlink. Every
//! committed change of the ruleset (a rule added, a table deleted) gives a
//! new number, so a verified generation stays verified until it changes:
//! the launcher checks the firewall in one round trip instead of running
//! `nft` (2-3 ms) before every run.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{check, check_int, Errno, SysResult};

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETGEN: u16 = 16;
const NFT_MSG_NEWGEN: u16 = 15;
const NFTA_GEN_ID: u16 = 1;
const NLMSG_ERROR: u16 = 2;

/// The current generation of the ruleset (needs CAP_NET_ADMIN).
pub fn generation() -> SysResult<u32> {
    // SAFETY: plain integer arguments; the result is a new descriptor or -1.
    let fd = check_int(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    })?;
    // SAFETY: fd was just created and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // nlmsghdr (16 bytes) + nfgenmsg (4 bytes: family, version, res_id).
    let mut req = [0u8; 20];
    req[0..4].copy_from_slice(&20u32.to_ne_bytes());
    req[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN).to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // family AF_UNSPEC, version NFNETLINK_V0, res_id 0: all zero.
    // SAFETY: `req` is a live buffer of the length passed; the kernel
    // address is the zeroed default (pid 0).
    check(unsafe {
        libc::send(sock.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) as libc::c_long
    })?;
    let mut buf = [0u8; 8192];
    // SAFETY: `buf` is a live, writable buffer of the length passed.
    let n = check(unsafe {
        libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) as libc::c_long
    })? as usize;
    parse(&buf[..n.min(buf.len())])
}

/// The generation in a NEWGEN reply (pure, so it can be tested).
fn parse(msg: &[u8]) -> SysResult<u32> {
    let u16_at = |i: usize| msg.get(i..i + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        msg.get(i..i + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let len = u32_at(0).ok_or(Errno(libc::EPROTO))? as usize;
    let kind = u16_at(4).ok_or(Errno(libc::EPROTO))?;
    if kind == NLMSG_ERROR {
        let err = u32_at(16).ok_or(Errno(libc::EPROTO))? as i32;
        return Err(Errno(-err));
    }
    if kind != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN || len > msg.len() {
        return Err(Errno(libc::EPROTO));
    }
    // Attributes after the 16-byte header and 4-byte nfgenmsg, each
    // {len u16, type u16, value}, padded to 4 bytes.
    let mut at = 20;
    while at + 4 <= len {
        let alen = u16_at(at).ok_or(Errno(libc::EPROTO))? as usize;
        let atype = u16_at(at + 2).ok_or(Errno(libc::EPROTO))? & 0x3fff;
        if alen < 4 {
            break;
        }
        if atype == NFTA_GEN_ID && alen >= 8 {
            let v = msg.get(at + 4..at + 8).ok_or(Errno(libc::EPROTO))?;
            return Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
        }
        at += (alen + 3) & !3;
    }
    Err(Errno(libc::EPROTO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newgen_reply_gives_its_id() {
        let mut m = Vec::new();
        m.extend_from_slice(&28u32.to_ne_bytes());
        m.extend_from_slice(&((10u16 << 8) | 15).to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&1u16.to_ne_bytes());
        m.extend_from_slice(&77u32.to_be_bytes());
        assert_eq!(parse(&m), Ok(77));
        assert!(parse(&m[..10]).is_err());
        assert!(parse(&[0xff; 40]).is_err());
    }
}
