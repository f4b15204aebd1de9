"""Runs one child of `comfyws run`: default signal dispositions, and SIGTERM when the supervisor dies.

`python -m comfyws.lifeline PARENT_PID COMMAND [ARGS...]` prepares the process and then execs COMMAND in place
(same pid, so the supervisor's process group and pid stay right). Signals ignored by a background start (SIGINT
in a non-interactive shell's `&` job, SIGHUP under nohup) would otherwise stay ignored through exec. On Linux the
kernel sends SIGTERM to the process when the supervisor dies, even by SIGKILL, so no child keeps holding its port;
this is set here, after the fork, rather than in a `preexec_fn`, which is unsafe in a process with threads.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
_RESET = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        sys.stderr.write(f"comfyws.lifeline: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}\n")


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit():
        sys.exit("usage: python -m comfyws.lifeline PARENT_PID COMMAND [ARGS...]")
    parent, command = int(argv[0]), argv[1:]
    for sig in _RESET:
        signal.signal(sig, signal.SIG_DFL)
    _die_with_parent()
    if os.getppid() != parent:  # the supervisor died before the death signal was armed
        sys.exit(f"comfyws.lifeline: supervisor {parent} is gone; not starting {command[0]}")
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
