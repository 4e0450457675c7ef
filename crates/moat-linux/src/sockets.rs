//! The host's pathname UNIX sockets, which the sandbox must not reach.
//!
//! A read-only mount does not stop `connect()` on a socket file, and
//! Landlock only restricts it from ABI 9. So every socket bound to a path
//! in the host's network namespace is masked by the mount layer, wherever
//! it lives (D-Bus, docker.sock, ssh and gpg agents, tmux, language
//! servers), not only those under /run and /tmp.

use std::path::PathBuf;

/// More sockets than this is a strange host; the rest are still hidden if
/// they live under /run, /tmp or a denied path.
pub const MAX_SOCKETS: usize = 4096;

/// Paths of the sockets listed in `/proc/net/unix` text.
pub fn parse(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        // Num RefCount Protocol Flags Type St Inode Path
        let mut fields = line.split_whitespace();
        let path = match fields.nth(7) {
            Some(p) if p.starts_with('/') => p,
            _ => continue,
        };
        let path = PathBuf::from(path);
        if !out.contains(&path) {
            out.push(path);
        }
        if out.len() >= MAX_SOCKETS {
            break;
        }
    }
    out
}

/// The sockets of the host that exist as files right now.
pub fn host_sockets() -> Vec<PathBuf> {
    let text = match std::fs::read_to_string("/proc/net/unix") {
        Ok(t) => t,
        Err(_) => return Vec::new(),
    };
    parse(&text)
        .into_iter()
        .filter(|p| {
            use std::os::unix::fs::FileTypeExt;
            std::fs::symlink_metadata(p)
                .map(|m| m.file_type().is_socket())
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_skips_abstract_and_unbound() {
        let text = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 17923 /run/dbus/system_bus_socket\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 17924 @/tmp/.X11-unix/X0\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 18000\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 17925 /home/u/.docker/run/docker.sock\n";
        assert_eq!(
            parse(text),
            [
                PathBuf::from("/run/dbus/system_bus_socket"),
                PathBuf::from("/home/u/.docker/run/docker.sock")
            ]
        );
    }
}
