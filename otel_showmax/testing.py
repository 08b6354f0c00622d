"""Helpers for tests of otel_showmax and of applications using it."""

from __future__ import annotations

import logging

from . import _diag, _selfcheck, _setup, _threads, _upstream
from ._export import exporters as _exporters
from ._instrumentation import libraries
from ._pipeline import log_bridge as _bridge


def reset(timeout: float = 0.5) -> None:
    """Shut down and forget the configuration, so the next ``setup()`` configures afresh.

    Removes the bridge handler, the correlation record factory, the Falcon instrumentation, the
    library instrumentors ``setup()`` turned on and the rate-limited handlers on OpenTelemetry's own
    loggers, and clears OpenTelemetry's global providers. For tests only.
    """
    state = _setup.get_state()
    if state is not None:
        if state.shutdown_pid is None:
            _setup.shutdown(timeout)
        if state.handler is not None:
            _bridge.detach(state.handler)
            for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
                if isinstance(lg, logging.Logger) and state.handler in lg.handlers:
                    lg.removeHandler(state.handler)
    try:
        from . import correlation

        correlation.uninstall()
    except ImportError:
        pass
    try:
        from . import falcon as falcon_support

        falcon_support.uninstrument()
    except (ImportError, AttributeError):
        pass
    libraries.uninstrument()
    try:
        from ._instrumentation import hub_monitor

        hub_monitor.uninstall()
    except ImportError:
        pass
    _threads.restore_locks()
    _exporters.restore_upstream_loggers()
    _upstream.reset_globals()
    _selfcheck.reset()
    _setup.clear_state()
    _diag.reset()
