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

median() {
    python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][int(sys.argv[2])]; print('%.2f' % (r['median']*1000))" "$1" "$2"
}

# Start-up, both tiers, from an empty workspace.
mkdir -p "$work/elev-empty"
cd "$work/elev-empty"
python3 "$root/bench/interleave.py" 1000 "$work/elev.json" \
    "$moat run --tier unelevated -- true" "$moat run --tier elevated -- true"
u=$(median "$work/elev.json" 0)
e=$(median "$work/elev.json" 1)

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
    "$moat run --tier elevated --workspace $work/ws100k -- true"
s10=$(median "$work/size.json" 0)
s100k=$(median "$work/size.json" 1)

cat <<MD
## The elevated tier (\`bench/elevated.sh\`, run by \`bench/run.sh\` as root)

Start-up, 1,000 interleaved rounds (\`bench/interleave.py\`), as root from
an empty workspace:

| command | median | difference |
|---|---|---|
| \`moat run --tier unelevated -- true\` | ${u} ms | |
| \`moat run --tier elevated -- true\` | ${e} ms | $(python3 -c "print('%+.2f' % ($e - $u))") ms |

Per-run cost against the workspace's size, 300 interleaved rounds of
\`moat run --tier elevated --workspace W -- true\`:

| workspace | median | ratio |
|---|---|---|
| 10 files | ${s10} ms | 1.00 |
| 100,000 files in 500 directories | ${s100k} ms | $(python3 -c "print('%.2f' % ($s100k / $s10))") |
MD
