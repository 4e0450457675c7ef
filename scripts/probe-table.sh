#!/usr/bin/env bash
# Runs `moat probe` with bubblewrap as a wrapper next to moat's own modes,
# in one run, and prints the result as the Markdown table in README.md.
#
#   bash scripts/probe-table.sh [path/to/moat]
set -euo pipefail
cd "$(dirname "$0")/.."
moat=${1:-$PWD/target/x86_64-unknown-linux-gnu/debug/moat}
bwrap='bwrap --unshare-all --new-session --die-with-parent --ro-bind / / --bind {workspace} {workspace} --dev /dev --proc /proc'
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Non-zero when anything is not blocked, which bubblewrap's column shows.
"$moat" probe --json --wrapper "$bwrap" >"$out" || true
python3 - "$out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
modes = d["modes"]
names = [m["mode"] if m["mode"].startswith("moat") else m["mode"].split()[0] for m in modes]
label = {"blocked": "blocked", "escaped": "**not blocked**", "known-loss": "known loss",
         "not-applicable": "n/a", "inconclusive": "inconclusive"}
def cell(r):
    first = r["observed"].split(";")[0].strip()
    text = label[r["verdict"]]
    if r["verdict"] in ("blocked", "escaped", "known-loss") and first and len(first) <= 16:
        text += f" ({first})"
    return text
print("| layer | attack | " + " | ".join(names) + " |")
print("|---|---|" + "---|" * len(names))
for i, r in enumerate(modes[0]["probes"]):
    print(f"| {r['layer']} | {r['attack']} | " + " | ".join(cell(m["probes"][i]) for m in modes) + " |")
print()
for m, n in zip(modes, names):
    c = {}
    for p in m["probes"]:
        c[p["verdict"]] = c.get(p["verdict"], 0) + 1
    print(f"- {n}: " + ", ".join(f"{v} {label[k].strip('*')}" for k, v in sorted(c.items())))
PY
