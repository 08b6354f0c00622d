"""uWSGI hooks: re-initialise each worker after uWSGI's C fork and flush it at exit.

The public module is ``otel_showmax.uwsgi``; ``setup()`` installs these hooks itself under uWSGI,
injecting what they call (``install(after_fork=..., at_exit=..., workers=...)``).

uWSGI forks its workers in C (``os.register_at_fork`` never runs there) and skips Python's
``atexit`` in gevent workers: these hooks chain ``uwsgi.post_fork_hook`` (or uwsgidecorators'
chain) and ``uwsgi.atexit`` instead, and warn once about combinations known to break (``check()``).

Stopping uWSGI: plain SIGTERM to the master means *reload* to uWSGI 2.0 unless ``die-on-term`` is
set; use ``die-on-term`` + SIGTERM, SIGINT, or the master FIFO (``q``) to stop it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["check", "install", "installed", "running_under_uwsgi"]

_installed_in: int | None = None  # pid of the process that ran install()
_on_fork: Callable[[], object] | None = None  # injected by install(): re-initialise this process
_on_exit: Callable[[], object] | None = None  # injected: flush and stop within the budget
_workers: Callable[[], list[Any] | None] | None = None  # injected: this configuration's export workers


def running_under_uwsgi() -> bool:
    """Whether this interpreter is embedded in uWSGI (``import uwsgi`` works)."""
    if sys.modules.get("uwsgi") is not None:
        return True
    try:
        import uwsgi  # noqa: F401
    except ImportError:
        return False
    return True


def installed() -> bool:
    """Whether the hooks are in place (installed in this process or inherited from the master)."""
    return _installed_in is not None


def install(*, after_fork: Callable[[], object], at_exit: Callable[[], object],
            workers: Callable[[], list[Any] | None]) -> bool:
    """Install the post-fork and atexit hooks once; returns False when not under uWSGI.

    Args:
        after_fork: Called in each new worker before it serves: fresh export pipeline, own pid.
        at_exit: Called when uWSGI stops, reloads or recycles the process: bounded flush.
        workers: This configuration's export workers, or None when it has not published them yet.
    """
    global _installed_in, _on_fork, _on_exit, _workers
    try:
        import uwsgi
    except ImportError:
        return False
    if _installed_in is not None:
        return True
    _on_fork, _on_exit, _workers = after_fork, at_exit, workers
    _installed_in = os.getpid()
    _chain_post_fork(uwsgi)
    _chain_atexit(uwsgi)
    worker_id = _worker_id(uwsgi)
    for message in check(uwsgi.opt, has_threads=getattr(uwsgi, "has_threads", 1), loop=_loop(uwsgi),
                         worker_id=worker_id):
        _warn(message)
    if worker_id == 0 and not _flag(uwsgi.opt, "py-call-uwsgi-fork-hooks"):
        _hold_export_threads()
    return True


# -- the master: no export thread while it may still fork -------------------------------------------
#
# uWSGI forks workers from C with the GIL released, so any Python thread of the master may hold
# the GIL at that instant; the new worker then waits for it forever (take_gil in
# uwsgi_python_master_fixup) and never serves nor stops. uWSGI's py-call-uwsgi-fork-hooks avoids
# it (the forking thread holds the GIL); otherwise the master must not run Python threads while
# it can still fork (initial spawn, respawns after max-requests, reloads). So in the master the
# span and log workers queue what the master itself emits (an import-time log line, say) without
# starting their threads; workers start their own threads on first use, as every forked process
# does. uWSGI 2.0.31's master calls neither uwsgi.atexit nor Python's atexit when it stops
# (SIGINT, die-on-term + SIGTERM), so what the master itself queued is not exported; should a
# uWSGI version call uwsgi.atexit there, _release_held() exports it then.
#
# The span and log workers are found through the global providers when setup() has not published
# its state yet (it calls install() first). setup() itself starts no metrics reader thread in a
# uWSGI master (each worker starts its own after fork).

_held: list[Any] = []


def _export_workers() -> list[Any]:
    """The span and log BatchWorkers of this process's configuration."""
    from .. import _upstream

    published = _workers() if _workers is not None else None
    if published is not None:
        return published
    # setup() calls install() before it publishes its state: reach the workers through the
    # providers it has already installed globally.
    from opentelemetry import trace

    workers = []
    for provider, processors in ((trace.get_tracer_provider(), _upstream.span_processors),
                                 (_upstream.logs_api.get_logger_provider(), _upstream.log_processors)):
        try:
            found = processors(provider)
        except AttributeError:  # not an SDK provider
            continue
        workers += [p.worker for p in found if hasattr(p, "worker")]
    return workers


def _hold_export_threads() -> None:
    for worker in _export_workers():
        if worker.hold():  # put() queues without starting the thread
            _held.append(worker)


def _release_held() -> None:
    for worker in _held:
        worker.release()  # the master is exiting: no more forks; export what it queued
    _held.clear()


# -- hooks ------------------------------------------------------------------------------------------


def _post_fork() -> None:
    """In a new worker (mule, spooler): fresh queues and threads, resource with this pid."""
    if _on_fork is not None:
        _on_fork()


def _at_exit() -> None:
    """uWSGI is stopping, reloading or recycling this process: flush within the budget."""
    if _workers is not None and _workers() is not None:
        _release_held()
        if _on_exit is not None:
            _on_exit()


def _chain_post_fork(uwsgi: Any) -> None:
    decorators = sys.modules.get("uwsgidecorators")
    if decorators is not None and getattr(uwsgi, "post_fork_hook", None) is getattr(decorators, "postfork_chain_hook", 0):
        # uwsgidecorators owns the hook and runs its chain: join the chain, first.
        decorators.postfork_chain.insert(0, _post_fork)
        return
    previous = getattr(uwsgi, "post_fork_hook", None)
    uwsgi.post_fork_hook = _chained(_post_fork, previous)


def _chain_atexit(uwsgi: Any) -> None:
    previous = getattr(uwsgi, "atexit", None)
    # The app's own hook runs first (it may still log); then ours flushes everything.
    uwsgi.atexit = _chained(previous, _at_exit) if previous is not None else _chained(_at_exit, None)


def _chained(first: Callable[[], Any] | None, second: Callable[[], Any] | None) -> Callable[[], None]:
    def hook() -> None:
        for fn in (first, second):
            if fn is None:
                continue
            try:
                fn()
            except Exception as error:  # one failing hook must not skip the other
                _warn(f"uWSGI hook {getattr(fn, '__qualname__', fn)!r} failed: {error!r}")

    hook.otel_showmax_chain = (first, second)  # type: ignore[attr-defined]
    return hook


# -- checks -----------------------------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on", "y", "t")


def _flag(opt: Mapping[str, Any], name: str) -> bool:
    value = opt.get(name)
    if isinstance(value, list):
        value = value[-1] if value else None
    if value is None or value is False:
        return False
    if value is True:
        return True
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.strip().lower() in _TRUE


def _loop(uwsgi: Any) -> str:
    loop = getattr(uwsgi, "loop", None)
    if isinstance(loop, bytes):
        loop = loop.decode()
    return loop or ""


def _worker_id(uwsgi: Any) -> int:
    try:
        return int(uwsgi.worker_id())
    except Exception:
        return 0


def check(opt: Mapping[str, Any], *, has_threads: int = 1, loop: str = "", worker_id: int = 0) -> list[str]:
    """Messages about uWSGI options known to break telemetry (empty when all is well).

    Args:
        opt: ``uwsgi.opt`` (option name → ``True``, bytes, or a list of them).
        has_threads: ``uwsgi.has_threads``; 0 when Python threads are disabled.
        loop: ``uwsgi.loop``, e.g. ``"gevent"``.
        worker_id: ``uwsgi.worker_id()``; 0 in the master (the app is loaded before forking).
    """
    messages = []
    gevent = loop == "gevent" or "gevent" in opt
    if _flag(opt, "gevent-early-monkey-patch") and _flag(opt, "py-call-uwsgi-fork-hooks"):
        messages.append(
            "uWSGI runs with gevent-early-monkey-patch and py-call-uwsgi-fork-hooks together: this combination "
            "is known to crash workers (segmentation fault) at fork; drop py-call-uwsgi-fork-hooks — otel_showmax "
            "re-initialises each worker through uwsgi.post_fork_hook without it"
        )
    if not has_threads and not gevent:
        messages.append(
            "uWSGI runs without enable-threads and without the gevent loop: the export threads will never run, "
            "so no telemetry leaves this process; add enable-threads = true (or run with gevent)"
        )
    lazy = _flag(opt, "lazy-apps") or _flag(opt, "lazy")
    if not lazy and worker_id == 0 and not _flag(opt, "py-call-uwsgi-fork-hooks"):
        messages.append(
            "otel_showmax was configured in the uWSGI master (no lazy-apps, no py-call-uwsgi-fork-hooks): uWSGI "
            "forks workers in C with the GIL released, and a worker forked while any Python thread of the master "
            "holds the GIL hangs before serving; otel_showmax starts no span/log export thread in the master "
            "(each worker starts its own), but your libraries' threads there can — "
            "set lazy-apps = true, or py-call-uwsgi-fork-hooks = true (not with gevent-early-monkey-patch)"
        )
    return messages


def _warn(message: str) -> None:
    from .. import _diag

    _diag.once(f"uwsgi:{message[:40]}", "%s", message)
