"""One setup() traces the whole service: storefront → requests → catalogue, one complete tree each.

The storefront calls the catalogue with ``requests`` and instruments nothing by hand: the client
span comes from the instrumentor ``setup()`` turned on. Three ways to configure the storefront,
each under gunicorn with two gevent workers:

- ``setup-at-top``: ``setup()`` at the top of the app module (examples/catalogue/frontend.py);
- ``preload+post_fork``: the app object built in the master (``--preload``) before any set-up,
  ``setup()`` in each worker's ``post_fork`` (tests/scenarios/late_frontend.py);
- ``wrapper``: ``opentelemetry-instrument`` in front of gunicorn.

For every storefront request: the storefront's server span is a root, its client span is that
span's child, and the catalogue's server span is the client span's child, all in one trace.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from otel_showmax.receiver import ReceiverProcess
from tests.integration._servers import drive, server_spans, start_gunicorn, telemetry_env

pytestmark = pytest.mark.integration

N = 20
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
MODES = {
    "setup-at-top": {"app": "frontend:app"},
    "preload+post_fork": {"app": "tests.scenarios.late_frontend:app", "preload": True,
                          "conf": SCENARIOS / "late_setup_conf.py"},
    "wrapper": {"app": "frontend:app", "wrapper": True},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_storefront_request_is_one_complete_trace(tmp_path, mode):
    with ReceiverProcess() as receiver:
        with start_gunicorn(telemetry_env(receiver.endpoint, "catalogue"), tmp_path / "catalogue.log") as catalogue:
            env = telemetry_env(receiver.endpoint, "storefront", CATALOGUE_URL=catalogue.base_url)
            with start_gunicorn(env, tmp_path / "storefront.log", workers=2, **MODES[mode]) as storefront:
                drive(storefront.base_url, N, mix=(("/home", 200),), concurrency=4)
                storefront_output = storefront.text
                storefront.stop("SIGTERM")
            catalogue.stop("SIGTERM")
        received = receiver.read_jsonl()

    assert "MonkeyPatchWarning" not in storefront_output() or mode == "preload+post_fork", storefront_output()
    front = [s for s in server_spans(received, "storefront") if s["name"] == "GET /home"]
    back = [s for s in server_spans(received, "catalogue") if s["name"] == "GET /titles"]
    clients = [s for s in received["spans"] if s["kind"] == "CLIENT" and s["resource"]["service.name"] == "storefront"]
    assert len(front) == len(back) == len(clients) == N, (len(front), len(back), len(clients))
    assert len({int(s["resource"]["process.pid"]) for s in front}) == 2, "both workers served"

    by_trace = defaultdict(dict)
    for span in received["spans"]:
        by_trace[span["trace_id"]][span["span_id"]] = span
    assert len({s["trace_id"] for s in front}) == N
    for root in front:
        spans = by_trace[root["trace_id"]].values()
        (client,) = [s for s in spans if s["kind"] == "CLIENT"]
        (called,) = [s for s in spans if s["resource"]["service.name"] == "catalogue" and s["kind"] == "SERVER"]
        assert root["parent_span_id"] == ""
        assert client["parent_span_id"] == root["span_id"]
        assert called["parent_span_id"] == client["span_id"], "the catalogue continued the storefront's trace"
