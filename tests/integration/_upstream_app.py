"""Negative control: the catalogue's list endpoint set up with plain upstream OpenTelemetry.

The textbook set-up, without otel_showmax: TracerProvider + BatchSpanProcessor and LoggerProvider +
BatchLogRecordProcessor with the OTLP/HTTP exporters, the logging handler of
opentelemetry-instrumentation-logging on the root logger, and opentelemetry-instrumentation-falcon.
Both providers flush from Python's ``atexit`` (``shutdown_on_exit=True``, upstream's default).
Configured from the standard OTEL_* environment variables, in each worker (run with lazy-apps).
"""

import logging
import os

from opentelemetry import _logs, trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.falcon import FalconInstrumentor
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

resource = Resource.create({"process.pid": os.getpid()})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(tracer_provider)
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
_logs.set_logger_provider(logger_provider)
logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
FalconInstrumentor().instrument()

import falcon  # noqa: E402

log = logging.getLogger("catalogue")
log.setLevel(logging.INFO)
TITLES = [{"id": i, "title": f"Title {i}", "year": 1995 + i % 30} for i in range(1, 121)]


class Titles:
    def on_get(self, req, resp):
        page = TITLES[:20]
        log.info("listed %d of %d titles", len(page), len(TITLES))
        resp.media = {"titles": page, "total": len(TITLES), "offset": 0, "limit": 20}


class Health:
    def on_get(self, req, resp):
        resp.media = {"status": "ok", "pid": os.getpid()}


app = falcon.App()
app.add_route("/titles", Titles())
app.add_route("/health", Health())
