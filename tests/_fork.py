"""Shared test helper: run a check in a forked child and get its verdict back."""

from __future__ import annotations

import os
from collections.abc import Callable


def in_child(check: Callable[[], bool | None]) -> int:
    """Run ``check`` in a forked child; its exit code: 0 when it returned anything but False, 3 when
    it returned False, 1 when it raised. The child never returns to the caller's code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            code = 3 if check() is False else 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
