"""OpenTelemetry for Falcon services on gunicorn or uWSGI with gevent.

Configured exactly once per process, exporting off the request path, with every log line
correlated to its trace::

    import otel_showmax

    otel_showmax.setup(service_name="catalogue")
    log = otel_showmax.get_logger(__name__)
"""

from __future__ import annotations

import logging
from typing import Any

from . import _setup
from ._config import Config, ExporterConfig, Provenance
from ._errors import ConfigError
from ._version import __version__


def setup(**options: Any) -> Config:
    """Configure tracing, logs and metrics for this process, once.

    Any number of calls is safe, from any thread, also under ``opentelemetry-instrument``: the
    first configuration wins, later calls return it, and a call asking for different options
    logs one warning naming who configured first. Keyword arguments override the standard
    ``OTEL_*`` environment variables and the ``OTEL_SHOWMAX_*`` ones (see the README's settings
    table); e.g. ``service_name``, ``endpoint``, ``protocol``, ``headers``, ``traces_exporter``,
    ``shutdown_timeout``, ``hub_block_threshold`` (milliseconds, default 100; ``0`` or ``"off"``
    disables the blocked-hub monitor of gevent workers, see the README's "Blocked hub" section).

    Returns:
        The active configuration.

    Raises:
        ConfigError: a setting is invalid; the message names it and lists accepted values.
    """
    return _setup.setup(entry_point=options.pop("_entry_point", "setup()"), **options)


def shutdown(timeout: float | None = None) -> bool:
    """Flush and stop this process's export pipeline within ``timeout`` seconds.

    Defaults to the configured budget (4 s). What the collector has not accepted by then is
    abandoned and counted in ``dropped()``. Runs once per process (also from atexit).

    Returns:
        True when everything queued was delivered or dropped for an already counted reason.
    """
    return _setup.shutdown(timeout)


def flush(timeout: float = 5.0) -> bool:
    """Export what is queued now, waiting at most ``timeout`` seconds. True when all went out."""
    return _setup.flush(timeout)


def is_configured() -> bool:
    """Whether ``setup()`` (or the ``opentelemetry-instrument`` wrapper) has run in this process."""
    return _setup.get_state() is not None


def get_config() -> Config | None:
    """The active configuration, with each setting's source and who configured the process.

    ``Config.as_dict()`` gives it with secrets (header values) masked.
    """
    state = _setup.get_state()
    return state.config if state else None


def dropped() -> dict[str, dict[str, int]]:
    """Telemetry dropped in this process, per signal and reason.

    Reasons: ``queue_full`` (the request path never waits), ``export_failed`` (the collector
    refused or was unreachable after retries), ``shutdown`` (abandoned when the budget ran out),
    ``invalid_item`` (an item no encoder could take even escaped, dropped alone while the rest of
    its batch was sent: docs/bad-input.md).
    """
    return _setup.dropped()


def get_logger(name: str = "showmax") -> logging.Logger:
    """The seed's ``get_logger()`` helper, made safe: call it anywhere, any number of times.

    It never adds a handler. Records reach the collector through the one bridge that
    ``setup()`` put on the root logger; if nothing configured the process yet, this configures it
    from the environment first.
    """
    if _setup.get_state() is None:
        _setup.setup(entry_point="get_logger()")
    return logging.getLogger(name)


def spawn(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``gevent.spawn`` carrying the current OpenTelemetry context into the greenlet."""
    from .gevent import spawn as _spawn

    return _spawn(fn, *args, **kwargs)


def spawn_later(seconds: float, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``gevent.spawn_later`` carrying the current OpenTelemetry context into the greenlet."""
    from .gevent import spawn_later as _spawn_later

    return _spawn_later(seconds, fn, *args, **kwargs)


__all__ = [
    "Config",
    "ConfigError",
    "ExporterConfig",
    "Provenance",
    "__version__",
    "dropped",
    "flush",
    "get_config",
    "get_logger",
    "is_configured",
    "setup",
    "shutdown",
    "spawn",
    "spawn_later",
]
