#!/usr/bin/env bash
# moat's benchmarks. Writes BENCHMARKS.md (or the file given as $1).
#
#   bash bench/run.sh
#
# 1. Start-up: `moat run -- true` against bare `true`, against bubblewrap
#    with every namespace, and against bench/floor.c (the same namespaces
#    and minimal layers with no policy: the floor), in interleaved rounds.
# 2. File-heavy work: `git status` and `find` over a 50,000-file
#    repository, bare and inside moat.
# 3. `cargo build` of a small crate from clean, bare and inside moat.
# 4. The network allowlist proxy: throughput, added latency, memory with
#    1,000 tunnels (bench/proxy.py).
# 5. The elevated tier: start-up against the unelevated tier, and per-run
#    cost against workspace size (bench/elevated.sh; root only).
# 6. The tool-cache layers: what they add to start-up, and a warm
#    `cargo build` with dependencies (bench/caches.sh).
# 7. An MCP tool call through `moat mcp` against `moat run` (bench/mcp.py).
# 8. Denial reporting: moat against moat before the observer
#    (bench/denials.sh).
# 9. The secret broker: requests through a terminated host against a
#    plain tunnel (bench/secrets.py; root, for port 443).
#
# Needs hyperfine and bubblewrap (installed here if missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
. "$root/bench/fixtures.sh"
out=${1:-BENCHMARKS.md}
case "$out" in /*) ;; *) out="$root/$out" ;; esac

if [ "$(id -u)" = 0 ]; then
    for p in hyperfine bubblewrap git gcc libc6-dev; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || {
            apt-get update -qq || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
        }
    done
fi
cargo build --release -p moat-cli -p moat-launch >/dev/null 2>&1
moat=$(pwd)/target/x86_64-unknown-linux-gnu/release/moat
[ -x "$moat" ] || moat=$(pwd)/target/release/moat
work=$(mktemp -d /var/tmp/moat-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
gcc -O2 -static -o "$work/floor" bench/floor.c


# 1. Start-up, from an empty workspace.
mkdir -p "$work/empty"
cd "$work/empty"
bwrap_cmd="bwrap --unshare-all --new-session --die-with-parent --ro-bind / / --dev /dev --proc /proc true"
python3 "$root/bench/interleave.py" 2000 "$work/startup.json" \
    "true" "$moat run -- true" "$bwrap_cmd" "$work/floor true"
t_true=$(median "$work/startup.json" 0)
t_moat=$(median "$work/startup.json" 1)
t_bwrap=$(median "$work/startup.json" 2)
t_floor=$(median "$work/startup.json" 3)

# 2. A 50,000-file repository: 250 directories of 200 files.
make_tree "$work/tree"
cd "$work/tree"
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
make_crate "$work/crate" "$root"
cd "$work/crate"
hyperfine --warmup 1 --runs 15 --prepare "rm -rf target" --export-json "$work/cargo.json" \
    "cargo build --offline -q" "$moat run -- cargo build --offline -q" >/dev/null 2>&1
c_bare=$(median "$work/cargo.json" 0)
c_moat=$(median "$work/cargo.json" 1)
cd "$root"

# 4. The network allowlist's proxy.
python3 "$root/bench/proxy.py" "$moat" > "$work/proxy.md"

# 5. The elevated tier.
bash "$root/bench/elevated.sh" "$moat" "$work" > "$work/elevated.md"

# 6. The tool-cache layers.
bash "$root/bench/caches.sh" "$moat" "$work" > "$work/caches.md"

# 7. An MCP tool call.
python3 "$root/bench/mcp.py" "$moat" 500 > "$work/mcp.md"

# 8. Denial reporting.
bash "$root/bench/denials.sh" "$moat" "$work" > "$work/denials.md"

# 9. The secret broker.
python3 "$root/bench/secrets.py" "$moat" > "$work/secrets.md"

cat > "$out" <<EOF
# Benchmarks

Produced by \`bash bench/run.sh\` on $(date -u +%Y-%m-%d): $(nproc) CPUs,
$(uname -r), $(hyperfine --version), $(bwrap --version).
Medians; each command runs as $(id -un), in a directory under /var/tmp.

## Start-up (2,000 interleaved rounds after 50 warm-up rounds, \`bench/interleave.py\`)

Each round runs every command once, so a drift in the machine's speed
during the run slows all of them alike (run-to-run medians here move by up
to 25 %; the ratios move much less).

| command | median | ratio |
|---|---|---|
| \`true\` | ${t_true} ms | |
| \`moat run -- true\` | ${t_moat} ms | $(ratio "$t_moat" "$t_bwrap") × bwrap |
| \`$bwrap_cmd\` | ${t_bwrap} ms | 1.00 |
| \`bench/floor.c true\`: the floor (see below) | ${t_floor} ms | $(ratio "$t_floor" "$t_bwrap") × bwrap |

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

$(cat "$work/proxy.md")

$(cat "$work/elevated.md")

$(cat "$work/caches.md")

$(cat "$work/mcp.md")

$(cat "$work/denials.md")

$(cat "$work/secrets.md")

## Reading

- **Targets.** Issue 2 asks for \`moat run -- true\` at most 0.7 × bwrap's
  median, and file-heavy work and \`cargo build\` within 3 % of bare.
  The start-up target is not met: four runs of this script on 2026-11-27
  gave 0.81 to 1.03 × bwrap (bwrap's own median moved between 4.2 and
  6.2 ms from run to run on this VM, whose speed drifts with its host's
  load). The file-heavy loops come out at 1.00 to 1.10 × bare and \`cargo build\` within noise; interleaved A/B runs put
  the layers' own cost near 1 % (perf: Landlock's \`hook_file_open\` 0.7 %,
  seccomp 0.3 % of \`find\`'s time), below this VM's run-to-run noise.
- **Proxy.** Issue 5 asks for a CONNECT tunnel at 80 % of a direct
  connection's throughput on loopback, at most 1 ms added per connection,
  and 1,000 tunnels held in at most 50 MiB. The latency and memory
  targets are met; throughput is not: on loopback a direct transfer is two
  processes moving 4-5 GB/s through the kernel on this machine's two CPUs,
  and the proxy adds a third process and two more socket copies competing
  for the same CPUs. Measured and dropped: 32 and 64 KiB relay buffers
  (no faster, more memory with many tunnels) and splice(2) through a pipe
  (slower: 18 % of direct). Over a real network link the relay is far
  faster than the link.
- **The floor.** \`bench/floor.c\` does the least any sandbox with moat's
  namespaces and layers must do (the seven namespaces, a read-only view of
  \`/\` with the workspace writable, private \`/tmp\`, \`/dev\` and \`/proc\`,
  a two-rule Landlock ruleset, a four-instruction seccomp filter, init and
  command processes) with no policy, no masks, no protected paths, no
  audit and no loopback. Its row above is the floor on this machine:
  moat's distance to it is what policy, masks, placeholders, the full
  Landlock ruleset and seccomp program, loopback and the audit cost.
  In this run, reaching 0.7 × bwrap would leave
  $(python3 -c "print('%.2f' % (0.7 * $t_bwrap - $t_floor))") ms for all of that, against
  $(python3 -c "print('%.2f' % ($t_moat - $t_floor))") ms today.
- **Why 0.7 × is out of reach on this machine.** Measured one by one
  (instrumented phases and perf, 2026-11-26/27), the work the policy itself
  requires on top of the floor costs more than that budget: resolving the
  policy and the filesystem view about 0.16 ms, the ten placeholders for
  absent protected names about 0.23 ms (created, bound read-only, removed
  after the teardown), about 45 more Landlock rules to carve the denied
  paths out of "read everything" about 0.1 ms, the full seccomp program
  about 0.1 ms more than a four-instruction one, loopback about 0.07 ms, the
  end-of-run audit about 0.06 ms: about 0.7 ms before moat's own process
  start (Rust's runtime, argument parsing, a larger binary to fault in).
  Each can still shrink, but not all of it to zero, and the floor itself
  measured 0.58 to 0.64 × bwrap in runs on 2026-11-27.
- **Where start-up goes** (perf and syscall tracing, 2026-11-27): glibc's
  start-up is about 0.5 ms in every process here (its cache-size probe
  issues about a hundred \`cpuid\` instructions, each a VM exit of about
  5 µs), once for moat and once for the command; creating the network
  namespace is about 0.5 ms of the \`clone\`; moat's policy, view,
  placeholders and Landlock rules about 0.6 ms before it; about 50 mount
  operations 0.3 ms; the seccomp program 0.15 ms to install; and the
  mount namespace's teardown waits for an expedited RCU grace period (0.1
  to 0.4 ms) before moat can reap init and remove the placeholders.
- **What was tried.** Kept: static linking (-0.3 ms), a binary-search
  seccomp program instead of a linear one (-0.3 ms: the kernel emulates
  the filter for every syscall number at install to build its cache),
  placeholders as hard links to one inode, a repository scan that skips
  directories without subdirectories, the audit overlapped with the
  teardown, and the mask file's tmpfs attached under \`/dev\` instead of
  left detached (closing a detached mount waits for a grace period in the
  middle of the start-up: -0.05 ms median). Dropped after interleaved
  runs of 1,000 to 2,000 each showed no gain: the command's process
  started with \`CLONE_VM|CLONE_VFORK\`; namespaces created by a helper on
  the other CPU while moat computes the plan (back to back, the other CPU
  is busy tearing down the previous run); adding the Landlock rules after
  the fork while init builds the mounts (the scheduler puts init on
  moat's own CPU about half of the time); \`lto = "fat"\` with one
  codegen unit (-0.03 ms, inside noise); prefaulting moat's text with
  \`MADV_POPULATE_READ\` (slower). Avoiding glibc's start-up needs a musl
  build of Rust's standard library, which this machine's package sources
  do not provide.
- **Tool-cache layers.** Issue 14 asks for a warm \`cargo build\` within
  3 % of bare (met: within this VM's noise, 0.85 to 1.09 over five runs
  of the script, the last 0.95) and for the layers to add under 0.3 ms to
  \`moat run -- true\` (not met: +2.7 to +6.1 ms over five runs, with the
  four caches this home has). Where it goes (perf trace, 2026-12-07):
  each overlay's creation takes about 0.5 ms in \`fsconfig(FSCONFIG_CMD_CREATE)\`
  (overlayfs remakes its work directory and probes the upper file system
  at every mount: xattrs, whiteout renames, \`O_TMPFILE\`, the volatile
  marker, each a journalled metadata operation on this disk, \`ext4\` with
  \`discard\`), and moat clearing the previous mount's volatile marker
  about 0.3 ms more per cache; four caches, about 3.5 ms. Tearing the
  overlays down (an expedited RCU grace period each) mostly overlaps with
  moat's own finishing: a build of moat that did not wait for it was
  0.5 ms faster. Kept: slots of the store reused across runs (no
  directories made or removed per run), volatile overlays (no sync of the
  disk at every run's end: -1.2 ms in an interleaved run). Tried and
  dropped: one overlay over the home for every cache, each cache attached
  as its subtree: overlayfs refuses a lower layer inside another
  (\`ELOOP\`, "overlapping lowerdir path"), and the shared layer lives in
  the store, inside the home; and two slots used in turn, each cleared
  of its markers on a thread while the other's run is being built (no
  difference this VM's noise could show: the ext4 journal serialises
  both). Below 0.3 ms no per-cache overlay fits on this machine, whose
  disk made the same four layers cost from +2.7 to +9.5 ms over the day.
- **MCP.** Issue 15 asks that a \`run\` call through \`moat mcp\` add at most
  1 ms to \`moat run -- true\`: it adds nothing; the call is faster, since
  the server is already running and only the sandbox is started for it.
EOF
cat "$out"
