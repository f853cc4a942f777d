"""Run a command in which flock(2) fails with ENOSYS or ENOLCK, as on a file system without flock
(Lustre mounted ``noflock``: ENOSYS; NFS without lockd: ENOLCK).

    python tests/tools/noflock.py ENOSYS COMMAND [ARG ...]

A seccomp filter (libseccomp, through ctypes) makes the kernel answer every ``flock`` of the
command and of every process it starts with that errno; nothing in the project is patched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000


def deny_flock(code: int) -> None:
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    nr = lib.seccomp_syscall_resolve_name(b"flock")
    if lib.seccomp_rule_add(ctx, SCMP_ACT_ERRNO | (code & 0xFFFF), nr, 0) != 0:
        raise OSError("seccomp_rule_add failed")
    if lib.seccomp_load(ctx) != 0:
        raise OSError("seccomp_load failed")


def main() -> None:
    code = getattr(errno, sys.argv[1])
    deny_flock(code)
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
