"""The resolved configuration: argument → environment → default, frozen."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from . import _settings as s
from ._errors import ConfigError

# Friendly keyword names for the generic OTLP settings: setup(endpoint=...) == setup(otlp_endpoint=...).
ALIASES = {
    "endpoint": "otlp_endpoint",
    "protocol": "otlp_protocol",
    "headers": "otlp_headers",
    "timeout": "otlp_timeout",
    "compression": "otlp_compression",
    "certificate": "otlp_certificate",
    "client_key": "otlp_client_key",
    "client_certificate": "otlp_client_certificate",
}

MASK = "***"


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Who configured this process first."""

    entry_point: str
    """``setup()``, ``opentelemetry-instrument``, or another caller's label."""
    file: str
    line: int
    pid: int


@dataclass
class Libraries:
    """Which instrumentors ``setup()`` turned on in this process, and which it skipped and why."""

    active: list[str] = field(default_factory=list)
    """Entry-point names instrumented by otel_showmax (or found instrumented already)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Entry-point name → why it was not turned on."""
    pending: bool = False
    """Waiting for gevent's ``patch_all`` in this process (a gunicorn gevent worker with ``--preload``)."""
    by_wrapper: bool = False
    """``opentelemetry-instrument`` configured the process: its own loader turns them on."""

    def as_dict(self) -> dict[str, Any]:
        return {"active": list(self.active), "skipped": dict(self.skipped), "pending": self.pending,
                "by_wrapper": self.by_wrapper}


@dataclass(frozen=True, kw_only=True)
class ExporterConfig:
    """The effective exporter settings of one signal."""

    signal: str
    kind: str
    """``otlp``, ``console`` or ``none``."""
    protocol: str
    endpoint: str
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    timeout: float
    """Seconds, as opentelemetry-sdk reads OTEL_EXPORTER_OTLP_TIMEOUT."""
    compression: str
    certificate: str | None
    client_key: str | None
    client_certificate: str | None

    def masked(self) -> dict[str, Any]:
        """This exporter's settings with header values masked."""
        out = asdict(self)
        out["headers"] = {k: MASK for k, _ in self.headers}
        return out


@dataclass(frozen=True, kw_only=True)
class BatchConfig:
    """Batching of one signal (OTEL_BSP_* for spans, OTEL_BLRP_* for logs)."""

    schedule_delay_ms: int
    export_timeout_ms: int
    max_queue_size: int
    max_export_batch_size: int


@dataclass(frozen=True, kw_only=True)
class Config:
    """The configuration otel_showmax resolved for this process.

    Every field comes from a keyword argument of ``setup()``, else an environment variable, else
    a default; ``sources`` says which for each setting.
    """

    disabled: bool
    service_name: str
    resource_attributes: tuple[tuple[str, str], ...]
    traces: ExporterConfig
    logs: ExporterConfig
    metrics: ExporterConfig
    sampler: str
    sampler_arg: float
    propagators: tuple[str, ...]
    span_batch: BatchConfig
    log_batch: BatchConfig
    metric_export_interval_ms: int
    metric_export_timeout_ms: int
    attribute_value_length_limit: int | None
    attribute_count_limit: int | None
    span_attribute_value_length_limit: int | None
    span_attribute_count_limit: int | None
    span_event_count_limit: int | None
    span_link_count_limit: int | None
    log_record_attribute_count_limit: int | None
    shutdown_timeout: float
    """Seconds that ``shutdown()`` may take in all, default 4."""
    log_correlation: bool
    log_fields: str
    log_export_level: int
    instrument_falcon: bool
    instrumentations: tuple[str, ...] | None
    """Installed instrumentors setup() turns on: None for all, else these names."""
    disabled_instrumentations: tuple[str, ...]
    request_log: bool
    request_log_logger: str
    request_log_level: int
    excluded_urls: tuple[str, ...]
    capture_request_headers: tuple[str, ...]
    capture_response_headers: tuple[str, ...]
    sanitize_headers: tuple[str, ...]
    redact_query_params: tuple[str, ...]
    diagnostics_interval: float
    hub_block_threshold: float
    """Milliseconds; 0 disables the hub-block monitor (gevent workers only)."""
    sources: Mapping[str, str] = field(compare=False, repr=False)
    """For each setting: ``argument``, ``env:NAME`` or ``default``."""
    provenance: Provenance | None = field(default=None, compare=False)
    libraries: Libraries | None = field(default=None, compare=False)
    """Which installed instrumentors setup() turned on and which it skipped, with why."""
    upstream: Any = field(default=None, compare=False)
    """The installed OpenTelemetry versions and which fast paths setup()'s check left on (``_selfcheck.UpstreamReport``)."""

    def exporter(self, signal: str) -> ExporterConfig:
        """The exporter settings of ``traces``, ``logs`` or ``metrics``."""
        return getattr(self, signal)

    def as_dict(self) -> dict[str, Any]:
        """Every setting, secrets masked, with its source and the provenance."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("sources", "provenance", "libraries", "upstream"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, ExporterConfig):
                value = value.masked()
            elif isinstance(value, BatchConfig):
                value = asdict(value)
            out[f.name] = value
        out["sources"] = dict(self.sources)
        out["provenance"] = asdict(self.provenance) if self.provenance else None
        out["libraries"] = self.libraries.as_dict() if self.libraries else None
        out["upstream"] = self.upstream.as_dict() if self.upstream else None
        return out

    def with_provenance(self, provenance: Provenance) -> Config:
        return replace(self, provenance=provenance)


def _raw(options: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse every declared setting from options, then environment, then default."""
    unknown = set(options) - set(s.BY_FIELD) - set(ALIASES)
    if unknown:
        accepted = ", ".join(sorted(set(s.BY_FIELD) | set(ALIASES)))
        raise ConfigError(f"keyword argument {sorted(unknown)[0]}", options[sorted(unknown)[0]], accepted)
    given = {ALIASES.get(k, k): k for k in options}
    options = {ALIASES.get(k, k): v for k, v in options.items() if v is not None}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in s.SETTINGS:
        if setting.field in options:
            raw, source = options[setting.field], "argument"
            label = f"keyword argument {given[setting.field]}"
        else:
            env = next((name for name in setting.env if environ.get(name, "").strip()), None)
            if env is None:
                values[setting.field] = setting.default
                sources[setting.field] = "default"
                continue
            raw, source, label = environ[env], f"env:{env}", env
        try:
            value = setting.parse(raw)
        except s.Invalid:
            shown = "***" if setting.secret else raw
            raise ConfigError(label, shown, setting.accepted)
        if setting.field in s.ADDITIVE:
            value = tuple(dict.fromkeys((*setting.default, *value)))
        values[setting.field] = value
        sources[setting.field] = source
    return values, sources


def _default_endpoint(signal: str, protocol: str, generic: str | None) -> str:
    if protocol == "grpc":
        return generic or "http://localhost:4317"
    base = (generic or "http://localhost:4318").rstrip("/")
    return f"{base}/v1/{signal}"


def _exporter(signal: str, v: dict[str, Any], sources: dict[str, str]) -> ExporterConfig:
    def pick(name: str) -> Any:
        specific = v[f"{signal}_{name}"]
        return specific if specific is not None else v[f"otlp_{name}"]

    protocol = pick("protocol")
    specific_endpoint = v[f"{signal}_endpoint"]
    endpoint = specific_endpoint or _default_endpoint(signal, protocol, v["otlp_endpoint"])
    if v[f"{signal}_exporter"] == "otlp" and protocol != "grpc" and "://" not in endpoint:
        # host:port is gRPC's short form only; OTLP/HTTP needs a scheme (caught here, not at the first export).
        field = f"{signal}_endpoint" if specific_endpoint else "otlp_endpoint"
        source = sources.get(field, "default")
        label = source[4:] if source.startswith("env:") else f"keyword argument {field}"
        raise ConfigError(label, v[field] or endpoint, f"an http:// or https:// URL for protocol {protocol}")
    return ExporterConfig(
        signal=signal,
        kind=v[f"{signal}_exporter"],
        protocol=protocol,
        endpoint=endpoint,
        headers=pick("headers"),
        timeout=pick("timeout"),
        compression=pick("compression"),
        certificate=pick("certificate"),
        client_key=pick("client_key"),
        client_certificate=pick("client_certificate"),
    )


def _check_propagators(names: tuple[str, ...], source: str) -> None:
    from ._upstream import entry_points

    installed = {ep.name for ep in entry_points(group="opentelemetry_propagator")} | {"none"}
    for name in names:
        if name not in installed:
            raise ConfigError(source, ",".join(names), ", ".join(sorted(installed)))


def resolve(options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Resolve keyword options and the environment into a Config, or raise ConfigError."""
    env = os.environ if environ is None else environ
    v, sources = _raw(options or {}, env)
    src = sources["propagators"]
    _check_propagators(v["propagators"], "OTEL_PROPAGATORS" if src.startswith("env") else "keyword propagators")
    attributes = dict(v["resource_attributes"])
    service_name = v["service_name"] or attributes.get("service.name") or "unknown_service"
    return Config(
        disabled=v["disabled"],
        service_name=service_name,
        resource_attributes=tuple(attributes.items()),
        traces=_exporter("traces", v, sources),
        logs=_exporter("logs", v, sources),
        metrics=_exporter("metrics", v, sources),
        sampler=v["sampler"],
        sampler_arg=v["sampler_arg"],
        propagators=v["propagators"],
        span_batch=BatchConfig(
            schedule_delay_ms=v["bsp_schedule_delay_ms"],
            export_timeout_ms=v["bsp_export_timeout_ms"],
            max_queue_size=v["bsp_max_queue_size"],
            max_export_batch_size=min(v["bsp_max_export_batch_size"], v["bsp_max_queue_size"]),
        ),
        log_batch=BatchConfig(
            schedule_delay_ms=v["blrp_schedule_delay_ms"],
            export_timeout_ms=v["blrp_export_timeout_ms"],
            max_queue_size=v["blrp_max_queue_size"],
            max_export_batch_size=min(v["blrp_max_export_batch_size"], v["blrp_max_queue_size"]),
        ),
        metric_export_interval_ms=v["metric_export_interval_ms"],
        metric_export_timeout_ms=v["metric_export_timeout_ms"],
        attribute_value_length_limit=v["attribute_value_length_limit"],
        attribute_count_limit=v["attribute_count_limit"],
        span_attribute_value_length_limit=v["span_attribute_value_length_limit"],
        span_attribute_count_limit=v["span_attribute_count_limit"],
        span_event_count_limit=v["span_event_count_limit"],
        span_link_count_limit=v["span_link_count_limit"],
        log_record_attribute_count_limit=v["log_record_attribute_count_limit"],
        shutdown_timeout=v["shutdown_timeout"],
        log_correlation=v["log_correlation"],
        log_fields=v["log_fields"],
        log_export_level=v["log_export_level"],
        instrument_falcon=v["instrument_falcon"],
        instrumentations=v["instrumentations"],
        disabled_instrumentations=v["disabled_instrumentations"],
        request_log=v["request_log"],
        request_log_logger=v["request_log_logger"],
        request_log_level=v["request_log_level"],
        excluded_urls=v["excluded_urls"],
        capture_request_headers=v["capture_request_headers"],
        capture_response_headers=v["capture_response_headers"],
        sanitize_headers=v["sanitize_headers"],
        redact_query_params=v["redact_query_params"],
        diagnostics_interval=v["diagnostics_interval"],
        hub_block_threshold=v["hub_block_threshold"],
        sources=sources,
    )
