"""Logs: a LoggerProvider and the stdlib bridge, both feeding one BatchWorker."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.resources import Resource

from .._config import Config
from .._export.exporters import make_exporter
from .._export.worker import BatchWorker
from .._upstream import LogRecordLimits, LogRecordProcessor, logger_provider_options
from .log_bridge import BridgeHandler, Converter
from .providers import ShowmaxLoggerProvider


class WorkerLogProcessor(LogRecordProcessor):
    """Hands records emitted through the OTel Logs API to the same BatchWorker as the bridge."""

    def __init__(self, worker: BatchWorker, shutdown_timeout: float) -> None:
        self.worker = worker
        self._shutdown_timeout = shutdown_timeout

    def on_emit(self, log_record: Any) -> None:
        self.worker.put(log_record)

    def shutdown(self) -> None:
        self.worker.shutdown(self._shutdown_timeout)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.worker.flush(timeout_millis / 1000)


def limits(config: Config) -> LogRecordLimits:
    return LogRecordLimits(
        max_attributes=config.log_record_attribute_count_limit or config.attribute_count_limit,
        max_attribute_length=config.attribute_value_length_limit,
    )


def init(
    config: Config, resource: Resource, injected: frozenset[str]
) -> tuple[ShowmaxLoggerProvider, BatchWorker | None, BridgeHandler | None, Converter | None]:
    """The logger provider and, unless logs are off, its worker, bridge handler and converter."""
    record_limits = limits(config)
    provider = ShowmaxLoggerProvider(resource=resource, shutdown_on_exit=False, **logger_provider_options(record_limits))
    ec = config.logs
    if ec.kind == "none":
        return provider, None, None, None
    # The lean OTLP log exporters (HTTP and gRPC, see make_exporter) take batches the bridge
    # serialized itself; the console exporter would get SDK records built from them, so it gets those.
    direct = ec.kind != "console"
    converter = Converter(lambda: provider.resource, record_limits, injected, direct=direct)
    batch = config.log_batch
    worker = BatchWorker(
        "logs",
        lambda: make_exporter(ec),
        max_queue_size=batch.max_queue_size,
        max_batch=batch.max_export_batch_size,
        schedule_delay=batch.schedule_delay_ms / 1000,
        prepare=converter,
    )
    provider.add_log_record_processor(WorkerLogProcessor(worker, config.shutdown_timeout))
    handler = BridgeHandler(worker.put, level=config.log_export_level)
    return provider, worker, handler, converter
