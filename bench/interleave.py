"""Start-up times of several commands, measured in rounds: each round runs
every command once, so a machine whose speed drifts (a busy neighbour on
the host, a CPU frequency change) slows all of them alike.

    python3 bench/interleave.py ROUNDS OUT.json CMD [CMD ...]

Each CMD is split on spaces and started with posix_spawn, stdout and
stderr to /dev/null; the JSON has each command's median, p25 and p75 in
seconds. 50 warm-up rounds are not counted.
"""
import json
import os
import statistics
import sys
import time

rounds, out, cmds = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
argvs = [c.split() for c in cmds]
null = [(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]


def run(argv):
    start = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=null)
    _, status = os.waitpid(pid, 0)
    took = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{' '.join(argv)} failed with status {status}")
    return took


for _ in range(50):
    for a in argvs:
        run(a)
times = [[] for _ in argvs]
for _ in range(rounds):
    for i, a in enumerate(argvs):
        times[i].append(run(a))
results = []
for c, t in zip(cmds, times):
    t.sort()
    results.append({"command": c, "median": statistics.median(t),
                    "p25": t[len(t) // 4], "p75": t[3 * len(t) // 4]})
json.dump({"results": results}, open(out, "w"), indent=1)
