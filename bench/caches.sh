#!/usr/bin/env bash
# The tool-cache layers: what they add to a run's start-up, and a warm
# `cargo build` of a crate with dependencies inside moat against bare.
# Prints a Markdown section; bench/run.sh includes it in BENCHMARKS.md.
#
#   bash bench/caches.sh MOAT WORKDIR
set -euo pipefail
moat=$1
work=$2
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/fixtures.sh"

# Start-up, with and without the layers, interleaved.
mkdir -p "$work/cache-empty"
cd "$work/cache-empty"
"$moat" run --report "$work/cache-report.json" -- true
n=$(python3 -c "import json,re,sys; d=[l['detail'] for l in json.load(open(sys.argv[1]))['report']['layers'] if l['layer']=='mounts']; m=re.search(r'(\d+) tool caches', d[0] if d else ''); print(m.group(1) if m else 0)" "$work/cache-report.json")
python3 "$root/bench/interleave.py" 1000 "$work/cache-start.json" \
    "$moat run --no-cache-layers -- true" "$moat run -- true"
without=$(median "$work/cache-start.json" 0)
with=$(median "$work/cache-start.json" 1)

# A warm cargo build: a crate with three dependencies already in the
# person's cargo cache (so --offline), from clean, bare and inside moat,
# where cargo reads them through the layer over ~/.cargo.
mkdir -p "$work/deps/src"
cd "$work/deps"
deps=""
for c in libc itoa memchr; do
    v=$(ls ~/.cargo/registry/cache/*/ 2>/dev/null | grep -E "^$c-[0-9]" | sed -E "s/^$c-(.*)\.crate$/\1/" | sort -V | tail -1)
    [ -n "$v" ] && deps="$deps$c = \"=$v\"\n"
done
printf '[package]\nname = "bench-deps"\nversion = "0.1.0"\nedition = "2021"\n[dependencies]\n%b' "$deps" > Cargo.toml
printf 'pub fn f(b: &[u8]) -> usize { memchr::memchr(0, b).unwrap_or(0) + itoa::Buffer::new().format(1u8).len() + libc::EXIT_SUCCESS as usize }\n' > src/lib.rs
cargo build --offline -q
# Interleaved: each round builds from clean bare, then inside moat.
python3 - "$moat" "$work/cache-cargo.txt" <<'PY'
import statistics, subprocess, sys, time
moat, out = sys.argv[1], sys.argv[2]
cmds = [["cargo", "build", "--offline", "-q"], [moat, "run", "--", "cargo", "build", "--offline", "-q"]]
times = [[], []]
for r in range(16):
    for i, c in enumerate(cmds):
        subprocess.run(["rm", "-rf", "target"], check=True)
        t = time.perf_counter()
        subprocess.run(c, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r:  # the first round warms up
            times[i].append(time.perf_counter() - t)
open(out, "w").write(" ".join("%.2f" % (statistics.median(t) * 1000) for t in times) + "\n")
PY
read -r c_bare c_moat < "$work/cache-cargo.txt"
cd "$root"

cat <<MD
## Tool-cache layers (\`bench/caches.sh\`)

Start-up, 1,000 interleaved rounds, as $(id -un) from an empty workspace,
with the ${n} tool caches of this home layered (each an overlay made in the
sandbox, attached over the cache, then merged into the shared layer when
the run ends) and without them (\`--no-cache-layers\`):

| command | median | difference |
|---|---|---|
| \`moat run --no-cache-layers -- true\` | ${without} ms | |
| \`moat run -- true\` | ${with} ms | +$(python3 -c "print('%.2f' % ($with - $without))") ms |

A warm \`cargo build --offline\` from clean of a crate with three
dependencies (\`$(echo -e "$deps" | cut -d' ' -f1 | xargs | sed 's/ /, /g')\`) already in the
person's cache, which moat's cargo reads through the layer over
\`~/.cargo\` (15 interleaved rounds after one to warm up):

| command | bare | inside moat | ratio |
|---|---|---|---|
| \`cargo build --offline\` | ${c_bare} ms | ${c_moat} ms | $(ratio "$c_moat" "$c_bare" 3) |
MD
