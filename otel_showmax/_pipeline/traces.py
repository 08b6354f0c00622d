"""Traces: a TracerProvider whose only processor queues ended, sampled spans on a BatchWorker."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, sampling

from .. import _threads
from .._config import Config
from .._export.exporters import make_exporter
from .._export.processors import WorkerSpanProcessor
from .._export.worker import BatchWorker
from .._upstream import SPAN_LOCK_MODULES
from .providers import ShowmaxTracerProvider


def sampler(config: Config) -> sampling.Sampler:
    name, arg = config.sampler, config.sampler_arg
    if name == "always_on":
        return sampling.ALWAYS_ON
    if name == "always_off":
        return sampling.ALWAYS_OFF
    if name == "traceidratio":
        return sampling.TraceIdRatioBased(arg)
    if name == "parentbased_always_off":
        return sampling.ParentBased(sampling.ALWAYS_OFF)
    if name == "parentbased_traceidratio":
        return sampling.ParentBased(sampling.TraceIdRatioBased(arg))
    return sampling.ParentBased(sampling.ALWAYS_ON)


def span_limits(config: Config) -> SpanLimits:
    return SpanLimits(
        max_attributes=config.span_attribute_count_limit or config.attribute_count_limit,
        max_events=config.span_event_count_limit,
        max_links=config.span_link_count_limit,
        max_attribute_length=config.attribute_value_length_limit,
        max_span_attribute_length=config.span_attribute_value_length_limit or config.attribute_value_length_limit,
    )


def init(config: Config, resource: Resource) -> tuple[ShowmaxTracerProvider, BatchWorker | None]:
    """The tracer provider and, unless traces are off, the worker exporting its spans."""
    _threads.use_real_locks(SPAN_LOCK_MODULES)  # gevent's locks: ~10 µs per request there
    provider = ShowmaxTracerProvider(
        sampler=sampler(config),
        resource=resource,
        shutdown_on_exit=False,
        span_limits=span_limits(config),
    )
    ec = config.traces
    if ec.kind == "none":
        return provider, None
    batch = config.span_batch
    worker = BatchWorker(
        "traces",
        lambda: make_exporter(ec),
        max_queue_size=batch.max_queue_size,
        max_batch=batch.max_export_batch_size,
        schedule_delay=batch.schedule_delay_ms / 1000,
    )
    provider.add_span_processor(WorkerSpanProcessor(worker, config.shutdown_timeout))
    return provider, worker
