"""Metrics: a MeterProvider with a periodic reader on a real OS thread, and our drop counters."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource

from .. import _diag, _threads
from .._config import Config
from .._export.exporters import make_exporter
from .._export.worker import Event, Stats
from .._upstream import AGGREGATION_LOCK_MODULES, SUPPRESS_KEY, metric_preferences, stop_retrying
from .providers import ShowmaxMeterProvider


class PeriodicReader(MetricReader):
    """Collects and exports every ``interval`` seconds on a real OS thread started per process.

    Unlike upstream's periodic reader its thread is never a greenlet, it is (re)started lazily
    after fork by ``ensure_started()``, and ``shutdown`` waits at most its budget.
    """

    def __init__(self, make: Callable[[], Any], interval: float, timeout: float, console: bool) -> None:
        temporality, aggregation = ({}, {}) if console else metric_preferences()
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self._make = make
        self._interval = interval
        self._timeout = timeout
        self.stats = Stats()
        self._pid = -1
        self._exporter: Any = None
        self._wake = Event()
        self._stopped = Event()
        self._final = False

    def ensure_started(self) -> None:
        pid = os.getpid()
        if self._pid == pid or self._final:
            return
        self._pid = pid
        self._exporter = None
        self.stats = Stats()
        self._wake = Event()
        self._stopped = Event()
        _threads.start_thread(self._run)

    def _run(self) -> None:
        from opentelemetry.context import attach, set_value

        attach(set_value(SUPPRESS_KEY, True))
        try:
            next_at = time.monotonic() + self._interval
            while not self._final:
                self._wake.wait(max(0.0, next_at - time.monotonic()))
                self._wake.clear()
                if time.monotonic() >= next_at or self._final:
                    self._tick()
                    next_at = time.monotonic() + self._interval
        finally:
            if self._exporter is not None:
                try:
                    self._exporter.shutdown(timeout_millis=1000)
                except Exception:
                    pass
            self._stopped.set()

    def _tick(self) -> None:
        try:
            self.collect(timeout_millis=self._timeout * 1000)
        except Exception as error:
            _diag.warn("metrics_collect", "collecting metrics failed: %r", error)

    def _receive_metrics(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        if metrics_data is None:
            return
        try:
            if self._exporter is None:
                self._exporter = self._make()
            result = self._exporter.export(metrics_data, timeout_millis=timeout_millis)
            ok = getattr(result, "name", "SUCCESS") == "SUCCESS"
        except Exception as error:
            ok = False
            _diag.warn("metrics_export", "exporting metrics failed: %r", error)
        if ok:
            self.stats.exported += 1
        else:
            self.stats.drop("export_failed")

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        super().force_flush(timeout_millis=timeout_millis)
        return True

    def begin_shutdown(self) -> None:
        """Ask the thread for a last collection and export (one try), then to stop."""
        if self._final:
            return
        self._final = True
        if self._pid == os.getpid():
            if self._exporter is not None:
                stop_retrying(self._exporter)
            self._wake.set()

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._pid != os.getpid():
            self._final = True
            return
        self.begin_shutdown()
        if not self._stopped.wait(timeout_millis / 1000):
            self.stats.drop("shutdown")
            _diag.warn("metrics_abandon", "metrics shutdown budget exhausted")


def init(config: Config, resource: Resource, drops: Callable[[], dict[str, dict[str, int]]]) -> tuple[Any, Any]:
    """The meter provider and its reader (None when metrics are off); registers our drop counters."""
    _threads.use_real_locks(AGGREGATION_LOCK_MODULES)
    ec = config.metrics
    reader = None
    readers = []
    if ec.kind != "none":
        reader = PeriodicReader(
            lambda: make_exporter(ec),
            config.metric_export_interval_ms / 1000,
            config.metric_export_timeout_ms / 1000,
            console=ec.kind == "console",
        )
        readers.append(reader)
    provider = ShowmaxMeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False)
    meter = provider.get_meter("otel_showmax")

    def observe(_options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [
            Observation(count, {"signal": signal, "reason": reason})
            for signal, reasons in drops().items()
            for reason, count in reasons.items()
        ]

    meter.create_observable_counter(
        "otel_showmax.dropped",
        callbacks=[observe],
        unit="{item}",
        description="Telemetry items otel_showmax dropped in this process, by signal and reason.",
    )
    return provider, reader
