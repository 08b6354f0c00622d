"""Entry points for ``opentelemetry-instrument``: the wrapper configures through ``setup()``.

``ShowmaxDistro`` only sets defaults and steers instrumentors; ``ShowmaxConfigurator`` calls the same
``setup()`` path as application code. Upstream's loader swallows exceptions from distros, so a
configuration error is printed here and the process exits non-zero instead of running untraced.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from ._errors import ConfigError

ENTRY_POINT = "opentelemetry-instrument"


class ShowmaxDistro(BaseDistro):
    """The otel_showmax distro: OTLP/HTTP by default, one logging bridge, Falcon set up by setup()."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name == "falcon":
            return  # setup() instrumented Falcon with otel_showmax's defaults already
        if entry_point.name == "logging":
            # Trace-context injection is ours (otel_showmax.correlation) and so is the bridge:
            # a second OTel logging handler would export every record twice.
            kwargs["enable_log_auto_instrumentation"] = False
        from ._instrumentation import libraries

        # In a gunicorn master before gevent patches, importing requests & co. would make gevent
        # warn: wait for patch_all or the first request, as setup() does.
        libraries.later(lambda: BaseDistro.load_instrumentor(self, entry_point, **kwargs))


class ShowmaxConfigurator:
    """``opentelemetry_configurator`` entry point: calls ``otel_showmax.setup()``."""

    def configure(self, **kwargs: Any) -> None:
        from . import _setup

        try:
            _setup.setup(entry_point=ENTRY_POINT)
        except ConfigError as error:
            fail(error)


def fail(error: Exception) -> None:
    """Print a configuration error and end the process: never run silently unconfigured."""
    sys.stderr.write(f"{error}\n")
    sys.stderr.flush()
    os._exit(2)
