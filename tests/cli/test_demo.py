"""``otel-showmax demo`` end to end: two services under gunicorn + gevent, traces with logs under spans."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
COMMAND = Path(sys.executable).parent / "otel-showmax"
COLLECTOR = Path(__file__).parents[2] / "collector" / "_build" / "otelcol-showmax"


# "embedded" is what a fresh checkout shows (no collector built yet); "collector" puts the built
# agent (collector/demo-agent.yaml) between the apps and the receiver. make test builds it first.
@pytest.mark.parametrize("receiver", ["embedded", "collector"])
def test_demo_shows_correlated_traces_from_both_services_and_stops_everything(receiver):
    if receiver == "collector":
        assert COLLECTOR.exists(), "build the collector first: collector/build.sh"
    started = time.monotonic()
    done = subprocess.run([str(COMMAND), "demo", "--no-color", "--receiver", receiver], capture_output=True, text=True,
                          timeout=90)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 60
    out, err = done.stdout, done.stderr
    assert ("apps → collector agent" in err) == (receiver == "collector"), err
    blocks = [b for b in out.split("\n\n") if b.startswith("Trace ")]
    assert len(blocks) == 6, out  # 5 successful requests and the failing one, one trace each

    two_services = [b for b in blocks if "2 services (catalogue, storefront)" in b.splitlines()[0]]
    assert len(two_services) == 6, out
    watch = next(b for b in blocks if "storefront  GET /watch/{title_id" in b and " 200" in b.splitlines()[1])
    lines = watch.splitlines()
    assert lines[1].startswith("storefront  GET /watch/{title_id")
    catalogue_line = next(i for i, line in enumerate(lines) if "catalogue  GET /titles/{title_id" in line)
    assert lines.index(next(line for line in lines if "storefront  GET" in line and "└─" in line)) < catalogue_line
    # each service's log lines sit under its own server span
    log_line = re.compile(r"^[│ ]+ \d\d:\d\d:\d\d\.\d{3} (INFO|WARN|ERROR) ")
    assert any(log_line.match(line) and "watch page for title" in line for line in lines[2:catalogue_line]), watch
    assert any(log_line.match(line) and re.search(r"title \d+: ", line) for line in lines[catalogue_line:]), watch

    failing = [b for b in blocks if "404" in b.splitlines()[1]]
    assert len(failing) == 1 and "ERROR" in failing[0], out
    assert "title 999 not found" in failing[0]

    # everything it started is gone: the services' ports are closed again
    for port in re.findall(r"http://127\.0\.0\.1:(\d+)", err.split("(gunicorn -k gevent)")[0]):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
    assert "stopped everything it started" in err
