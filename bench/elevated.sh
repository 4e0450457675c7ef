#!/usr/bin/env bash
# The elevated tier's start-up, and its per-run cost against workspace size.
# Prints a Markdown section; bench/run.sh includes it in BENCHMARKS.md.
#
#   bash bench/elevated.sh MOAT WORKDIR
#
# Needs root (moat setup). A setup made here is removed at the end; an
# existing one is brought up to date (the launcher beside MOAT) and kept.
set -euo pipefail
moat=$1
work=$2
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/fixtures.sh"
if [ "$(id -u)" != 0 ]; then
    echo "## The elevated tier"
    echo
    echo "Not measured: \`moat setup\` needs root."
    exit 0
fi
made=0
[ -e /var/lib/moat/setup.toml ] || made=1
if [ "$made" = 1 ]; then
    trap '"$moat" setup --remove >/dev/null 2>&1 || true' EXIT
fi
"$moat" setup --user root >/dev/null


# Start-up, both tiers, from an empty workspace.
mkdir -p "$work/elev-empty"
cd "$work/elev-empty"
python3 "$root/bench/interleave.py" 1000 "$work/elev.json" \
    "$moat run --tier unelevated -- true" "$moat run --tier elevated -- true" \
    "$moat run --tier elevated --max-memory 1G --max-processes 1000 -- true"
u=$(median "$work/elev.json" 0)
e=$(median "$work/elev.json" 1)
el=$(median "$work/elev.json" 2)

# Per-run cost against workspace size: 10 files, and 100,000 files in
# 500 directories.
mkdir -p "$work/ws10" "$work/ws100k"
python3 - "$work" <<'PY'
import os, sys
w = sys.argv[1]
for f in range(10):
    open(f"{w}/ws10/f{f}", "w").write("x\n")
for d in range(500):
    os.makedirs(f"{w}/ws100k/d{d:03}", exist_ok=True)
    for f in range(200):
        open(f"{w}/ws100k/d{d:03}/f{f:03}", "w").write("x\n")
PY
cd /
python3 "$root/bench/interleave.py" 300 "$work/size.json" \
    "$moat run --tier elevated --workspace $work/ws10 -- true" \
    "$moat run --tier elevated --workspace $work/ws100k -- true" \
    "$moat run --tier unelevated --workspace $work/ws10 -- true" \
    "$moat run --tier unelevated --workspace $work/ws100k -- true"
s10=$(median "$work/size.json" 0)
s100k=$(median "$work/size.json" 1)
u10=$(median "$work/size.json" 2)
u100k=$(median "$work/size.json" 3)
nop=$(mktemp -d)
printf 'int main(void){return 0;}\n' > "$nop/nop.c"
gcc -O2 -static -o "$nop/nop" "$nop/nop.c"
python3 "$root/bench/interleave.py" 1000 "$work/nop.json" "$nop/nop"
t_nop=$(median "$work/nop.json" 0)
rm -rf "$nop"

cat <<MD
## The elevated tier (\`bench/elevated.sh\`, run by \`bench/run.sh\` as root)

Start-up, 1,000 interleaved rounds (\`bench/interleave.py\`), as root from
an empty workspace:

| command | median | difference |
|---|---|---|
| \`moat run --tier unelevated -- true\` | ${u} ms | |
| \`moat run --tier elevated -- true\` | ${e} ms | $(python3 -c "print('%+.2f' % ($e - $u))") ms |
| the same with \`--max-memory 1G --max-processes 1000\` (cgroups with limits) | ${el} ms | $(python3 -c "print('%+.2f' % ($el - $u))") ms |
| a static C program that returns at once (the cost of any exec here) | ${t_nop} ms | |

Per-run cost against the workspace's size, 300 interleaved rounds of
\`moat run --tier T --workspace W -- true\`:

| workspace | elevated | ratio | unelevated | ratio |
|---|---|---|---|---|
| 10 files | ${s10} ms | 1.00 | ${u10} ms | 1.00 |
| 100,000 files in 500 directories | ${s100k} ms | $(ratio "$s100k" "$s10") | ${u100k} ms | $(ratio "$u100k" "$u10") |

Reading:
- The elevated tier starts one more program, the setuid launcher, and on
  this VM the start-up of any glibc program costs what the last row of the
  first table shows (its cache-size probe is about a hundred \`cpuid\`
  instructions, each a VM exit). Most of the difference is that; the rest
  is the launcher's own checks (the request, \`/etc/passwd\` and
  \`/etc/group\`, the path walks, the firewall's generation number: about
  0.2 ms) and one more hop for the start and end reports. The id
  mapping's user namespace is made once per person and account and kept
  (\`/run/moat/idmap\`), which saves about 0.4 ms per run; the target of
  1 ms over the unelevated tier is not met here. Timed inside the
  launcher, its own work before it hands over to the code both tiers
  share is about 0.17 ms; running the launcher alone (it prints its usage
  and exits) takes 0.94 ms (\`perf stat -r 50\`), as long as
  \`/bin/true\`: the second program's start is the cost. A static program
  without libc starts and exits in 0.21 ms here; glibc's start-up adds
  about 0.45 ms, most of it its CPU and cache probe, \`cpuid\` instructions
  that cost 4.8 µs each on this VM. A launcher without glibc (musl, whose
  Rust target cannot be installed here) would about meet the target.
- Every elevated run gets its own cgroup v2 directory, made, forked into
  (\`CLONE_INTO_CGROUP\`) and removed: about 0.1 ms. On this hybrid
  machine memory and process limits live in cgroup v1, which has no such
  fork, so the launcher moves itself into the run's v1 cgroups and back;
  a move waits for an RCU grace period, which is most of the third row's
  extra cost. Where cgroup v2 has the controllers, limits cost what the
  second row does.
- Idmapped mounts cost the same whatever the workspace holds: nothing is
  walked or relabelled. What grows with the workspace is the repository
  scan at the start and the audit at the end, which look at every
  directory (not every file) for \`.git\`, and both tiers pay it alike (the
  unelevated columns): two \`statx\` per directory per pass, about a
  microsecond each on this VM, shared between two threads for levels of
  128 directories or more. The 1.2x target is not met for a tree of 500
  directories; a tree of the same files in fewer directories costs less.
  Measured in a fresh process, as moat always is, the first look at 500
  directories costs 0.75 to 0.9 ms (1.5 µs each: their inodes are no longer
  in the CPU's caches) and a second pass 0.2 ms, so each pass has a floor
  of about 0.8 ms here. Remembering each directory's ctime from the first
  pass so that the audit skips the \`.git\` lookups of unchanged ones was
  tried: it saved about 0.3 ms and was not kept, as the audit should not
  rest on timestamps for so little.
MD
