"""One setup() traces the whole service: storefront → requests → catalogue → SQLite and Redis.

Neither service instruments anything by hand: the client span, the database spans and the cache
spans come from the instrumentors ``setup()`` (or the wrapper) turned on. Both services run with
two gevent workers, under gunicorn or uWSGI, configured one of these ways:

- ``setup``: ``setup()`` at the top of the app modules (examples/catalogue);
- ``preload+post_fork``: the storefront's app object built in the gunicorn master (``--preload``)
  before any set-up, ``setup()`` in each worker's ``post_fork`` (tests/scenarios/late_frontend.py);
- ``wrapper``: ``opentelemetry-instrument`` in front of the server.

For every storefront request, one trace: the storefront's server span (a root) → its ``requests``
client span → the catalogue's server span → exactly one Redis ``GET`` and, when that missed, one
SQLite ``SELECT`` and one Redis ``SETEX``; every application log line carries its own span's ids.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from otel_showmax.receiver import ReceiverProcess
from tests.integration._servers import (
    app_logs,
    drive,
    server_spans,
    start_gunicorn,
    start_redis,
    start_uwsgi,
    telemetry_env,
)

pytestmark = pytest.mark.integration

N = 24
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
MIX = (("/home", 200), ("/home?genre=drama", 200), ("/home?genre=kids", 200))
CASES = [
    ("gunicorn", "setup"),
    ("gunicorn", "preload+post_fork"),
    ("gunicorn", "wrapper"),
    ("uwsgi", "setup"),
    ("uwsgi", "wrapper"),
]


def start(server: str, mode: str, service: str, env: dict[str, str], output: Path):
    module = "catalogue" if service == "catalogue" else "frontend"
    if server == "uwsgi":
        return start_uwsgi(env, output, module=module, lazy_apps=True, wrapper=mode == "wrapper",
                           extra=["--gevent-early-monkey-patch"])
    if service == "storefront" and mode == "preload+post_fork":
        return start_gunicorn(env, output, app="tests.scenarios.late_frontend:app", preload=True,
                              conf=SCENARIOS / "late_setup_conf.py")
    return start_gunicorn(env, output, app=f"{module}:app", wrapper=mode == "wrapper")


def kind_of(span: dict) -> str:
    attributes = span["attributes"]
    system = attributes.get("db.system") or attributes.get("db.system.name")
    return f"{system}:{span['name'].split()[0]}" if system else span["kind"]


# The gunicorn cases are the supported-range scenario: the oldest matrix leg runs them too.
@pytest.mark.parametrize(("server", "mode"), [
    pytest.param(s, m, id=f"{s}-{m}", marks=[pytest.mark.scenario] if s == "gunicorn" else []) for s, m in CASES])
def test_every_storefront_request_is_one_complete_trace(tmp_path, server, mode):
    with ReceiverProcess() as receiver, start_redis(tmp_path / "redis.log") as redis_url:
        catalogue_env = telemetry_env(receiver.endpoint, "catalogue", REDIS_URL=redis_url,
                                      CATALOGUE_DB=str(tmp_path / "catalogue.db"))
        with start(server, "setup" if mode == "preload+post_fork" else mode, "catalogue", catalogue_env,
                   tmp_path / "catalogue.log") as catalogue:
            env = telemetry_env(receiver.endpoint, "storefront", CATALOGUE_URL=catalogue.base_url)
            with start(server, mode, "storefront", env, tmp_path / "storefront.log") as storefront:
                drive(storefront.base_url, N, mix=MIX, concurrency=4)
                output = storefront.text()
                storefront.stop("SIGTERM")
            catalogue.stop("SIGTERM")
        received = receiver.read_jsonl()

    if mode != "preload+post_fork":  # there the app itself imports requests in the master, before patching
        assert "MonkeyPatchWarning" not in output, output[-3000:]
    front = [s for s in server_spans(received, "storefront") if s["name"].startswith("GET /home")]
    assert len(front) == N, f"{len(front)} storefront server spans for {N} requests"
    assert len({int(s["resource"]["process.pid"]) for s in front}) == 2, "both workers served"
    by_trace: dict[str, list[dict]] = defaultdict(list)
    for span in received["spans"]:
        by_trace[span["trace_id"]].append(span)
    assert len({s["trace_id"] for s in front}) == N

    misses = 0
    for root in front:
        spans = by_trace[root["trace_id"]]
        children: dict[str, list[dict]] = defaultdict(list)
        for span in spans:
            children[span["parent_span_id"]].append(span)
        assert root["parent_span_id"] == "" and children[""] == [root]
        (client,) = children[root["span_id"]]
        assert client["kind"] == "CLIENT" and client["resource"]["service.name"] == "storefront"
        (called,) = children[client["span_id"]]
        assert called["kind"] == "SERVER" and called["resource"]["service.name"] == "catalogue"
        below = sorted(kind_of(s) for s in children[called["span_id"]])
        assert below in (["redis:GET"], ["redis:GET", "redis:SETEX", "sqlite:SELECT"]), below
        misses += len(below) == 3
        assert len(spans) == 3 + len(below), "nothing else in the trace"
    assert 1 <= misses <= N, "the cache missed at least once (then the database was queried)"

    for service, logger in (("storefront", "storefront"), ("catalogue", "catalogue")):
        spans = {s["span_id"]: s for s in server_spans(received, service)}
        lines = app_logs(received, service, logger)
        assert len(lines) >= N
        for line in lines:
            if line["trace_id"]:
                assert spans[line["span_id"]]["trace_id"] == line["trace_id"]
