//! Package managers inside the sandbox, against local registries (no test
//! depends on the internet): cargo with a sparse index over HTTP, npm and
//! pip (tests/registries.py), each through `--network allow` with the
//! registry's name pinned by `--resolve`. For each: the first install
//! works; a second run works from moat's cache layer without fetching the
//! package again (the server's own count); the person's own cache is byte
//! for byte what it was. The poisoning attack: a sandboxed run appends to
//! files in the person's `~/.cargo/registry/src`, `~/.npm` and pip's
//! cache, and they stay as they were (control: the same append outside the
//! sandbox changes them). As root and as the test account, in the
//! unelevated tier, and in the elevated tier when the machine is free to
//! set it up.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::registry::Registry;
use common::*;

/// Every file under `dir`: its content, mode and link target. A missing
/// directory is empty.
fn digest(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if m.is_dir() {
                out.insert(rel, (m.mode(), Vec::new()));
                stack.push(p);
            } else if m.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap_or_default();
                out.insert(
                    rel,
                    (m.mode(), target.into_os_string().into_encoded_bytes()),
                );
            } else {
                out.insert(rel, (m.mode(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out
}

fn changed(
    before: &BTreeMap<PathBuf, (u32, Vec<u8>)>,
    after: &BTreeMap<PathBuf, (u32, Vec<u8>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, v) in after {
        match before.get(p) {
            None => out.push(format!("added {}", p.display())),
            Some(b) if b != v => out.push(format!("changed {}", p.display())),
            _ => {}
        }
    }
    for p in before.keys().filter(|p| !after.contains_key(*p)) {
        out.push(format!("removed {}", p.display()));
    }
    out.truncate(10);
    out
}

/// `--network allow` to the local registry only, by its pinned name.
const TO_REGISTRY: [&str; 8] = [
    "--network",
    "allow",
    "--allow-domain",
    "registry.test",
    "--resolve",
    "registry.test:127.0.0.1",
    "--allow-cidr",
    "127.0.0.1/32",
];

/// `npm install moat-leaf` from `registry` in the sandbox, in `dir`.
fn npm_install(
    who: &Who,
    dir: &Path,
    moat_args: &[&str],
    registry: &str,
    offline: bool,
) -> std::process::Output {
    let mut cmd = vec!["npm", "install", "--registry", registry, "moat-leaf"];
    if offline {
        cmd.push("--offline");
    }
    moat_run(who, dir, moat_args, &cmd)
}

/// Checks that the person's caches are byte for byte what they were.
fn unchanged(v: &mut Verdicts, who: &Who, before: &[BTreeMap<PathBuf, (u32, Vec<u8>)>], tag: &str) {
    for (c, b) in caches_of(who).iter().zip(before) {
        let diff = changed(b, &digest(c));
        v.check(
            &format!("{tag}: {} is byte for byte what it was", c.display()),
            diff.is_empty(),
            format!("{diff:?}"),
        );
    }
}

/// The person's caches the tests watch.
fn caches_of(who: &Who) -> [PathBuf; 3] {
    [
        who.home.join(".cargo"),
        who.home.join(".npm"),
        who.home.join(".cache/pip"),
    ]
}

/// Runs `sh -c script` as `who`, outside any sandbox, in `dir`.
fn sh_as(who: &Who, dir: &Path, script: &str) -> std::process::Output {
    output(command_as(who, "sh").args(["-c", script]).current_dir(dir))
}

/// cargo, npm and pip each install `moat-leaf` from the registry at `url`
/// with the moat options `net`, then again from what the first run left in
/// `cache` (moat's layer, or its own cache where there are none): cargo
/// and npm offline with `off`, pip (which always asks the index) with
/// `net`. The server's count says what was fetched.
#[allow(clippy::too_many_arguments)]
fn installs(
    v: &mut Verdicts,
    who: &Who,
    s: &Scratch,
    reg: &Registry,
    url: &str,
    net: &[&str],
    off: &[&str],
    tag: &str,
    cache: &str,
) {
    let host = url.trim_start_matches("http://").split(':').next().unwrap();
    let out = sh_as(
        who,
        &s.ws,
        &format!(
            "cargo new -q --vcs none proj && cd proj && echo 'moat-leaf = \"1\"' >> Cargo.toml && \
             mkdir .cargo && printf '[source.crates-io]\\nreplace-with = \"local\"\\n\
             [source.local]\\nregistry = \"sparse+{url}/cargo/index/\"\\n' > .cargo/config.toml"
        ),
    );
    assert!(out.status.success(), "{}", show(&out));
    let proj = s.ws.join("proj");
    // Cargo before 1.68 (Debian's, the test account's) has sparse indexes
    // only as an unstable feature.
    let old_cargo = stdout(&sh_as(who, &s.ws, "cargo --version"))
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|minor| minor < 68);
    let cargo = |extra: &[&str], moat_args: &[&str]| {
        let mut args: Vec<&str> = moat_args.to_vec();
        let mut cmd = vec!["cargo"];
        if old_cargo {
            args.extend(["--env", "RUSTC_BOOTSTRAP=1"]);
            cmd.extend(["-Z", "sparse-registry"]);
        }
        cmd.push("build");
        cmd.extend(extra);
        moat_run(who, &proj, &args, &cmd)
    };
    let count = reg.served();
    let first = cargo(&[], net);
    v.check(
        &format!("{tag}: cargo build fetches a new dependency into {cache}"),
        first.status.success() && reg.served() == count + 1,
        format!("{} served {}", show(&first), reg.served() - count),
    );
    let _ = sh_as(who, &proj, "cargo clean -q");
    let count = reg.served();
    let second = cargo(&["--offline"], off);
    v.check(
        &format!("{tag}: a second cargo build works offline from {cache}"),
        second.status.success() && reg.served() == count,
        show(&second),
    );

    let npm_dir = s.mkdir("ws/npm");
    let registry = format!("{url}/npm/");
    let count = reg.served();
    let first = npm_install(who, &npm_dir, net, &registry, false);
    v.check(
        &format!("{tag}: npm install fetches a package into {cache}"),
        first.status.success()
            && npm_dir.join("node_modules/moat-leaf/index.js").exists()
            && reg.served() == count + 1,
        show(&first),
    );
    let _ = sh_as(
        who,
        &npm_dir,
        "rm -rf node_modules package.json package-lock.json",
    );
    let count = reg.served();
    let second = npm_install(who, &npm_dir, off, &registry, true);
    v.check(
        &format!("{tag}: a second npm install works offline from {cache}"),
        second.status.success()
            && npm_dir.join("node_modules/moat-leaf/index.js").exists()
            && reg.served() == count,
        show(&second),
    );

    // The interpreter by its own path (a pyenv shim would try to rehash).
    let python = stdout(&sh_as(
        who,
        &s.ws,
        "python3 -c 'import sys; print(sys.executable)'",
    ))
    .trim()
    .to_string();
    let index = format!("{url}/pip/simple/");
    let pip = |dir: &str| {
        let args = [
            python.as_str(),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            // pip caches what it fetches over plain HTTP only from a
            // trusted host.
            "--trusted-host",
            host,
            "--index-url",
            &index,
            "--target",
            dir,
            "moat-leaf",
        ];
        moat_run(who, &s.ws, net, &args)
    };
    let count = reg.served();
    let first = pip("lib1");
    v.check(
        &format!("{tag}: pip install fetches a wheel into {cache}"),
        first.status.success()
            && s.ws.join("lib1/moat_leaf/__init__.py").exists()
            && reg.served() == count + 1,
        show(&first),
    );
    let count = reg.served();
    let second = pip("lib2");
    v.check(
        &format!("{tag}: a second pip install takes the wheel from {cache}"),
        second.status.success()
            && s.ws.join("lib2/moat_leaf/__init__.py").exists()
            && reg.served() == count,
        show(&second),
    );
}

/// A run of the package managers in one tier for one person.
fn package_managers(v: &mut Verdicts, who: &Who, reg: &Registry, tier: &str) {
    let tag = format!("{} {tier}", who.name);
    let s = Scratch::new(who, "caches");
    // From a store with nothing of an earlier run in it.
    let _ = output(command_as(who, moat()).args(["cache", "clear", "--all"]));
    let url = reg.url();
    let net: Vec<&str> = ["--tier", tier].into_iter().chain(TO_REGISTRY).collect();
    let off = ["--tier", tier];
    // The person's caches, and a file of theirs in each for the poisoning
    // attack, before any sandboxed run.
    let poison = format!("moat-it-poison-{}", std::process::id());
    let targets = [
        who.home
            .join(".cargo/registry/src")
            .join(&poison)
            .join("lib.rs"),
        who.home.join(".npm/_cacache").join(&poison),
        who.home.join(".cache/pip").join(&poison),
    ];
    for t in &targets {
        let out = sh_as(
            who,
            &s.ws,
            &format!(
                "mkdir -p '{}' && printf 'clean\\n' > '{}'",
                t.parent().unwrap().display(),
                t.display()
            ),
        );
        assert!(out.status.success(), "{}", show(&out));
    }
    let before: Vec<_> = caches_of(who).iter().map(|c| digest(c)).collect();

    installs(v, who, &s, reg, &url, &net, &off, &tag, "moat's layer");

    // The poisoning attack: inside, the writes land (in moat's layer) and
    // the command reads them back; the person's files do not change.
    let script: String = targets
        .iter()
        .map(|t| format!("echo evil >> '{0}' && grep -q evil '{0}' && ", t.display()))
        .collect::<String>()
        + "echo poisoned";
    let attempt = moat_run(who, &s.ws, &off, &["sh", "-c", &script]);
    v.check(
        &format!("{tag}: inside, appending to files of the person's caches works (in the layer)"),
        attempt.status.success() && stdout(&attempt).contains("poisoned"),
        show(&attempt),
    );
    for t in &targets {
        let text = std::fs::read_to_string(t).unwrap_or_default();
        v.check(
            &format!(
                "{tag}: {} is unchanged after the sandboxed append",
                t.display()
            ),
            text == "clean\n",
            format!("{text:?}"),
        );
    }
    unchanged(v, who, &before, &tag);
    // Control: the same append outside the sandbox changes them.
    for t in &targets {
        let out = sh_as(who, &s.ws, &format!("echo evil >> '{}'", t.display()));
        let text = std::fs::read_to_string(t).unwrap_or_default();
        v.check(
            &format!("{tag}: control: appending outside changes {}", t.display()),
            out.status.success() && text.contains("evil"),
            format!("{text:?}"),
        );
        let _ = std::fs::remove_file(t);
    }
    let _ = std::fs::remove_dir(targets[0].parent().unwrap());
    let cleared = output(command_as(who, moat()).args(["cache", "clear", "--all"]));
    v.check(
        &format!("{tag}: moat cache clear --all"),
        cleared.status.success(),
        show(&cleared),
    );
}

/// Two runs filling the same cache at once: each writes its own layer, both
/// succeed, and what both fetched is there for the next run.
fn two_runs_at_once(v: &mut Verdicts, who: &Who, reg: &Registry) {
    let s = Scratch::new(who, "caches-par");
    let _ = output(command_as(who, moat()).args(["cache", "clear", "--all"]));
    let registry = format!("{}/npm/", reg.url());
    let spawn = |dir: &Path| {
        command_as(who, moat())
            .args(["run", "--workspace"])
            .arg(dir)
            .args(TO_REGISTRY)
            .args(["--", "npm", "install", "--registry", &registry, "moat-leaf"])
            .current_dir(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (s.mkdir("ws/a"), s.mkdir("ws/b"));
    let runs = [spawn(&a), spawn(&b)];
    let outs: Vec<_> = runs
        .into_iter()
        .map(|r| r.wait_with_output().unwrap())
        .collect();
    v.check(
        &format!("{}: two npm installs at once both succeed", who.name),
        outs.iter().all(|o| o.status.success())
            && a.join("node_modules/moat-leaf").exists()
            && b.join("node_modules/moat-leaf").exists(),
        outs.iter().map(show).collect::<Vec<_>>().join("\n"),
    );
    let c = s.mkdir("ws/c");
    let out = npm_install(who, &c, &[], &registry, true);
    v.check(
        &format!(
            "{}: after them, an install offline finds what they fetched",
            who.name
        ),
        out.status.success() && c.join("node_modules/moat-leaf").exists(),
        show(&out),
    );
    let _ = output(command_as(who, moat()).args(["cache", "clear", "--all"]));
}

/// The landlock-only mode has no mounts, so no layers: the tools are
/// pointed at caches of moat's own through their environment. cargo, npm
/// and pip install (the host's network, `--network on`: the allowlist
/// needs a network namespace), a second run finds what the first fetched,
/// the person's caches are byte for byte what they were, and writing them
/// fails (with the control: the same append outside the sandbox works).
fn redirected(v: &mut Verdicts, who: &Who, reg: &Registry) {
    let tag = format!("{} landlock-only", who.name);
    let s = Scratch::new(who, "caches-ll");
    let _ = output(command_as(who, moat()).args(["cache", "clear", "--all"]));
    let url = format!("http://127.0.0.1:{}", reg.port);
    let args = [
        "--isolation",
        "landlock-only",
        "--allow-degraded",
        "--network",
        "on",
    ];
    let before: Vec<_> = caches_of(who).iter().map(|c| digest(c)).collect();
    let shown = moat_run(
        who,
        &s.ws,
        &args,
        &["sh", "-c", "echo $CARGO_HOME $XDG_CACHE_HOME"],
    );
    let store = who.home.join(".local/state/moat/caches");
    let expected = format!(
        "{} {}",
        store.join("cargo/direct").display(),
        store.join("cache/direct").display()
    );
    v.check(
        &format!("{tag}: the tools are pointed at moat's own caches, and the run says so"),
        shown.status.success()
            && stdout(&shown).trim() == expected
            && stderr(&shown).contains("tools are pointed at caches of moat's own"),
        format!("expected {expected}; {}", show(&shown)),
    );
    installs(
        v,
        who,
        &s,
        reg,
        &url,
        &args,
        &args,
        &tag,
        "moat's own cache",
    );

    unchanged(v, who, &before, &tag);
    // The person's caches stay read-only: an append fails (EACCES), and
    // the same append outside the sandbox works.
    let target = who
        .home
        .join(".npm")
        .join(format!("moat-it-ll-{}", std::process::id()));
    let made = sh_as(
        who,
        &s.ws,
        &format!("printf 'clean\\n' > '{}'", target.display()),
    );
    assert!(made.status.success(), "{}", show(&made));
    let inside = moat_run(
        who,
        &s.ws,
        &args,
        &["sh", "-c", &format!("echo evil >> '{}'", target.display())],
    );
    v.check(
        &format!("{tag}: appending to the person's cache fails inside"),
        !inside.status.success()
            && stderr(&inside).contains("Permission denied")
            && std::fs::read_to_string(&target).unwrap_or_default() == "clean\n",
        show(&inside),
    );
    let outside = sh_as(who, &s.ws, &format!("echo evil >> '{}'", target.display()));
    v.check(
        &format!("{tag}: control: the same append outside works"),
        outside.status.success()
            && std::fs::read_to_string(&target)
                .unwrap_or_default()
                .contains("evil"),
        show(&outside),
    );
    let _ = std::fs::remove_file(&target);
    let _ = output(command_as(who, moat()).args(["cache", "clear", "--all"]));
}

/// moat killed (SIGKILL) while its command writes to a cache: what the run
/// wrote is thrown away, and the next run's layer works (the overlays are
/// volatile, and overlayfs refuses a work directory that still holds such
/// a mount's marker until moat clears it).
fn killed_run(v: &mut Verdicts, who: &Who, tier: &str) {
    use std::io::BufRead;
    let s = Scratch::new(who, "caches-kill");
    let half = who
        .home
        .join(".npm")
        .join(format!("moat-it-half-{}", std::process::id()));
    let script = format!(
        "echo half >> '{}' && echo ready && sleep 60",
        half.display()
    );
    let mut run = command_as(who, moat())
        .args(["run", "--tier", tier, "--workspace"])
        .arg(&s.ws)
        .args(["--", "sh", "-c", &script])
        .current_dir(&s.ws)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let ready = std::io::BufReader::new(run.stdout.take().unwrap())
        .read_line(&mut line)
        .is_ok()
        && line == "ready\n";
    let _ = run.kill();
    let _ = run.wait();
    let check = format!(
        "test ! -e '{0}' && echo more >> '{0}' && echo fresh",
        half.display()
    );
    let next = moat_run(who, &s.ws, &["--tier", tier], &["sh", "-c", &check]);
    v.check(
        &format!(
            "{} {tier}: after moat is killed mid-write, the next run's layer works, without the half-written file",
            who.name
        ),
        ready && next.status.success() && stdout(&next).contains("fresh"),
        format!("ready: {line:?}; next: {}", show(&next)),
    );
    v.check(
        &format!("{} {tier}: neither run wrote the person's cache", who.name),
        !half.exists(),
        half.display().to_string(),
    );
    let _ = output(command_as(who, moat()).args(["cache", "clear", "--all"]));
}

#[test]
fn package_managers_work_and_never_touch_the_persons_caches() {
    let reg = Registry::start();
    let mut v = Verdicts::default();
    for who in identities() {
        package_managers(&mut v, &who, &reg, "unelevated");
        killed_run(&mut v, &who, "unelevated");
        redirected(&mut v, &who, &reg);
    }
    two_runs_at_once(&mut v, &user(), &reg);
    if let Some(_setup) = elevated_tier() {
        for who in identities() {
            package_managers(&mut v, &who, &reg, "elevated");
            killed_run(&mut v, &who, "elevated");
        }
    }
    v.finish();
}
