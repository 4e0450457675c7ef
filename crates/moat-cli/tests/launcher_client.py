"""Talks to the launcher the way moat does, with any request bytes, and
can start it the way a hostile caller would.

Usage: launcher_client.py LAUNCHER [CONFIG] < REQUEST
Prints `status N` (or `signal N`) and, when the launcher refused,
`reason TEXT`.

The launcher gets the control socket as descriptor 3 and the descriptor
channel as 4; the request is written to 3 and its end signalled. CONFIG,
a JSON object, says what the caller leaves the launcher with:
  "env":        {NAME: VALUE, ...}   its environment (default: empty)
  "umask":      N                    its umask
  "rlimits":    {"FSIZE": [soft, hard], "NOFILE": [...], ...}
  "extra_fds":  {"N": PATH, ...}     descriptors left open, by number
  "close":      [N, ...]             standard descriptors left closed
  "plant":      {"dir": D, "target": T, "names": [NAME, ...]}
                symlinks D/NAME -> T made just before the exec, "{pid}" in
                a name being the launcher's pid
  "ignore":     [SIGNAME, ...]       signals left ignored
  "block":      [SIGNAME, ...]       signals left blocked
  "alarm":      SECONDS              an interval timer left running
  "stdout_to":  PATH                 the command's output goes there
  "argv":       [ARG, ...]           arguments (for controls that start an
                                     ordinary program in its place)
"""
import json
import os
import resource
import signal
import socket
import subprocess
import sys

launcher = sys.argv[1]
config = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
request = sys.stdin.buffer.read()
control, control_child = socket.socketpair()
channel, channel_child = socket.socketpair()
extra = {int(n): os.open(p, os.O_RDONLY) for n, p in config.get("extra_fds", {}).items()}
stdout = open(config["stdout_to"], "wb") if "stdout_to" in config else None


def arrange():
    os.dup2(control_child.fileno(), 3)
    os.dup2(channel_child.fileno(), 4)
    for n, fd in extra.items():
        os.dup2(fd, n)
    plant = config.get("plant")
    if plant:
        for name in plant["names"]:
            link = os.path.join(plant["dir"], name.replace("{pid}", str(os.getpid())))
            try:
                os.symlink(plant["target"], link)
            except FileExistsError:
                pass
    if "umask" in config:
        os.umask(config["umask"])
    for name in config.get("ignore", []):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    block = [getattr(signal, n) for n in config.get("block", [])]
    if block:
        signal.pthread_sigmask(signal.SIG_BLOCK, block)
    if "alarm" in config:
        signal.setitimer(signal.ITIMER_REAL, config["alarm"], config["alarm"])
    for name, (soft, hard) in config.get("rlimits", {}).items():
        resource.setrlimit(getattr(resource, "RLIMIT_" + name), (soft, hard))
    for n in config.get("close", []):
        os.close(n)


try:
    proc = subprocess.Popen(
        [launcher, *config.get("argv", [])],
        preexec_fn=arrange,
        pass_fds=(3, 4, *extra.keys()),
        env=config.get("env", {}),
        stdout=stdout,
    )
except OSError as e:
    print(f"status exec-failed {e.errno}")
    sys.exit(0)
control_child.close()
channel_child.close()
try:
    control.sendall(request)
except OSError:
    pass
control.shutdown(socket.SHUT_WR)
reason = b""
while True:
    chunk = channel.recv(65536)
    if not chunk:
        break
    reason += chunk
status = proc.wait()
print(f"status {status}" if status >= 0 else f"signal {-status}")
if reason:
    print("reason " + reason.decode(errors="replace").replace("\n", " | "))
