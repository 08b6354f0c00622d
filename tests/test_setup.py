"""setup() configures exactly once per process, whatever calls it and how often."""

from __future__ import annotations

import logging
import threading

import pytest
from opentelemetry import _logs, metrics, trace

import otel_showmax
from otel_showmax import _setup, _upstream
from otel_showmax._pipeline import log_bridge as _bridge
from otel_showmax._pipeline import providers
from tests._net import free_port


@pytest.fixture
def dead_endpoint():
    return f"http://127.0.0.1:{free_port()}"


def bridge_handlers() -> list[logging.Handler]:
    """Every OTel bridge handler on the whole logging tree (ours or upstream's)."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    found = []
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, _bridge.BridgeHandler) or type(h).__name__ == "LoggingHandler":
                found.append(h)
    return found


def assert_one_pipeline():
    tracer_provider = trace.get_tracer_provider()
    logger_provider = _logs.get_logger_provider()
    assert isinstance(tracer_provider, providers.ShowmaxTracerProvider)
    assert isinstance(logger_provider, providers.ShowmaxLoggerProvider)
    assert isinstance(metrics.get_meter_provider(), providers.ShowmaxMeterProvider)
    assert len(_upstream.span_processors(tracer_provider)) == 1
    assert len(_upstream.log_processors(logger_provider)) == 1
    assert len(bridge_handlers()) == 1


def test_a_thousand_calls_leave_one_pipeline(dead_endpoint):
    first = otel_showmax.setup(service_name="once", endpoint=dead_endpoint, shutdown_timeout=0.2)
    for _ in range(1000):
        assert otel_showmax.setup(service_name="once", endpoint=dead_endpoint, shutdown_timeout=0.2) is first
    assert_one_pipeline()
    assert otel_showmax.is_configured()


@pytest.mark.guarantee
def test_sixteen_threads_at_once_leave_one_pipeline(dead_endpoint):
    results = []
    barrier = threading.Barrier(16)

    def call():
        barrier.wait()
        results.append(otel_showmax.setup(service_name="threads", endpoint=dead_endpoint))

    threads = [threading.Thread(target=call) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 16
    assert all(r is results[0] for r in results)
    assert_one_pipeline()


def test_different_options_warn_once_and_return_the_active_config(dead_endpoint, capsys):
    first = otel_showmax.setup(service_name="first", endpoint=dead_endpoint)
    for _ in range(5):
        assert otel_showmax.setup(service_name="second", endpoint=dead_endpoint) is first
    err = capsys.readouterr().err
    assert err.count("asked for a different configuration") == 1
    assert "test_setup.py" in err
    assert otel_showmax.get_config().service_name == "first"


def test_get_config_names_who_configured_first(dead_endpoint):
    import os

    otel_showmax.setup(endpoint=dead_endpoint)
    line = test_get_config_names_who_configured_first.__code__.co_firstlineno + 3
    provenance = otel_showmax.get_config().provenance
    assert provenance.entry_point == "setup()"
    assert provenance.file == __file__
    assert provenance.line == line
    assert provenance.pid == os.getpid()


def test_invalid_options_raise_even_after_setup(dead_endpoint):
    otel_showmax.setup(endpoint=dead_endpoint)
    with pytest.raises(otel_showmax.ConfigError):
        otel_showmax.setup(protocol="carrier-pigeon")


def test_get_logger_adds_no_handler(dead_endpoint):
    otel_showmax.setup(endpoint=dead_endpoint)
    for _ in range(1000):
        log = otel_showmax.get_logger("showmax")
    assert log.handlers == []
    assert len(bridge_handlers()) == 1


@pytest.mark.guarantee
def test_logging_reconfiguration_keeps_exactly_one_bridge(dead_endpoint):
    import logging.config

    otel_showmax.setup(endpoint=dead_endpoint)
    logging.config.dictConfig({"version": 1, "root": {"level": "INFO", "handlers": []}})
    assert len(bridge_handlers()) == 1
    logging.basicConfig(force=True)
    assert len(bridge_handlers()) == 1
    logging.config.dictConfig({"version": 1, "incremental": False, "disable_existing_loggers": True})
    assert len(bridge_handlers()) == 1
    assert logging.getLogger(otel_showmax.get_config().request_log_logger).disabled is False


def test_an_upstream_otel_handler_is_replaced_not_doubled(dead_endpoint, capsys):
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    upstream = LoggingHandler()
    logging.getLogger().addHandler(upstream)
    try:
        otel_showmax.setup(endpoint=dead_endpoint)
        assert upstream not in logging.getLogger().handlers
        assert len(bridge_handlers()) == 1
        assert "removed LoggingHandler" in capsys.readouterr().err
    finally:
        logging.getLogger().removeHandler(upstream)


def test_sdk_disabled_configures_nothing(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    config = otel_showmax.setup()
    assert config.disabled
    assert bridge_handlers() == []
    assert otel_showmax.shutdown() is True


@pytest.mark.guarantee
def test_shutdown_runs_once(dead_endpoint):
    otel_showmax.setup(endpoint=dead_endpoint, shutdown_timeout=0.3)
    assert _setup.get_state().shutdown_pid is None
    otel_showmax.shutdown()
    pid = _setup.get_state().shutdown_pid
    assert pid is not None
    assert otel_showmax.shutdown() is True  # second call: nothing to do
