"""Runs a command where no process can create a user namespace.

    python3 no_userns.py COMMAND [ARG ...]

Root only. Installs a seccomp filter (without no_new_privs, which root may
do, so set-user-id programs such as moat's launcher still work) that fails
unshare(2) and clone(2) with CLONE_NEWUSER with EPERM and clone3(2) with
ENOSYS (its flags are behind a pointer the filter cannot read; C
libraries then fall back to clone), then execs COMMAND. The filter is
inherited by everything COMMAND starts, root's processes included, so it
is stricter than the kernel's switches for unprivileged user namespaces
(Debian's kernel.unprivileged_userns_clone=0, Ubuntu's AppArmor
restriction), which leave root free. Only x86-64 is filtered.
"""
import ctypes
import os
import struct
import sys

AUDIT_ARCH_X86_64 = 0xC000003E
NR_UNSHARE, NR_CLONE, NR_CLONE3 = 272, 56, 435
CLONE_NEWUSER = 0x10000000
ALLOW = 0x7FFF0000
ERRNO = 0x00050000
LD_ABS, JEQ, JSET, RET = 0x20, 0x15, 0x45, 0x06

PROGRAM = [
    (LD_ABS, 0, 0, 4),                   # 0: arch
    (JEQ, 0, 7, AUDIT_ARCH_X86_64),      # 1: other arches: allow (9)
    (LD_ABS, 0, 0, 0),                   # 2: syscall number
    (JEQ, 3, 0, NR_UNSHARE),             # 3: -> flags (7)
    (JEQ, 2, 0, NR_CLONE),               # 4: -> flags (7)
    (JEQ, 0, 3, NR_CLONE3),              # 5: not clone3: allow (9)
    (RET, 0, 0, ERRNO | 38),             # 6: clone3: ENOSYS
    (LD_ABS, 0, 0, 16),                  # 7: low word of the flags
    (JSET, 1, 0, CLONE_NEWUSER),         # 8: CLONE_NEWUSER: EPERM (10)
    (RET, 0, 0, ALLOW),                  # 9
    (RET, 0, 0, ERRNO | 1),              # 10
]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    code = b"".join(struct.pack("HBBI", *ins) for ins in PROGRAM)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = struct.pack("HxxxxxxQ", len(PROGRAM), ctypes.addressof(buf))
    pbuf = ctypes.create_string_buffer(prog, len(prog))
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, pbuf, 0, 0) != 0:
        sys.exit(f"no_userns: prctl: {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[1], sys.argv[1:])


main()
