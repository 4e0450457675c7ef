//! Network and IPC attacks: listeners outside the sandbox (TCP, UDP, IPv6,
//! MPTCP, pathname and abstract UNIX sockets) record every contact, and the
//! sandbox must make none.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

mod common;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Counts what reaches a listener.
#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

impl Hits {
    fn get(&self) -> usize {
        // Give in-flight contacts a moment to land.
        std::thread::sleep(Duration::from_millis(50));
        self.0.load(Ordering::SeqCst)
    }
}

fn tcp(addr: &str) -> (u16, Hits) {
    let l = TcpListener::bind(addr).unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = Hits::default();
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            h.0.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
        }
    });
    (port, hits)
}

fn udp(addr: &str) -> (u16, Hits) {
    let s = UdpSocket::bind(addr).unwrap();
    let port = s.local_addr().unwrap().port();
    let hits = Hits::default();
    let h = hits.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while s.recv_from(&mut buf).is_ok() {
            h.0.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, hits)
}

fn unix(l: UnixListener) -> Hits {
    let hits = Hits::default();
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            h.0.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    hits
}

/// The control must reach the listener, the sandboxed attempt must not.
fn contact(
    v: &mut Verdicts,
    what: &str,
    hits: &Hits,
    control: impl FnOnce() -> Probe,
    sandboxed: impl FnOnce() -> Probe,
    errors: &[&str],
) {
    let before = hits.get();
    let c = control();
    let after_control = hits.get();
    v.check(
        &format!("{what}: control reached the listener"),
        after_control > before,
        format!("control {c:?} left no trace"),
    );
    let s = sandboxed();
    v.blocked(what, &c, &s, errors);
    v.check(
        &format!("{what}: nothing reached the listener"),
        hits.get() == after_control,
        format!("the listener was contacted from the sandbox ({s:?})"),
    );
}

#[test]
fn the_network_is_off_by_default() {
    let mut v = Verdicts::default();
    let (tport, thits) = tcp("127.0.0.1:0");
    let (t6port, t6hits) = tcp("[::1]:0");
    let (uport, uhits) = udp("127.0.0.1:0");
    let (u6port, u6hits) = udp("[::1]:0");
    let (tport, t6port, uport, u6port) = (
        tport.to_string(),
        t6port.to_string(),
        uport.to_string(),
        u6port.to_string(),
    );
    for who in identities() {
        let s = Scratch::new(&who, "net");
        let ws = s.ws.clone();
        for isolation in ["full", "landlock-only"] {
            let a = ["--isolation", isolation, "--allow-degraded"];
            let n = |w: &str| format!("{} {isolation} {w}", who.name);
            let refused: &[&str] = &[
                "ECONNREFUSED",
                "ENETUNREACH",
                "EACCES",
                "EPERM",
                "EADDRNOTAVAIL",
            ];
            contact(
                &mut v,
                &n("TCP to 127.0.0.1"),
                &thits,
                || outside(&who, &ws, "connect-tcp", &["127.0.0.1", &tport]),
                || inside(&who, &ws, &a, "connect-tcp", &["127.0.0.1", &tport]),
                refused,
            );
            contact(
                &mut v,
                &n("TCP to ::1"),
                &t6hits,
                || outside(&who, &ws, "connect-tcp6", &["::1", &t6port]),
                || inside(&who, &ws, &a, "connect-tcp6", &["::1", &t6port]),
                refused,
            );
            contact(
                &mut v,
                &n("MPTCP to 127.0.0.1"),
                &thits,
                || outside(&who, &ws, "connect-mptcp", &["127.0.0.1", &tport]),
                || inside(&who, &ws, &a, "connect-mptcp", &["127.0.0.1", &tport]),
                &["EPERM"],
            );
            // UDP: the send itself may succeed inside the sandbox's own
            // network namespace (there is a loopback there); what matters is
            // that nothing arrives outside.
            for (w, action, addr, port, hits) in [
                ("UDP to 127.0.0.1", "send-udp", "127.0.0.1", &uport, &uhits),
                ("UDP to ::1", "send-udp6", "::1", &u6port, &u6hits),
            ] {
                let before = hits.get();
                let c = outside(&who, &ws, action, &[addr, port]);
                let after = hits.get();
                v.check(
                    &n(&format!("{w}: control arrived")),
                    c.is_ok() && after > before,
                    format!("{c:?}"),
                );
                let sb = inside(&who, &ws, &a, action, &[addr, port]);
                v.check(
                    &n(&format!("{w}: nothing arrived")),
                    hits.get() == after,
                    format!("{sb:?}"),
                );
            }
            let ext = inside(&who, &ws, &a, "connect-tcp", &["192.0.2.1", "80"]);
            v.check(
                &n("TCP to the outside world"),
                !ext.is_ok(),
                format!("{ext:?}"),
            );
            let dns = inside(&who, &ws, &a, "dns-lookup", &["moat-canary.example.com"]);
            v.check(&n("DNS lookup fails"), !dns.is_ok(), format!("{dns:?}"));
            let raw = inside(&who, &ws, &a, "raw-socket", &[]);
            v.check(
                &n("raw socket refused"),
                matches!(raw.error(), "EPERM" | "EACCES"),
                format!("{raw:?}"),
            );
        }
        // Servers started inside work on the sandbox's own loopback.
        v.works(
            &format!("{} localhost server inside", who.name),
            &inside(&who, &ws, &[], "tcp-listen-loopback", &[]),
        );
        // With the network on, the host's listener is reachable.
        let before = thits.get();
        let on = inside(
            &who,
            &ws,
            &["--network", "on"],
            "connect-tcp",
            &["127.0.0.1", &tport],
        );
        v.check(
            &format!("{} --network on reaches the host", who.name),
            on.is_ok() && thits.get() > before,
            format!("{on:?}"),
        );
    }
    v.finish();
}

#[test]
fn socket_families_beyond_unix_and_ip_are_refused() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "af");
        let ws = s.ws.clone();
        for (name, family, ty) in [
            ("netlink", "16", "3"),
            ("packet", "17", "3"),
            ("vsock", "40", "1"),
            ("alg", "38", "5"),
            ("x25", "9", "5"),
            ("appletalk", "5", "2"),
        ] {
            // Packet sockets need CAP_NET_RAW: for an ordinary account the
            // kernel refuses with the same errno, so only root shows the
            // filter.
            if name == "packet" && who.uid != 0 {
                continue;
            }
            let control = outside(&who, &ws, "socket", &[family, ty]);
            let sandboxed = inside(&who, &ws, &[], "socket", &[family, ty]);
            v.blocked_reached(
                &format!("{} socket({name})", who.name),
                &control,
                &sandboxed,
                &["EPERM"],
            );
        }
        v.works(
            &format!("{} socket(unix)", who.name),
            &inside(&who, &ws, &[], "socket", &["1", "1"]),
        );
    }
    v.finish();
}

#[test]
fn host_unix_sockets_are_out_of_reach() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "unix");
        let ws = s.ws.clone();
        // A pathname socket anywhere (like docker.sock or an agent socket).
        let path = s.outside.join("agent.sock");
        let l = UnixListener::bind(&path).unwrap();
        std::process::Command::new("chmod")
            .arg("777")
            .arg(&path)
            .status()
            .unwrap();
        let hits = unix(l);
        let p = path.to_str().unwrap();
        contact(
            &mut v,
            &format!("{} pathname socket", who.name),
            &hits,
            || outside(&who, &ws, "connect-unix", &[p]),
            || inside(&who, &ws, &[], "connect-unix", &[p]),
            &["ECONNREFUSED", "ENOENT", "EACCES"],
        );
        // A tmux-style server socket in /tmp.
        let dir = std::path::PathBuf::from(format!(
            "/tmp/moat-it-tmux-{}-{}",
            who.uid,
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::process::Command::new("chmod")
            .arg("777")
            .arg(&dir)
            .status()
            .unwrap();
        let tpath = dir.join("default");
        let hits = unix(UnixListener::bind(&tpath).unwrap());
        std::process::Command::new("chmod")
            .arg("777")
            .arg(&tpath)
            .status()
            .unwrap();
        let t = tpath.to_str().unwrap();
        contact(
            &mut v,
            &format!("{} socket in /tmp", who.name),
            &hits,
            || outside(&who, &ws, "connect-unix", &[t]),
            || inside(&who, &ws, &[], "connect-unix", &[t]),
            &["ECONNREFUSED", "ENOENT", "EACCES"],
        );
        let _ = std::fs::remove_dir_all(&dir);
        // An abstract socket (X11, D-Bus, containerd-shim).
        use std::os::linux::net::SocketAddrExt;
        let name = format!("moat-it-{}-{}", who.uid, std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let hits = unix(UnixListener::bind_addr(&addr).unwrap());
        for isolation in ["full", "landlock-only"] {
            contact(
                &mut v,
                &format!("{} {isolation} abstract socket", who.name),
                &hits,
                || outside(&who, &ws, "connect-abstract", &[&name]),
                || {
                    inside(
                        &who,
                        &ws,
                        &["--isolation", isolation, "--allow-degraded"],
                        "connect-abstract",
                        &[&name],
                    )
                },
                &["ECONNREFUSED", "EPERM"],
            );
        }
    }
    v.finish();
}

#[test]
fn icmp_does_not_leave_the_sandbox() {
    if !is_root() {
        eprintln!("skipped: allowing ping sockets for the control needs root");
        return;
    }
    // ICMP datagram sockets are off by default (ping_group_range "1 0");
    // open them on the host for the control, and put the setting back.
    let range = "/proc/sys/net/ipv4/ping_group_range";
    let saved = std::fs::read_to_string(range).unwrap();
    std::fs::write(range, "0 2147483647").unwrap();
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::fs::write("/proc/sys/net/ipv4/ping_group_range", &self.0);
        }
    }
    let _restore = Restore(saved);
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "icmp");
        let control = outside(&who, &s.ws, "ping", &["127.0.0.1"]);
        let sandboxed = inside(&who, &s.ws, &[], "ping", &["127.0.0.1"]);
        let sandboxed_out = inside(&who, &s.ws, &[], "ping", &["192.0.2.1"]);
        v.blocked(
            &format!("{} ping in the sandbox", who.name),
            &control,
            &sandboxed,
            &["EACCES", "EPERM"],
        );
        v.blocked(
            &format!("{} ping out of the sandbox", who.name),
            &control,
            &sandboxed_out,
            &["EACCES", "EPERM", "ENETUNREACH"],
        );
    }
    v.finish();
}
