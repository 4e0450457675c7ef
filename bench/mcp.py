"""An MCP tool call running `true` through `moat mcp`, round trip, against
`moat run -- true`, in interleaved rounds (one of each per round). Prints a
Markdown section; bench/run.sh includes it in BENCHMARKS.md.

    python3 bench/mcp.py MOAT [ROUNDS]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

moat = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 500
ws = tempfile.mkdtemp(prefix="moat-bench-mcp-", dir="/var/tmp")
os.makedirs(os.path.join(ws, ".git"))
server = subprocess.Popen([moat, "mcp"], cwd=ws, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
ids = iter(range(1, 10**9))


def request(method, params):
    server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": next(ids), "method": method, "params": params}) + "\n")
    server.stdin.flush()
    answer = json.loads(server.stdout.readline())
    if "error" in answer:
        sys.exit(f"{method}: {answer['error']}")
    return answer["result"]


request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}})


def mcp_call():
    r = request("tools/call", {"name": "run", "arguments": {"argv": ["true"]}})
    if r["structuredContent"]["exit_code"] != 0:
        sys.exit(f"the call failed: {r}")


def run():
    subprocess.run([moat, "run", "--", "true"], cwd=ws, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


times = {"mcp": [], "run": []}
for i in range(rounds + 20):
    for name, f in (("mcp", mcp_call), ("run", run)):
        t = time.perf_counter()
        f()
        if i >= 20:
            times[name].append(time.perf_counter() - t)
server.stdin.close()
server.wait()
subprocess.run(["rm", "-rf", ws])
m = {k: statistics.median(v) * 1000 for k, v in times.items()}
print(f"""## An MCP tool call (`bench/mcp.py`)

`run` with `{{"argv": ["true"]}}` through one `moat mcp` server (the JSON-RPC
round trip on its standard input and output), against `moat run -- true`
started afresh, {rounds} interleaved rounds after 20 to warm up:

| what | median | difference |
|---|---|---|
| `moat run -- true` | {m['run']:.2f} ms | |
| `tools/call` of `run` running `true` | {m['mcp']:.2f} ms | {m['mcp'] - m['run']:+.2f} ms |
""")
