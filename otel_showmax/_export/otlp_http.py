"""OTLP/HTTP span and log exporters encoding with otel_showmax._export.protobuf (bad items contained by contain.py).

They are upstream's exporters (opentelemetry-exporter-otlp-proto-http) with ``export()`` copied
line for line, except for the encoding call (``contain.py``: an item that cannot be encoded is
escaped or left out alone, and ``invalid_items`` says how many were left out, for the BatchWorker
to count): the same shutdown check, exporter metrics,
``max_request_size`` check, HTTP client, retries and result mapping. The copy reads upstream's
private ``_shutdown``, ``_metrics``, ``_max_request_size`` and ``_client`` and imports from its
private ``_common`` module — this module is the only place that does, and tests/export/test_protobuf.py
fails loudly when an upstream release renames them or changes the ``export()`` we copied.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http import _log_exporter as _upstream_logs
from opentelemetry.exporter.otlp.proto.http import trace_exporter as _upstream_spans
from opentelemetry.exporter.otlp.proto.http._common import RequestPayloadTooLargeError, _is_request_too_large
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE

from .contain import encode_logs_counted, encode_spans_counted

__all__ = ["HTTPLogExporter", "HTTPSpanExporter", "use_urllib3"]

# Upstream's module loggers: messages keep their names (and the log exporter's DuplicateFilter).
_span_logger = logging.getLogger(_upstream_spans.__name__)
_log_logger = logging.getLogger(_upstream_logs.__name__)


class HTTPSpanExporter(OTLPSpanExporter):
    """``OTLPSpanExporter`` (HTTP/protobuf) with the lean encoder; same arguments and behaviour."""

    invalid_items = 0  # spans the last encoding left out (contain.py)

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if self._shutdown:
            _span_logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE

        with self._metrics.export_operation(len(spans)) as result:
            try:
                serialized_data, self.invalid_items = encode_spans_counted(spans)
            except Exception as error:
                _span_logger.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE

            if _is_request_too_large(serialized_data, self._max_request_size):
                _span_logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                    len(serialized_data),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(serialized_data)} "
                    f"bytes exceeds max_request_size "
                    f"{self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE

            export_result = self._client.export(serialized_data)
            if not export_result.success:
                result.error = export_result.error
                result.error_attrs = (
                    {HTTP_RESPONSE_STATUS_CODE: export_result.status_code}
                    if export_result.status_code is not None
                    else None
                )
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


class HTTPLogExporter(OTLPLogExporter):
    """``OTLPLogExporter`` (HTTP/protobuf) with the lean encoder; same arguments and behaviour."""

    invalid_items = 0  # records the last encoding left out (contain.py)

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        if self._shutdown:
            _log_logger.warning("Exporter already shutdown, ignoring batch")
            return LogRecordExportResult.FAILURE

        with self._metrics.export_operation(len(batch)) as result:
            try:
                serialized_data, self.invalid_items = encode_logs_counted(batch)
            except Exception as error:
                _log_logger.error("Failed to encode logs batch: %s", error)
                result.error = error
                return LogRecordExportResult.FAILURE

            if _is_request_too_large(serialized_data, self._max_request_size):
                _log_logger.warning(
                    "Dropping logs batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                    len(serialized_data),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized logs request size {len(serialized_data)} "
                    f"bytes exceeds max_request_size "
                    f"{self._max_request_size} bytes."
                )
                return LogRecordExportResult.FAILURE

            export_result = self._client.export(serialized_data)
            if not export_result.success:
                result.error = export_result.error
                result.error_attrs = (
                    {HTTP_RESPONSE_STATUS_CODE: export_result.status_code}
                    if export_result.status_code is not None
                    else None
                )
                return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS


def use_urllib3(exporter: Any, endpoint: str) -> bool:
    """Send through upstream's urllib3 transport instead of requests, where that changes nothing.

    Upstream's OTLP/HTTP exporters post through a ``requests.Session`` (~0.9 ms of CPU per export
    here); upstream's ``Urllib3HTTPTransport`` sends the same request for ~0.4 ms. requests also
    reads proxies, CA bundles and netrc credentials from the environment, which urllib3 does not:
    so only plain ``http://`` endpoints with no proxy and no netrc file switch. Returns True when
    switched.
    """
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
    client = exporter._client
    from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
    from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport

    old = client._transport
    if type(old) is not RequestsHTTPTransport:  # a session or transport the caller chose
        return False
    client._transport = Urllib3HTTPTransport(verify=True)
    old.close()
    return True
