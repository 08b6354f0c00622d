"""gevent helpers: spawn greenlets that keep the trace context; check the monkey-patching order.

A greenlet starts with an empty ``contextvars`` context, so ``gevent.spawn(logger.info, ...)``
— the seed article's fix for slow remote logging — logs without the request's trace id.
``spawn`` and ``spawn_later`` run the greenlet in a copy of the caller's context instead: the
OpenTelemetry context (current span, baggage) and every other context variable come along, and
changes made inside the greenlet stay there.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from typing import Any

from gevent import Greenlet

__all__ = ["check_monkey_patch", "spawn", "spawn_later"]


def spawn(fn: Any, *args: Any, **kwargs: Any) -> Greenlet:
    """``gevent.spawn`` that runs ``fn`` in a copy of the caller's context (trace context included).

    Returns the started ``gevent.Greenlet``, as ``gevent.spawn`` does.
    """
    greenlet = Greenlet(fn, *args, **kwargs)
    greenlet.gr_context = contextvars.copy_context()
    greenlet.start()
    return greenlet


def spawn_later(seconds: float, fn: Any, *args: Any, **kwargs: Any) -> Greenlet:
    """``gevent.spawn_later`` that runs ``fn`` in a copy of the caller's context (taken now)."""
    greenlet = Greenlet(fn, *args, **kwargs)
    greenlet.gr_context = contextvars.copy_context()
    greenlet.start_later(seconds)
    return greenlet


# Thread names of OpenTelemetry SDK workers that must not run as greenlets (upstream's batch
# processors and periodic metric reader).
_SDK_THREAD_PREFIXES = ("OtelBatch", "OtelPeriodicExportingMetricReader")


def check_monkey_patch() -> list[str]:
    """Problems with how gevent monkey-patched this process, as readable sentences (empty: fine).

    Checks: ``socket`` patched but ``threading`` or ``ssl`` not (a partial ``patch_all``); ``ssl``
    imported, with modules holding the unpatched ``SSLContext``, before patching; OpenTelemetry SDK
    worker threads alive while ``threading`` is patched (started after patching they run as
    greenlets and a slow export stalls the hub; started before, they mix real threads with
    patched locks — otel_showmax's own export workers are real OS threads and are not reported).
    """
    problems: list[str] = []
    if "gevent.monkey" not in sys.modules:
        return problems
    from gevent import monkey

    socket_patched = monkey.is_module_patched("socket")
    threading_patched = monkey.is_module_patched("threading")
    if socket_patched and not threading_patched:
        problems.append(
            "gevent patched socket but not threading: call gevent.monkey.patch_all() first thing, "
            "before importing anything else"
        )
    if socket_patched and "ssl" in sys.modules:
        if not monkey.is_module_patched("ssl"):
            problems.append(
                "gevent patched socket but not ssl: TLS connections (e.g. OTLP to a collector over HTTPS) "
                "block the hub; call gevent.monkey.patch_all() before importing ssl"
            )
        else:
            problems.extend(_early_ssl_users(monkey))
    if threading_patched:
        names = sorted(
            t.name for t in threading.enumerate() if t.name.startswith(_SDK_THREAD_PREFIXES) and t.is_alive()
        )
        if names:
            problems.append(
                "OpenTelemetry SDK worker threads run while gevent patched threading "
                f"({', '.join(names)}): started after patching they are greenlets and a slow export stalls "
                "every request; started before, they mix real threads with patched locks. Configure with "
                "otel_showmax.setup(), whose export workers are real OS threads"
            )
    return problems


def _early_ssl_users(monkey: Any) -> list[str]:
    """Modules that imported ssl.SSLContext before gevent patched it."""
    original = monkey.get_original("ssl", "SSLContext")
    import ssl

    if ssl.SSLContext is original:
        return ["ssl.SSLContext is not gevent's: ssl was imported before gevent.monkey.patch_all()"]
    users = sorted(
        name
        for name, module in list(sys.modules.items())
        if module is not None and name != "ssl" and getattr(module, "SSLContext", None) is original
    )
    if not users:
        return []
    return [
        f"ssl was imported before gevent.monkey.patch_all() by {', '.join(users[:5])}"
        f"{' and others' if len(users) > 5 else ''}: their TLS connections block the hub; "
        "patch before importing them"
    ]
