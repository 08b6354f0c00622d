"""Under gevent, what the exporters import is imported before serving, not by a fresh worker's
first export: an import on the export thread of a process whose request thread is saturated
waits for the GIL after every file-system call (~2 s instead of ~0.15 s here), and the log queue
fills meanwhile. Never before gevent has patched ssl (gevent would warn, urllib3 keep real ssl).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, sys
    import otel_showmax
    from otel_showmax import _config
    from otel_showmax._export import exporters as _exporters

    protocol = sys.argv[1]
    import gevent.monkey
    gevent.monkey.patch_all()
    otel_showmax.setup(service_name="preload-test", endpoint="http://127.0.0.1:9", protocol=protocol)
    before = set(sys.modules)
    config = _config.resolve({"endpoint": "http://127.0.0.1:9", "otlp_protocol": protocol}, environ={})
    for signal in ("traces", "logs", "metrics"):
        _exporters.make_exporter(config.exporter(signal)).shutdown()
    print(json.dumps(sorted(set(sys.modules) - before)))
    sys.stdout.flush()
    import os
    os._exit(0)  # no shutdown against the closed port
""")


def _imported_by_make_exporter(protocol: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", CHILD, protocol], capture_output=True, text=True, timeout=120,
                         check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_http_exporters_import_nothing_after_setup():
    assert _imported_by_make_exporter("http/protobuf") == []


def test_grpc_exporters_import_only_grpc_internals_after_setup():
    # grpc._channel comes with the first channel, gevent's pool with grpc's gevent support
    # (init_gevent, made before the first channel); protobuf and the exporters do not.
    assert all(name.startswith(("grpc.", "gevent.")) for name in _imported_by_make_exporter("grpc"))


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_setup_without_exporters_imports_none_of_them(protocol):
    child = textwrap.dedent(f"""
        import sys
        import otel_showmax
        otel_showmax.setup(service_name="x", protocol="{protocol}", traces_exporter="none", logs_exporter="none",
                           metrics_exporter="none", instrumentations="none")  # requests' instrumentor imports it
        print("requests" in sys.modules, "grpc" in sys.modules, "otel_showmax._export.otlp_http" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def _run(code: str) -> list[str]:
    # DeprecationWarning ignored as pytest does here: falcon 3.1 imports cgi, deprecated in Python 3.11.
    cmd = [sys.executable, "-W", "error", "-W", "ignore::DeprecationWarning", "-c", textwrap.dedent(code)]
    out = subprocess.run(cmd, capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("gevent_imported", [True, False])
def test_before_patch_all_the_imports_wait_for_it(gevent_imported):
    # A gunicorn master with gevent workers, or the wrapper: importing urllib3 before gevent patches
    # ssl would make gevent warn (an error here, -W error) and leave urllib3's ssl names unpatched.
    assert _run(f"""
        import os, sys
        {"import gevent" if gevent_imported else ""}
        import otel_showmax
        otel_showmax.setup(service_name="x", endpoint="http://127.0.0.1:9")
        print("requests" in sys.modules)
        import gevent.monkey
        gevent.monkey.patch_all()
        print("requests" in sys.modules)
        sys.stdout.flush()
        os._exit(0)
    """) == ["False", "True"]


def test_without_gevent_patching_nothing_is_imported_early():
    assert _run("""
        import os, sys
        import otel_showmax
        otel_showmax.setup(service_name="x", endpoint="http://127.0.0.1:9")
        print("requests" in sys.modules, "gevent" in sys.modules)  # library instrumentors wait too
        sys.stdout.flush()
        os._exit(0)
    """) == ["False", "False"]


def test_a_forked_child_that_patches_imports_them_before_serving():
    # The wrapper's gunicorn master sets up, forks; the worker patches, then serves.
    assert _run("""
        import os, sys
        import otel_showmax
        otel_showmax.setup(service_name="x", endpoint="http://127.0.0.1:9")
        pid = os.fork()
        if pid == 0:
            import gevent.monkey
            gevent.monkey.patch_all()
            print("child", "requests" in sys.modules)
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent", "requests" in sys.modules)
        sys.stdout.flush()
        os._exit(0)
    """) == ["child", "True", "parent", "False"]


def test_after_patch_all_the_imports_happen_at_setup():
    assert _run("""
        import os, sys
        import gevent.monkey
        gevent.monkey.patch_all()
        import otel_showmax
        otel_showmax.setup(service_name="x", endpoint="http://127.0.0.1:9")
        print("requests" in sys.modules)
        sys.stdout.flush()
        os._exit(0)
    """) == ["True"]
