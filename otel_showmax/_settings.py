"""Every setting, declared once: keyword name, environment variables, default, parser.

Standard ``OTEL_*`` variables keep their specification meaning; package settings use the
``OTEL_SHOWMAX_`` prefix. Per-signal exporter settings list the signal-specific variable first
and fall back to the generic one, as the specification says.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

PREFIX = "OTEL_SHOWMAX_"
SIGNALS = ("traces", "logs", "metrics")


class Invalid(Exception):
    """Raised by a parser; the resolver turns it into a ConfigError naming the source."""


@dataclass(frozen=True)
class Setting:
    """One setting: a Config field, where it is read from, and how it is parsed."""

    field: str
    env: tuple[str, ...]
    default: Any
    parse: Callable[[Any], Any]
    accepted: str
    secret: bool = False
    doc: str = ""


# -- parsers: each takes a str (from the environment) or an already-typed keyword value ----------


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise Invalid


def non_negative_int(value: Any) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise Invalid
    if isinstance(number, bool) or number < 0:
        raise Invalid
    return number


def positive_int(value: Any) -> int:
    number = non_negative_int(value)
    if number == 0:
        raise Invalid
    return number


def optional_limit(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return non_negative_int(value)


def non_negative_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid
    if number != number or number < 0 or number == float("inf"):
        raise Invalid
    return number


def threshold_ms(value: Any) -> float:
    """The hub-block threshold in milliseconds: ``0``/``off``/``false`` (disabled) or a number >= 10."""
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "false", "no", "none")):
        return 0.0
    if isinstance(value, bool):
        raise Invalid
    number = non_negative_float(value)
    if 0 < number < 10:
        raise Invalid
    return number


def ratio(value: Any) -> float:
    number = non_negative_float(value)
    if number > 1:
        raise Invalid
    return number


def text(value: Any) -> str:
    return str(value).strip()


def optional_text(value: Any) -> str | None:
    result = str(value).strip() if value is not None else ""
    return result or None


def choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        result = str(value).strip().lower()
        if result not in options:
            raise Invalid
        return result

    return parse


def csv(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [str(v).strip() for v in value]
    else:
        items = [part.strip() for part in str(value).split(",")]
    return tuple(item for item in items if item)


def instrumentation_names(value: Any) -> tuple[str, ...] | None:
    """``all`` (None: every installed one), ``none`` (an empty tuple), or the names."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in ("all", ""):
        return None
    if isinstance(value, str) and value.strip().lower() == "none":
        return ()
    return csv(value)


def lower_csv(value: Any) -> tuple[str, ...]:
    return tuple(item.lower() for item in csv(value))


def regex_csv(value: Any) -> tuple[str, ...]:
    items = csv(value)
    for item in items:
        try:
            re.compile(item)
        except re.error:
            raise Invalid
    return items


_HEADER_KEY = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def headers(value: Any) -> tuple[tuple[str, str], ...]:
    """Parse W3C-baggage-style ``key=value,key2=value2`` (values URL-encoded), or a mapping."""
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for part in str(value).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise Invalid
            key, _, val = part.partition("=")
            pairs.append((unquote(key.strip()), unquote(val.strip())))
    for key, _ in pairs:
        if not _HEADER_KEY.match(key):
            raise Invalid
    return tuple((k.lower(), v) for k, v in pairs)


def mapping(value: Any) -> tuple[tuple[str, str], ...]:
    """Resource attributes: a mapping, or ``key=value,...`` like OTEL_RESOURCE_ATTRIBUTES."""
    if isinstance(value, dict):
        return tuple((str(k), str(v)) for k, v in value.items())
    pairs = []
    for part in str(value).split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise Invalid
        key, _, val = part.partition("=")
        if not key.strip():
            raise Invalid
        pairs.append((unquote(key.strip()), unquote(val.strip())))
    return tuple(pairs)


def existing_file(value: Any) -> str | None:
    path = optional_text(value)
    if path is not None and not os.path.isfile(path):
        raise Invalid
    return path


def pem_file(value: Any) -> str | None:
    """The path of a readable file holding at least one PEM block (certificate or key)."""
    path = existing_file(value)
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            head = file.read(1 << 20)
    except OSError:
        raise Invalid
    if b"-----BEGIN " not in head:
        raise Invalid
    return path


_HOST_PORT = re.compile(r"^\[?[A-Za-z0-9._:-]+\]?:\d{1,5}$")


def endpoint(value: Any) -> str | None:
    """An OTLP endpoint: ``http(s)://host[:port][/path]``, or ``host:port`` (gRPC's short form)."""
    url = optional_text(value)
    if url is None:
        return None
    if any(c.isspace() for c in url):
        raise Invalid
    if "://" not in url:
        if not _HOST_PORT.match(url):
            raise Invalid
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Invalid
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or (port is not None and not 0 < port < 65536):
        raise Invalid
    return url


def level(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    name = str(value).strip().upper()
    if name.isdigit():
        return int(name)
    number = logging.getLevelName(name)
    if not isinstance(number, int):
        raise Invalid
    return number


EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("http/protobuf", "grpc")
COMPRESSIONS = ("none", "gzip", "deflate")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
LOG_FIELD_PRESETS = ("plain", "otel", "ecs")

DEFAULT_EXCLUDED_URLS = (
    r"/(health|healthz|healthcheck|ready|readyz|readiness|live|livez|liveness|ping|status)/?$",
)
DEFAULT_REQUEST_HEADERS = ("user-agent", "content-type", "x-request-id", "x-forwarded-for")
DEFAULT_RESPONSE_HEADERS = ("content-type", "x-request-id")
DEFAULT_SANITIZE_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-csrf-token",
    "x-amz-security-token",
    ".*secret.*",
    ".*token.*",
    ".*password.*",
)
DEFAULT_REDACT_QUERY = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "key",
    "api_key",
    "apikey",
    "signature",
    "sig",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "auth",
    "code",
    "session",
)


def _exporter_settings() -> list[Setting]:
    """Generic OTLP settings plus their per-signal variants (signal-specific env var first)."""
    generic = [
        ("endpoint", endpoint, None, "an http:// or https:// URL such as http://127.0.0.1:4318 (or host:port for gRPC)",
         False),
        ("protocol", choice(*PROTOCOLS), "http/protobuf", ", ".join(PROTOCOLS), False),
        ("headers", headers, (), "key=value pairs separated by commas (values URL-encoded)", True),
        ("timeout", non_negative_float, 10.0, "a number of seconds >= 0 (as opentelemetry-sdk reads it)", False),
        ("compression", choice(*COMPRESSIONS), "none", ", ".join(COMPRESSIONS), False),
        ("certificate", pem_file, None, "the path of a readable PEM CA certificate file", False),
        ("client_key", pem_file, None, "the path of a readable PEM client key file", False),
        ("client_certificate", pem_file, None, "the path of a readable PEM client certificate file", False),
    ]
    out = []
    for name, parse, default, accepted, secret in generic:
        env = f"OTEL_EXPORTER_OTLP_{name.upper()}"
        out.append(Setting(f"otlp_{name}", (env,), default, parse, accepted, secret))
        for signal in SIGNALS:
            signal_env = f"OTEL_EXPORTER_OTLP_{signal.upper()}_{name.upper()}"
            # None means "use the generic value".
            out.append(Setting(f"{signal}_{name}", (signal_env,), None, parse, accepted, secret))
    return out


SETTINGS: tuple[Setting, ...] = (
    Setting("disabled", ("OTEL_SDK_DISABLED",), False, boolean, "true or false"),
    Setting("service_name", ("OTEL_SERVICE_NAME",), None, optional_text, "a non-empty name"),
    Setting("resource_attributes", ("OTEL_RESOURCE_ATTRIBUTES",), (), mapping, "key=value pairs separated by commas"),
    Setting("traces_exporter", ("OTEL_TRACES_EXPORTER",), "otlp", choice(*EXPORTERS), ", ".join(EXPORTERS)),
    Setting("logs_exporter", ("OTEL_LOGS_EXPORTER",), "otlp", choice(*EXPORTERS), ", ".join(EXPORTERS)),
    Setting("metrics_exporter", ("OTEL_METRICS_EXPORTER",), "otlp", choice(*EXPORTERS), ", ".join(EXPORTERS)),
    *_exporter_settings(),
    Setting("sampler", ("OTEL_TRACES_SAMPLER",), "parentbased_always_on", choice(*SAMPLERS), ", ".join(SAMPLERS)),
    Setting("sampler_arg", ("OTEL_TRACES_SAMPLER_ARG",), 1.0, ratio, "a number from 0 to 1"),
    Setting("propagators", ("OTEL_PROPAGATORS",), ("tracecontext", "baggage"), lower_csv, "installed propagator names"),
    Setting("bsp_schedule_delay_ms", ("OTEL_BSP_SCHEDULE_DELAY",), 5000, non_negative_int, "milliseconds >= 0"),
    Setting("bsp_export_timeout_ms", ("OTEL_BSP_EXPORT_TIMEOUT",), 30000, non_negative_int, "milliseconds >= 0"),
    Setting("bsp_max_queue_size", ("OTEL_BSP_MAX_QUEUE_SIZE",), 2048, positive_int, "an integer > 0"),
    Setting("bsp_max_export_batch_size", ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",), 512, positive_int, "an integer > 0"),
    Setting("blrp_schedule_delay_ms", ("OTEL_BLRP_SCHEDULE_DELAY",), 1000, non_negative_int, "milliseconds >= 0"),
    Setting("blrp_export_timeout_ms", ("OTEL_BLRP_EXPORT_TIMEOUT",), 30000, non_negative_int, "milliseconds >= 0"),
    Setting("blrp_max_queue_size", ("OTEL_BLRP_MAX_QUEUE_SIZE",), 2048, positive_int, "an integer > 0"),
    Setting("blrp_max_export_batch_size", ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",), 512, positive_int, "an integer > 0"),
    Setting("metric_export_interval_ms", ("OTEL_METRIC_EXPORT_INTERVAL",), 60000, positive_int, "milliseconds > 0"),
    Setting("metric_export_timeout_ms", ("OTEL_METRIC_EXPORT_TIMEOUT",), 30000, non_negative_int, "milliseconds >= 0"),
    Setting(
        "attribute_value_length_limit",
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",),
        4096,
        optional_limit,
        "an integer >= 0",
        doc="otel_showmax defaults to 4096 characters (the SDK has no limit) so huge values are truncated.",
    ),
    Setting("attribute_count_limit", ("OTEL_ATTRIBUTE_COUNT_LIMIT",), 128, optional_limit, "an integer >= 0"),
    Setting(
        "span_attribute_value_length_limit", ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",), None, optional_limit,
        "an integer >= 0",
    ),
    Setting("span_attribute_count_limit", ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",), None, optional_limit, "an integer >= 0"),
    Setting("span_event_count_limit", ("OTEL_SPAN_EVENT_COUNT_LIMIT",), None, optional_limit, "an integer >= 0"),
    Setting("span_link_count_limit", ("OTEL_SPAN_LINK_COUNT_LIMIT",), None, optional_limit, "an integer >= 0"),
    Setting(
        "log_record_attribute_count_limit", ("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",), None, optional_limit,
        "an integer >= 0",
    ),
    # -- otel_showmax's own settings -------------------------------------------------------------
    Setting(
        "shutdown_timeout", (PREFIX + "SHUTDOWN_TIMEOUT",), 4.0, non_negative_float, "seconds >= 0",
        doc="The whole shutdown, all signals together; 4 s leaves a worker exit within 6 s of SIGTERM.",
    ),
    Setting("log_correlation", (PREFIX + "LOG_CORRELATION",), True, boolean, "true or false"),
    Setting("log_fields", (PREFIX + "LOG_FIELDS",), "plain", choice(*LOG_FIELD_PRESETS), ", ".join(LOG_FIELD_PRESETS)),
    Setting("log_export_level", (PREFIX + "LOG_EXPORT_LEVEL",), logging.NOTSET, level, "a logging level name"),
    Setting("instrument_falcon", (PREFIX + "INSTRUMENT_FALCON",), True, boolean, "true or false"),
    Setting(
        "instrumentations", (PREFIX + "INSTRUMENTATIONS",), None, instrumentation_names,
        "all, none, or instrumentation names separated by commas (e.g. requests,sqlite3,redis)",
        doc="which installed OpenTelemetry instrumentors setup() turns on (all by default, as the wrapper)",
    ),
    Setting(
        "disabled_instrumentations", ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",), (), csv,
        "instrumentation names separated by commas, or * for all",
    ),
    Setting("request_log", (PREFIX + "REQUEST_LOG",), True, boolean, "true or false"),
    Setting("request_log_logger", (PREFIX + "REQUEST_LOG_LOGGER",), "otel_showmax.request", text, "a logger name"),
    Setting("request_log_level", (PREFIX + "REQUEST_LOG_LEVEL",), logging.INFO, level, "a logging level name"),
    Setting(
        "excluded_urls",
        (PREFIX + "EXCLUDED_URLS", "OTEL_PYTHON_FALCON_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"),
        DEFAULT_EXCLUDED_URLS,
        regex_csv,
        "comma-separated regular expressions",
    ),
    Setting(
        "capture_request_headers",
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",),
        DEFAULT_REQUEST_HEADERS,
        lower_csv,
        "comma-separated header names",
    ),
    Setting(
        "capture_response_headers",
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",),
        DEFAULT_RESPONSE_HEADERS,
        lower_csv,
        "comma-separated header names",
    ),
    Setting(
        "sanitize_headers",
        ("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",),
        DEFAULT_SANITIZE_HEADERS,
        lower_csv,
        "comma-separated header names or regular expressions (added to the built-in list)",
    ),
    Setting(
        "redact_query_params",
        (PREFIX + "REDACT_QUERY_PARAMS",),
        DEFAULT_REDACT_QUERY,
        lower_csv,
        "comma-separated query parameter names (added to the built-in list)",
    ),
    Setting("diagnostics_interval", (PREFIX + "DIAGNOSTICS_INTERVAL",), 60.0, non_negative_float, "seconds >= 0"),
    # -- hub-block monitor (otel_showmax/_instrumentation/hub_monitor.py) --------------------------
    Setting(
        "hub_block_threshold", (PREFIX + "HUB_BLOCK_THRESHOLD",), 100.0, threshold_ms,
        "milliseconds >= 10, or 0 / off to disable",
        doc="In gevent workers, report each block of the hub at least this long (span, WARNING log, "
            "gevent.hub.block.duration histogram), tied to the request that held the hub.",
    ),
)

BY_FIELD: dict[str, Setting] = {s.field: s for s in SETTINGS}

# Settings whose user values are added to the built-in list rather than replacing it.
ADDITIVE = frozenset({"sanitize_headers", "redact_query_params"})


def markdown_table() -> str:
    """The settings as a Markdown table (docs/settings.md is generated from this)."""
    per_signal = {"endpoint", "protocol", "headers", "timeout", "compression", "certificate", "client_key",
                  "client_certificate"}
    lines = [
        "| keyword of `setup()` | environment variable | default | accepted |",
        "|---|---|---|---|",
    ]
    for setting in SETTINGS:
        prefix, _, rest = setting.field.partition("_")
        if prefix in SIGNALS and rest in per_signal:
            continue  # listed once below the table
        default = setting.default
        if isinstance(default, tuple):
            default = ", ".join(default) if len(default) <= 4 else ", ".join(default[:4]) + ", …"
        elif setting.field.endswith("level"):
            default = logging.getLevelName(default)
        envs = " or ".join(f"`{e}`" for e in setting.env)
        doc = f" {setting.doc}" if setting.doc else ""
        lines.append(f"| `{setting.field}` | {envs} | `{default}` | {setting.accepted}.{doc} |")
    lines.append("")
    lines.append(
        "Each `OTEL_EXPORTER_OTLP_*` setting also has a per-signal variable "
        "(`OTEL_EXPORTER_OTLP_TRACES_*`, `_LOGS_*`, `_METRICS_*`; keywords `traces_endpoint`, `logs_headers`, …) "
        "that wins over the generic one. The generic endpoint gets `/v1/<signal>` appended for OTLP/HTTP; a "
        "per-signal endpoint is used as is. Keywords `endpoint`, `protocol`, `headers`, `timeout`, `compression`, "
        "`certificate`, `client_key`, `client_certificate` are short for the `otlp_*` ones."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m otel_showmax._settings > docs/settings.md
    print("# Settings\n\nGenerated by `python -m otel_showmax._settings`; keyword argument → environment → default.\n")
    print(markdown_table(), end="")
