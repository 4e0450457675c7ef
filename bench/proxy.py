"""The network allowlist proxy's speed, against the same transfers made
directly: throughput of one CONNECT tunnel, latency added per request, and
moat's memory with 1,000 tunnels open at once.

    python3 bench/proxy.py MOAT > section.md

Runs local servers on 127.0.0.1 (the sandbox reaches them through moat's
proxy with --resolve and --allow-cidr 127.0.0.1/32) and prints a Markdown
section for BENCHMARKS.md.
"""
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

MOAT = sys.argv[1]
SIZE = 512 << 20
CHUNK = b"x" * (1 << 20)
ALLOW = ["--network", "allow", "--allow-domain", "bench.test", "--resolve",
         "bench.test:127.0.0.1", "--allow-cidr", "127.0.0.1/32"]


def serve(handler):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(4096)

    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=handler, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]


def bulk(c):
    try:
        c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % SIZE)
        for _ in range(SIZE // len(CHUNK)):
            c.sendall(CHUNK)
    except OSError:
        pass
    c.close()


def small(c):
    try:
        c.recv(4096)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
    except OSError:
        pass
    c.close()


HELD = []


def hold(c):
    HELD.append(c)


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, cwd=WORK)


WORK = os.path.dirname(os.path.abspath(__file__))
bulk_port = serve(bulk)
small_port = serve(small)
hold_port = serve(hold)

# 1. Throughput of one tunnel (curl -p: CONNECT), best of 3 each.
curl_bulk = "curl -s -o /dev/null -w '%{speed_download}' "
direct = max(float(run(["sh", "-c", curl_bulk + f"http://127.0.0.1:{bulk_port}/"]).stdout or 0)
             for _ in range(3))
tunnel = max(float(run([MOAT, "run", *ALLOW, "--", "sh", "-c",
                        curl_bulk + f"-p http://bench.test:{bulk_port}/"]).stdout or 0)
             for _ in range(3))

# 2. Latency: 300 small requests, each a new connection, direct and
# through the proxy (curl's own time_total, so its start-up is not in it).
loop = "for i in $(seq 300); do curl -s -o /dev/null -w '%{time_total}\\n' URL; done"
bare = [float(x) for x in run(["sh", "-c", loop.replace("URL", f"http://127.0.0.1:{small_port}/")]).stdout.split()]
prox = [float(x) for x in run([MOAT, "run", *ALLOW, "--", "sh", "-c",
                               loop.replace("URL", f"http://bench.test:{small_port}/")]).stdout.split()]

# 3. 1,000 tunnels held open at once; moat's resident memory meanwhile.
client = f"""
import socket, sys, time
socks = []
fail = 0
for i in range(1000):
    try:
        s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
        s.sendall(b"CONNECT bench.test:{hold_port} HTTP/1.1\\r\\nHost: bench.test\\r\\n\\r\\n")
        if not s.recv(64).startswith(b"HTTP/1.1 200"):
            fail += 1
        socks.append(s)
    except OSError:
        fail += 1
print("ready", len(socks), fail, flush=True)
time.sleep(4)
"""
p = subprocess.Popen([MOAT, "run", *ALLOW, "--", "/usr/bin/python3", "-c", client],
                     stdout=subprocess.PIPE, text=True, cwd=WORK)
ready = p.stdout.readline().split()
time.sleep(1)
with open(f"/proc/{p.pid}/status") as f:
    rss_kib = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
p.wait()

added_ms = (statistics.median(prox) - statistics.median(bare)) * 1000
print(f"""## Network allowlist proxy (`python3 bench/proxy.py`)

moat's proxy against the same transfers made directly, on loopback
(servers on the host, the client inside `moat run --network allow`).

| measure | direct | through moat's proxy | result |
|---|---|---|---|
| one CONNECT tunnel, {SIZE >> 20} MiB (best of 3) | {direct / 1e6:.0f} MB/s | {tunnel / 1e6:.0f} MB/s | {tunnel / direct * 100:.0f} % of direct |
| new connection + small request (median of 300) | {statistics.median(bare) * 1000:.2f} ms | {statistics.median(prox) * 1000:.2f} ms | +{added_ms:.2f} ms |
| 1,000 tunnels open at once | | {ready[1] if len(ready) > 1 else '?'} open, {ready[2] if len(ready) > 2 else '?'} failed | moat's RSS {rss_kib / 1024:.1f} MiB |
""")
