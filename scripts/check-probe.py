"""Checks `moat probe --json` output read from stdin: every probe of every
mode blocked or not applicable, except that the attacks named with
--control-refused may be inconclusive when their control was refused (a
machine where the attack itself is impossible outside the sandbox too).

    moat probe --json ... | python3 scripts/check-probe.py [--control-refused ATTACK]...
"""
import json
import sys

allowed = set()
args = sys.argv[1:]
while args:
    if args[0] == "--control-refused" and len(args) > 1:
        allowed.add(args[1])
        args = args[2:]
    else:
        sys.exit(__doc__)
report = json.load(sys.stdin)
bad = []
for mode in report["modes"]:
    counts = {}
    for p in mode["probes"]:
        v = p["verdict"]
        counts[v] = counts.get(v, 0) + 1
        if v in ("blocked", "not-applicable"):
            continue
        if v == "inconclusive" and p["attack"] in allowed and p["control"] != "ok":
            continue
        bad.append(f'{mode["mode"]}: {p["attack"]}: {v} ({p["observed"]}, control {p["control"]})')
    print(f'{mode["mode"]}: ' + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
if report.get("left_on_host"):
    bad.append(f'left on the host: {report["left_on_host"]}')
if not report["modes"]:
    bad.append("no mode ran")
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
