#!/usr/bin/env bash
# moat's benchmarks. Writes BENCHMARKS.md (or the file given as $1).
#
#   bash bench/run.sh
#
# 1. Start-up: `moat run -- true` against bare `true` and against
#    bubblewrap with every namespace, in one hyperfine run.
# 2. File-heavy work: `git status` and `find` over a 50,000-file
#    repository, bare and inside moat.
# 3. `cargo build` of a small crate from clean, bare and inside moat.
#
# Needs hyperfine and bubblewrap (installed here if missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${1:-BENCHMARKS.md}
case "$out" in /*) ;; *) out="$root/$out" ;; esac

if [ "$(id -u)" = 0 ]; then
    for p in hyperfine bubblewrap git; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || {
            apt-get update -qq || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
        }
    done
fi
cargo build --release -p moat-cli >/dev/null 2>&1
moat=$(pwd)/target/x86_64-unknown-linux-gnu/release/moat
[ -x "$moat" ] || moat=$(pwd)/target/release/moat
work=$(mktemp -d /var/tmp/moat-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

median() { # json file, command index -> median in ms
    python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][int(sys.argv[2])]; print('%.2f' % (r['median']*1000))" "$1" "$2"
}
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }

# 1. Start-up, from an empty workspace.
mkdir -p "$work/empty"
cd "$work/empty"
bwrap_cmd="bwrap --unshare-all --new-session --die-with-parent --ro-bind / / --dev /dev --proc /proc true"
hyperfine -N --warmup 50 --runs 1000 --export-json "$work/startup.json" \
    "true" "$moat run -- true" "$bwrap_cmd" >/dev/null 2>&1
t_true=$(median "$work/startup.json" 0)
t_moat=$(median "$work/startup.json" 1)
t_bwrap=$(median "$work/startup.json" 2)

# 2. A 50,000-file repository: 250 directories of 200 files.
mkdir -p "$work/tree"
cd "$work/tree"
python3 - <<'EOF'
import os
for d in range(250):
    os.makedirs(f"src/d{d:03}", exist_ok=True)
    for f in range(200):
        with open(f"src/d{d:03}/f{f:03}.txt", "w") as fh:
            fh.write(f"{d} {f}\n")
EOF
git init -q . && git add -A && git -c user.name=b -c user.email=b@b commit -q -m tree
# Twenty runs of each tool in one shell, bare and in one sandbox: the
# sandbox's start-up (measured above) is spread over twenty runs, so this
# measures what the layers cost the work itself.
loop20() { echo "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do $1 >/dev/null; done"; }
hyperfine -N --warmup 2 --runs 20 --export-json "$work/files.json" \
    "sh -c '$(loop20 "git status --porcelain")'" "$moat run -- sh -c '$(loop20 "git status --porcelain")'" \
    "sh -c '$(loop20 "find . -type f")'" "$moat run -- sh -c '$(loop20 "find . -type f")'" >/dev/null 2>&1
g_bare=$(median "$work/files.json" 0)
g_moat=$(median "$work/files.json" 1)
f_bare=$(median "$work/files.json" 2)
f_moat=$(median "$work/files.json" 3)
# And once, start-up included.
hyperfine -N --warmup 3 --runs 30 --export-json "$work/once.json" \
    "git status --porcelain" "$moat run -- git status --porcelain" \
    "find . -type f" "$moat run -- find . -type f" >/dev/null 2>&1
g1_bare=$(median "$work/once.json" 0)
g1_moat=$(median "$work/once.json" 1)
f1_bare=$(median "$work/once.json" 2)
f1_moat=$(median "$work/once.json" 3)

# 3. cargo build of moat-policy (about 5,000 lines, no dependencies).
mkdir -p "$work/crate"
cp -r "$root/crates/moat-policy/src" "$work/crate/"
cat > "$work/crate/Cargo.toml" <<'EOF'
[package]
name = "bench-policy"
version = "0.1.0"
edition = "2021"
[lib]
path = "src/lib.rs"
EOF
cd "$work/crate"
hyperfine --warmup 1 --runs 15 --prepare "rm -rf target" --export-json "$work/cargo.json" \
    "cargo build --offline -q" "$moat run -- cargo build --offline -q" >/dev/null 2>&1
c_bare=$(median "$work/cargo.json" 0)
c_moat=$(median "$work/cargo.json" 1)
cd "$root"

cat > "$out" <<EOF
# Benchmarks

Produced by \`bash bench/run.sh\` on $(date -u +%Y-%m-%d): $(nproc) CPUs,
$(uname -r), $(hyperfine --version), $(bwrap --version).
Medians; each command runs as $(id -un), in a directory under /var/tmp.

## Start-up (\`hyperfine -N\`, 1,000 runs after 50 warm-up runs)

| command | median | ratio |
|---|---|---|
| \`true\` | ${t_true} ms | |
| \`moat run -- true\` | ${t_moat} ms | $(ratio "$t_moat" "$t_bwrap") × bwrap |
| \`$bwrap_cmd\` | ${t_bwrap} ms | 1.00 |

## File-heavy work: a 50,000-file git repository

Twenty runs in one shell, bare and in one sandbox (20 repetitions): what
the layers (mounts, Landlock, seccomp) cost the work itself.

| work | bare | inside moat | ratio |
|---|---|---|---|
| 20 × \`git status --porcelain\` | ${g_bare} ms | ${g_moat} ms | $(ratio "$g_moat" "$g_bare") |
| 20 × \`find . -type f\` | ${f_bare} ms | ${f_moat} ms | $(ratio "$f_moat" "$f_bare") |

One run, moat's start-up included (30 repetitions): the start-up, the
repository scan and the end-of-run audit in a tree this size.

| command | bare | inside moat | difference |
|---|---|---|---|
| \`git status --porcelain\` | ${g1_bare} ms | ${g1_moat} ms | +$(python3 -c "print('%.2f' % ($g1_moat - $g1_bare))") ms |
| \`find . -type f\` | ${f1_bare} ms | ${f1_moat} ms | +$(python3 -c "print('%.2f' % ($f1_moat - $f1_bare))") ms |

## \`cargo build\` from clean (moat-policy, 15 runs)

| command | bare | inside moat | ratio |
|---|---|---|---|
| \`cargo build --offline\` | ${c_bare} ms | ${c_moat} ms | $(ratio "$c_moat" "$c_bare") |

## Reading

- **Targets.** Issue 2 asks for \`moat run -- true\` at most 0.7 × bwrap's
  median, and file-heavy work and \`cargo build\` within 3 % of bare.
  The start-up target is not met yet, and the file-heavy ratios sit at the
  edge: two runs of this script on 2026-11-27, minutes apart on an
  otherwise idle machine, gave start-up 0.83 and 0.91 × bwrap, and 1.03
  and 1.06 for both file-heavy loops; \`cargo build\` stays within noise.
- **Where start-up goes** (instrumented on this VM, 2026-11-27): about
  0.4 ms to exec moat (static), 0.3 ms to resolve the policy and build the
  filesystem view, 0.1 ms for placeholders, 0.25 ms to prepare Landlock
  rules, the seccomp program and the mount plan, 0.6 ms for the kernel to
  create the namespaces (the network namespace alone is about 0.4 ms),
  0.3 ms for about 50 mount operations, 0.15 ms for capabilities, Landlock
  and seccomp, 0.7 ms for \`true\` itself (cpuid traps make every exec slow
  here), then 0.1 ms for the audit and 0.2-1 ms waiting for the kernel to
  tear the namespaces down (an expedited RCU grace period per mount
  namespace). A bare \`unshare -Urmpinu --fork --mount-proc true\` costs
  2.6 ms here, which leaves moat about 1.7 ms above the floor of the same
  namespaces, against bwrap's 2.6 ms.
- **What was tried.** Static linking (-0.3 ms), a binary-search seccomp
  program instead of seccompiler's linear one (the kernel's per-filter
  action cache emulates the program for every syscall number at install:
  0.3 ms less), placeholders as hard links to one inode (ext4 with \`discard\` made each
  new directory cost 90 µs), directories without subdirectories not
  listed by the repository scan (a 50,000-file tree went from 41 ms to
  5 ms), the audit overlapped with the namespace teardown. Handing the
  last clean-up to a detached process did not help under back-to-back
  runs on two CPUs and was dropped. So did three further attempts,
  measured by interleaving 1,000 runs of each variant: starting the
  command's process with \`CLONE_VM|CLONE_VFORK\` instead of a fork (no
  difference); creating the namespaces in a \`CLONE_VM\` process that
  calls \`unshare\` on the other CPU while moat computes the plan, then
  forks init into its pid namespace with \`CLONE_PARENT\` (the 0.5-0.8 ms
  of namespace creation did overlap the plan, but the median moved from
  5.35 to 5.51 ms: back to back, the second CPU is busy tearing down the
  previous run's namespaces, and the extra fork costs the rest); and
  avoiding glibc's start-up (0.45 ms of cpuid traps in every glibc
  program here, moat and \`true\` alike) is not possible without a musl
  toolchain, which this machine's package sources do not provide.
- **What is left.** The remaining distance to 0.7 × (about 0.7 ms) is
  mostly kernel work that bwrap does too (namespaces, mounts, exec,
  teardown) plus moat's own 0.6 ms of policy, view and plan; the next
  candidates are fewer mount operations for placeholders (one bind per
  absent protected name today) and a smaller seccomp program.
EOF
cat "$out"
