"""Settings: argument → environment → default, and one clear error for a bad value."""

from __future__ import annotations

import pytest

from otel_showmax import ConfigError
from otel_showmax._config import resolve


def test_defaults_follow_the_specification():
    config = resolve({}, {})
    assert config.traces.protocol == "http/protobuf"
    assert config.traces.endpoint == "http://localhost:4318/v1/traces"
    assert config.logs.endpoint == "http://localhost:4318/v1/logs"
    assert config.metrics.endpoint == "http://localhost:4318/v1/metrics"
    assert config.span_batch.max_queue_size == 2048
    assert config.log_batch.schedule_delay_ms == 1000
    assert config.shutdown_timeout == 4.0
    assert config.sources["otlp_protocol"] == "default"


def test_environment_then_signal_specific_then_argument():
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9999/custom",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc%20def,x-tenant=t1",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
        "OTEL_SERVICE_NAME": "from-env",
    }
    config = resolve({"service_name": "from-arg"}, env)
    assert config.traces.endpoint == "http://collector:4318/v1/traces"
    assert config.logs.endpoint == "http://logs:9999/custom"  # signal-specific: used as is
    assert dict(config.traces.headers) == {"api-key": "abc def", "x-tenant": "t1"}
    assert config.traces.timeout == 2.5
    assert config.service_name == "from-arg"
    assert config.sources["service_name"] == "argument"
    assert config.sources["otlp_endpoint"] == "env:OTEL_EXPORTER_OTLP_ENDPOINT"


def test_grpc_endpoint_has_no_signal_path():
    config = resolve({"protocol": "grpc", "endpoint": "http://127.0.0.1:4317"}, {})
    assert config.traces.endpoint == "http://127.0.0.1:4317"


def test_secrets_are_masked():
    config = resolve({}, {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20s3cret"})
    shown = repr(config) + str(config.as_dict())
    assert "s3cret" not in shown
    assert config.as_dict()["traces"]["headers"] == {"authorization": "***"}


@pytest.mark.parametrize(
    ("env", "value", "accepted"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/protobuf, grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp", "http/protobuf, grpc"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "otlp, console, none"),
        ("OTEL_LOGS_EXPORTER", "otlp,console", "otlp, console, none"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "-1", "an integer > 0"),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", "lots", "an integer > 0"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "key=value pairs"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "bad key=1", "key=value pairs"),
        ("OTEL_TRACES_SAMPLER", "sometimes", "always_on, always_off, traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5", "a number from 0 to 1"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "none, gzip, deflate"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "seconds"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "readable PEM CA certificate"),
        ("OTEL_PROPAGATORS", "tracecontext,nosuch", "tracecontext"),
        ("OTEL_SHOWMAX_SHUTDOWN_TIMEOUT", "-2", "seconds >= 0"),
        ("OTEL_SHOWMAX_LOG_FIELDS", "custom", "plain, otel, ecs"),
    ],
)
def test_invalid_environment_names_variable_and_accepted_values(env, value, accepted):
    with pytest.raises(ConfigError) as info:
        resolve({}, {env: value})
    message = str(info.value)
    assert env in message
    assert accepted in message


def test_invalid_keyword_names_the_keyword():
    with pytest.raises(ConfigError, match=r"keyword argument protocol.*http/protobuf, grpc"):
        resolve({"protocol": "smoke-signals"}, {})
    with pytest.raises(ConfigError, match="keyword argument no_such_option"):
        resolve({"no_such_option": 1}, {})


def test_header_values_are_not_echoed_in_errors():
    with pytest.raises(ConfigError) as info:
        resolve({}, {"OTEL_EXPORTER_OTLP_HEADERS": "authorization"})
    assert "***" in str(info.value)


def test_additive_redaction_lists_keep_the_builtins():
    config = resolve({}, {"OTEL_SHOWMAX_REDACT_QUERY_PARAMS": "pin"})
    assert "pin" in config.redact_query_params
    assert "token" in config.redact_query_params


def test_docs_settings_table_is_current():
    from pathlib import Path

    from otel_showmax._settings import markdown_table

    doc = (Path(__file__).parent.parent / "docs" / "settings.md").read_text()
    assert markdown_table() in doc, "regenerate: python -m otel_showmax._settings > docs/settings.md"


@pytest.mark.parametrize(("env", "value", "accepted"), [
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http//127.0.0.1:4318", "http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:99999", "http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector", "http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector host:4318", "http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "URL for protocol http/protobuf"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "localhost:4318/v1/traces", "http:// or https:// URL"),
    ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "localhost:4318", "URL for protocol http/protobuf"),
])
def test_a_malformed_endpoint_fails_at_setup_naming_the_variable(env, value, accepted):
    with pytest.raises(ConfigError) as raised:
        resolve(environ={env: value})
    assert raised.value.source == env and raised.value.value == value
    assert accepted in str(raised.value)


def test_grpc_takes_host_and_port_without_a_scheme():
    config = resolve(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert config.traces.endpoint == "localhost:4317"


@pytest.mark.parametrize("setting", ["certificate", "client_key", "client_certificate"])
def test_an_unreadable_or_non_pem_certificate_fails_at_setup(tmp_path, setting):
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"\x00not a certificate")
    directory = tmp_path / "a-directory"
    directory.mkdir()
    for path in (garbage, directory):
        with pytest.raises(ConfigError) as raised:
            resolve({setting: str(path)}, environ={})
        assert raised.value.source == f"keyword argument {setting}" and "readable PEM" in str(raised.value)
    good = tmp_path / "ca.pem"
    good.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    assert getattr(resolve({setting: str(good)}, environ={}).traces, setting) == str(good)
