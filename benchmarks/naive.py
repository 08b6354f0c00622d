"""The seed's remote log handler, done the naive way: one blocking HTTP POST per log record.

This is the floor the benchmark compares against (what otel_showmax saves): the handler is added
once (the seed's ``if not logger.handlers`` fix), but it still sends each record synchronously
inside the request. It posts an OTLP/HTTP protobuf logs request so the same receiver counts it.
Connections are kept alive, one per greenlet/thread (``threading.local`` is greenlet-local
under gevent), which is kinder than the seed's handler, so the floor is not exaggerated.
"""

from __future__ import annotations

import http.client
import logging
import os
import threading
import time
from urllib.parse import urlsplit

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest


class RemoteHandler(logging.Handler):
    def __init__(self, endpoint: str) -> None:
        super().__init__()
        url = urlsplit(endpoint)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 4318
        self._local = threading.local()
        self._service = os.environ.get("OTEL_SERVICE_NAME", "catalogue")

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self._host, self._port, timeout=10)
        return conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            request = ExportLogsServiceRequest()
            resource_logs = request.resource_logs.add()
            attr = resource_logs.resource.attributes.add()
            attr.key, attr.value.string_value = "service.name", self._service
            item = resource_logs.scope_logs.add().log_records.add()
            item.time_unix_nano = int(record.created * 1e9)
            item.observed_time_unix_nano = time.time_ns()
            item.severity_text = record.levelname
            item.body.string_value = self.format(record)
            body = request.SerializeToString()
            conn = self._conn()
            try:
                conn.request("POST", "/v1/logs", body, {"Content-Type": "application/x-protobuf"})
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                raise
        except Exception:
            self.handleError(record)


def install(endpoint: str) -> RemoteHandler:
    """Attach the handler to the app's logger, once (the seed's fixed ``get_logger``)."""
    logger = logging.getLogger("catalogue")
    for handler in logger.handlers:
        if isinstance(handler, RemoteHandler):
            return handler
    handler = RemoteHandler(endpoint)
    logger.addHandler(handler)
    return handler
