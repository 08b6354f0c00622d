"""Every installed OpenTelemetry instrumentor turned on once per process, as the wrapper does.

``opentelemetry-instrument`` loads each entry point of the ``opentelemetry_instrumentor`` group
(``requests``, ``sqlite3``, ``redis`` ...); ``setup()`` does the same, so one call traces the whole
service: client spans for outgoing HTTP, database and cache spans. Exactly once per process,
whichever entry point came first: under the wrapper, its own loader does it and ``setup()`` only
reports. Skipped: the names in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (or ``*`` for all),
those outside ``instrumentations`` when that is a list, instrumentors whose library is missing or
of an unsupported version, ``falcon`` (otel_showmax instruments Falcon itself) and ``logging``
(otel_showmax correlates logs itself; a second record factory would duplicate the fields).

gevent: importing the libraries before gevent has patched (``requests`` copies names out of
``ssl``) would make a later ``patch_all`` warn and keep unpatched names. So in a process where
gevent has not patched ``ssl`` and urllib3 is not imported yet (a gunicorn ``--preload`` master, an
app that calls ``setup()`` above its ``patch_all``), the instrumentors are turned on right after
``patch_all``, or before the first Falcon request this process serves, whichever comes first.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .. import _diag, _threads
from .._config import Libraries

__all__ = ["GROUP", "Libraries", "installed_names", "instrument_installed", "later", "pending", "run_pending",
           "uninstrument"]

GROUP = "opentelemetry_instrumentor"
OWN = {
    "falcon": "otel_showmax instruments Falcon itself (otel_showmax.falcon)",
    "logging": "otel_showmax correlates logs itself (otel_showmax.correlation)",
}


_lock = threading.Lock()
_run_lock = threading.Lock()
_ours: list[Any] = []  # the instrumentors this module turned on, for uninstrument()
_waiting: list[Callable[[], None]] = []  # what waits for patch_all or the first request, in order
_subscribed: list[bool] = []
pending = False
"""Instrumentors wait for gevent's ``patch_all`` or this process's first request (read per request)."""


def installed_names() -> list[str]:
    """The names of the installed ``opentelemetry_instrumentor`` entry points."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def instrument_installed(enabled: tuple[str, ...] | None, disabled: tuple[str, ...], *,
                         wrapper: bool = False) -> Libraries:
    """Turn on every installed instrumentor once; returns the report (filled later when deferred).

    Args:
        enabled: only these names (None: all installed).
        disabled: never these names (``*``: none at all).
        wrapper: ``opentelemetry-instrument`` is configuring this process and loads them itself.
    """
    report = Libraries(by_wrapper=wrapper)
    _warn_unknown(enabled or (), "instrumentations")
    _warn_unknown(disabled, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")
    if wrapper:
        return report

    def run() -> None:
        report.pending = False
        _run(report, enabled, disabled)

    report.pending = later(run)
    return report


def later(action: Callable[[], None]) -> bool:
    """Run ``action`` now if gevent cannot mind, else after ``patch_all`` or before the first request.

    Returns whether it waits. The distro routes ``opentelemetry-instrument``'s own instrumentor
    loading through here too, so the wrapper in a gunicorn master is as gevent-safe as ``setup()``.
    """
    global pending
    if not _too_early_for_gevent():
        action()
        return False
    _waiting.append(action)
    pending = True
    if not _subscribed:
        try:
            import zope.event  # gevent's dependency; gevent notifies its subscribers
        except ImportError:  # pragma: no cover - gevent is a dependency of otel_showmax
            run_pending()
            return False
        zope.event.subscribers.append(_after_patch_all)
        _subscribed.append(True)
    return True


def run_pending() -> None:
    """Run what waits now (before this process serves its first request)."""
    global pending
    with _lock:
        actions = list(_waiting)
        _waiting.clear()
        pending = False
    if not actions:
        return
    _threads.hold_imports_cooperatively()  # not while the export thread imports requests (see _threads)
    try:
        for action in actions:
            try:
                action()
            except Exception as error:  # never break a request
                _diag.warn("instrumentations_deferred", "instrumentations not turned on: %r", error)
    finally:
        _threads.IMPORTS.release()


def _warn_unknown(names: tuple[str, ...], setting: str) -> None:
    known = set(installed_names())
    for name in names:
        if name != "*" and name not in known:
            _diag.once(
                f"unknown_instrumentation:{setting}:{name}",
                "%s names %r, which is not an installed instrumentation (installed: %s)",
                setting, name, ", ".join(sorted(known)) or "none",
            )


def _too_early_for_gevent() -> bool:
    """gevent has not patched ``ssl`` and nothing holds ``ssl`` names yet: a ``patch_all`` may follow.

    urllib3 (under requests and most HTTP clients) copies names out of ``ssl``: once the app has
    imported it, a later ``patch_all`` warns anyway and waiting gains nothing.
    """
    return "urllib3" not in sys.modules and not _threads.gevent_patched("ssl")


def _after_patch_all(event: Any) -> None:
    """zope.event subscriber: must never raise (gevent would skip the subscribers after it)."""
    if _waiting and type(event).__name__ == "GeventDidPatchAllEvent":
        run_pending()


def _run(report: Libraries, enabled: tuple[str, ...] | None, disabled: tuple[str, ...]) -> None:
    with _run_lock:
        seen: set[str] = set()
        for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
            if ep.name in seen:
                continue
            seen.add(ep.name)
            reason = _reason_to_skip(ep.name, enabled, disabled)
            if reason is None:
                reason = _instrument(ep)
            if reason is None:
                report.active.append(ep.name)
            else:
                report.skipped[ep.name] = reason


def _reason_to_skip(name: str, enabled: tuple[str, ...] | None, disabled: tuple[str, ...]) -> str | None:
    if name in OWN:
        return OWN[name]
    if "*" in disabled or name in disabled:
        return "disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
    if enabled is not None and name not in enabled:
        return "not listed in instrumentations"
    return None


def _instrument(ep: EntryPoint) -> str | None:
    """Turn one instrumentor on; None when it is on, else why not."""
    try:
        from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

        dist = getattr(ep, "dist", None)
        conflict = get_dist_dependency_conflicts(dist) if dist is not None else None
        if conflict is not None:
            return f"library missing or of another version: {conflict}"
        instrumentor = ep.load()()
        if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
            return None  # already on in this process (by the app, or inherited from the master)
        instrumentor.instrument(skip_dep_check=True)
        _ours.append(instrumentor)
    except ModuleNotFoundError as error:
        return f"library not installed ({error.name})"
    except Exception as error:
        _diag.once(f"instrumentation_failed:{ep.name}", "instrumentation %r failed and was skipped: %r",
                   ep.name, error)
        return f"failed: {type(error).__name__}: {error}"
    return None


def uninstrument() -> None:
    """Turn off what this module turned on and forget what waits (``otel_showmax.testing.reset``)."""
    global pending
    with _run_lock:
        _waiting.clear()
        pending = False
        while _ours:
            instrumentor = _ours.pop()
            try:
                instrumentor.uninstrument()
            except Exception as error:  # pragma: no cover - defensive
                _diag.warn("instrumentations_off", "could not turn %r off: %r", instrumentor, error)
