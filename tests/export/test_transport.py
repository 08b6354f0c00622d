"""OTLP/HTTP exporters post through upstream's urllib3 transport only where that changes nothing.

Exporters 1.40-1.44 have no pluggable transport: they keep their requests.Session, and
``use_urllib3`` says so (False) — checked here on those releases instead.
"""

from __future__ import annotations

import pytest
import requests

from otel_showmax._config import resolve
from otel_showmax._export import exporters as _exporters
from otel_showmax._export.otlp_http import HTTPSpanExporter, use_urllib3

try:  # opentelemetry-exporter-otlp-proto-http >= 1.45
    from opentelemetry.exporter.http.transport._requests import RequestsHTTPTransport
    from opentelemetry.exporter.http.transport._urllib3 import Urllib3HTTPTransport

    PLUGGABLE = True
except ImportError:  # 1.40-1.44: the exporter's own requests.Session, always
    RequestsHTTPTransport = Urllib3HTTPTransport = requests.Session
    PLUGGABLE = False


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch, tmp_path):
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc


def _transport(exporter):
    return type(exporter._client._transport) if PLUGGABLE else type(exporter._session)


def test_plain_http_without_proxy_uses_urllib3_and_exports(receiver):
    config = resolve({"endpoint": receiver.endpoint, "metrics_exporter": "none"})
    exporter = _exporters.make_exporter(config.traces)
    assert _transport(exporter) is Urllib3HTTPTransport
    from opentelemetry.sdk.trace import TracerProvider

    span = TracerProvider().get_tracer("t").start_span("one")
    span.end()
    assert exporter.export([span]).name == "SUCCESS"
    assert receiver.wait_for(spans=1, timeout=5)
    assert [s["name"] for s in receiver.spans] == ["one"]


@pytest.mark.parametrize("endpoint", ["https://127.0.0.1:4318/v1/traces", "unix:///tmp/x"])
def test_other_schemes_keep_requests(endpoint):
    exporter = HTTPSpanExporter(endpoint=endpoint)
    assert use_urllib3(exporter, endpoint) is False
    assert _transport(exporter) is RequestsHTTPTransport


def test_a_proxy_in_the_environment_keeps_requests_unless_bypassed(monkeypatch):
    endpoint = "http://127.0.0.1:4318/v1/traces"
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    exporter = HTTPSpanExporter(endpoint=endpoint)
    assert use_urllib3(exporter, endpoint) is False
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert use_urllib3(exporter, endpoint) is PLUGGABLE
    assert _transport(exporter) is Urllib3HTTPTransport


def test_netrc_credentials_keep_requests(monkeypatch, tmp_path):
    endpoint = "http://127.0.0.1:4318/v1/traces"
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login a password b\n")
    assert use_urllib3(HTTPSpanExporter(endpoint=endpoint), endpoint) is False
    monkeypatch.setenv("NETRC", str(tmp_path / "elsewhere"))
    (tmp_path / ".netrc").unlink()
    assert use_urllib3(HTTPSpanExporter(endpoint=endpoint), endpoint) is False


def test_a_session_the_caller_chose_is_kept():
    endpoint = "http://127.0.0.1:4318/v1/traces"
    session = requests.Session()
    exporter = HTTPSpanExporter(endpoint=endpoint, session=session)
    if PLUGGABLE:
        exporter._client._transport = object()  # e.g. a transport of the caller's
    else:
        assert exporter._session is session
    assert use_urllib3(exporter, endpoint) is False


def test_dead_and_blackholed_collectors_fail_the_export_within_its_timeout(blackhole):
    import time

    from opentelemetry.sdk.trace import TracerProvider

    from tests._net import free_port

    span = TracerProvider().get_tracer("t").start_span("one")
    span.end()
    for endpoint in (f"http://127.0.0.1:{free_port()}/v1/traces", blackhole.endpoint + "/v1/traces"):
        exporter = HTTPSpanExporter(endpoint=endpoint, timeout=1)
        assert use_urllib3(exporter, endpoint) is PLUGGABLE
        started = time.monotonic()
        assert exporter.export([span]).name == "FAILURE"
        assert time.monotonic() - started < 5
        exporter.shutdown()
