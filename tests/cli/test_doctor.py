"""``otel-showmax doctor`` on deliberately broken set-ups: each reported with a fix and exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from otel_showmax._instrumentation.libraries import installed_names
from otel_showmax.receiver import dead_port

APPS = Path(__file__).parents[1] / "data" / "doctor_apps"


def doctor(endpoint: str, *args: str, env: dict[str, str] | None = None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GUNICORN_", "UWSGI_"))}
    environ.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SHOWMAX_SHUTDOWN_TIMEOUT": "1", **(env or {})})
    done = subprocess.run([sys.executable, "-m", "otel_showmax.cli", "doctor", "--json", "--timeout", "2", *args],
                          cwd=APPS, env=environ, capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout), done.stderr


def errors(report):
    return [(f["check"], f["message"]) for f in report["findings"] if f["severity"] == "error"]


def test_a_correct_set_up_exits_0_and_reaches_the_collector(receiver):
    code, report, stderr = doctor(receiver.endpoint, "--app", "good_app:app",
                                  env={"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cret"})
    assert code == 0, (report, stderr)
    assert report["ok"] is True and errors(report) == []
    assert report["provenance"]["entry_point"] == "setup()"
    assert report["provenance"]["file"] == str(APPS / "good_app.py")
    config = report["config"]
    assert config["service_name"] == ["doctor-good", "argument"]
    assert config["traces.endpoint"] == [f"{receiver.endpoint}/v1/traces", "env:OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert config["logs.headers"] == [{"x-api-key": "***"}, "env:OTEL_EXPORTER_OTLP_HEADERS"]
    assert "s3cret" not in json.dumps(report)
    assert [(p["signal"], p["ok"], p["answer"]) for p in report["connectivity"]] == [
        ("traces", True, "HTTP 200"), ("logs", True, "HTTP 200"), ("metrics", True, "HTTP 200")]
    assert all(p["ms"] >= 0 for p in report["connectivity"])
    assert receiver.wait_for(spans=1, logs=1, metrics=1, timeout=5)
    assert [s["name"] for s in receiver.spans] == ["otel-showmax doctor connectivity check"]
    instrumentations = sorted(f["message"] for f in report["findings"] if f["check"] == "instrumentations")
    others = sorted(set(installed_names()) - {"falcon", "logging"})
    assert "requests" in others
    assert instrumentations == [
        "falcon: skipped, otel_showmax instruments Falcon itself (otel_showmax.falcon)",
        "logging: skipped, otel_showmax correlates logs itself (otel_showmax.correlation)",
        "on: " + ", ".join(others),
    ]
    assert [r["body"] for r in receiver.logs if r["scope"] == ""] == ["otel-showmax doctor connectivity check"]
    assert receiver.spans[0]["resource"]["service.name"] == "doctor-good"
    root = next(n for n in report["logging_tree"] if n["logger"] == "root")
    assert [(h["type"], h["otel_export"]) for h in root["handlers"]] == [
        ("logging.StreamHandler", None), ("otel_showmax._pipeline.log_bridge.BridgeHandler", "bridge")]


def test_unreachable_endpoint(receiver):
    code, report, _ = doctor(f"http://127.0.0.1:{dead_port()}", "--app", "good_app:app")
    assert code == 1
    assert [c for c, _ in errors(report)] == ["connectivity"] * 3
    assert all("Connection refused" in p["answer"] and not p["ok"] for p in report["connectivity"])
    assert all(f["fix"] for f in report["findings"] if f["severity"] == "error")


def test_duplicate_handler_on_a_named_logger(receiver):
    code, report, _ = doctor(receiver.endpoint, "--app", "duplicate_handler_app:app", "--no-connect")
    assert code == 1
    assert errors(report) == [("logging", "logger 'catalogue' has StreamHandler more than once with the same output: "
                               "every record logged there is written (and handled) twice — the seed's get_logger() bug")]


def test_logging_instrumentation_handler_plus_setup_exports_twice(receiver):
    code, report, _ = doctor(receiver.endpoint, "--app", "logging_instrumentation_app:app", "--no-connect")
    assert code == 1
    assert errors(report) == [("logging", "records logged to 'catalogue' are exported 2 times: "
                               "opentelemetry.instrumentation.logging.handler.LoggingHandler on 'catalogue', "
                               "otel_showmax._pipeline.log_bridge.BridgeHandler on 'root'")]


def test_grpc_under_gevent_without_gevent_support(receiver):
    code, report, _ = doctor(receiver.endpoint, "--app", "grpc_gevent_app:app", "--no-connect")
    assert code == 1
    [(check, message)] = errors(report)
    assert check == "gevent" and "without grpc.experimental.gevent.init_gevent()" in message
    assert report["gevent"]["patched"][:3] == ["socket", "ssl", "threading"]
    assert report["gevent"]["grpc_gevent_ready"] is False


def test_uwsgi_options_that_lose_data(receiver):
    budget = {"OTEL_SHOWMAX_SHUTDOWN_TIMEOUT": "5"}
    code, report, _ = doctor(receiver.endpoint, "--app", "good_app:app", "--no-connect", "--uwsgi-ini",
                             "lossy_uwsgi.ini", env=budget)
    assert code == 1
    messages = [m for c, m in errors(report) if c == "server"]
    assert len(messages) == 3
    assert messages[0].startswith("uWSGI skip-atexit")
    assert messages[1].startswith("uWSGI worker-reload-mercy = 2 s is shorter than otel_showmax's shutdown budget (5.0 s)")
    assert messages[2].startswith("uWSGI gevent-early-monkey-patch with py-call-uwsgi-fork-hooks")
    code, report, _ = doctor(receiver.endpoint, "--no-connect", "--uwsgi-ini", "safe_uwsgi.ini", env=budget)
    assert (code, errors(report)) == (0, [])
    assert report["app"] == "good_app:app"  # taken from the ini's module option


def test_gunicorn_graceful_timeout_shorter_than_the_flush_budget(receiver):
    code, report, _ = doctor(receiver.endpoint, "--no-connect", "--gunicorn-args",
                             "--graceful-timeout 2 -k gevent good_app:app", env={"OTEL_SHOWMAX_SHUTDOWN_TIMEOUT": "5"})
    assert code == 1
    [(check, message)] = errors(report)
    assert check == "server" and message.startswith("gunicorn graceful_timeout (2 s) is shorter")
    assert report["server"]["options"]["worker_class"] == "gevent"
    assert report["app"] == "good_app:app"
    code, report, _ = doctor(receiver.endpoint, "--no-connect", "--gunicorn-args",
                             "--graceful-timeout 30 -k gevent good_app:app", env={"OTEL_SHOWMAX_SHUTDOWN_TIMEOUT": "5"})
    assert (code, errors(report)) == (0, [])


def test_request_log_filtered_out_by_a_logging_configuration(receiver):
    code, report, _ = doctor(receiver.endpoint, "--app", "quiet_request_log_app:app", "--no-connect")
    assert code == 1
    assert errors(report) == [("logging", "the request log ('otel_showmax.request' at INFO) is filtered out by logger "
                               "levels: no request log line is written or exported")]


def test_gunicorn_preload_with_a_grpc_channel_created_before_fork(receiver):
    code, report, _ = doctor(receiver.endpoint, "--no-connect", "--gunicorn-args", "--preload preload_grpc_app:app")
    assert code == 1
    [(check, message)] = errors(report)
    assert check == "server" and message.startswith("gunicorn --preload with 1 gRPC channel(s) created at import")
    code, report, _ = doctor(receiver.endpoint, "--no-connect", "--gunicorn-args", "preload_grpc_app:app")
    assert (code, errors(report)) == (0, [])  # without --preload each worker imports the app itself


def test_blackholed_endpoint_is_reported_within_the_timeout(blackhole):
    started = time.monotonic()
    code, report, _ = doctor(blackhole.endpoint, "--app", "good_app:app", "--timeout", "1")
    assert code == 1
    assert [c for c, _ in errors(report)] == ["connectivity"] * 3
    assert all("timed out" in p["answer"] for p in report["connectivity"]), report["connectivity"]
    assert time.monotonic() - started < 20


def test_grpc_endpoints_are_checked_over_grpc():
    from otel_showmax.receiver import OTLPGrpcReceiver

    with OTLPGrpcReceiver() as grpc_receiver:
        code, report, stderr = doctor(grpc_receiver.endpoint, "--app", "good_app:app",
                                      env={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
        assert code == 0, (report, stderr)
        assert [(p["signal"], p["protocol"], p["answer"]) for p in report["connectivity"]] == [
            ("traces", "grpc", "gRPC OK"), ("logs", "grpc", "gRPC OK"), ("metrics", "grpc", "gRPC OK")]
        assert grpc_receiver.wait_for(spans=1, logs=1, metrics=1, timeout=5)
        assert [s["name"] for s in grpc_receiver.spans] == ["otel-showmax doctor connectivity check"]


def test_text_report_for_people(receiver):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GUNICORN_", "UWSGI_"))}
    environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    done = subprocess.run([sys.executable, "-m", "otel_showmax.cli", "doctor", "--app", "duplicate_handler_app:app",
                           "--no-connect"], cwd=APPS, env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == "App: duplicate_handler_app:app"
    assert lines[1].startswith(f"Configured by: setup() at {APPS / 'duplicate_handler_app.py'}:")
    assert "    service_name = doctor-duplicate  ← argument" in lines
    assert f"    traces.endpoint = {receiver.endpoint}/v1/traces  ← env:OTEL_EXPORTER_OTLP_ENDPOINT" in lines
    assert "    catalogue [NOTSET]" in lines
    error = lines.index(next(line for line in lines if line.startswith("  ✗ ERROR   [logging] logger 'catalogue'")))
    assert lines[error + 1].startswith("      fix: add the handler once at start-up")
    assert lines[-1] == "Result: telemetry would be lost or duplicated (exit 1)"


def test_an_invalid_setting_is_reported_as_the_start_up_failure_it_is(receiver):
    code, report, _ = doctor(receiver.endpoint, "--app", "good_app:app", env={"OTEL_EXPORTER_OTLP_PROTOCOL": "smoke"})
    assert code == 1
    assert errors(report) == [("config", "good_app:app fails at start-up: otel_showmax: invalid "
                               "OTEL_EXPORTER_OTLP_PROTOCOL='smoke'; accepted: http/protobuf, grpc")]
    code, report, _ = doctor(receiver.endpoint, "--app", "no_such_module:app")
    assert [(f["check"], f["message"]) for f in report["findings"]] == [
        ("app", "cannot load no_such_module:app: ModuleNotFoundError: No module named 'no_such_module'")]


def app_findings(report):
    return [(f["severity"], f["message"]) for f in report["findings"] if f["check"] == "app"][1:]


def test_an_app_built_after_setup_is_reported_traced(receiver):
    _, report, _ = doctor(receiver.endpoint, "--app", "good_app:app")
    assert app_findings(report) == [("ok", "good_app:app is traced (built after otel_showmax.setup())")]


def test_an_app_built_before_setup_is_reported_traced_through_instrument_app(receiver):
    code, report, stderr = doctor(receiver.endpoint, "--app", "early_app:app")
    assert code == 0, (report, stderr)
    assert app_findings(report) == [("info", "early_app:app was built before otel_showmax.setup(): it is traced "
                                             "through otel_showmax.falcon.instrument_app() from its first request "
                                             "in each worker")]


def test_an_app_built_before_setup_that_cannot_be_rebuilt_is_flagged(receiver):
    code, report, _ = doctor(receiver.endpoint, "--app", "pinned_app:app")
    assert code == 1
    [(check, message)] = errors(report)
    assert check == "app"
    assert message.startswith("pinned_app:app was built before otel_showmax.setup() and cannot be traced: "
                              "instrument_app(): cannot rebuild RegionApp")
    [fix] = [f["fix"] for f in report["findings"] if f["severity"] == "error"]
    assert "instrument_app(app)" in fix
