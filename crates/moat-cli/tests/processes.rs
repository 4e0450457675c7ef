//! Attacks on other processes and on the person's terminal, leaked
//! descriptors, setuid programs, and the life of the process tree.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A process of the same account outside the sandbox, to attack.
struct Target(Child);

impl Target {
    fn start(who: &Who) -> Target {
        let child = command_as(who, "sleep")
            .arg("300")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        // setpriv execs sleep in place, so the pid is sleep's.
        std::thread::sleep(Duration::from_millis(50));
        Target(child)
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn other_processes_are_out_of_reach() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "proc");
        let ws = s.ws.clone();
        let mut target = Target::start(&who);
        let pid = target.pid();
        for isolation in ["full", "landlock-only"] {
            let args = ["--isolation", isolation, "--allow-degraded"];
            let name = |what: &str| format!("{} {isolation} {what}", who.name);
            // Signal 0 checks reachability without harming the target.
            let control = outside(&who, &ws, "kill", &[&pid, "0"]);
            v.blocked(
                &name("kill"),
                &control,
                &inside(&who, &ws, &args, "kill", &[&pid, "0"]),
                &["ESRCH", "EPERM"],
            );
            let control = outside(&who, &ws, "pidfd-signal", &[&pid, "0"]);
            v.blocked(
                &name("pidfd signal"),
                &control,
                &inside(&who, &ws, &args, "pidfd-signal", &[&pid, "0"]),
                &["ESRCH", "EPERM"],
            );
            let control = outside(&who, &ws, "ptrace-attach", &[&pid]);
            v.blocked(
                &name("ptrace"),
                &control,
                &inside(&who, &ws, &args, "ptrace-attach", &[&pid]),
                &["EPERM", "ESRCH"],
            );
            for file in ["environ", "mem", "root/etc/hostname", "fd/0", "fd"] {
                // Without a pid namespace the fd numbers of a process of the
                // same account can be listed (proc allows its owner that);
                // what they point to cannot.
                if file == "fd" && isolation == "landlock-only" {
                    continue;
                }
                let action = if file == "fd" {
                    "list-dir"
                } else {
                    "open-proc"
                };
                let (cargs, path);
                if file == "fd" {
                    path = format!("/proc/{pid}/fd");
                    cargs = vec![path.as_str()];
                } else {
                    cargs = vec![pid.as_str(), file];
                }
                let control = outside(&who, &ws, action, &cargs);
                v.blocked(
                    &name(&format!("/proc/PID/{file}")),
                    &control,
                    &inside(&who, &ws, &args, action, &cargs),
                    &["ENOENT", "EACCES", "EPERM"],
                );
            }
            let control = outside(&who, &ws, "process-vm-readv", &[&pid]);
            v.blocked_reached(
                &name("process_vm_readv"),
                &control,
                &inside(&who, &ws, &args, "process-vm-readv", &[&pid]),
                &["EPERM"],
            );
            let control = outside(&who, &ws, "pidfd-getfd", &[&pid, "0"]);
            v.blocked_reached(
                &name("pidfd_getfd"),
                &control,
                &inside(&who, &ws, &args, "pidfd-getfd", &[&pid, "0"]),
                &["EPERM", "ESRCH"],
            );
            let control = outside(&who, &ws, "kcmp", &[&pid]);
            v.blocked_reached(
                &name("kcmp"),
                &control,
                &inside(&who, &ws, &args, "kcmp", &[&pid]),
                &["EPERM"],
            );
        }
        v.check(
            &format!("{} target survived", who.name),
            target.alive(),
            "the target process died",
        );
    }
    v.finish();
}

#[test]
fn terminal_injection_is_refused() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "tty");
        let ws = s.ws.clone();
        let probe = probe_for(&ws);
        let p = probe.to_str().unwrap();
        let m = moat();
        let m = m.to_str().unwrap();
        for high in ["", " high"] {
            // script(1) gives the command a terminal on stdin, as an agent's
            // terminal would.
            let control = via_shell(
                &who,
                &ws,
                &format!("script -qec '{p} tiocsti 0{high}' /dev/null"),
            );
            let sandboxed = via_shell(
                &who,
                &ws,
                &format!("script -qec '{m} run -- {p} tiocsti 0{high}' /dev/null"),
            );
            v.blocked(
                &format!("{} TIOCSTI{high}", who.name),
                &control,
                &sandboxed,
                &["EPERM"],
            );
        }
        let sandboxed = via_shell(
            &who,
            &ws,
            &format!("script -qec '{m} run -- {p} tioclinux 0' /dev/null"),
        );
        v.check(
            &format!("{} TIOCLINUX", who.name),
            sandboxed.error() == "EPERM",
            format!("{sandboxed:?}"),
        );
    }
    v.finish();
}

#[test]
fn leaked_descriptors_are_closed() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "fd");
        let ws = s.ws.clone();
        let canary = s.outside.join("canary");
        let c = canary.to_str().unwrap();
        let probe = probe_for(&ws);
        let p = probe.to_str().unwrap();
        let m = moat();
        let m = m.to_str().unwrap();
        // The person's program (the agent) leaked fd 9, open for append on a
        // file outside the workspace.
        let control = via_shell(&who, &ws, &format!("exec 9>>{c}; {p} write-fd 9"));
        let sandboxed = via_shell(
            &who,
            &ws,
            &format!("exec 9>>{c}; {m} run -- {p} write-fd 9"),
        );
        v.blocked(
            &format!("{} write to a leaked fd", who.name),
            &control,
            &sandboxed,
            &["EBADF"],
        );
        let fds = via_shell(
            &who,
            &ws,
            &format!("exec 9>>{c} 7<{c}; {m} run -- {p} list-fds"),
        );
        v.check(
            &format!("{} only stdio is open", who.name),
            matches!(&fds, Probe::Ok(d) if d == "0,1,2"),
            format!("{fds:?}"),
        );
    }
    v.finish();
}

#[test]
fn setuid_programs_gain_nothing() {
    if !is_root() {
        eprintln!("skipped: making a setuid copy needs root");
        return;
    }
    let who = user();
    let s = Scratch::new(&who, "suid");
    let copy = s.outside.join("id-suid");
    std::fs::copy("/usr/bin/id", &copy).unwrap();
    // Owned by root, setuid: run by the account it would make it root.
    std::process::Command::new("chown")
        .arg("0:0")
        .arg(&copy)
        .status()
        .unwrap();
    std::process::Command::new("chmod")
        .arg("4755")
        .arg(&copy)
        .status()
        .unwrap();
    let c = copy.to_str().unwrap();
    let control = output(command_as(&who, c).arg("-u"));
    assert_eq!(
        stdout(&control).trim(),
        "0",
        "control: the setuid copy should give euid 0 outside"
    );
    let inside = moat_run(&who, &s.ws, &[], &[c, "-u"]);
    assert_eq!(
        stdout(&inside).trim(),
        who.uid.to_string(),
        "inside, the setuid bit must have no effect: {}",
        stderr(&inside)
    );
    let ids = inside_ids(&who, &s);
    assert!(ids.contains("nnp=1"), "no_new_privs must be set: {ids}");
    assert!(
        ids.contains("capeff=0000000000000000"),
        "no effective capabilities: {ids}"
    );
    assert!(
        ids.contains("capbnd=0000000000000000"),
        "empty bounding set: {ids}"
    );
}

fn inside_ids(who: &Who, s: &Scratch) -> String {
    match inside(who, &s.ws, &[], "ids", &[]) {
        Probe::Ok(d) => d,
        other => panic!("ids: {other:?}"),
    }
}

#[test]
fn the_command_is_pid_two_in_a_new_session() {
    for who in identities() {
        let s = Scratch::new(&who, "ids");
        let ids = inside_ids(&who, &s);
        // init is pid 1 and the command its first child; the command leads
        // its own session, with no controlling terminal.
        assert!(ids.contains(" pid=2 "), "{}: {ids}", who.name);
        assert!(ids.contains("sid=2 "), "{}: {ids}", who.name);
        assert!(
            ids.contains(&format!("uid={} ", who.uid)),
            "{}: {ids}",
            who.name
        );
    }
}

fn pgrep(pattern: &str) -> bool {
    std::process::Command::new("pgrep")
        .arg("-f")
        .arg(pattern)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn killing_moat_kills_the_whole_tree() {
    for who in identities() {
        let s = Scratch::new(&who, "kill9");
        let marker = format!("{}", 4000 + std::process::id() % 1000);
        let mut moat_proc = command_as(&who, moat())
            .args(["run", "--workspace"])
            .arg(&s.ws)
            .args(["--", "sh", "-c"])
            .arg(format!("sleep 1{marker} & sleep 2{marker}"))
            .current_dir(&s.ws)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pgrep(&format!("sleep 2{marker}")) {
            assert!(
                Instant::now() < deadline,
                "the sandboxed command never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // SIGKILL: moat gets no chance to clean up; the kernel must.
        moat_proc.kill().unwrap();
        moat_proc.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while pgrep(&format!("sleep 1{marker}")) || pgrep(&format!("sleep 2{marker}")) {
            assert!(
                Instant::now() < deadline,
                "{}: processes of the sandbox outlived moat",
                who.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn signals_to_moat_reach_the_command() {
    let who = user();
    let s = Scratch::new(&who, "sigterm");
    let mut moat_proc = command_as(&who, moat())
        .args(["run", "--workspace"])
        .arg(&s.ws)
        .args(["--", "sleep", "30"])
        .current_dir(&s.ws)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(moat_proc.id().to_string())
        .status()
        .unwrap();
    let status = moat_proc.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM was not forwarded"
    );
    assert_eq!(
        status.code(),
        Some(143),
        "the command's death by SIGTERM is moat's exit status"
    );
}

#[test]
fn setuid_bits_cannot_be_planted_in_the_workspace() {
    let mut v = Verdicts::default();
    for who in identities() {
        let s = Scratch::new(&who, "setid");
        let f = s.write("ws/tool", "#!/bin/sh\n");
        let p = f.to_str().unwrap();
        for mode in ["4755", "2755"] {
            let control = outside(&who, &s.ws, "chmod", &[p, mode]);
            std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            let sandboxed = inside(&who, &s.ws, &[], "chmod", &[p, mode]);
            v.blocked(
                &format!("{} chmod {mode} in the workspace", who.name),
                &control,
                &sandboxed,
                &["EPERM"],
            );
        }
        v.works(
            &format!("{} chmod 755 still works", who.name),
            &inside(&who, &s.ws, &[], "chmod", &[p, "755"]),
        );
        let mode = std::fs::metadata(&f)
            .ok()
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
        v.check(
            &format!("{} mode unchanged", who.name),
            mode == Some(0o755),
            format!("{mode:?}"),
        );
    }
    v.finish();
}
