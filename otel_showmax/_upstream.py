"""Every private OpenTelemetry name otel_showmax uses, behind small names and functions.

A name is private when it starts with ``_`` or lives in a module whose path has such a part
(``opentelemetry.sdk._logs``, ``..._internal``). No other module imports one
(tests/package/test_private_names.py); tests/package/test_upstream.py exercises each name here on
the installed version. Differences between the supported releases (OpenTelemetry 1.40-1.45,
instrumentation 0.61b0-0.66bN, docs/versions.md) are handled here, once, at import.

Names are bound when this module is imported (no indirection per call). Those from the exporter
and instrumentation packages are imported on first use (``__getattr__``): importing otel_showmax
must not import requests, grpc or falcon's instrumentation.

Hot paths also read private attributes of SDK objects directly (a span's ``_attributes``, a
``BoundedAttributes``' ``_dict``, a metric instrument's ``_measurement_consumer``...): they are
listed in ``PRIVATE_ATTRIBUTES`` and checked by tests/package/test_upstream.py and, for the fast
paths that rely on them, at ``setup()`` (otel_showmax/_selfcheck.py).
"""

from __future__ import annotations

import importlib
import inspect
import re
import weakref
from collections.abc import Callable
from importlib import metadata
from typing import Any

from opentelemetry import _logs as logs_api
from opentelemetry._logs import LogRecord as APILogRecord
from opentelemetry._logs import SeverityNumber
from opentelemetry.attributes import _clean_attribute_value
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordDroppedAttributesWarning,
    LogRecordLimits,
    LogRecordProcessor,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs.export import (
    ConsoleLogRecordExporter,
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Tracer, TracerProvider

try:  # opentelemetry-instrumentation >= 0.62b0
    from opentelemetry.instrumentation.log_utils import std_to_otel
except ImportError:  # older: the SDK's own (private) copy of the same mapping
    from opentelemetry.sdk._logs._internal import std_to_otel  # type: ignore[no-redef, unused-ignore]

try:
    from opentelemetry.util._importlib_metadata import entry_points
except ImportError:  # pragma: no cover - the standard library's has the same selection API on 3.10+
    from importlib.metadata import entry_points  # type: ignore[assignment, unused-ignore]



class Missing:
    """Stands for a private class a later release removed or moved: no object is of this type, so the
    fast path that checks for it stays on upstream's path instead of failing ``import otel_showmax``."""


def _private(module: str, name: str, default: Any = Missing) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return default


# Looked up without failing the import: a release without them only loses the fast paths using them.
SUPPRESS_KEY: Any = _private("opentelemetry.context", "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation")
SDKSpan: Any = _private("opentelemetry.sdk.trace", "_Span")  # ShowmaxTracer's trusted attributes
# The context key of the current span (correlation reads it directly, without get_current_span's checks).
SPAN_KEY: Any = _private("opentelemetry.trace.propagation", "_SPAN_KEY", "otel_showmax: no span key")
# The SDK's metric internals, for _instrumentation/instruments.py (its fast path is checked at setup()).
_AGGREGATION = "opentelemetry.sdk.metrics._internal.aggregation"
_INSTRUMENT = "opentelemetry.sdk.metrics._internal.instrument"
DropAggregation: Any = _private(_AGGREGATION, "_DropAggregation")
ExplicitBucketHistogramAggregation: Any = _private(_AGGREGATION, "_ExplicitBucketHistogramAggregation")
ExponentialBucketHistogramAggregation: Any = _private(_AGGREGATION, "_ExponentialBucketHistogramAggregation")
LastValueAggregation: Any = _private(_AGGREGATION, "_LastValueAggregation")
SumAggregation: Any = _private(_AGGREGATION, "_SumAggregation")
SDKCounter: Any = _private(_INSTRUMENT, "_Counter")
SDKHistogram: Any = _private(_INSTRUMENT, "_Histogram")
SDKUpDownCounter: Any = _private(_INSTRUMENT, "_UpDownCounter")
SynchronousMeasurementConsumer: Any = _private("opentelemetry.sdk.metrics._internal.measurement_consumer",
                                               "SynchronousMeasurementConsumer")

clean_attribute_value: Callable[..., Any] = _clean_attribute_value  # its signature varies between releases


def _frozen_items(value: Any) -> Any:
    """The SDK's key of an attribute set's aggregation (opentelemetry-sdk 1.40)."""
    return frozenset(value.items())


# Later releases key aggregations by type-aware hashes (True, 1 and 1.0 are distinct sets); 1.40 by the frozen items.
hash_attributes: Callable[[Any], Any] = _private("opentelemetry.sdk.metrics._internal._view_instrument_match",
                                                 "_hash_attributes", _frozen_items)
# Whether the SDK takes list-valued metric attributes (1.40 fails hashing them) and keeps True, 1 and 1.0 apart.
METRIC_KEYS_BY_TYPE = hash_attributes is not _frozen_items

__all__ = [
    "AGGREGATION_LOCK_MODULES",
    "INSTRUMENTATION_RANGE",
    "LAZY_NAMES",
    "METRIC_KEYS_BY_TYPE",
    "PRIVATE_ATTRIBUTES",
    "SDK_KEEPS_NONE",
    "SDK_RANGE",
    "SPAN_KEY",
    "SPAN_LOCK_MODULES",
    "SUPPRESS_KEY",
    "TRACK_MADE",
    "APILogRecord",
    "ConsoleLogRecordExporter",
    "DropAggregation",
    "ExplicitBucketHistogramAggregation",
    "ExponentialBucketHistogramAggregation",
    "InMemoryLogRecordExporter",
    "LastValueAggregation",
    "LogRecordDroppedAttributesWarning",
    "LogRecordExportResult",
    "LogRecordLimits",
    "LogRecordProcessor",
    "LoggerProvider",
    "Missing",
    "ReadWriteLogRecord",
    "SDKCounter",
    "SDKHistogram",
    "SDKSpan",
    "SDKUpDownCounter",
    "SerializedBatch",
    "SeverityNumber",
    "SimpleLogRecordProcessor",
    "SumAggregation",
    "SynchronousMeasurementConsumer",
    "clean_attribute_value",
    "composite_parts",
    "entry_points",
    "hash_attributes",
    "http_passthrough",
    "installed_versions",
    "log_processors",
    "log_record_limits",
    "logger_provider_options",
    "logs_api",
    "metric_preferences",
    "out_of_range",
    "remember",
    "reset_globals",
    "reset_semconv_mode",
    "semconv_mode",
    "set_resource",
    "span_processors",
    "std_to_otel",
    "stop_retrying",
    "use_urllib3_transport",
]

def _keeps_none() -> bool:
    import logging

    from opentelemetry.attributes import BoundedAttributes

    quiet = logging.getLogger("opentelemetry.attributes")  # 1.40 warns about the None it leaves out
    disabled, quiet.disabled = quiet.disabled, True
    try:
        return dict(BoundedAttributes(8, {"k": None}, immutable=False)) == {"k": None}
    finally:
        quiet.disabled = disabled


# Whether the SDK stores a None attribute value (1.4x) or silently leaves the key out (1.40).
SDK_KEEPS_NONE = _keeps_none()

# -- versions --------------------------------------------------------------------------------------

SDK_RANGE = ((1, 40), (1, 45))  # opentelemetry-api/-sdk/-exporter-*: major.minor, both ends included
INSTRUMENTATION_RANGE = ((0, 61), (0, 66))  # the lock-step 0.xbN packages
_SDK_PACKAGES = ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http",
                 "opentelemetry-exporter-otlp-proto-grpc")
_INSTRUMENTATION_PACKAGES = ("opentelemetry-instrumentation", "opentelemetry-instrumentation-falcon",
                             "opentelemetry-instrumentation-wsgi", "opentelemetry-semantic-conventions")


def installed_versions() -> dict[str, str]:
    """The installed versions of the OpenTelemetry packages we depend on, and falcon's (missing ones left out)."""
    found = {}
    for name in (*_SDK_PACKAGES, *_INSTRUMENTATION_PACKAGES, "falcon"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


def out_of_range(versions: dict[str, str] | None = None) -> dict[str, str]:
    """The installed OpenTelemetry packages outside the supported ranges, with their versions."""
    versions = installed_versions() if versions is None else versions
    outside = {}
    for names, (low, high) in ((_SDK_PACKAGES, SDK_RANGE), (_INSTRUMENTATION_PACKAGES, INSTRUMENTATION_RANGE)):
        for name in names:
            minor = _minor(versions.get(name, ""))
            if name in versions and (minor is None or not low <= minor <= high):
                outside[name] = versions[name]
    return outside


# -- lazily imported names (exporter and instrumentation packages) ---------------------------------

LAZY_NAMES = {
    # opentelemetry-exporter-otlp-proto-grpc / -common
    "GrpcOTLPLogExporter": ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    "upstream_encode_logs": ("opentelemetry.exporter.otlp.proto.common._log_encoder", "encode_logs"),
    # opentelemetry-exporter-otlp-proto-http
    "HTTPOTLPLogExporter": ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
    "http_logs_module": ("opentelemetry.exporter.otlp.proto.http._log_exporter", None),
    # opentelemetry-instrumentation-falcon
    "InstrumentedFalconAPI": ("opentelemetry.instrumentation.falcon", "_InstrumentedFalconAPI"),
    "FALCON_SPAN_KEY": ("opentelemetry.instrumentation.falcon", "_ENVIRON_SPAN_KEY"),
    "FALCON_EXC_KEY": ("opentelemetry.instrumentation.falcon", "_ENVIRON_EXC"),
    # opentelemetry-instrumentation's semantic-convention helpers
    "HTTP_DURATION_HISTOGRAM_BUCKETS_NEW": ("opentelemetry.instrumentation._semconv", "HTTP_DURATION_HISTOGRAM_BUCKETS_NEW"),
    "get_schema_url": ("opentelemetry.instrumentation._semconv", "_get_schema_url"),
    "StabilityMode": ("opentelemetry.instrumentation._semconv", "_StabilityMode"),
    "server_active_requests_count_attrs_new": ("opentelemetry.instrumentation._semconv",
                                               "_server_active_requests_count_attrs_new"),
    "server_active_requests_count_attrs_old": ("opentelemetry.instrumentation._semconv",
                                               "_server_active_requests_count_attrs_old"),
    "server_duration_attrs_new": ("opentelemetry.instrumentation._semconv", "_server_duration_attrs_new"),
    "server_duration_attrs_old": ("opentelemetry.instrumentation._semconv", "_server_duration_attrs_old"),
    # opentelemetry-instrumentation-logging
    "logging_handler_module": ("opentelemetry.instrumentation.logging.handler", None),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = LAZY_NAMES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


# Private attributes of SDK objects read or written directly on hot paths (module: attributes).
PRIVATE_ATTRIBUTES = {
    "_pipeline/tracer.py": ("Tracer._span_limits", "SynchronousMultiSpanProcessor._span_processors",
                            "_Span._attributes", "_Span._lock", "_Span._end_time", "BoundedAttributes._dict",
                            "BoundedAttributes._immutable", "BoundedAttributes._lock", "BoundedAttributes._set_items"),
    "_pipeline/providers.py": ("TracerProvider/LoggerProvider/MeterProvider._handle_fork",
                               "TracerProvider._tracers-style caches via get_tracer"),
    "_export/utf8.py": ("BoundedAttributes._dict", "BoundedAttributes._immutable", "BoundedList._dq",
                        "_Span._attributes", "_Span._events", "_Span._links"),
    "_instrumentation/instruments.py": ("_Counter/_Histogram._measurement_consumer", "._is_enabled",
                                        "SynchronousMeasurementConsumer._reader_storages", "._sdk_config",
                                        "MetricReaderStorage._instrument_view_instrument_matches",
                                        "_ViewInstrumentMatch._view", "._attributes_aggregation",
                                        "View._attribute_keys"),
    "_instrumentation/falcon_app.py": ("falcon.App._is_instrumented_by_opentelemetry",),
    "_export/otlp_grpc.py": ("OTLPExporterMixin._translate_data", "._initialize_channel_and_stub",
                             "._channel", "._client"),
}


# -- providers, processors, globals ----------------------------------------------------------------


# opentelemetry-sdk 1.40 has no _update_resource: each tracer and logger keeps the resource it was
# made with, so our providers remember what they made (``remember``) for ``set_resource``.
TRACK_MADE = not all(hasattr(cls, "_update_resource") for cls in (TracerProvider, LoggerProvider, MeterProvider))


def remember(provider: Any, made: Any) -> None:
    """Note a tracer or logger ``provider`` handed out, for ``set_resource`` (opentelemetry-sdk 1.40)."""
    try:
        provider._otel_showmax_made.add(made)
    except AttributeError:
        provider._otel_showmax_made = weakref.WeakSet([made])


def set_resource(provider: Any, resource: Resource) -> None:
    """Merge ``resource`` into a provider's resource (and its tracers', loggers', meters')."""
    update = getattr(provider, "_update_resource", None)
    if update is not None:
        update(resource)
        return
    config = getattr(provider, "_sdk_config", None)
    if config is not None:  # a MeterProvider: its storages read the resource from its configuration
        config.resource = config.resource.merge(resource)
        return
    merged = provider._resource.merge(resource)
    provider._resource = merged
    for made in list(getattr(provider, "_otel_showmax_made", ())):
        if isinstance(made, Tracer):
            made.resource = merged
        else:
            made._resource = merged


def reset_globals() -> None:
    """Forget the global tracer, logger and meter providers (tests only)."""
    from opentelemetry import metrics, trace
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    logs_api._internal._LOGGER_PROVIDER_SET_ONCE = Once()
    logs_api._internal._LOGGER_PROVIDER = None
    metrics._internal._METER_PROVIDER_SET_ONCE = Once()
    metrics._internal._METER_PROVIDER = None


def metric_preferences() -> tuple[dict[type, Any], dict[type, Any]]:
    """Temporality and aggregation preferred by the OTLP metric exporters (their env variables)."""
    try:  # opentelemetry-exporter-otlp-common (with the 1.45 exporters)
        from opentelemetry.exporter.otlp.common._aggregation import _get_aggregation, _get_temporality

        return _get_temporality(None), _get_aggregation(None)
    except ImportError:  # 1.40-1.44: the same on the OTLP metric exporter mixin
        from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import OTLPMetricExporterMixin

        mixin: Any = OTLPMetricExporterMixin()
        return mixin._get_temporality(None), mixin._get_aggregation(None)


def span_processors(provider: Any) -> list[Any]:
    """The span processors of an SDK TracerProvider (for checks and the doctor)."""
    return list(provider._active_span_processor._span_processors)


def log_processors(provider: Any) -> list[Any]:
    """The log record processors of an SDK LoggerProvider (for checks and the doctor)."""
    return list(provider._multi_log_record_processor._log_record_processors)


# SDK modules whose locks guard only dict/list/arithmetic work (otel_showmax._threads.use_real_locks).
SPAN_LOCK_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.attributes", "opentelemetry.sdk.util")
AGGREGATION_LOCK_MODULES = ("opentelemetry.sdk.metrics._internal.aggregation",
                            "opentelemetry.sdk.metrics._internal.exemplar.exemplar_reservoir")


def composite_parts(propagator: Any) -> tuple[Any, ...]:
    """The propagators inside a ``CompositePropagator`` (empty when that attribute moved)."""
    return tuple(getattr(propagator, "_propagators", ()))


def reads_no_metrics(provider: Any) -> bool:
    """Whether ``provider`` is an SDK MeterProvider built without readers (they are fixed at construction)."""
    from opentelemetry.sdk.metrics import MeterProvider

    if not isinstance(provider, MeterProvider):
        return False
    config = getattr(provider, "_sdk_config", None)  # every supported release: SdkConfiguration.metric_readers
    readers = getattr(config, "metric_readers", None)
    if readers is None:
        readers = getattr(provider, "_metric_readers", ())
    return not readers


def log_record_limits(limits: Any) -> tuple[int | None, int | None]:
    """A ``LogRecordLimits``' attribute count and value length limits for log records.

    opentelemetry-sdk >= 1.41 has log-record-specific limits (falling back to the global ones);
    1.40 has only the global ``max_attributes`` / ``max_attribute_length``.
    """
    return (getattr(limits, "max_log_record_attributes", limits.max_attributes),
            getattr(limits, "max_log_record_attribute_length", limits.max_attribute_length))


def logger_provider_options(limits: Any) -> dict[str, Any]:
    """``LoggerProvider`` keyword arguments for ``limits`` (opentelemetry-sdk >= 1.41 takes them there)."""
    if "log_record_limits" in inspect.signature(LoggerProvider.__init__).parameters:
        return {"log_record_limits": limits}
    return {}


# -- exporters -------------------------------------------------------------------------------------


def stop_retrying(exporter: Any) -> bool:
    """Make an OTLP exporter give up retry back-off: each later export is one attempt.

    Used when shutdown starts: the budget is better spent on one try per batch than on sleeping
    between retries to a collector that is down. Returns False for exporters without retries.
    """
    client = getattr(exporter, "_client", None)  # OTLP/HTTP 1.45: _OTLPHTTPClient
    event = getattr(client, "_shutdown_event", None)
    if event is None:
        event = getattr(exporter, "_shutdown_in_progress", None)  # OTLP/gRPC mixin, OTLP/HTTP 1.40-1.44
    if event is None:
        return False
    event.set()
    return True


class SerializedBatch:
    """A batch we already serialized, handed to upstream's OTLP/HTTP ``export()`` in place of the items.

    Upstream's export encodes with ``encode_spans(items).SerializePartialToString()`` (logs:
    ``encode_logs(items).SerializeToString()``); ``http_passthrough()`` makes those two module names
    return a ``SerializedBatch`` as it is, so the rest of upstream's export — metrics, size limit,
    retries, result — runs unchanged on our bytes. ``len()`` is the number of items it holds.
    """

    __slots__ = ("count", "data")

    def __init__(self, data: bytes, count: int) -> None:
        self.data = data
        self.count = count

    def __len__(self) -> int:
        return self.count

    def SerializePartialToString(self) -> bytes:
        return self.data

    SerializeToString = SerializePartialToString


def _passing_serialized(encode: Any) -> Any:
    def encode_or_pass(items: Any, *args: Any, **kwargs: Any) -> Any:
        if type(items) is SerializedBatch:
            return items
        return encode(items, *args, **kwargs)

    encode_or_pass.__wrapped__ = encode  # type: ignore[attr-defined]
    encode_or_pass.passes_serialized = True  # type: ignore[attr-defined]
    return encode_or_pass


def http_passthrough() -> bool:
    """Let upstream's OTLP/HTTP span and log ``export()`` take a ``SerializedBatch`` (idempotent).

    Returns False, changing nothing, when an ``export()`` no longer encodes through its module's
    ``encode_spans``/``encode_logs``: our exporters then let upstream encode (the public path).
    """
    from opentelemetry.exporter.otlp.proto.http import _log_exporter, trace_exporter

    targets = ((trace_exporter, "encode_spans", trace_exporter.OTLPSpanExporter.export),
               (_log_exporter, "encode_logs", _log_exporter.OTLPLogExporter.export))
    if not all(name in method.__code__.co_names and callable(getattr(module, name, None))
               for module, name, method in targets):
        return False
    for module, name, _method in targets:
        current = getattr(module, name)
        if not getattr(current, "passes_serialized", False):
            setattr(module, name, _passing_serialized(current))
    return True


def use_urllib3_transport(exporter: Any) -> bool:
    """Swap an OTLP/HTTP exporter's requests transport for upstream's urllib3 one (exporters >= 1.45).

    Returns False, changing nothing, on releases without the pluggable transport or when the caller
    chose their own session or transport.
    """
    client = getattr(exporter, "_client", None)
    if client is None or not hasattr(client, "_transport"):
        return False
    try:
        from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
        from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport
    except ImportError:
        return False
    old = client._transport
    if type(old) is not RequestsHTTPTransport:  # a session or transport the caller chose
        return False
    client._transport = Urllib3HTTPTransport(verify=True)
    old.close()
    return True


# -- semantic-convention mode (opentelemetry-instrumentation) --------------------------------------


def semconv_mode() -> Any:
    """The HTTP semantic-convention mode, read from OTEL_SEMCONV_STABILITY_OPT_IN once per process."""
    from opentelemetry.instrumentation._semconv import (
        _OpenTelemetrySemanticConventionStability,
        _OpenTelemetryStabilitySignalType,
    )

    _OpenTelemetrySemanticConventionStability._initialize()
    return _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
        _OpenTelemetryStabilitySignalType.HTTP
    )


def reset_semconv_mode() -> None:
    """Forget the mode read from the environment, so the next read sees it afresh (tests only)."""
    from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability

    with _OpenTelemetrySemanticConventionStability._lock:
        _OpenTelemetrySemanticConventionStability._initialized = False
        _OpenTelemetrySemanticConventionStability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = {}
