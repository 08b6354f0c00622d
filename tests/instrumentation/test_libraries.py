"""setup() turns on every installed instrumentor once per process, as opentelemetry-instrument does.

Each case runs in its own process: instrumentors patch libraries process-wide, and the test
process itself must stay as it was. A fake instrumentor package (an entry point on a temporary
``sys.path``) stands for one that raises in ``instrument()``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otel_showmax._instrumentation.libraries import installed_names

BIN = Path(sys.executable).parent
# Every installed instrumentor but the two otel_showmax replaces (requests, sqlite3, redis with the dev extra).
OTHERS = sorted(set(installed_names()) - {"falcon", "logging"})
REPORT = """
    import json, sys
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    libraries = otel_showmax.get_config().libraries
    print(json.dumps({**libraries.as_dict(), "requests_on": RequestsInstrumentor().is_instrumented_by_opentelemetry}))
"""


def run(*parts: str, env: dict[str, str] | None = None, wrapper: bool = False, path: Path | None = None) -> tuple[dict, str]:
    full = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none", **(env or {})}
    code = "\n".join(textwrap.dedent(part) for part in parts)
    if path is not None:
        full["PYTHONPATH"] = os.pathsep.join([str(path), full.get("PYTHONPATH", "")])
    # A gevent MonkeyPatchWarning is an error; DeprecationWarning is ignored as pytest does (falcon 3.1 imports cgi).
    cmd = [sys.executable, "-W", "error", "-W", "ignore::DeprecationWarning", "-c", code]
    if wrapper:
        cmd = [str(BIN / "opentelemetry-instrument"), *cmd]
    done = subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_setup_turns_on_every_installed_instrumentor_except_ours():
    report, _ = run("""
        import urllib3  # already imported by the app: nothing to wait for
        import otel_showmax
        otel_showmax.setup(service_name="libs")
    """, REPORT)
    assert report["requests_on"] is True
    assert "requests" in OTHERS
    assert report["active"] == OTHERS and report["pending"] is False and report["by_wrapper"] is False
    assert set(report["skipped"]) == {"falcon", "logging"}
    assert "otel_showmax instruments Falcon itself" in report["skipped"]["falcon"]


@pytest.mark.parametrize(("env", "options", "reason"), [
    ({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests"}, "", "disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"),
    ({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": " * "}, "", "disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"),
    ({}, ', instrumentations="none"', "not listed in instrumentations"),
    ({"OTEL_SHOWMAX_INSTRUMENTATIONS": "sqlite3"}, "", "not listed in instrumentations"),
])
def test_disabled_or_not_listed_instrumentors_stay_off(env, options, reason):
    report, _ = run(f"""
        import urllib3
        import otel_showmax
        otel_showmax.setup(service_name="libs"{options})
    """, REPORT, env=env)
    assert report["requests_on"] is False and "requests" not in report["active"]
    assert report["skipped"]["requests"] == reason


def test_an_unknown_name_gets_one_warning_naming_it():
    report, stderr = run("""
        import urllib3
        import otel_showmax
        otel_showmax.setup(service_name="libs")
        otel_showmax.setup(service_name="libs")
    """, REPORT, env={"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "reqests,not-a-library"})
    assert report["requests_on"] is True
    assert stderr.count("'reqests', which is not an installed instrumentation") == 1
    assert stderr.count("'not-a-library', which is not an installed instrumentation") == 1


def test_an_instrumentor_that_raises_is_reported_once_and_skipped(tmp_path):
    (tmp_path / "boom_instrumentor.py").write_text(textwrap.dedent("""
        from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

        class BoomInstrumentor(BaseInstrumentor):
            def instrumentation_dependencies(self):
                return ()

            def _instrument(self, **kwargs):
                raise RuntimeError("boom at instrument()")

            def _uninstrument(self, **kwargs):
                pass
    """))
    dist = tmp_path / "boom_instrumentor-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: boom-instrumentor\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[opentelemetry_instrumentor]\nboom = boom_instrumentor:BoomInstrumentor\n")
    report, stderr = run("""
        import urllib3
        import otel_showmax
        otel_showmax.setup(service_name="libs")
    """, REPORT, path=tmp_path)
    assert report["skipped"]["boom"] == "failed: RuntimeError: boom at instrument()"
    assert report["active"] == OTHERS and report["requests_on"] is True  # setup() carried on
    assert stderr.count("instrumentation 'boom' failed and was skipped") == 1


def test_before_patch_all_they_wait_for_it_without_a_gevent_warning():
    report, _ = run("""
        import sys
        import otel_showmax
        otel_showmax.setup(service_name="libs")
        waiting = otel_showmax.get_config().libraries.pending and "requests" not in sys.modules
        import gevent.monkey
        gevent.monkey.patch_all()  # a MonkeyPatchWarning is an error here
        assert waiting, "instrumentors ran before patch_all"
    """, REPORT)
    assert report["requests_on"] is True and report["pending"] is False and report["active"] == OTHERS


def test_without_patch_all_they_are_on_before_the_first_request():
    report, _ = run("""
        import falcon, falcon.testing, sys
        import otel_showmax
        otel_showmax.setup(service_name="libs")
        assert otel_showmax.get_config().libraries.pending
        app = falcon.App()
        falcon.testing.TestClient(app).simulate_get("/")
    """, REPORT)
    assert report["requests_on"] is True and report["pending"] is False


@pytest.mark.guarantee
def test_under_the_wrapper_its_loader_turns_them_on_exactly_once():
    report, stderr = run("""
        import sys
        import falcon, falcon.testing
        import otel_showmax
        otel_showmax.setup(service_name="libs")
        from otel_showmax._instrumentation import libraries
        assert libraries.pending and "requests" not in sys.modules, "the wrapper's loader did not wait for gevent"
        falcon.testing.TestClient(falcon.App()).simulate_get("/")  # the first request
    """, REPORT, wrapper=True)
    assert report["by_wrapper"] is True and report["active"] == [] and report["requests_on"] is True
    assert "already instrumented" not in stderr


def test_reset_turns_them_off_again():
    report, _ = run("""
        import urllib3
        import otel_showmax, otel_showmax.testing
        otel_showmax.setup(service_name="libs")
        otel_showmax.testing.reset()
        otel_showmax.setup(service_name="libs", instrumentations="none")
    """, REPORT)
    assert report["requests_on"] is False


def test_deferred_instrumentors_wait_while_the_export_thread_imports():
    """Two threads importing the same packages at once can see half-initialised modules; the export
    thread's first imports and the deferred instrumentors take turns (otel_showmax._threads.IMPORTS)."""
    import threading
    import time

    from otel_showmax import _threads
    from otel_showmax._instrumentation import libraries

    order: list[str] = []
    holding = threading.Event()

    def export_thread_imports():
        with _threads.IMPORTS:
            holding.set()
            time.sleep(0.3)
            order.append("exporter imported")

    thread = threading.Thread(target=export_thread_imports)
    thread.start()
    assert holding.wait(5)
    libraries._waiting.append(lambda: order.append("instrumentors on"))
    started = time.monotonic()
    libraries.run_pending()
    waited = time.monotonic() - started
    thread.join(5)
    assert order == ["exporter imported", "instrumentors on"]
    assert 0.15 < waited < 5
    assert _threads.IMPORTS.acquire(False)  # released again
    _threads.IMPORTS.release()
