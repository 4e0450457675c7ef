"""Looks for a value everywhere a process can read: its environment, the
environment and command line of every process it can see, and the files
under the given directories. The value comes reversed, so that no command
line holds it.

Usage: find_value.py REVERSED DIR...   prints "found nothing", or
"found in: PLACE, ..." naming where it was.
"""
import os
import sys

value = sys.argv[1][::-1].encode()
found = []
if value in b"\0".join(k + b"=" + v for k, v in os.environb.items()):
    found.append("the environment")
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for what in ("environ", "cmdline"):
        try:
            with open(f"/proc/{pid}/{what}", "rb") as f:
                if value in f.read():
                    found.append(f"/proc/{pid}/{what}")
        except OSError:
            pass
for top in sys.argv[2:]:
    for root, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    if value in f.read(1 << 22):
                        found.append(path)
            except OSError:
                pass
print("found in: " + ", ".join(found) if found else "found nothing")
