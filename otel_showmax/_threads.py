"""Real OS threads and locks, even when gevent has monkey-patched ``threading``.

Export workers must never run as greenlets: a blocking export (gRPC against a blackholed collector,
say) would stall the hub and every request with it. gevent keeps the unpatched originals; we use
them whether gevent patched before or after this module was imported.
"""

from __future__ import annotations

import _thread
import sys
from collections.abc import Callable
from typing import Any


def _original(name: str) -> Any:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original("_thread", name)
    return getattr(_thread, name)


def allocate_lock() -> Any:
    """A real ``_thread`` lock (blocks the OS thread, not the hub)."""
    return _original("allocate_lock")()


def start_thread(target: Callable[[], None]) -> int:
    """Start ``target`` on a new real OS thread; return its ident."""
    return _original("start_new_thread")(target, ())


def gevent_patched(module: str = "threading") -> bool:
    """Whether gevent has monkey-patched ``module`` in this process."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched(module))
