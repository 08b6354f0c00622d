"""The tracer, logger and meter providers: the SDK's, with fork handling of our own.

Upstream's at-fork hooks re-detect the resource and replace a user-set ``service.instance.id``;
ours keep it and only reset the providers' locks. otel_showmax refreshes ``process.pid`` itself
after fork (also under uWSGI, where ``os.register_at_fork`` does not fire).
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import Tracer, TracerProvider

from .._upstream import TRACK_MADE, LoggerProvider, remember
from .tracer import ShowmaxTracer

__all__ = ["ShowmaxLoggerProvider", "ShowmaxMeterProvider", "ShowmaxTracerProvider"]


class ShowmaxTracerProvider(TracerProvider):
    """TracerProvider whose resource otel_showmax refreshes after fork (also under uWSGI).

    Upstream's own at-fork hook re-detects the resource and replaces a user-set
    ``service.instance.id``; ours keeps it and only resets the lock, as upstream does.
    """

    def _handle_fork(self) -> None:
        self._tracers_lock = threading.Lock()

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        tracer = super().get_tracer(*args, **kwargs)
        if type(tracer) is Tracer:  # the SDK's tracer, built and cached by the SDK: only its class changes
            tracer.__class__ = ShowmaxTracer
        if TRACK_MADE:
            remember(self, tracer)
        return tracer


class ShowmaxLoggerProvider(LoggerProvider):
    """LoggerProvider whose resource otel_showmax refreshes after fork."""

    def _handle_fork(self) -> None:
        self._logger_cache_lock = threading.Lock()
        self._active_loggers_lock = threading.Lock()

    def get_logger(self, *args: Any, **kwargs: Any) -> Any:
        logger = super().get_logger(*args, **kwargs)
        if TRACK_MADE:
            remember(self, logger)
        return logger


class ShowmaxMeterProvider(MeterProvider):
    """MeterProvider whose resource otel_showmax refreshes after fork."""

    def _handle_fork(self) -> None:
        self._lock = threading.Lock()
        self._meter_lock = threading.Lock()
        type(self)._all_metric_readers_lock = threading.Lock()
