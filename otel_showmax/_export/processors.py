"""The span processor: hands each ended, sampled span to its BatchWorker."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from .worker import BatchWorker

__all__ = ["WorkerSpanProcessor"]


class WorkerSpanProcessor(SpanProcessor):
    """Hands each ended, sampled span to a BatchWorker; nothing else on the request path."""

    def __init__(self, worker: BatchWorker, shutdown_timeout: float) -> None:
        self.worker = worker
        self._put = worker.put
        self._shutdown_timeout = shutdown_timeout

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if span.context.trace_flags.sampled:
            self._put(span)

    def shutdown(self) -> None:
        self.worker.shutdown(self._shutdown_timeout)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.worker.flush(timeout_millis / 1000)
