"""Drives `moat mcp` with the official MCP Python SDK (PyPI `mcp`) and prints
one JSON line per check: {"check": ..., "ok": ..., "detail": ...}.

    python3 mcp_client.py MOAT WORKSPACE OUTSIDE_FILE MODE

MODE is "auto" (the SDK's default: `server/discover`, the 2026-07-28
revision) or "legacy" (the `initialize` handshake). A last part speaks raw
JSON-RPC to the server, for what the SDK would never send.
"""

import asyncio
import json
import os
import subprocess
import sys

from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

MOAT, WS, OUTSIDE, MODE = sys.argv[1:5]


def check(name, ok, detail=""):
    print(json.dumps({"check": f"{MODE}: {name}", "ok": bool(ok), "detail": str(detail)[:2000]}), flush=True)


def structured(result):
    return result.structured_content or {}


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


def codex_meta(profile, cwd=WS):
    return {
        "codex/sandbox-state-meta": {
            "permissionProfile": profile,
            "sandboxCwd": "file://" + cwd,
            "codexLinuxSandboxExe": None,
            "useLegacyLandlock": False,
        }
    }


def special(kind, access):
    return {"path": {"type": "special", "value": {"kind": kind}}, "access": access}


async def sdk():
    params = StdioServerParameters(command=MOAT, args=["mcp"], cwd=WS, env=dict(os.environ))
    async with Client(params, mode=MODE, read_timeout_seconds=60) as client:
        check("the session speaks a known revision", client.protocol_version in ("2026-07-28", "2025-11-25"),
              client.protocol_version)
        tools = (await client.list_tools()).tools
        check("the server lists its run tool", [t.name for t in tools] == ["run"], [t.name for t in tools])

        r = await client.call_tool("run", {"command": "echo inside > written.txt && cat written.txt"})
        s = structured(r)
        check("a write inside the workspace works",
              not r.is_error and s.get("exit_code") == 0 and s.get("stdout") == "inside\n"
              and open(os.path.join(WS, "written.txt")).read() == "inside\n", s)

        r = await client.call_tool("run", {"argv": ["sh", "-c", f"echo x >> '{OUTSIDE}'"]})
        s = structured(r)
        check("a write outside is refused, and the result says so",
              s.get("exit_code") not in (0, None) and ("Read-only" in s.get("stderr", "") or
                                                     "Permission denied" in s.get("stderr", ""))
              and open(OUTSIDE).read() == "outside\n", s)
        denial = [d for d in (s.get("report") or {}).get("denials", [])
                  if d.get("kind") == "write" and d.get("target") == OUTSIDE]
        check("the refused write is in the result's denials, with its layer and a hint",
              len(denial) == 1 and denial[0]["layer"] in ("mount", "landlock")
              and denial[0]["hint"].startswith("--allow-write ")
              and f"refused: write {OUTSIDE}" in text_of(r), s.get("report"))

        r = await client.call_tool("run", {"command": "exit 7"})
        check("the exit status comes back", structured(r).get("exit_code") == 7, structured(r))

        r = await client.call_tool("run", {"command": "sleep 30 & sleep 30; echo never", "timeout_seconds": 1})
        s = structured(r)
        check("a call that outlives its timeout is killed with its whole tree",
              s.get("timed_out") is True and "never" not in s.get("stdout", ""), s)

        r = await client.call_tool("run", {"command": "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo END"})
        s = structured(r)
        check("a huge output is bounded and says what was cut",
              s.get("stdout_omitted_bytes", 0) > 2000000 and s.get("stdout", "").rstrip().endswith("END")
              and len(s.get("stdout", "")) < 200000 and "left out by moat" in s.get("stdout", ""),
              {k: (v if k != "stdout" else len(v)) for k, v in s.items() if k != "report"})

        r = await client.call_tool("run", {"argv": ["python3", "-c",
                                                    "import socket; socket.create_connection(('1.1.1.1', 53), 3)"]})
        s = structured(r)
        check("the network is refused", s.get("exit_code") not in (0, None), s)
        check("and the refused connection is in the result's denials",
              any(d.get("kind") == "network" and d.get("target") == "1.1.1.1:53"
                  and d.get("layer") == "network-namespace"
                  for d in (s.get("report") or {}).get("denials", [])), s.get("report"))

        r = await client.call_tool("run", {"command": "true", "network": ["example.com"]})
        s = structured(r)
        check("asking for the network moat's policy keeps off is refused",
              r.is_error and "network is off" in (s.get("refused") or ""), s)

        r = await client.call_tool("run", {"command": "pwd", "cwd": "/"})
        check("a working directory outside the workspace is refused",
              r.is_error and structured(r).get("refused"), structured(r))

        # Codex's permission profile: read-only narrows the call...
        read_only = {"type": "managed", "network": "restricted",
                     "file_system": {"type": "restricted", "entries": [special("root", "read")]}}
        r = await client.call_tool("run", {"command": "echo no > codex.txt"}, meta=codex_meta(read_only))
        s = structured(r)
        check("a Codex read-only profile narrows the call, and the result says so",
              not r.is_error and s.get("exit_code") not in (0, None)
              and not os.path.exists(os.path.join(WS, "codex.txt"))
              and any("nothing writable" in n for n in s.get("narrowed", [])), s)
        workspace = {"type": "managed", "network": "restricted",
                     "file_system": {"type": "restricted",
                                     "entries": [special("root", "read"), special("project_roots", "write")]}}
        r = await client.call_tool("run", {"command": "echo yes > codex.txt"}, meta=codex_meta(workspace))
        check("a Codex workspace profile lets the call write the workspace",
              not r.is_error and structured(r).get("exit_code") == 0
              and os.path.exists(os.path.join(WS, "codex.txt")), structured(r))
        # ... and one that would widen it is refused.
        wider = {"type": "managed", "network": "restricted",
                 "file_system": {"type": "restricted", "entries": [
                     special("root", "read"), {"path": {"type": "path", "path": os.path.dirname(OUTSIDE)},
                                               "access": "write"}]}}
        r = await client.call_tool("run", {"command": f"echo x >> '{OUTSIDE}'"}, meta=codex_meta(wider))
        s = structured(r)
        check("a Codex profile that would widen the policy is refused",
              r.is_error and "not writable in your moat policy" in (s.get("refused") or "")
              and open(OUTSIDE).read() == "outside\n", s)


async def allowlisted(port):
    """A server whose policy allows one name: a call narrows to it or to nothing, never beyond."""
    args = ["mcp", "--network", "allow", "--allow-domain", "ok.test", "--resolve", "ok.test:127.0.0.1",
            "--resolve", "no.test:127.0.0.1", "--allow-cidr", "127.0.0.1/32"]
    params = StdioServerParameters(command=MOAT, args=args, cwd=WS, env=dict(os.environ))
    fetch = ["python3", "-c", "import sys, urllib.request; "
             "print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"]
    url = f"http://ok.test:{port}/pip/simple/moat-leaf/"
    async with Client(params, mode=MODE, read_timeout_seconds=60) as client:
        r = await client.call_tool("run", {"argv": fetch + [url], "network": ["ok.test"]})
        s = structured(r)
        check("a call that names an allowed destination reaches it",
              not r.is_error and s.get("exit_code") == 0 and "moat_leaf" in s.get("stdout", ""), s)
        r = await client.call_tool("run", {"argv": fetch + [url]})
        s = structured(r)
        check("the same call without naming it has no network",
              not r.is_error and s.get("exit_code") not in (0, None), s)
        r = await client.call_tool("run", {"argv": fetch + [url], "network": ["no.test"]})
        s = structured(r)
        check("a call that names a destination beyond the allowlist is refused",
              r.is_error and "not on your moat policy's allowlist" in (s.get("refused") or ""), s)


def raw():
    """Malformed messages get JSON-RPC errors; the server keeps serving."""
    proc = subprocess.Popen([MOAT, "mcp"], cwd=WS, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)

    def ask(line):
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
    answer = ask(json.dumps(init))
    check("raw: initialize echoes a known revision", answer.get("result", {}).get("protocolVersion") == "2025-06-18", answer)
    answer = ask("{this is not json")
    check("raw: not JSON gets a parse error", answer.get("error", {}).get("code") == -32700, answer)
    answer = ask(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "no/such"}))
    check("raw: an unknown method gets method-not-found", answer.get("error", {}).get("code") == -32601, answer)
    answer = ask(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                             "params": {"name": "run", "arguments": {"nonsense": 1}}}))
    check("raw: bad arguments get invalid-params", answer.get("error", {}).get("code") == -32602, answer)
    answer = ask(json.dumps({"id": 4, "method": "ping"}))
    check("raw: a message without jsonrpc 2.0 is an invalid request", answer.get("error", {}).get("code") == -32600, answer)
    answer = ask(json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                             "params": {"name": "run", "arguments": {"command": "echo still"}}}))
    check("raw: the next call still works",
          answer.get("result", {}).get("structuredContent", {}).get("stdout") == "still\n", answer)
    proc.stdin.close()
    check("raw: the server ends when its input does", proc.wait(timeout=30) == 0, proc.returncode)


asyncio.run(sdk())
if os.environ.get("MOAT_TEST_REGISTRY_PORT"):
    asyncio.run(allowlisted(os.environ["MOAT_TEST_REGISTRY_PORT"]))
if MODE == "auto":
    raw()
