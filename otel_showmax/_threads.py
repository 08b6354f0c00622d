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


IMPORTS = allocate_lock()
"""Held while this process imports a library graph for the first time off the main path: the export
thread making its exporter (requests, urllib3, grpc) and the instrumentors turned on before the first
request. Two threads importing the same packages at once can get each other's half-initialised
modules (importlib's deadlock detection hands one of them the partial module: ``ImportError:
cannot import name ... from partially initialized module``). Not re-entrant; never nest."""


def hold_imports_cooperatively() -> None:
    """Acquire ``IMPORTS`` from a request greenlet: poll, and sleep in between (a greenlet switch
    under gevent's patched ``time``), so the hub keeps serving while the export thread imports."""
    import time

    while not IMPORTS.acquire(False):
        time.sleep(0.005)


def start_thread(target: Callable[[], None]) -> int:
    """Start ``target`` on a new real OS thread; return its ident."""
    return _original("start_new_thread")(target, ())


def gevent_patched(module: str = "threading") -> bool:
    """Whether gevent has monkey-patched ``module`` in this process."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey is not None and monkey.is_module_patched(module))


class _RealLocks:
    """``threading`` as a module sees it after ``use_real_locks``: ``Lock`` and ``RLock`` are real."""

    def __init__(self, rlock: Callable[[], Any]) -> None:
        self.Lock = self.RLock = rlock

    def __getattr__(self, name: str) -> Any:
        import threading

        return getattr(threading, name)


# (module name, attribute) -> what use_real_locks replaced there
_replaced: dict[tuple[str, str], Any] = {}


def use_real_locks(modules: tuple[str, ...]) -> None:
    """Make the locks ``modules`` create real re-entrant locks (``threading.Lock()``, or a ``Lock`` /
    ``RLock`` imported from threading).

    For modules whose locks guard only a few dict/list/arithmetic operations (the SDK span, its
    bounded attributes and lists, metric aggregations): no greenlet switch happens while one is
    held, so gevent's Python-level locks buy nothing there and cost ~0.4 µs per creation and per
    acquire. A real ``_thread.RLock`` still excludes other OS threads (the metric reader's);
    re-entrant, because its owner is the OS thread: if a section ever did yield (a warning logged
    through a handler doing I/O), another greenlet entering it re-enters instead of blocking the
    hub. Affects locks created afterwards; idempotent; undone by ``restore_locks``.
    """
    import threading

    rlock = _original("RLock")
    namespace = _RealLocks(rlock)
    for name in modules:
        module = sys.modules.get(name)
        if module is None:
            continue
        if getattr(module, "threading", None) is threading and (name, "threading") not in _replaced:
            _replaced[(name, "threading")] = threading
            module.threading = namespace  # type: ignore[attr-defined]
        for attr in ("Lock", "RLock"):
            if attr in vars(module) and (name, attr) not in _replaced:
                _replaced[(name, attr)] = getattr(module, attr)
                setattr(module, attr, rlock)


def restore_locks() -> None:
    """Undo ``use_real_locks`` (tests)."""
    for (name, attr), original in list(_replaced.items()):
        module = sys.modules.get(name)
        if module is not None:
            setattr(module, attr, original)
        del _replaced[(name, attr)]
