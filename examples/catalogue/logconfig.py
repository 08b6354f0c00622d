"""Local logging for the example services: one line per record on stderr, with the trace ids.

The application configures logging as it always would (``dictConfig`` here); otel_showmax's bridge
survives it (exactly once) and keeps exporting every record to the collector. Set
``EXAMPLE_LOG_FORMAT=text`` for ``2026-… INFO catalogue [trace_id=… span_id=…] message`` lines
instead of JSON.
"""

from __future__ import annotations

import logging.config
import os


def configure(level: str | None = None) -> None:
    fmt = os.environ.get("EXAMPLE_LOG_FORMAT", "json")
    formatter = "otel_showmax.correlation.TextFormatter" if fmt == "text" else "otel_showmax.correlation.JSONFormatter"
    logging.config.dictConfig(
        {
            "version": 1,
            # gunicorn's and uWSGI's own loggers exist already: leave them alone.
            "disable_existing_loggers": False,
            "formatters": {"local": {"()": formatter}},
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "local", "stream": "ext://sys.stderr"}},
            # INFO for the app's loggers and for otel_showmax's request log (otel_showmax.request).
            "root": {"level": level or os.environ.get("EXAMPLE_LOG_LEVEL", "INFO"), "handlers": ["stderr"]},
        }
    )
