"""Talks to the launcher the way moat does, with any request bytes.

Usage: launcher_client.py LAUNCHER < REQUEST
Prints `status N` and, when the launcher refused, `reason TEXT`.
The launcher gets the control socket as descriptor 3 and the descriptor
channel as 4; the request is written to 3 and its end signalled.
"""
import os
import socket
import subprocess
import sys

launcher = sys.argv[1]
request = sys.stdin.buffer.read()
control, control_child = socket.socketpair()
channel, channel_child = socket.socketpair()


def arrange():
    os.dup2(control_child.fileno(), 3)
    os.dup2(channel_child.fileno(), 4)


try:
    proc = subprocess.Popen([launcher], preexec_fn=arrange, pass_fds=(3, 4), env={})
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
print(f"status {status}")
if reason:
    print("reason " + reason.decode(errors="replace").replace("\n", " | "))
