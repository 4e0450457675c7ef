"""The secret broker's cost: HTTPS requests through a host whose TLS moat
terminates (to put a secret in) against the same requests through a plain
tunnel to another name of the same server, alternating in one sandboxed
client, each on a connection of its own (the broker takes one request per
connection).

    python3 bench/secrets.py MOAT [ROUNDS] > section.md

The server is the tests' HTTPS server (crates/moat-cli/tests/
secrets_server.py) on a loopback address; the client runs inside
`moat run --network allow --secret API_TOKEN:secret.test` and reaches it
through moat's proxy. Prints a Markdown section for BENCHMARKS.md.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MOAT = os.path.abspath(sys.argv[1])
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDR = "127.0.0.9"
TOKEN = "ghp_" + "b3nch" * 7 + "0"

CLIENT = r'''
import http.client, json, os, ssl, sys, time
rounds = int(sys.argv[1])
ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
ctx.load_verify_locations("test-ca.pem")
auth = {"Authorization": "Bearer " + os.environ["API_TOKEN"]}
out = {"secret.test": [], "other.test": []}
def one(host):
    start = time.perf_counter()
    c = http.client.HTTPSConnection("127.0.0.1", 3128, context=ctx)
    c.set_tunnel(host, 443)
    c.request("GET", "/", headers=auth)
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, (host, r.status, body)
    out[host].append(time.perf_counter() - start)
for host in ("secret.test", "other.test") * 5:
    one(host)
out = {"secret.test": [], "other.test": []}
for i in range(rounds):
    for host in (("secret.test", "other.test") if i % 2 == 0 else ("other.test", "secret.test")):
        one(host)
print(json.dumps(out))
'''


def main():
    work = tempfile.mkdtemp(prefix="moat-bench-secrets-")
    os.chmod(work, 0o755)
    server = subprocess.Popen(
        ["python3", os.path.join(ROOT, "crates/moat-cli/tests/secrets_server.py"),
         work, ADDR, TOKEN])
    try:
        for _ in range(300):
            if os.path.exists(os.path.join(work, "port")):
                break
            time.sleep(0.02)
        port = open(os.path.join(work, "port")).read().strip()
        if port != "443":
            sys.exit("bench/secrets.py: the server needs port 443 (run as root)")
        ws = os.path.join(work, "ws")
        os.mkdir(ws)
        shutil.copy(os.path.join(work, "ca.pem"), os.path.join(ws, "test-ca.pem"))
        with open(os.path.join(ws, "client.py"), "w") as f:
            f.write(CLIENT)
        args = [MOAT, "run", "--tier", "unelevated", "--workspace", ws, "--network", "allow",
                "--allow-domain", "other.test", "--allow-cidr", ADDR + "/32",
                "--resolve", "secret.test:" + ADDR, "--resolve", "other.test:" + ADDR,
                "--upstream-ca", os.path.join(work, "ca.pem"),
                "--secret", "API_TOKEN:secret.test", "-q",
                "--", "python3", "client.py", str(ROUNDS)]
        env = dict(os.environ, API_TOKEN=TOKEN)
        got = subprocess.run(args, cwd=ws, env=env, capture_output=True, text=True)
        if got.returncode != 0:
            sys.exit("bench/secrets.py: the client failed:\n" + got.stdout + got.stderr)
        times = json.loads(got.stdout)
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    ms = lambda xs: statistics.median(xs) * 1000
    term, tunnel = times["secret.test"], times["other.test"]
    added = ms(term) - ms(tunnel)
    print(f"""## Secret broker (`bench/secrets.py`, run by `bench/run.sh`)

HTTPS requests from one client inside `moat run --network allow --secret
API_TOKEN:secret.test`, each on its own connection through moat's proxy,
to one local HTTPS server (Python, TLS 1.3) under two names: `secret.test`,
whose TLS moat terminates to put the token in (a second TLS session from
moat to the server), and `other.test`, a plain tunnel. {ROUNDS} rounds,
alternating which name goes first.

| path | median per request | requests per second (one client) |
|---|---|---|
| plain tunnel (`other.test`) | {ms(tunnel):.2f} ms | {len(tunnel) / sum(tunnel):.0f} |
| terminated, secret put in (`secret.test`) | {ms(term):.2f} ms | {len(term) / sum(term):.0f} |

Added median latency: {added:.2f} ms (goal: under 1 ms).""")


main()
