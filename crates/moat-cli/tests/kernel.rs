//! Kernel attack surface: nested namespaces, the mount family, keyrings,
//! bpf, perf, io_uring, the i386 syscall table, device nodes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

mod common;

use common::*;

#[test]
fn kernel_surface_is_filtered() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "kernel");
        let ws = s.ws.clone();
        let target = s.mkdir("ws/mnt");
        let t = target.to_str().unwrap();
        let config = s.write("ws/file", "x");
        let f = config.to_str().unwrap();
        for isolation in ["full", "landlock-only"] {
            let a = ["--isolation", isolation, "--allow-degraded"];
            let n = |w: &str| format!("{} {isolation} {w}", who.name);
            // Each control runs in a throw-away user and mount namespace, so
            // the call is shown to work where it is allowed, without
            // touching the host.
            let ns = ["unshare", "-Urm"];
            let cases: Vec<(&str, &str, Vec<&str>, &[&str], &[&str])> = vec![
                ("unshare user", "unshare", vec!["user"], &[], &["EPERM"]),
                ("unshare mount", "unshare", vec!["mount"], &ns, &["EPERM"]),
                ("unshare net", "unshare", vec!["net"], &ns, &["EPERM"]),
                (
                    "clone(CLONE_NEWUSER)",
                    "clone-newuser",
                    vec![],
                    &[],
                    &["EPERM"],
                ),
                (
                    "clone3(CLONE_NEWUSER)",
                    "clone3-newuser",
                    vec![],
                    &[],
                    &["ENOSYS"],
                ),
                ("setns", "setns", vec![], &[], &["EPERM"]),
                ("mount tmpfs", "mount-tmpfs", vec![t], &ns, &["EPERM"]),
                ("bind mount", "bind-mount", vec![t, t], &ns, &["EPERM"]),
                ("remount rw", "remount-rw", vec!["/"], &ns, &["EPERM"]),
                ("umount", "umount", vec!["/proc"], &ns, &["EPERM"]),
                (
                    "umount detach",
                    "umount-detach",
                    vec!["/proc"],
                    &ns,
                    &["EPERM"],
                ),
                ("open_tree", "open-tree", vec![f], &ns, &["EPERM"]),
                ("fsopen", "fsopen", vec![], &ns, &["EPERM"]),
                ("move_mount", "move-mount", vec![], &ns, &["EPERM"]),
                ("mount_setattr", "mount-setattr", vec![t], &ns, &["EPERM"]),
                ("pivot_root", "pivot-root", vec![], &ns, &["EPERM"]),
                ("chroot", "chroot", vec!["."], &ns, &["EPERM"]),
                ("keyctl", "keyctl", vec![], &[], &["EPERM"]),
                ("add_key", "add-key", vec![], &[], &["EPERM"]),
                ("bpf", "bpf", vec![], &[], &["EPERM"]),
                (
                    "perf_event_open",
                    "perf-event-open",
                    vec![],
                    &[],
                    &["EPERM"],
                ),
                ("io_uring_setup", "io-uring-setup", vec![], &[], &["ENOSYS"]),
                ("userfaultfd", "userfaultfd", vec![], &[], &["EPERM"]),
                ("kexec_load", "kexec-load", vec![], &[], &["EPERM"]),
                ("init_module", "init-module", vec![], &[], &["EPERM"]),
                (
                    "open_by_handle_at",
                    "open-by-handle-at",
                    vec![],
                    &[],
                    &["EPERM"],
                ),
            ];
            for (what, action, args, wrapper, errors) in cases {
                // vm.unprivileged_userfaultfd=0 makes the kernel itself refuse
                // an ordinary account with the same errno; root shows the
                // filter.
                if action == "userfaultfd" && who.uid != 0 {
                    continue;
                }
                let control = outside_via(&who, &ws, wrapper, action, &args);
                let sandboxed = inside(&who, &ws, &a, action, &args);
                v.blocked_reached(&n(what), &control, &sandboxed, errors);
            }
            // The i386 table: the architecture check kills the process.
            let control = outside(&who, &ws, "int80-getpid", &[]);
            let sandboxed = inside(&who, &ws, &a, "int80-getpid", &[]);
            v.killed(&n("int 0x80"), &control, &sandboxed, libc_sigsys());
        }
        // Mount points cannot be removed to reveal what they hide.
        let p = inside(
            &who,
            &ws,
            &[],
            "umount",
            &[ws.join(".vscode").to_str().unwrap()],
        );
        v.check(
            &format!("{} unmount a protected path", who.name),
            p.error() == "EPERM",
            format!("{p:?}"),
        );
    }
    v.finish();
}

fn libc_sigsys() -> i32 {
    31
}

#[test]
fn only_harmless_devices_exist() {
    if !is_root() {
        eprintln!("skipped: opening the host's devices for the control needs root");
        return;
    }
    let mut v = Verdicts::default();
    let root = identities().remove(0);
    let s = Scratch::new(&root, "dev");
    let ws = s.ws.clone();
    let disk = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .next()
                .filter(|d| d.starts_with("/dev/"))
                .map(String::from)
        })
        .unwrap_or_else(|| "/dev/vda".into());
    let mut conclusive = 0;
    for dev in [
        "/dev/kmsg",
        "/dev/mem",
        disk.as_str(),
        "/dev/tty0",
        "/dev/kvm",
        "/dev/fuse",
        "/dev/net/tun",
    ] {
        if !std::path::Path::new(dev).exists() {
            continue;
        }
        // A mounted disk cannot be opened for writing even by root (the
        // kernel protects mounted block devices); reading it is the attack.
        let action = if dev == disk { "read-file" } else { "open-dev" };
        let control = outside(&root, &ws, action, &[dev]);
        if matches!(control.error(), "EPERM" | "EACCES") {
            // The host refuses even root (a device cgroup, a hypervisor):
            // nothing to learn about the sandbox from this one.
            eprintln!("inconclusive: the host refuses {dev} to root too ({control:?})");
            continue;
        }
        conclusive += 1;
        for isolation in ["full", "landlock-only"] {
            let sandboxed = inside(
                &root,
                &ws,
                &["--isolation", isolation, "--allow-degraded"],
                action,
                &[dev],
            );
            v.blocked_reached(
                &format!("{isolation} open {dev}"),
                &control,
                &sandboxed,
                &["ENOENT", "EACCES", "EPERM"],
            );
        }
    }
    v.check(
        "at least two host devices were tried",
        conclusive >= 2,
        format!("only {conclusive}"),
    );
    for dev in ["/dev/null", "/dev/zero", "/dev/urandom"] {
        v.works(
            &format!("open {dev}"),
            &inside(&root, &ws, &[], "open-dev", &[dev]),
        );
    }
    let listing = inside(&root, &ws, &[], "list-dir", &["/dev"]);
    v.check(
        "the sandbox's /dev holds only the minimal set",
        matches!(&listing, Probe::Ok(d) if d == "fd,full,null,ptmx,pts,random,shm,stderr,stdin,stdout,tty,urandom,zero"),
        format!("{listing:?}"),
    );
    v.finish();
}
