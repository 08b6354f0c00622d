"""OTLP/HTTP span and log exporters encoding with otel_showmax._export.protobuf (bad items contained by contain.py).

They are upstream's exporters (opentelemetry-exporter-otlp-proto-http) and run upstream's own
``export()``: the same shutdown check, exporter metrics, size limit, HTTP client, retries and result
mapping, on every supported release. Only the encoding is ours: the batch is serialized by
``contain.py`` (an item that cannot be encoded is escaped or left out alone, and ``invalid_items``
says how many were left out, for the BatchWorker to count) and handed to upstream's ``export()`` as
a ``SerializedBatch``, which upstream's encoder call passes through (``_upstream.http_passthrough``).

When an upstream release no longer encodes through that call, or our bytes differ from upstream's
(checked at ``setup()``, otel_showmax/_selfcheck.py), ``ENCODER_ON`` is False and upstream encodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from .._upstream import HTTPOTLPLogExporter as OTLPLogExporter
from .._upstream import LogRecordExportResult, SerializedBatch, http_passthrough, use_urllib3_transport
from .contain import encode_logs_counted, encode_spans_counted

__all__ = ["ENCODER_ON", "HTTPLogExporter", "HTTPSpanExporter", "use_urllib3"]

# Whether our encoder feeds upstream's export(): False when upstream's export() cannot take it.
ENCODER_ON = http_passthrough()


class HTTPSpanExporter(OTLPSpanExporter):
    """``OTLPSpanExporter`` (HTTP/protobuf) with the lean encoder; same arguments and behaviour."""

    invalid_items = 0  # spans the last encoding left out (contain.py)

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if ENCODER_ON and not self._shutdown:
            try:
                data, self.invalid_items = encode_spans_counted(spans)
            except Exception:  # upstream's encoder decides, and reports, as it would without us
                self.invalid_items = 0
            else:
                return super().export(SerializedBatch(data, len(spans)))  # type: ignore[arg-type]
        return super().export(spans)


class HTTPLogExporter(OTLPLogExporter):
    """``OTLPLogExporter`` (HTTP/protobuf) with the lean encoder; same arguments and behaviour."""

    invalid_items = 0  # records the last encoding left out (contain.py)

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        if ENCODER_ON and not self._shutdown:
            try:
                data, self.invalid_items = encode_logs_counted(batch)
            except Exception:  # upstream's encoder decides, and reports, as it would without us
                self.invalid_items = 0
            else:
                result: LogRecordExportResult = super().export(SerializedBatch(data, len(batch)))
                return result
        result = super().export(batch)
        return result


def use_urllib3(exporter: Any, endpoint: str) -> bool:
    """Send through upstream's urllib3 transport instead of requests, where that changes nothing.

    Upstream's OTLP/HTTP exporters post through a ``requests.Session`` (~0.9 ms of CPU per export
    here); upstream's ``Urllib3HTTPTransport`` sends the same request for ~0.4 ms. requests also
    reads proxies, CA bundles and netrc credentials from the environment, which urllib3 does not:
    so only plain ``http://`` endpoints with no proxy and no netrc file switch. Returns True when
    switched.
    """
    import os
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(endpoint)
    if parts.scheme != "http" or not parts.hostname:
        return False
    proxy = getproxies().get("http") or getproxies().get("all")
    if proxy and not proxy_bypass(parts.hostname):
        return False
    netrc = os.environ.get("NETRC")
    home = os.path.expanduser("~")
    if netrc or any(os.path.exists(os.path.join(home, name)) for name in (".netrc", "_netrc")):
        return False
    return use_urllib3_transport(exporter)
