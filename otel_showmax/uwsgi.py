"""uWSGI integration, automatic: ``setup()`` calls ``install()`` when it runs under uWSGI.

uWSGI forks its workers in C, so ``os.register_at_fork`` hooks never run there, and in a gevent
worker (``--gevent N``, any async mode) uWSGI skips Python's ``atexit`` handlers altogether: an
SDK that flushes from ``atexit`` (upstream OpenTelemetry) loses whatever is still queued when a
worker stops or is recycled by ``max-requests``. ``install()`` therefore:

* chains ``uwsgi.post_fork_hook`` (or ``uwsgidecorators``' post-fork chain when that module is in
  use) so each worker re-initialises its export pipeline and names its own ``process.pid`` before
  it serves a request — when the app was loaded in the master (no ``lazy-apps``);
* chains ``uwsgi.atexit``, which uWSGI calls in every worker on stop, reload and recycling (also in
  gevent mode) and in the master, to flush within the shutdown budget;
* warns once, on stderr, about combinations known to break (see ``check()``).

Stopping uWSGI: plain SIGTERM to the master means *reload* to uWSGI 2.0 unless ``die-on-term`` is
set; use ``die-on-term`` + SIGTERM, SIGINT, or the master FIFO (``q``) to stop it.
"""

from __future__ import annotations

from ._instrumentation.uwsgi_hooks import check, installed, running_under_uwsgi

__all__ = ["check", "install", "installed", "running_under_uwsgi"]


def install() -> bool:
    """Install the post-fork and atexit hooks once; returns False when not under uWSGI."""
    from . import _setup

    return _setup.install_uwsgi_hooks()
