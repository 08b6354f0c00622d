"""The catalogue demo through the full tier, found in Zipkin's web UI by a headless Chromium.

``make stack`` in a test: Zipkin, two tier gateways, a tier agent and the catalogue example
(storefront + catalogue under gunicorn -k gevent) exporting traces to the agent. A request to the
storefront prints its trace id in the request log; the browser opens Zipkin's UI, searches that
trace id and must find the storefront's and the catalogue's spans in it.

Debian's chromium and chromium-driver and selenium (tests/collector/requirements.txt) are installed
by collector/test-deps.sh when missing; the test fails (never skips) when they cannot be.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from . import _otelcol, _tier
from ._otelcol import REPO, wait_until

pytestmark = [pytest.mark.collector, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")


@pytest.fixture(scope="module")
def browser_deps() -> None:
    proc = subprocess.run([str(REPO / "collector" / "test-deps.sh"), sys.executable], capture_output=True, text=True,
                          timeout=900, check=False)
    if proc.returncode != 0:
        pytest.fail(f"collector/test-deps.sh failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)


@pytest.fixture
def stack(tmp_path: Path):
    try:
        s = _tier.start_stack(tmp_path / "stack", with_example=True, sampling_percentage=100)
    except _otelcol.CollectorError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def chrome(browser_deps, tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")  # fresh for each test
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")),
                              options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_demo_trace_from_the_request_log_is_in_zipkins_ui(stack, chrome):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from otel_showmax._cli import demo as _demo

    answers = _demo._traffic(stack.ports["storefront"], 3)  # /home, /home?genre=drama, /watch/7, /watch/999
    assert [s for _, s in answers] == [200, 200, 200, 404]
    log_path = stack.tier.workdir / "storefront.log"
    wait_until(lambda: len(_tier.request_log_trace_ids(log_path.read_text(errors="replace"))) == 4, timeout=10,
               what="the storefront's request log lines")
    ids = dict(_tier.request_log_trace_ids(log_path.read_text(errors="replace")))
    trace_id = ids["/watch/7"]
    assert len(trace_id) == 32

    # Through agent -> replica (tail sampling, 100% here) -> Zipkin: the storefront's server and client
    # spans, the catalogue's server span and its SQLite query.
    wait_until(lambda: len({s["id"] for s in stack.zipkin.trace(trace_id)}) == 4, timeout=30,
               what="the trace's four spans in Zipkin's API")
    services = sorted(s["localEndpoint"]["serviceName"] for s in stack.zipkin.trace(trace_id))
    assert services == ["catalogue", "catalogue", "storefront", "storefront"]

    chrome.get(stack.zipkin.ui_url)
    search = None

    def found_search_box() -> bool:
        nonlocal search
        boxes = [e for e in chrome.find_elements(By.TAG_NAME, "input") if e.get_attribute("placeholder") == "Trace ID"]
        search = boxes[0] if boxes else None
        return search is not None

    wait_until(found_search_box, timeout=20, interval=0.25, what="Zipkin UI's 'Trace ID' search box")
    assert search is not None
    search.send_keys(trace_id)
    search.send_keys(Keys.ENTER)
    wait_until(lambda: chrome.current_url.rstrip("/").endswith(f"/zipkin/traces/{trace_id}"), timeout=20,
               what="the trace page")

    def page_text() -> str:
        return chrome.find_element(By.TAG_NAME, "body").text

    wait_until(lambda: "catalogue: get" in page_text() and "storefront: get" in page_text(), timeout=20,
               interval=0.25, what="the storefront and catalogue spans on the trace page")
    text = page_text()
    assert trace_id in text
    assert "Total Spans\n4" in text and "Services\n2" in text, text[:600]
    assert "catalogue: select" in text  # the SQLite query under the catalogue span
    assert "/titles/{title_id:int}" in text  # the catalogue's route, reached through the storefront

    # Negative control: the same search for a trace id nobody sent shows no spans.
    unknown = "0123456789abcdef0123456789abcdef"
    chrome.get(f"{stack.zipkin.ui_url}traces/{unknown}")
    wait_until(lambda: unknown in page_text() or "not found" in page_text().lower(), timeout=20, interval=0.25,
               what="Zipkin UI's page for an unknown trace")
    assert "catalogue: get" not in page_text() and "storefront: get" not in page_text()
