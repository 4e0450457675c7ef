"""Start-up times of several commands, measured in rounds: each round runs
every command once, so a machine whose speed drifts (a busy neighbour on
the host, a CPU frequency change) slows all of them alike.

    python3 bench/interleave.py [--warmup N] [--prepare SHELL] ROUNDS OUT.json CMD [CMD ...]

Each CMD is split on spaces and started with posix_spawn (the order
reversed every other round), stdout and
stderr to /dev/null; the JSON has each command's median, p25 and p75 in
seconds. 50 warm-up rounds (or N) are not counted. With --prepare, the
shell command runs before each timed command, untimed (for example
`rm -rf target` before a build from clean); CMD is then run by `sh -c`
whole.
"""
import json
import os
import statistics
import subprocess
import sys
import time

args = sys.argv[1:]
warmup, prepare = 50, None
while args and args[0].startswith("--"):
    if args[0] == "--warmup":
        warmup, args = int(args[1]), args[2:]
    elif args[0] == "--prepare":
        prepare, args = args[1], args[2:]
    else:
        sys.exit(f"unknown option {args[0]}")
rounds, out, cmds = int(args[0]), args[1], args[2:]
argvs = [["sh", "-c", c] if prepare else c.split() for c in cmds]
null = [(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]


def run(argv):
    if prepare:
        subprocess.run(["sh", "-c", prepare], check=True)
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=null)
    _, status = os.waitpid(pid, 0)
    took = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{' '.join(argv)} failed with status {status}")
    return took


for _ in range(warmup):
    for a in argvs:
        run(a)
times = [[] for _ in argvs]
# Every other round runs the commands in the reverse order, so that going
# first or second in a round (a warm cache, a CPU just woken) favours none.
for r in range(rounds):
    order = list(enumerate(argvs))
    for i, a in (order if r % 2 == 0 else reversed(order)):
        times[i].append(run(a))
results = []
for c, t in zip(cmds, times):
    t.sort()
    results.append({"command": c, "median": statistics.median(t),
                    "p25": t[len(t) // 4], "p75": t[3 * len(t) // 4]})
json.dump({"results": results}, open(out, "w"), indent=1)
