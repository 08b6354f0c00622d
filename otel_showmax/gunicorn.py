"""gunicorn server hooks: each worker exports through its own pipeline and flushes when it exits.

In ``gunicorn.conf.py``::

    from otel_showmax.gunicorn import post_fork, worker_exit  # noqa: F401

(``worker_abort`` is there too, for workers killed on timeout.) They work with and without
``--preload``, under ``opentelemetry-instrument`` and with ``otel_showmax.setup()`` in the app, and
with every worker class (sync, gthread, gevent):

* ``post_fork`` runs in the new worker before it serves: if the master configured otel_showmax
  (the wrapper, or ``--preload`` with ``setup()`` in the app), the worker gets fresh export queues
  and threads and a resource naming its own ``process.pid``. ``os.register_at_fork`` does the same
  already; the hook makes it explicit and independent of how the worker was forked.
* ``worker_exit`` runs in the worker after it stopped serving (graceful stop, ``max_requests``
  recycling, reload): it flushes what the worker queued, within the shutdown budget
  (``OTEL_SHOWMAX_SHUTDOWN_TIMEOUT``, 4 s by default — keep it below gunicorn's
  ``graceful_timeout``, 30 s by default).
* ``worker_abort`` runs when the master aborts a worker that missed its ``timeout``: it gives the
  flush at most one second.

If your ``gunicorn.conf.py`` has its own hooks, call ours from them::

    from otel_showmax import gunicorn as otel_hooks

    def post_fork(server, worker):
        otel_hooks.post_fork(server, worker)
        ...

This module imports nothing heavy at import time: gunicorn reads the config file in the master,
before a gevent worker monkey-patches.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ABORT_BUDGET", "post_fork", "worker_abort", "worker_exit"]

#: Seconds a worker aborted on timeout may spend flushing (the master is about to SIGKILL it).
ABORT_BUDGET = 1.0


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn ``post_fork`` hook: give the new worker its own export pipeline."""
    from . import _setup

    _setup.ensure_process()


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn ``worker_exit`` hook: flush what this worker queued, within the shutdown budget."""
    from . import _setup

    if _setup.get_state() is None:
        return
    try:
        _setup.shutdown()
    except Exception as error:  # never break gunicorn's exit path
        _log(server, "otel_showmax: flushing telemetry at worker exit failed: %r", error)


def worker_abort(worker: Any) -> None:
    """gunicorn ``worker_abort`` hook (SIGABRT on timeout; gunicorn passes only the worker): a short flush."""
    from . import _setup

    if _setup.get_state() is None:
        return
    try:
        _setup.shutdown(ABORT_BUDGET)
    except Exception as error:
        _log(worker, "otel_showmax: flushing telemetry at worker abort failed: %r", error)


def _log(server: Any, message: str, *args: Any) -> None:
    log = getattr(server, "log", None)
    if log is not None:
        log.warning(message, *args)
