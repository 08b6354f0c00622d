"""After os.fork() the child exports through its own pipeline and names its own pid."""

from __future__ import annotations

import os

import pytest
from opentelemetry import trace

import otel_showmax


@pytest.mark.guarantee
def test_child_has_its_own_pipeline_and_pid(receiver):
    otel_showmax.setup(
        endpoint=receiver.endpoint,
        resource_attributes={"service.instance.id": "catalogue-1"},
        metrics_exporter="none",
    )
    tracer = trace.get_tracer("fork-test")
    with tracer.start_as_current_span("before-fork"):
        pass
    parent = os.getpid()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            with trace.get_tracer("fork-test").start_as_current_span("in-child"):
                pass
            code = 0 if otel_showmax.shutdown(5) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with tracer.start_as_current_span("after-fork"):
        pass
    otel_showmax.shutdown()
    assert receiver.wait_for(spans=3, timeout=10)
    by_name = {s["name"]: s for s in receiver.spans}
    assert sorted(by_name) == ["after-fork", "before-fork", "in-child"]
    assert len(receiver.spans) == 3
    assert by_name["in-child"]["resource"]["process.pid"] == child
    assert by_name["before-fork"]["resource"]["process.pid"] == parent
    assert by_name["after-fork"]["resource"]["process.pid"] == parent
    for span in receiver.spans:
        assert span["resource"]["service.instance.id"] == "catalogue-1"


def test_child_without_user_instance_id_gets_its_own(receiver):
    otel_showmax.setup(endpoint=receiver.endpoint, metrics_exporter="none")
    tracer = trace.get_tracer("fork-test")
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            with tracer.start_as_current_span("child"):
                pass
            otel_showmax.shutdown(5)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    with tracer.start_as_current_span("parent"):
        pass
    otel_showmax.shutdown()
    assert receiver.wait_for(spans=2, timeout=10)
    ids = {s["name"]: s["resource"]["service.instance.id"] for s in receiver.spans}
    assert ids["child"] != ids["parent"]
