//! The escapes `moat probe` tries, grouped by the layer that should stop
//! them. Rows of the attack table in moat's research notes are named by
//! their number (T1..T32) in `refs`.

use std::path::Path;

use super::fixture::{Fixture, Hits};

/// What runs as the victim.
#[derive(Debug, Clone)]
pub enum Victim {
    /// `moat-probe ACTION ARGS...`
    Probe(Vec<String>),
    /// `sh -c SCRIPT`, with `$P` set to moat-probe.
    Sh(String),
    /// A program of its own.
    Argv(Vec<String>),
}

/// How the attacker's side sees that an attack worked.
#[derive(Debug, Clone)]
pub enum Effect {
    /// The victim's own report: the call succeeded.
    Reported,
    /// The victim read a non-empty file.
    ReadSome,
    /// `sh -c SCRIPT` in the area's root exits 0.
    Sh(String),
    /// The listener was contacted.
    Contact(Hits),
    /// The host process is gone.
    HostDied,
    /// The victim succeeded and its report contains this text.
    DetailHas(String),
    /// The call reached the kernel: anything but this errno.
    NotErrno(&'static str),
    /// The call succeeded or failed with this errno, which only a call that
    /// reached the kernel's own argument checks returns.
    ReachedKernel(&'static str),
}

const PROTECTED_LOSS: &str = "protected paths inside the workspace are not kept read-only";

#[derive(Debug, Clone)]
pub struct Probe {
    pub layer: &'static str,
    /// The layers meant to stop it, so a failure points at one.
    pub stopped_by: &'static str,
    pub attack: String,
    pub refs: &'static str,
    pub victim: Victim,
    /// What the positive control runs instead of the victim, when the
    /// attack needs a host-side step that only happens outside (a careless
    /// tool following a symlink the sandbox planted).
    pub control: Option<Victim>,
    pub effect: Effect,
    /// Run on the attacker's side (in the area's root) before each attempt.
    pub reset: Option<String>,
    pub needs_root: bool,
    /// Give the victim a terminal (through script(1)).
    pub tty: bool,
    /// Leave this file open for appending on descriptor 7.
    pub leak_fd: Option<String>,
    /// A loss the landlock-only mode documents (`moat doctor`).
    pub landlock_only_loss: Option<&'static str>,
    /// Errors of the control that mean this machine does not offer the
    /// action to this account at all (beyond ENOSYS and friends).
    pub absent_outside: &'static [&'static str],
    /// Policy flags of `moat run` for this probe (not given to wrappers).
    pub moat_args: &'static [&'static str],
    /// Not tried as root (the kernel exempts root from what it tests).
    pub not_for_root: bool,
    /// Only the elevated tier can hold what it tests (a cgroup's limit).
    pub elevated_only: bool,
}

fn p(args: &[&str]) -> Victim {
    Victim::Probe(args.iter().map(|s| s.to_string()).collect())
}

struct Builder {
    out: Vec<Probe>,
}

impl Builder {
    fn add(
        &mut self,
        layer: &'static str,
        attack: impl Into<String>,
        refs: &'static str,
        victim: Victim,
        effect: Effect,
    ) -> &mut Probe {
        self.out.push(Probe {
            layer,
            stopped_by: default_stop(layer),
            attack: attack.into(),
            refs,
            victim,
            control: None,
            effect,
            reset: None,
            needs_root: false,
            tty: false,
            leak_fd: None,
            landlock_only_loss: None,
            absent_outside: &[],
            moat_args: &[],
            not_for_root: false,
            elevated_only: false,
        });
        let last = self.out.len() - 1;
        &mut self.out[last]
    }
}

/// The layers that stop most attacks of a category.
fn default_stop(layer: &str) -> &'static str {
    match layer {
        "filesystem" => "mounts, Landlock",
        "delayed execution" => "mounts (protected paths)",
        "network" => "network namespace; seccomp",
        "processes" => "pid namespace, Landlock scopes, seccomp",
        "terminal" => "new session, seccomp",
        "privilege" => "no_new_privs, nosuid",
        _ => "seccomp, no capabilities",
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A reset and effect pair for "this file must not change": the original
/// is kept next to the area's root and restored before each attempt.
fn unchanged(rel: &str) -> (String, Effect) {
    let keep = format!("keep/{}", rel.replace('/', "%"));
    (
        format!("mkdir -p keep; [ -e '{keep}' ] || {{ cp -p '{rel}' '{keep}' && touch -d @946684800 '{keep}'; }}; chmod -R u+w '{rel}' 2>/dev/null; rm -rf '{rel}'; cp -p '{keep}' '{rel}'"),
        Effect::Sh(format!(
            "! cmp -s '{rel}' '{keep}' || [ \"$(stat -c %a.%u.%g.%Y '{rel}')\" != \"$(stat -c %a.%u.%g.%Y '{keep}')\" ]"
        )),
    )
}

/// A reset and effect pair for "this path must not appear".
fn absent(rel: &str) -> (String, Effect) {
    (
        format!("rm -rf '{rel}'"),
        Effect::Sh(format!("[ -e '{rel}' ] || [ -L '{rel}' ]")),
    )
}

pub fn build(f: &Fixture) -> Vec<Probe> {
    let mut b = Builder { out: Vec::new() };
    let home = s(&f.home);
    let ws = s(&f.ws);
    let out = s(&f.outside);

    // Filesystem: secrets.
    for (rel, what) in [
        (".ssh/id_ed25519", "an SSH private key"),
        (".aws/credentials", "cloud credentials"),
        (".config/gh/hosts.yml", "a GitHub CLI token"),
        (".netrc", "~/.netrc passwords"),
        (".git-credentials", "git credentials"),
        (".mozilla/firefox/p/logins.json", "a browser profile"),
        (".local/share/keyrings/login.keyring", "a keyring"),
    ] {
        b.add(
            "filesystem",
            format!("read {what} (~/{rel})"),
            "T28",
            p(&["read-file", &format!("{home}/{rel}")]),
            Effect::ReadSome,
        );
    }
    // Filesystem: writes outside the writable roots.
    let (r, e) = unchanged("outside/canary.txt");
    b.add(
        "filesystem",
        "overwrite a file outside the workspace",
        "T29",
        p(&["write-file", &format!("{out}/canary.txt")]),
        e,
    )
    .reset = Some(r);
    let (r, e) = absent("home/new-file");
    b.add(
        "filesystem",
        "create a file in the home directory",
        "T29",
        p(&["create-excl", &format!("{home}/new-file")]),
        e,
    )
    .reset = Some(r);
    let tmp_name = s(&f.tmp_canary);
    b.add(
        "filesystem",
        "create a file in the host's /tmp",
        "T29",
        p(&["create-excl", &tmp_name]),
        Effect::Sh(format!("[ -e '{tmp_name}' ]")),
    )
    .reset = Some(format!("rm -f '{tmp_name}'"));
    for (action, what, extra) in [
        ("chmod", "chmod", Some("600")),
        ("utimes", "change the times of", None),
        ("truncate", "truncate", None),
        ("unlink", "delete", None),
    ] {
        let (r, e) = unchanged("outside/canary.txt");
        let mut args = vec![action.to_string(), format!("{out}/canary.txt")];
        args.extend(extra.map(str::to_string));
        let probe = b.add(
            "filesystem",
            format!("{what} a file outside the workspace"),
            "T29",
            Victim::Probe(args),
            e,
        );
        probe.reset = Some(r);
        if matches!(action, "chmod" | "utimes") {
            probe.landlock_only_loss =
                Some("Landlock does not cover changes of mode, times or extended attributes");
        }
    }
    if f.is_root {
        let (r, e) = unchanged("outside/canary.txt");
        let probe = b.add(
            "filesystem",
            "chown a file outside the workspace",
            "T29",
            p(&["chown", &format!("{out}/canary.txt"), "65534", "-1"]),
            e,
        );
        probe.reset = Some(r);
        probe.needs_root = true;
    }
    let xattr = b.add(
        "filesystem",
        "set an extended attribute outside the workspace",
        "T29",
        p(&[
            "setxattr",
            &format!("{out}/canary.txt"),
            "user.moat",
            "probe",
        ]),
        Effect::Reported,
    );
    xattr.reset = Some("setfattr -x user.moat outside/canary.txt 2>/dev/null; true".into());
    xattr.landlock_only_loss =
        Some("Landlock does not cover changes of mode, times or extended attributes");
    let (r, e) = unchanged("outside/canary.txt");
    b.add(
        "filesystem",
        "write outside from a second thread",
        "T31",
        p(&["thread-write", &format!("{out}/canary.txt")]),
        e,
    )
    .reset = Some(r);
    b.add(
        "filesystem",
        "swap a directory for a symlink to outside while writing into it",
        "T7",
        p(&[
            "race-swap",
            &format!("{ws}/race"),
            &format!("{out}/race"),
            "100000",
        ]),
        Effect::Sh("[ -e outside/race/x ]".into()),
    )
    .reset = Some("rm -rf ws/race ws/race.swap outside/race; mkdir -p outside/race".into());
    let (r, e) = absent("ws/linked");
    b.add(
        "filesystem",
        "hard-link an outside file into the workspace",
        "T6",
        p(&[
            "link",
            &format!("{out}/canary.txt"),
            &format!("{ws}/linked"),
        ]),
        e,
    )
    .reset = Some(r);
    let (r, e) = unchanged("outside/canary.txt");
    b.add(
        "filesystem",
        "write through a symlink planted in the workspace",
        "T5 T7",
        p(&["write-file", &format!("{ws}/to-canary")]),
        e,
    )
    .reset = Some(format!("{r}; ln -sfn '{out}/canary.txt' ws/to-canary"));
    for dev in ["/dev/fuse", "/dev/net/tun", "/dev/kmsg"] {
        if Path::new(dev).exists() {
            b.add(
                "filesystem",
                format!("open {dev} read-write"),
                "T21",
                p(&["open-dev", dev]),
                Effect::Reported,
            )
            .needs_root = true;
        }
    }

    // Delayed execution: files that run code later, outside the sandbox.
    for (rel, what) in [
        ("ws/.git/hooks/pre-commit", "a git hook"),
        (
            "ws/sub/.git/hooks/pre-commit",
            "a git hook in a nested repository",
        ),
        ("ws/.envrc", "a direnv file"),
        ("ws/.mcp.json", "an MCP server list"),
        ("home/.config/autostart/evil.desktop", "an autostart entry"),
        (
            "home/.config/systemd/user/evil.service",
            "a systemd user unit",
        ),
    ] {
        let (r, e) = absent(rel);
        let probe = b.add(
            "delayed execution",
            format!("create {what}"),
            "T25",
            p(&["write-file", &format!("{}/{rel}", s(&f.root))]),
            e,
        );
        probe.reset = Some(r);
        if rel.starts_with("ws/") {
            probe.landlock_only_loss = Some(PROTECTED_LOSS);
        }
    }
    for (rel, what) in [
        ("ws/.vscode", "editor settings (.vscode)"),
        ("ws/.idea", "editor settings (.idea)"),
        ("ws/.claude", "agent settings (.claude)"),
        ("ws/.codex", "agent settings (.codex)"),
        ("ws/.agents", "agent settings (.agents)"),
        ("ws/.moat", "moat's workspace config (.moat)"),
    ] {
        let (r, e) = absent(rel);
        let probe = b.add(
            "delayed execution",
            format!("create {what}"),
            "T25",
            p(&["mkdir", &format!("{}/{rel}", s(&f.root))]),
            e,
        );
        probe.reset = Some(r);
        probe.landlock_only_loss = Some(PROTECTED_LOSS);
    }
    for (rel, what) in [
        ("ws/.git/config", "the repository's git config"),
        ("ws/sub/.git/config", "a nested repository's git config"),
        ("home/.bashrc", "~/.bashrc"),
        ("home/.profile", "~/.profile"),
        ("home/.gitconfig", "your git config"),
        ("home/.ssh/authorized_keys", "~/.ssh/authorized_keys"),
    ] {
        let (r, e) = unchanged(rel);
        let probe = b.add(
            "delayed execution",
            format!("append to {what}"),
            "T25",
            p(&["append-file", &format!("{}/{rel}", s(&f.root))]),
            e,
        );
        probe.reset = Some(r);
        if rel.starts_with("ws/") {
            probe.landlock_only_loss = Some(PROTECTED_LOSS);
        }
    }
    if f.is_root && Path::new("/var/spool/cron/crontabs").is_dir() {
        let name = s(&f.cron_canary);
        b.add(
            "delayed execution",
            "create a crontab",
            "T25",
            p(&["create-excl", &name]),
            Effect::Sh(format!("[ -e '{name}' ]")),
        )
        .reset = Some(format!("rm -f '{name}'"));
    }
    let hook = "ws/.git/hooks/pre-push";
    b.add(
        "delayed execution",
        "write a hook through a symlink to .git/hooks",
        "T25 T5",
        p(&["write-file", &format!("{ws}/hooks-link/pre-push")]),
        Effect::Sh(format!("[ -e '{hook}' ]")),
    )
    .landlock_only_loss = Some(PROTECTED_LOSS);
    if let Some(p) = b.out.last_mut() {
        p.reset = Some(format!("rm -f '{hook}'; ln -sfn .git/hooks ws/hooks-link"));
    }
    let (r, e) = unchanged("ws/.git/config");
    b.add(
        "delayed execution",
        "hard-link .git/config and write the link",
        "T25 T6",
        Victim::Sh(format!(
            "\"$P\" link '{ws}/.git/config' '{ws}/cfg' && \"$P\" append-file '{ws}/cfg'"
        )),
        e,
    )
    .landlock_only_loss = Some(PROTECTED_LOSS);
    if let Some(p) = b.out.last_mut() {
        p.reset = Some(format!("{r}; rm -f ws/cfg"));
    }
    b.add(
        "delayed execution",
        "rename .git away, write a hook, rename it back",
        "T25 T7",
        Victim::Sh(format!("cd '{ws}' && mv .git .git-moved && \"$P\" write-file .git-moved/hooks/pre-commit; mv .git-moved .git 2>/dev/null; [ -e .git/hooks/pre-commit ]")),
        Effect::Sh("[ -e ws/.git/hooks/pre-commit ] || [ -e ws/.git-moved/hooks/pre-commit ]".into()),
    )
    .landlock_only_loss = Some(PROTECTED_LOSS);
    if let Some(p) = b.out.last_mut() {
        p.reset = Some(
            "[ -d ws/.git-moved ] && mv ws/.git-moved ws/.git; rm -f ws/.git/hooks/pre-commit"
                .into(),
        );
    }
    b.add(
        "delayed execution",
        "replace .git/hooks with a symlink to a writable directory",
        "T25 T7",
        Victim::Sh(format!("cd '{ws}' && mkdir -p evil && \"$P\" write-file evil/pre-commit && mv .git/hooks .git/hooks-old && ln -s ../evil .git/hooks")),
        Effect::Sh("[ -L ws/.git/hooks ] || [ -e ws/.git/hooks/pre-commit ]".into()),
    )
    .landlock_only_loss = Some(PROTECTED_LOSS);
    if let Some(p) = b.out.last_mut() {
        p.reset = Some("rm -rf ws/evil; [ -L ws/.git/hooks ] && rm ws/.git/hooks; [ -d ws/.git/hooks-old ] && mv ws/.git/hooks-old ws/.git/hooks; rm -f ws/.git/hooks/pre-commit".into());
    }
    b.add(
        "delayed execution",
        "create a repository and give it a hook",
        "T25",
        Victim::Sh(format!("cd '{ws}' && git init -q newrepo && printf '#!/bin/sh\\ntouch pwned\\n' > newrepo/.git/hooks/post-checkout && chmod +x newrepo/.git/hooks/post-checkout")),
        Effect::Sh("[ -x ws/newrepo/.git/hooks/post-checkout ]".into()),
    )
    .reset = Some("rm -rf ws/newrepo".into());
    b.add(
        "delayed execution",
        "create a repository with core.fsmonitor",
        "T25",
        Victim::Sh(format!("cd '{ws}' && git init -q newrepo2 && git -C newrepo2 config core.fsmonitor 'touch pwned'")),
        Effect::Sh("git config -f ws/newrepo2/.git/config core.fsmonitor >/dev/null".into()),
    )
    .reset = Some("rm -rf ws/newrepo2".into());

    let plant = format!("cd '{ws}' && git init -q newrepo3 && rm -rf newrepo3/.git/hooks && ln -s '{out}/hooks' newrepo3/.git/hooks");
    let probe = b.add(
        "delayed execution",
        "make moat's end-of-run audit follow a hooks symlink out of the workspace",
        "T5 T25",
        Victim::Sh(plant.clone()),
        Effect::Sh("[ ! -x outside/hooks/pre-commit ]".into()),
    );
    probe.control = Some(Victim::Sh(format!(
        "{plant} && chmod -x newrepo3/.git/hooks/pre-commit"
    )));
    probe.reset = Some("rm -rf ws/newrepo3; mkdir -p outside/hooks; printf '#!/bin/sh\\n' > outside/hooks/pre-commit; chmod +x outside/hooks/pre-commit".into());
    let plant = format!("cd '{ws}' && git init -q newrepo4 && rm -f newrepo4/.git/config && ln -s '{out}/gitconfig' newrepo4/.git/config");
    let probe = b.add(
        "delayed execution",
        "make moat's audit rewrite a config file outside through a symlink",
        "T5 T25",
        Victim::Sh(plant.clone()),
        Effect::Sh("! cmp -s outside/gitconfig outside/gitconfig.orig".into()),
    );
    probe.control = Some(Victim::Sh(format!(
        "{plant} && echo >> newrepo4/.git/config"
    )));
    probe.reset = Some("rm -rf ws/newrepo4; printf '[core]\\n\\tfsmonitor = keep\\n' > outside/gitconfig; cp outside/gitconfig outside/gitconfig.orig".into());

    // Network.
    for (l, action, what) in [
        (&f.tcp4, "connect-tcp", "TCP to 127.0.0.1 on the host"),
        (&f.tcp6, "connect-tcp6", "TCP to ::1 on the host"),
        (&f.tcp4, "connect-mptcp", "MPTCP to 127.0.0.1 on the host"),
        (&f.udp4, "send-udp", "UDP to 127.0.0.1 on the host"),
        (&f.udp6, "send-udp6", "UDP to ::1 on the host"),
        (&f.dns, "send-udp", "a DNS query to a resolver on the host"),
    ] {
        b.add(
            "network",
            what,
            "T23 T24",
            p(&[action, &l.addr, &l.port]),
            Effect::Contact(l.hits.clone()),
        );
    }
    b.add(
        "network",
        "connect to a unix socket outside",
        "T17 T18",
        p(&["connect-unix", &s(&f.unix_path)]),
        Effect::Contact(f.unix_hits.clone()),
    )
    .landlock_only_loss = Some("pathname unix sockets stay reachable (Landlock < ABI 9)");
    b.add(
        "network",
        "connect to a terminal multiplexer's socket in /tmp",
        "T32 T17",
        p(&["connect-unix", &s(&f.tmux_path)]),
        Effect::Contact(f.tmux_hits.clone()),
    )
    .landlock_only_loss = Some("pathname unix sockets stay reachable (Landlock < ABI 9)");
    b.add(
        "network",
        "connect to an abstract unix socket",
        "T16",
        p(&["connect-abstract", &f.abstract_name]),
        Effect::Contact(f.abstract_hits.clone()),
    );
    let icmp = b.add(
        "network",
        "ICMP echo to the cloud metadata address",
        "T23",
        p(&["ping", "169.254.169.254"]),
        Effect::Reported,
    );
    // ping_group_range keeps ICMP sockets from this account; no route.
    icmp.absent_outside = &["EACCES", "ENETUNREACH"];
    for (args, what, refs) in [
        (
            &["socket", "40", "1", "0"][..],
            "open a vsock socket",
            "T23",
        ),
        (
            &["socket", "38", "5", "0"][..],
            "open an AF_ALG socket (module autoload)",
            "T22",
        ),
    ] {
        b.add("network", what, refs, p(args), Effect::Reported);
    }
    b.add(
        "network",
        "open a packet socket",
        "T23",
        p(&["socket", "17", "3", "0"]),
        Effect::Reported,
    )
    .needs_root = true;
    b.add(
        "network",
        "open a netlink socket",
        "T22 T23",
        p(&["socket", "16", "3", "0"]),
        Effect::Reported,
    );
    b.add(
        "network",
        "open a raw socket",
        "T23",
        p(&["raw-socket"]),
        Effect::Reported,
    )
    .needs_root = true;

    // Processes.
    let pid = "{pid}";
    b.add(
        "processes",
        "kill a host process",
        "T26",
        p(&["kill", pid, "9"]),
        Effect::HostDied,
    );
    b.add(
        "processes",
        "signal a host process through a pidfd",
        "T26",
        p(&["pidfd-signal", pid, "9"]),
        Effect::HostDied,
    );
    b.add(
        "processes",
        "ptrace a host process",
        "T2",
        p(&["ptrace-attach", pid]),
        Effect::Reported,
    );
    b.add(
        "processes",
        "read a host process's environment",
        "T3",
        p(&["open-proc", pid, "environ"]),
        Effect::ReadSome,
    );
    b.add(
        "processes",
        "read a host process's memory",
        "T2 T3",
        p(&["process-vm-readv", pid]),
        Effect::ReachedKernel("EFAULT"),
    );
    b.add(
        "processes",
        "take a host process's descriptor",
        "T2",
        p(&["pidfd-getfd", pid, "0"]),
        Effect::Reported,
    );
    b.add(
        "processes",
        "read a host process's memory file",
        "T3",
        p(&["open-proc", pid, "mem"]),
        Effect::ReadSome,
    );
    b.add(
        "processes",
        "read a file through a host process's root",
        "T3",
        p(&["open-proc", pid, "root/etc/hostname"]),
        Effect::ReadSome,
    );
    b.add(
        "processes",
        "read a host process's command line",
        "T3",
        p(&["open-proc", pid, "cmdline"]),
        Effect::ReadSome,
    )
    .landlock_only_loss = Some("/proc shows the host's processes and their command lines");
    b.add(
        "processes",
        "send SIGIO to a host process (F_SETOWN)",
        "T26",
        p(&["sigio", pid]),
        Effect::HostDied,
    );
    b.add(
        "processes",
        "ptrace a process of the sandbox",
        "T15 T2",
        Victim::Sh("sleep 5 & \"$P\" ptrace-attach $!; r=$?; kill $! 2>/dev/null; exit $r".into()),
        Effect::Reported,
    );
    let fork = b.add(
        "processes",
        "fork past --max-processes 32",
        "T27",
        p(&["fork-count", "64"]),
        Effect::Reported,
    );
    fork.moat_args = &["--max-processes", "32"];
    fork.not_for_root = true;
    let mem = b.add(
        "processes",
        "allocate past --max-memory 64M",
        "T27",
        p(&["alloc", "256"]),
        Effect::Reported,
    );
    mem.moat_args = &["--max-memory", "64M"];
    let cpu = b.add(
        "processes",
        "keep a CPU busy past --max-cpus 0.25",
        "T27",
        p(&["cpu-burn", "1", "0.5"]),
        Effect::Reported,
    );
    cpu.moat_args = &["--max-cpus", "0.25"];
    cpu.elevated_only = true;
    cpu.stopped_by = "the run's cgroup";
    let big = b.add(
        "processes",
        "write a file past --max-file-size 1M",
        "T27",
        p(&["write-size", &format!("{ws}/big"), "4"]),
        Effect::Sh("[ \"$(stat -c %s ws/big)\" -gt 1048576 ]".into()),
    );
    big.moat_args = &["--max-file-size", "1M"];
    big.reset = Some("rm -f ws/big".into());
    let orphan = "outside/orphan.txt";
    b.add(
        "processes",
        "leave a process behind that writes after the run",
        "T27 T25",
        p(&["spawn-orphan", "1", &format!("{out}/orphan.txt")]),
        Effect::Sh(format!("sleep 1.5; [ -e {orphan} ]")),
    )
    .reset = Some(format!("rm -f {orphan}"));
    b.add(
        "processes",
        "find the SSH agent through SSH_AUTH_SOCK",
        "T18",
        Victim::Sh("[ -n \"$SSH_AUTH_SOCK\" ]".into()),
        Effect::Reported,
    );
    if f.is_root {
        b.add(
            "privilege",
            "gain another account through a setuid program",
            "T11",
            Victim::Argv(vec![s(&f.outside.join("setuid-probe")), "ids".into()]),
            Effect::DetailHas("euid=65534".into()),
        )
        .needs_root = true;
    }
    let (r, e) = unchanged("outside/canary.txt");
    let leak = b.add(
        "processes",
        "write through a leaked descriptor",
        "T4",
        p(&["write-fd", "7"]),
        e,
    );
    leak.reset = Some(r);
    leak.leak_fd = Some(format!("{out}/canary.txt"));
    b.add(
        "terminal",
        "push keystrokes with TIOCSTI",
        "T1",
        p(&["tiocsti", "0"]),
        Effect::Reported,
    )
    .tty = true;
    b.add(
        "terminal",
        "push keystrokes with TIOCSTI (high bits set)",
        "T1",
        p(&["tiocsti", "0", "high"]),
        Effect::Reported,
    )
    .tty = true;
    let ldisc = b.add(
        "terminal",
        "change the terminal's line discipline (TIOCSETD)",
        "T22",
        p(&["tiocsetd", "0"]),
        Effect::Reported,
    );
    ldisc.tty = true;
    // EINVAL: the kernel has no such line discipline to load.
    ldisc.absent_outside = &["EINVAL"];

    // Privilege and kernel surface.
    for (args, what, refs) in [
        (&["unshare", "user"][..], "create a user namespace", "T10"),
        (
            &["clone3-newuser"][..],
            "create a user namespace with clone3",
            "T10",
        ),
        (&["keyctl"][..], "reach the user's keyring", "T19"),
        (&["io-uring-setup"][..], "set up io_uring", "T12"),
        (&["x32-getpid"][..], "call the x32 ABI", "T13"),
    ] {
        b.add("kernel", what, refs, p(args), Effect::Reported);
    }
    for (args, what, refs, reached) in [
        (&["chroot", "."][..], "chroot", "T9", None),
        (&["perf-event-open"][..], "open a perf event", "T20", None),
        (&["userfaultfd"][..], "create a userfaultfd", "T20", None),
        (&["syslog"][..], "read the kernel log", "T20", None),
        (&["bpf"][..], "call bpf", "T20", Some("EINVAL")),
        (
            &["kexec-load"][..],
            "load a kernel with kexec",
            "T20",
            Some("EINVAL"),
        ),
        (
            &["init-module"][..],
            "load a kernel module",
            "T20 T22",
            Some("ENOEXEC"),
        ),
        (
            &["open-by-handle-at"][..],
            "open a file by handle",
            "T20",
            Some("EINVAL"),
        ),
    ] {
        let effect = match reached {
            Some(errno) => Effect::ReachedKernel(errno),
            None => Effect::Reported,
        };
        b.add("kernel", what, refs, p(args), effect).needs_root = true;
    }
    b.add(
        "kernel",
        "call the first syscall past the filter's reviewed table (470)",
        "T14",
        p(&["syscall", "470"]),
        Effect::NotErrno("ENOSYS"),
    );
    b.add(
        "kernel",
        "unmount the mask over ~/.ssh",
        "T8",
        p(&["umount-detach", &format!("{home}/.ssh")]),
        Effect::ReachedKernel("EINVAL"),
    )
    .needs_root = true;
    b.add(
        "kernel",
        "call the i386 ABI (int 0x80)",
        "T13",
        p(&["int80-getpid"]),
        Effect::Reported,
    );
    for (args, what) in [
        (&["open-tree", "."][..], "clone a mount with open_tree"),
        (&["fsopen"][..], "create a filesystem context with fsopen"),
    ] {
        b.add("kernel", what, "T8", p(args), Effect::Reported)
            .needs_root = true;
    }
    // Rows stopped by something other than their category's usual layers.
    for (attack, layers) in [
        ("(~/", "mounts, Landlock"),
        ("to ~/", "mounts, Landlock"),
        ("your git config", "mounts, Landlock"),
        ("autostart", "mounts, Landlock"),
        ("systemd user unit", "mounts, Landlock"),
        ("crontab", "mounts, Landlock"),
        ("unix socket outside", "mounts (host sockets masked)"),
        ("multiplexer", "mounts (private /tmp)"),
        ("abstract unix socket", "network namespace; Landlock scope"),
        ("open a ", "seccomp (socket families)"),
        ("/dev/", "mounts (minimal /dev), Landlock"),
        ("create a repository", "end-of-run audit"),
        ("moat's end-of-run audit", "end-of-run audit"),
        ("moat's audit", "end-of-run audit"),
        ("past --max-", "resources (rlimits)"),
        (
            "leave a process behind",
            "pid namespace (init kills the tree)",
        ),
        ("SSH_AUTH_SOCK", "environment scrub"),
        ("leaked descriptor", "process (only stdio inherited)"),
        ("host's /tmp", "mounts (private /tmp)"),
        ("line discipline", "seccomp"),
    ] {
        for p in b.out.iter_mut().filter(|p| p.attack.contains(attack)) {
            p.stopped_by = layers;
        }
    }
    b.out
}
