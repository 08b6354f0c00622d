"""Exporter factory: OTLP/HTTP (default), OTLP/gRPC made gevent-safe, console."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

from .. import _diag, _threads
from .._config import ExporterConfig

_grpc_gevent_ready = False


def _grpc_for_gevent() -> None:
    """Make gRPC cooperate with gevent when gevent has patched this process.

    Called on the export worker thread just before the first gRPC channel is created, i.e. after
    the server's worker has monkey-patched. Without it gRPC's Python-side locks are gevent's and a
    blocked call can stall the hub.
    """
    global _grpc_gevent_ready
    if _grpc_gevent_ready or not _threads.gevent_patched("socket"):
        return
    from grpc.experimental import gevent as grpc_gevent

    grpc_gevent.init_gevent()
    _grpc_gevent_ready = True


def _otlp_http(signal: str, ec: ExporterConfig) -> Any:
    from opentelemetry.exporter.otlp.proto.http import Compression

    kwargs: dict[str, Any] = {
        "endpoint": ec.endpoint,
        "headers": dict(ec.headers),
        "timeout": ec.timeout,
        "compression": Compression(ec.compression),
        "certificate_file": ec.certificate,
        "client_key_file": ec.client_key,
        "client_certificate_file": ec.client_certificate,
    }
    # Spans and logs: upstream's exporters with our lean encoder (byte-identical output, ~6x less
    # CPU per span; tests/export/test_protobuf.py proves both).
    from .otlp_http import HTTPLogExporter, HTTPSpanExporter, use_urllib3

    exporter: Any
    if signal == "traces":
        exporter = HTTPSpanExporter(**kwargs)
    elif signal == "logs":
        exporter = HTTPLogExporter(**kwargs)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(**kwargs)
    use_urllib3(exporter, ec.endpoint)  # plain http, no proxy: the same request for half the CPU
    return exporter


def _otlp_grpc(signal: str, ec: ExporterConfig) -> Any:
    _grpc_for_gevent()
    from grpc import Compression as GrpcCompression

    compression = {
        "none": GrpcCompression.NoCompression,
        "gzip": GrpcCompression.Gzip,
        "deflate": GrpcCompression.Deflate,
    }[ec.compression]
    credentials = None
    if ec.certificate or ec.client_certificate:
        import grpc

        def read(path: str | None) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as f:
                return f.read()

        credentials = grpc.ssl_channel_credentials(
            read(ec.certificate), read(ec.client_key), read(ec.client_certificate)
        )
    insecure = ec.endpoint.startswith("http://") and credentials is None
    kwargs: dict[str, Any] = {
        "endpoint": ec.endpoint,
        "headers": dict(ec.headers),
        "timeout": ec.timeout,
        "compression": compression,
        "insecure": insecure,
        "credentials": credentials,
    }
    # Spans and logs: upstream's exporters sending the lean encoder's bytes (tests/export/test_otlp_grpc.py).
    if signal == "traces":
        from .otlp_grpc import GrpcSpanExporter

        return GrpcSpanExporter(**kwargs)
    if signal == "logs":
        from .otlp_grpc import GrpcLogExporter

        return GrpcLogExporter(**kwargs)
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(**kwargs)


def _console(signal: str) -> Any:
    if signal == "traces":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    if signal == "logs":
        from .._upstream import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter(out=sys.stderr)
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    return ConsoleMetricExporter(out=sys.stderr)


# What make_exporter imports, per protocol (and for metrics), besides what setup() already has;
# requests (and urllib3) only in the HTTP exporters' constructors. tests/test_preload.py keeps it whole.
_PRELOAD = {
    "http/protobuf": ("otel_showmax._export.otlp_http", "requests"),
    "grpc": ("otel_showmax._export.otlp_grpc", "grpc.experimental.gevent"),
}
_PRELOAD_METRICS = {
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
}


def preload(ec: ExporterConfig) -> None:
    """Import now what ``make_exporter(ec)`` would import later, on the export thread.

    A busy request thread holds the GIL, and a thread importing modules waits for it again after
    every file-system call: importing the HTTP exporters (requests, urllib3, protobuf) took ~2 s
    on the export thread of a saturated process against ~0.15 s otherwise, long enough for a
    fresh worker under load to fill its log queue and drop records before its first export.
    Importing is fork-safe (no thread, no socket, no channel); the exporter itself is still made
    lazily in each process. A failure here is reported when the exporter is made, not now.
    """
    if ec.kind != "otlp":
        return
    names = _PRELOAD.get(ec.protocol, ())
    if ec.signal == "metrics" and ec.protocol in _PRELOAD_METRICS:
        names = (*names, _PRELOAD_METRICS[ec.protocol])
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # pragma: no cover - a broken installation: make_exporter says what is wrong
            pass


def preload_when_safe(configs: list[ExporterConfig]) -> None:
    """``preload`` each config once gevent has patched ``ssl`` in this process: now if it has,
    else right after a ``patch_all`` here or in a forked child (a gunicorn master with gevent
    workers, the wrapper, an app about to patch). urllib3 imported before ``ssl`` is patched makes
    gevent warn and keeps unpatched ``ssl`` names. A process that never patches imports them
    lazily on its export thread, as before.
    """
    if _threads.gevent_patched("ssl"):
        for ec in configs:
            preload(ec)
        return
    _waiting[:] = configs  # the latest configuration's (testing.reset() and setup() again)
    if not _subscribed:
        try:
            import zope.event  # gevent's dependency; gevent notifies its subscribers
        except ImportError:  # pragma: no cover - gevent is a dependency of otel_showmax
            return
        zope.event.subscribers.append(_after_patch_all)
        _subscribed.append(True)


_waiting: list[ExporterConfig] = []
_subscribed: list[bool] = []


def _after_patch_all(event: Any) -> None:
    """zope.event subscriber: preload what waits once gevent's ``patch_all`` has finished. Must not
    raise (gevent would skip the subscribers after it); does not import gevent."""
    if not _waiting or type(event).__name__ != "GeventDidPatchAllEvent":
        return
    configs = list(_waiting)
    _waiting.clear()
    for ec in configs:
        preload(ec)


def make_exporter(ec: ExporterConfig) -> Any:
    """Build the exporter for one signal. Called on the export worker thread, once per process."""
    if ec.kind == "console":
        return _console(ec.signal)
    if ec.protocol == "grpc":
        return _otlp_grpc(ec.signal, ec)
    return _otlp_http(ec.signal, ec)


def quiet_upstream_loggers() -> None:
    """Send OpenTelemetry's own log output through our rate-limited stderr diagnostics.

    The OTLP exporters log a warning per retry and an error per failed batch; on the root logger
    those would reach the OTel bridge (a feedback loop) and flood the app's logs.
    """
    for name in ("opentelemetry.exporter", "opentelemetry.sdk"):
        upstream = logging.getLogger(name)
        if not any(isinstance(h, _RateLimited) for h in upstream.handlers):
            upstream.addHandler(_RateLimited(logging.WARNING))
        upstream.propagate = False


def restore_upstream_loggers() -> None:
    """Undo ``quiet_upstream_loggers`` (testing.reset)."""
    for name in ("opentelemetry.exporter", "opentelemetry.sdk"):
        upstream = logging.getLogger(name)
        for handler in [h for h in upstream.handlers if isinstance(h, _RateLimited)]:
            upstream.removeHandler(handler)
        upstream.propagate = True


class _RateLimited(logging.Handler):
    """Passes each message template to _diag at most once per diagnostics interval."""

    def handle(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return False
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        _diag.warn(f"upstream:{record.name}:{record.msg}", "%s", message, level=record.levelno)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)
