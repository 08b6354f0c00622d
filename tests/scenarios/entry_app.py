"""An app run under each entry-point scenario of tests/test_entry_points.py.

It logs N records inside N spans; SCENARIO decides how telemetry is configured.
"""

import logging
import logging.config
import os

from opentelemetry import trace

SCENARIO = os.environ["SCENARIO"]
N = int(os.environ.get("N", "20"))

if SCENARIO in ("setup", "wrapper+setup", "wrapper+sdk-logging+setup", "setup+dictconfig", "setup+basicconfig"):
    import otel_showmax

    otel_showmax.setup()

if SCENARIO == "setup+dictconfig":
    logging.config.dictConfig(
        {
            "version": 1,
            "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
            "root": {"level": "INFO", "handlers": ["console"]},
        }
    )
elif SCENARIO == "setup+basicconfig":
    logging.basicConfig(force=True, level=logging.INFO)

if SCENARIO == "get_logger":
    import otel_showmax

    for _ in range(1000):
        log = otel_showmax.get_logger("scenario")
elif SCENARIO == "naive-helper":
    # The seed's bug, with upstream OpenTelemetry: a handler added by every get_logger() call.
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    set_logger_provider(provider)

    def get_logger():
        logger = logging.getLogger("scenario")
        logger.addHandler(LoggingHandler(logger_provider=provider))
        return logger

    for _ in range(3):
        log = get_logger()
else:
    log = logging.getLogger("scenario")

log.setLevel(logging.INFO)
tracer = trace.get_tracer("scenario")
for i in range(N):
    with tracer.start_as_current_span(f"op-{i}"):
        log.info("message %d", i)
if SCENARIO == "naive-helper":
    provider.shutdown()
